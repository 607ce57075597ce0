// `filmgrad restore` as a user runs it, on small images and tiny random-weight models saved as checkpoints the way
// `filmgrad train` saves them: outputs of the right size, depth and channels (8- and 16-bit PNG and TIFF, grey and
// alpha), negative mode keeping R and G exactly, tiled equal to untiled for a convolution-only model whose
// receptive field the margin covers, masks, never overwriting an input, --overwrite, a corrupt image among good
// ones, and one-line errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "apps/task.h"
#include "data/image_io.h"
#include "nn/checkpoint.h"
#include "tensor/philox.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

namespace {

namespace fs = std::filesystem;

// Runs `filmgrad restore ARGS`.
fg::test::CommandResult restore(const std::string& args) {
  return fg::test::run_filmgrad("restore " + args);
}

// Scales a 1x1 output conv so that a random network's prediction stays inside (0, 1): around `bias`, varying with
// the input (the comparisons below then see real values, not clamped ones).
void tame_head(fg::nn::Module& m, const std::string& prefix, float scale, float bias) {
  int found = 0;
  for (auto& [name, p] : m.named_parameters()) {
    found += name == prefix + ".weight" || name == prefix + ".bias";
    if (name == prefix + ".weight") {
      fg::Tensor w = p.data();
      float* v = w.data<float>();
      for (int64_t i = 0; i < w.numel(); ++i) v[i] *= scale;
    } else if (name == prefix + ".bias") {
      fg::Tensor b = p.data();
      b.fill_(bias);
    }
  }
  EXPECT_EQ(found, 2) << "no 1x1 head named " << prefix;
}

// Saves a random-weight model the way `filmgrad train` saves its checkpoints (the config rebuilds the model).
void save_model(const std::string& path, const std::string& task, const std::string& model, double width,
                const std::string& loss, const std::string& head, float head_scale, fg::Generator& gen) {
  fg::apps::ModelConfig config;
  config.task = task;
  config.model = model;
  config.width = width;
  config.loss = loss;
  fg::apps::RestorationModel m(config, gen, /*build_loss=*/false);
  tame_head(m.module(), head, head_scale, 0.5f);
  fg::nn::CheckpointInfo info;
  info.model = model;
  info.config = config.to_json();
  fg::nn::save_checkpoint(path, m.module(), nullptr, info);
}

class RestoreCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("fg_restore_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    fg::Generator gen(7);
    fs::create_directories(dir_ / "dust_run");
    save_model((dir_ / "dust_run" / "model.safetensors").string(), "dust", "tiny_unet", 1.0, "mse", "head", 4.0f,
               gen);
    save_model((dir_ / "negative.safetensors").string(), "negative", "cross_channel", 0.0625, "cross_channel",
               "final_net.out", 0.05f, gen);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string path(const std::string& rel) { return (dir_ / rel).string(); }
  static std::string dust_model() { return path("dust_run"); }
  static std::string negative_model() { return path("negative.safetensors"); }

  // A smooth image with some texture, (C, H, W) in [0, 1], written at `depth`.
  static void write_test_image(const std::string& file, int64_t C, int64_t H, int64_t W, int depth, uint64_t seed) {
    fg::Tensor t = fg::test::random_tensor({C, H, W}, seed, fg::DType::F32, 0.0, 1.0);
    float* p = t.data<float>();
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          float& v = p[(c * H + y) * W + x];
          v = 0.25f * v + 0.75f * float(0.5 + 0.4 * std::sin(0.11 * double(x + 3 * c) + 0.07 * double(y)));
        }
    fs::create_directories(fs::path(file).parent_path());
    fg::data::write_image(file, fg::data::make_image(t, depth));
  }

  static fs::path dir_;
};
fs::path RestoreCli::dir_;

void expect_one_line_error(const fg::test::CommandResult& r, int status, const std::string& needle) {
  EXPECT_EQ(r.status, status) << r.out;
  EXPECT_EQ(fg::test::count_lines(r.out), 1) << r.out;
  EXPECT_EQ(r.out.rfind("filmgrad: error: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
}

double max_abs_diff(const fg::Tensor& a, const fg::Tensor& b) {
  const std::vector<float> x = a.to_vector_f32(), y = b.to_vector_f32();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) m = std::max(m, std::fabs(double(x[i]) - double(y[i])));
  return m;
}

TEST_F(RestoreCli, DustKeepsSizeDepthChannelsAndAlpha) {
  write_test_image(path("dust_in/rgb8.png"), 3, 29, 37, 8, 1);
  write_test_image(path("dust_in/sub/rgb16.tif"), 3, 32, 40, 16, 2);
  write_test_image(path("dust_in/greyalpha16.png"), 2, 18, 21, 16, 3);
  const fg::test::CommandResult r =
      restore(path("dust_in") + " -o " + path("dust_out") + " --model " + dust_model() + " --mask");
  ASSERT_EQ(r.status, 0) << r.out;

  struct Want {
    std::string in, out;
    int64_t C, H, W;
    int depth;
    std::string format;
  };
  for (const Want& w : {Want{"dust_in/rgb8.png", "dust_out/rgb8_restored.png", 3, 29, 37, 8, "png"},
                        Want{"dust_in/sub/rgb16.tif", "dust_out/sub/rgb16_restored.tif", 3, 32, 40, 16, "tiff"},
                        Want{"dust_in/greyalpha16.png", "dust_out/greyalpha16_restored.png", 2, 18, 21, 16, "png"}}) {
    ASSERT_TRUE(fs::exists(path(w.out))) << w.out << "\n" << r.out;
    const fg::data::Image in = fg::data::read_image(path(w.in));
    const fg::data::Image out = fg::data::read_image(path(w.out));
    EXPECT_EQ(out.channels, w.C) << w.out;
    EXPECT_EQ(out.height(), w.H) << w.out;
    EXPECT_EQ(out.width(), w.W) << w.out;
    EXPECT_EQ(out.bit_depth, w.depth) << w.out;
    EXPECT_EQ(out.format, w.format) << w.out;
    EXPECT_GT(max_abs_diff(in.pixels.narrow(0, 0, 1), out.pixels.narrow(0, 0, 1)), 1e-3) << w.out << " unchanged";
    const std::string mask = w.out.substr(0, w.out.rfind('.')) + "_mask.png";
    ASSERT_TRUE(fs::exists(path(mask))) << mask;
    EXPECT_EQ(fg::data::read_image(path(mask)).channels, 1);
    EXPECT_EQ(fg::data::read_image(path(mask)).width(), w.W);
    if (w.C == 2) {  // alpha comes back bit for bit
      EXPECT_EQ(max_abs_diff(in.pixels.narrow(0, 1, 1), out.pixels.narrow(0, 1, 1)), 0.0);
    }
    EXPECT_NE(r.out.find(w.in), std::string::npos) << r.out;  // one line per file, naming it
  }
  EXPECT_NE(r.out.find("restored 3 images"), std::string::npos) << r.out;
}

TEST_F(RestoreCli, FormatsAndASingleOutputFile) {
  write_test_image(path("fmt/scan.tif"), 3, 24, 28, 16, 12);
  write_test_image(path("fmt/rgba.png"), 4, 20, 24, 8, 13);
  // --format png keeps 16 bits; grey is written back grey.
  write_test_image(path("fmt/grey.png"), 1, 12, 20, 8, 14);
  fg::test::CommandResult r = restore(path("fmt/scan.tif") + " " + path("fmt/grey.png") + " -o " +
                                      path("fmt_out") + " --format png --model " + dust_model());
  ASSERT_EQ(r.status, 0) << r.out;
  fg::data::Image png = fg::data::read_image(path("fmt_out/scan_restored.png"));
  EXPECT_EQ(png.format, "png");
  EXPECT_EQ(png.bit_depth, 16);
  EXPECT_EQ(png.channels, 3);
  EXPECT_EQ(fg::data::read_image(path("fmt_out/grey_restored.png")).channels, 1);
  // One input, -o naming a file: JPEG holds neither alpha nor 16 bits; both are said on the file's line.
  r = restore(path("fmt/rgba.png") + " -o " + path("fmt_out/one.jpg") + " --model " + dust_model());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("alpha dropped"), std::string::npos) << r.out;
  const fg::data::Image jpg = fg::data::read_image(path("fmt_out/one.jpg"));
  EXPECT_EQ(jpg.format, "jpeg");
  EXPECT_EQ(jpg.channels, 3);
  EXPECT_EQ(jpg.width(), 24);
  // -o with an extension other than --format's is refused.
  expect_one_line_error(
      restore(path("fmt/scan.tif") + " -o " + path("fmt_out/x.png") + " --format tif --model " + dust_model()), 2,
      "--format");
}

TEST_F(RestoreCli, NegativeKeepsRedAndGreenExactlyAndWritesTheMask) {
  write_test_image(path("neg_in/scan16.tif"), 3, 40, 48, 16, 4);  // not multiples of 16: padded and cropped back
  write_test_image(path("neg_in/scan8.png"), 3, 32, 32, 8, 5);
  const fg::test::CommandResult r = restore(path("neg_in") + " -o " + path("neg_out") + " --model " +
                                                 negative_model() + " --mode negative --mask --suffix _r");
  ASSERT_EQ(r.status, 0) << r.out;
  for (const auto& [in_rel, out_rel, depth] :
       {std::make_tuple("neg_in/scan16.tif", "neg_out/scan16_r.tif", 16),
        std::make_tuple("neg_in/scan8.png", "neg_out/scan8_r.png", 8)}) {
    const fg::data::Image in = fg::data::read_image(path(in_rel));
    const fg::data::Image out = fg::data::read_image(path(out_rel));
    ASSERT_EQ(out.channels, 3);
    EXPECT_EQ(out.bit_depth, depth);
    ASSERT_EQ(out.pixels.shape(), in.pixels.shape());
    EXPECT_EQ(max_abs_diff(in.pixels.narrow(0, 0, 2), out.pixels.narrow(0, 0, 2)), 0.0) << out_rel;
    EXPECT_GT(max_abs_diff(in.pixels.narrow(0, 2, 1), out.pixels.narrow(0, 2, 1)), 1e-3) << out_rel;
    const std::string mask_rel = std::string(out_rel).substr(0, std::string(out_rel).rfind('.')) + "_mask.png";
    ASSERT_TRUE(fs::exists(path(mask_rel))) << mask_rel << "\n" << r.out;
    const fg::data::Image mask = fg::data::read_image(path(mask_rel));
    EXPECT_EQ(mask.channels, 1);
    EXPECT_EQ(mask.height(), in.height());
    EXPECT_EQ(mask.width(), in.width());
  }
}

TEST_F(RestoreCli, TiledMatchesUntiledWhenTheMarginCoversTheReceptiveField) {
  // TinyUNet's receptive-field radius is 20 px (22 by the bound restore uses); tiles are aligned to its pools.
  write_test_image(path("tile_in/big.png"), 3, 92, 100, 16, 6);
  const fg::test::CommandResult whole = restore(path("tile_in/big.png") + " -o " + path("tile_whole.png") +
                                                     " --model " + dust_model() + " --tile 512 --margin 22");
  ASSERT_EQ(whole.status, 0) << whole.out;
  EXPECT_NE(whole.out.find(" 1 tile,"), std::string::npos) << whole.out;
  const fg::test::CommandResult tiled = restore(path("tile_in/big.png") + " -o " + path("tile_tiled.png") +
                                                     " --model " + dust_model() + " --tile 64 --margin 22 --ramp 4");
  ASSERT_EQ(tiled.status, 0) << tiled.out;
  EXPECT_EQ(tiled.out.find(" 1 tile,"), std::string::npos) << tiled.out;  // several tiles
  const fg::data::Image a = fg::data::read_image(path("tile_whole.png"));
  const fg::data::Image b = fg::data::read_image(path("tile_tiled.png"));
  ASSERT_EQ(a.bit_depth, 16);
  ASSERT_EQ(a.pixels.shape(), b.pixels.shape());
  EXPECT_LE(max_abs_diff(a.pixels, b.pixels), 1e-4);
  // The comparison means something: the prediction is not clamped flat.
  const std::vector<float> v = a.pixels.to_vector_f32();
  const auto inside = std::count_if(v.begin(), v.end(), [](float x) { return x > 0.02f && x < 0.98f; });
  EXPECT_GT(double(inside), 0.9 * double(v.size()));
  EXPECT_GT(*std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end()), 0.01f);

  // A margin that does not cover it gives visibly different seams (so the test above can fail).
  const fg::test::CommandResult thin = restore(path("tile_in/big.png") + " -o " + path("tile_thin.png") +
                                                    " --model " + dust_model() + " --tile 64 --margin 4 --ramp 0");
  ASSERT_EQ(thin.status, 0) << thin.out;
  EXPECT_GT(max_abs_diff(a.pixels, fg::data::read_image(path("tile_thin.png")).pixels), 1e-4);
}

// A folder holding a symlink to an image elsewhere: the output is named after the link, inside the output folder
// (fs::relative would resolve the link and climb out of the output folder).
TEST_F(RestoreCli, ASymlinkedImageIsWrittenInsideTheOutputFolder) {
  write_test_image(path("link_target/far/photo.png"), 3, 16, 16, 8, 61);
  fs::create_directories(path("link_in/sub"));
  fs::create_symlink(path("link_target/far/photo.png"), path("link_in/sub/linked.png"));
  const fg::test::CommandResult r = restore(path("link_in") + " -o " + path("link_out") + " --model " + dust_model());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(fs::exists(path("link_out/sub/linked_restored.png"))) << r.out;
  EXPECT_FALSE(fs::exists(path("link_target/far/photo_restored.png")));
  int64_t written = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_)) written += e.path().filename() == "linked_restored.png";
  EXPECT_EQ(written, 1);
}

TEST_F(RestoreCli, NeverOverwritesAnInputAndAsksBeforeReplacingOutputs) {
  write_test_image(path("ow/a.png"), 3, 16, 16, 8, 8);
  const std::string before = [&] {
    std::ifstream f(path("ow/a.png"), std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }();
  expect_one_line_error(restore(path("ow/a.png") + " -o " + path("ow/a.png") + " --model " + dust_model()), 2,
                        "refusing to overwrite the input");
  expect_one_line_error(restore(path("ow") + " -o " + path("ow") + " --suffix '' --model " + dust_model()), 2,
                        "refusing to overwrite the input");
  // The same file under another spelling.
  expect_one_line_error(
      restore(path("ow/a.png") + " -o " + path("ow/../ow/./a.png") + " --overwrite --model " + dust_model()), 2,
      "refusing to overwrite the input");
  std::ifstream f(path("ow/a.png"), std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()), before);

  ASSERT_EQ(restore(path("ow/a.png") + " -o " + path("ow_out") + " --model " + dust_model()).status, 0);
  ASSERT_TRUE(fs::exists(path("ow_out/a_restored.png")));
  const auto t0 = fs::last_write_time(path("ow_out/a_restored.png"));
  expect_one_line_error(restore(path("ow/a.png") + " -o " + path("ow_out") + " --model " + dust_model()), 2,
                        "pass --overwrite");
  EXPECT_EQ(fs::last_write_time(path("ow_out/a_restored.png")), t0);
  fs::remove(path("ow_out/a_restored.png"));
  std::ofstream(path("ow_out/a_restored.png")) << "old";
  const fg::test::CommandResult again =
      restore(path("ow/a.png") + " -o " + path("ow_out") + " --overwrite --model " + dust_model());
  EXPECT_EQ(again.status, 0) << again.out;
  EXPECT_EQ(fg::data::read_image(path("ow_out/a_restored.png")).width(), 16);

  // An output folder inside the input folder is not searched: a second run restores the same one image.
  for (int run = 0; run < 2; ++run) {
    const fg::test::CommandResult r = restore(path("ow") + " -o " + path("ow/res") + " --overwrite --model " +
                                              dust_model());
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("restored 1 image "), std::string::npos) << r.out;
  }
  EXPECT_FALSE(fs::exists(path("ow/res/res")));
}

TEST_F(RestoreCli, CorruptImageAmongGoodOnesIsNamedAndTheOthersAreWritten) {
  write_test_image(path("mixed/good1.png"), 3, 16, 20, 8, 9);
  write_test_image(path("mixed/good2.tif"), 3, 20, 16, 16, 10);
  std::ofstream(path("mixed/broken.png"), std::ios::binary) << "\x89PNG\r\n\x1a\nthis is not a png at all";
  const fg::test::CommandResult r =
      restore(path("mixed") + " -o " + path("mixed_out") + " --model " + dust_model());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_TRUE(fs::exists(path("mixed_out/good1_restored.png"))) << r.out;
  EXPECT_TRUE(fs::exists(path("mixed_out/good2_restored.tif"))) << r.out;
  EXPECT_FALSE(fs::exists(path("mixed_out/broken_restored.png")));
  EXPECT_NE(r.out.find("broken.png"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 of 3 images could not be restored"), std::string::npos) << r.out;
  // Every error is one line starting with "filmgrad: error: ": one for the file, one at the end.
  size_t errors = 0;
  const std::string tag = "filmgrad: error: ";
  for (size_t at = r.out.find(tag); at != std::string::npos; at = r.out.find(tag, at + 1)) ++errors;
  EXPECT_EQ(errors, 2u) << r.out;
}

TEST_F(RestoreCli, InferenceModeAndF16WeightsGiveTheSameImageWithinTheirBounds) {
  write_test_image(path("inf_in/scan.tif"), 3, 40, 48, 16, 12);
  const std::string in = path("inf_in/scan.tif"), model = " --model " + negative_model() + " --mode negative";
  for (const auto& [suffix, flags] : {std::make_pair("_plain", ""), std::make_pair("_folded", " --inference-mode"),
                                      std::make_pair("_half", " --inference-mode --f16-weights")}) {
    const fg::test::CommandResult r =
        restore(in + " -o " + path("inf_out") + model + " --suffix " + suffix + std::string(flags));
    ASSERT_EQ(r.status, 0) << r.out;
    if (std::string(flags).find("f16") != std::string::npos) {
      EXPECT_NE(r.out.find("f16 weights"), std::string::npos) << r.out;
    }
  }
  const fg::Tensor plain = fg::data::read_image(path("inf_out/scan_plain.tif")).pixels;
  const fg::Tensor folded = fg::data::read_image(path("inf_out/scan_folded.tif")).pixels;
  const fg::Tensor half = fg::data::read_image(path("inf_out/scan_half.tif")).pixels;
  // The bounds of tests/embed/test_c_api.cpp, plus one 16-bit level.
  EXPECT_LE(max_abs_diff(plain, folded), 1e-4 + 1.0 / 65535);
  EXPECT_LE(max_abs_diff(plain, half), 2e-2);
  expect_one_line_error(restore(in + " -o " + path("inf_err") + model + " --f16-weights --device cuda"), 2,
                        "f16 weights are for the CPU");
}

// --flip-average runs the network on the image and its three mirror images and averages the results mirrored back,
// so restoring a mirrored image gives the mirrored restoration (up to the order of the four-term sum, 1e-6, and one
// 16-bit level of rounding); a single forward of a random network is not symmetric (the check that the case tests
// something).
TEST_F(RestoreCli, FlipAverageIsMirrorSymmetric) {
  write_test_image(path("flip_in/a.tif"), 3, 32, 48, 16, 51);
  const fg::data::Image a = fg::data::read_image(path("flip_in/a.tif"));
  auto mirror = [](const fg::Tensor& t) {
    const int64_t C = t.size(0), H = t.size(1), W = t.size(2);
    fg::Tensor out = fg::Tensor::empty({C, H, W});
    const std::vector<float> v = t.to_vector_f32();
    float* o = out.data<float>();
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) o[(c * H + y) * W + x] = v[size_t((c * H + y) * W + W - 1 - x)];
    return out;
  };
  fg::data::write_image(path("flip_in/b.tif"), fg::data::make_image(mirror(a.pixels), 16));
  double asymmetry[2] = {0, 0};
  for (int averaged = 0; averaged < 2; ++averaged) {
    const std::string out = path(averaged ? "flip_avg" : "flip_once");
    const fg::test::CommandResult r =
        restore(path("flip_in") + " -o " + out + " --model " + dust_model() + (averaged ? " --flip-average" : ""));
    ASSERT_EQ(r.status, 0) << r.out;
    asymmetry[averaged] = max_abs_diff(fg::data::read_image(out + "/b_restored.tif").pixels,
                                       mirror(fg::data::read_image(out + "/a_restored.tif").pixels));
  }
  EXPECT_LE(asymmetry[1], 1e-6 + 1.0 / 65535);
  EXPECT_GT(asymmetry[0], 1e-3);
}

TEST_F(RestoreCli, BadUsageAndBadFilesAreOneLineErrors) {
  write_test_image(path("err/a.png"), 3, 16, 16, 8, 11);
  const std::string in = path("err/a.png"), out = " -o " + path("err_out");
  expect_one_line_error(restore(in + out + " --model " + dust_model() + " --bogus"), 2,
                        "unknown option '--bogus'");
  expect_one_line_error(restore(in + " --model " + dust_model()), 2, "-o");
  expect_one_line_error(restore(out + " --model " + dust_model()), 2, "at least one input");
  expect_one_line_error(restore(path("err/missing.png") + out + " --model " + dust_model()), 2,
                        "does not exist");
  expect_one_line_error(restore(in + out + " --model " + path("no_such_run")), 2, "does not exist");
  expect_one_line_error(restore(in + out + " --model " + dust_model() + " --mode negative"), 2,
                        "dust model");
  expect_one_line_error(restore(in + out + " --model " + dust_model() + " --tile 16"), 2,
                        "--tile");
  expect_one_line_error(restore(in + out + " --model " + dust_model() + " --format gif"), 2,
                        "--format");
  // A safetensors file that is not a filmgrad checkpoint.
  fg::SafeTensors st;
  st.tensors["weight"] = fg::Tensor::zeros({2, 2});
  fg::save_safetensors(path("plain.safetensors"), st);
  expect_one_line_error(restore(in + out + " --model " + path("plain.safetensors")), 1,
                        "plain.safetensors");
  // An output folder that cannot be created (below a regular file, which nobody, not even root, can do).
  expect_one_line_error(restore(in + " -o " + in + "/sub --model " + dust_model()), 1,
                        "cannot create the output folder");
  EXPECT_FALSE(fs::exists(path("err_out")));
}

}  // namespace

namespace {

// A gated Dynamic U-Net checkpoint whose mask head's bias is `mask_bias` (-40: the mask is ~0 everywhere, +40:
// ~1), recording `frame` as its training's largest damage frame the way `filmgrad train` does (0: none recorded).
void save_gated(const std::string& path, float mask_bias, int64_t frame) {
  fg::Generator gen(21);
  fg::apps::ModelConfig config;
  config.model = "dynamic_unet";
  config.width = 0.125;
  config.gated = true;
  fg::apps::RestorationModel m(config, gen, /*build_loss=*/false);
  for (auto& [name, p] : m.module().named_parameters())
    if (name == "mask_head.bias") {
      fg::Tensor b = p.data();
      b.fill_(mask_bias);
    }
  fg::nn::CheckpointInfo info;
  info.model = config.model;
  info.config = config.to_json();
  if (frame > 0) info.extra["damage_frame_max"] = std::to_string(frame);
  fs::create_directories(fs::path(path).parent_path());
  fg::nn::save_checkpoint(path, m.module(), nullptr, info);
}

}  // namespace

// --work-size: an image larger than the model's training frame is restored at that size and only what the
// network changed is brought back; where the mask is ~0 (bias -40) every pixel comes back as it went in, at full
// resolution, bit for bit after quantisation; where it is ~1 the upsampled restoration replaces the image.
TEST_F(RestoreCli, WorkSizeRestoresLargeImagesAtTheTrainingScale) {
  save_gated(path("gated_quiet/model.safetensors"), -40.0f, 64);
  save_gated(path("gated_loud/model.safetensors"), 40.0f, 64);
  write_test_image(path("work/big.png"), 3, 96, 160, 16, 31);
  const fg::data::Image in = fg::data::read_image(path("work/big.png"));

  fg::test::CommandResult r = restore(path("work/big.png") + " -o " + path("work_quiet") + " --mask --model " +
                                      path("gated_quiet"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("images over 64 px restored at that size"), std::string::npos) << r.out;
  const fg::data::Image quiet = fg::data::read_image(path("work_quiet/big_restored.png"));
  ASSERT_EQ(quiet.height(), 96);
  ASSERT_EQ(quiet.width(), 160);
  EXPECT_EQ(max_abs_diff(in.pixels, quiet.pixels), 0.0);
  EXPECT_EQ(fg::data::read_image(path("work_quiet/big_restored_mask.png")).width(), 160);

  r = restore(path("work/big.png") + " -o " + path("work_loud") + " --model " + path("gated_loud"));
  ASSERT_EQ(r.status, 0) << r.out;
  const fg::data::Image loud = fg::data::read_image(path("work_loud/big_restored.png"));
  ASSERT_EQ(loud.width(), 160);
  EXPECT_GT(max_abs_diff(in.pixels, loud.pixels), 1e-2);
  // The same model at full size (--work-size 0) sees another image: the results differ.
  r = restore(path("work/big.png") + " -o " + path("work_full") + " --work-size 0 --model " + path("gated_loud"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.find("restored at that size"), std::string::npos) << r.out;
  EXPECT_GT(max_abs_diff(loud.pixels, fg::data::read_image(path("work_full/big_restored.png")).pixels), 1e-3);

  // A model whose run recorded no frame (the tiny test model) restores at full size.
  r = restore(path("work/big.png") + " -o " + path("work_tiny") + " --model " + dust_model());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.find("restored at that size"), std::string::npos) << r.out;
  expect_one_line_error(restore(path("work/big.png") + " -o " + path("work_bad") + " --work-size -3 --model " +
                                path("gated_quiet")),
                        2, "--work-size");
}

// --fill classical: the network only finds the damage; the pixels its mask marks (here > 0.5, dilated by 1 px) are
// filled by harmonic or biharmonic interpolation (--inpaint, data/inpaint.h) and every other pixel comes back bit
// for bit (--fill-check none; the default neutral check then puts some fills back). A mask head with bias 0 on
// random weights marks some pixels and not others. Pixels whose 3 x 3 neighbourhood is below 0.45 in the written
// 8-bit mask (0.05 from the threshold: the mask file is rounded to 1/255) are outside the hole and must be
// unchanged; filled pixels stay within the image's range (harmonic: means of known pixels; biharmonic: clamped to
// the known pixels' range).
TEST_F(RestoreCli, ClassicalFillChangesOnlyThePixelsTheMaskMarks) {
  save_gated(path("gated_mixed/model.safetensors"), 0.0f, 0);
  write_test_image(path("fill/in.png"), 3, 64, 96, 8, 41);
  const fg::data::Image in = fg::data::read_image(path("fill/in.png"));
  std::vector<float> y, y_biharmonic;
  for (const std::string inpaint : {"biharmonic", "harmonic"}) {
    SCOPED_TRACE(inpaint);
    fg::test::CommandResult r = restore(path("fill/in.png") + " -o " + path("fill_" + inpaint) +
                                        " --mask --fill classical --fill-threshold 0.5 --fill-check none --inpaint " +
                                        inpaint + " --model " + path("gated_mixed"));
    ASSERT_EQ(r.status, 0) << r.out;
    const fg::data::Image out = fg::data::read_image(path("fill_" + inpaint + "/in_restored.png"));
    const fg::data::Image mask = fg::data::read_image(path("fill_" + inpaint + "/in_restored_mask.png"));
    const int64_t H = 64, W = 96;
    ASSERT_EQ(out.height(), H);
    ASSERT_EQ(out.width(), W);
    y = out.pixels.to_vector_f32();
    const std::vector<float> x = in.pixels.to_vector_f32(), m = mask.pixels.to_vector_f32();
    const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
    int64_t kept = 0, filled = 0, changed = 0;
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j) {
        float near_max = 0;
        for (int64_t di = -1; di <= 1; ++di)
          for (int64_t dj = -1; dj <= 1; ++dj) {
            const int64_t a = std::clamp<int64_t>(i + di, 0, H - 1), b = std::clamp<int64_t>(j + dj, 0, W - 1);
            near_max = std::max(near_max, m[size_t(a * W + b)]);
          }
        const bool hole = m[size_t(i * W + j)] > 0.55f;
        kept += near_max < 0.45f;
        filled += hole;
        for (int64_t c = 0; c < 3; ++c) {
          const size_t k = size_t((c * H + i) * W + j);
          if (near_max < 0.45f) {
            ASSERT_EQ(y[k], x[k]) << "pixel (" << i << ", " << j << ") outside the hole changed";
          }
          if (hole) {
            EXPECT_GE(y[k], *lo) << "pixel (" << i << ", " << j << ")";
            EXPECT_LE(y[k], *hi) << "pixel (" << i << ", " << j << ")";
          }
          changed += y[k] != x[k];
        }
      }
    // The case is only a test when the mask marks some pixels and leaves others.
    ASSERT_GT(kept, 0);
    ASSERT_GT(filled, 0);
    EXPECT_GT(changed, 0);
    if (inpaint == "biharmonic") y_biharmonic = y;  // the loop ends with the harmonic fill (the default) in y
  }
  EXPECT_NE(y, y_biharmonic);  // two different fills
  const std::vector<float> x = in.pixels.to_vector_f32();

  // The neutral check (the default) puts back the filled spots whose change is not a blend towards white or black
  // (data/fill_check.h; on this random image most are not): each pixel is then the input's or the fill's.
  const fg::test::CommandResult r = restore(path("fill/in.png") + " -o " + path("fill_neutral") +
                                            " --fill classical --fill-threshold 0.5 --model " + path("gated_mixed"));
  ASSERT_EQ(r.status, 0) << r.out;
  const std::vector<float> z = fg::data::read_image(path("fill_neutral/in_restored.png")).pixels.to_vector_f32();
  ASSERT_EQ(z.size(), x.size());
  int64_t put_back = 0;
  for (size_t k = 0; k < z.size(); ++k) {
    ASSERT_TRUE(z[k] == x[k] || z[k] == y[k]) << "value " << k << " is neither the input's nor the fill's";
    put_back += y[k] != x[k] && z[k] == x[k];
  }
  EXPECT_GT(put_back, 0);

  expect_one_line_error(
      restore(path("fill/in.png") + " -o " + path("fill_bad") + " --fill median --model " + path("gated_mixed")), 2,
      "--fill");
  expect_one_line_error(restore(path("fill/in.png") + " -o " + path("fill_bad") +
                                " --fill classical --fill-check maybe --model " + path("gated_mixed")),
                        2, "--fill-check");
  expect_one_line_error(restore(path("fill/in.png") + " -o " + path("fill_bad") +
                                " --fill classical --inpaint telea --model " + path("gated_mixed")),
                        2, "--inpaint");
  expect_one_line_error(
      restore(path("fill/in.png") + " -o " + path("fill_bad") + " --fill classical --model " + dust_model()), 2,
      "damage mask");
}
