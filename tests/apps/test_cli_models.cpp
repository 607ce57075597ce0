// `filmgrad inspect` and `filmgrad forward` as a user meets them, plus the model registry they build on:
// inspect prints the exact parameter totals (the Dynamic U-Net's 41,405,589 / 20,137,941, the ResNet34 body's
// conv and BatchNorm counts); every registry model builds and runs its default input at a small width; forward
// writes outputs and activations equal to the library's own forward, from a tensor file and from a PNG; bad usage
// and failures give one line, the right exit status and no output file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/registry.h"
#include "nn/checkpoint.h"
#include "nn/recorder.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

namespace fs = std::filesystem;

namespace {

std::string thousands(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The first line of `out` after `after` that starts with `start` (after leading spaces), or "".
std::string line_starting(const std::string& out, const std::string& start, const std::string& after = "") {
  size_t pos = after.empty() ? 0 : out.find(after);
  if (pos == std::string::npos) return "";
  while (pos < out.size()) {
    const size_t end = out.find('\n', pos);
    const std::string line = out.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    const size_t first = line.find_first_not_of(' ');
    if (first != std::string::npos && line.compare(first, start.size(), start) == 0) return line;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return "";
}

// The row of the layer table that starts with `layer` ("encoder.conv1 (Conv2d)"), or "".
std::string table_row(const std::string& out, const std::string& layer) {
  size_t pos = 0;
  while ((pos = out.find(layer + " ", pos)) != std::string::npos) {
    if (pos == 0 || out[pos - 1] == '\n') return out.substr(pos, out.find('\n', pos) - pos);
    ++pos;
  }
  return "";
}

// A fresh, empty folder per test, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("fg_cli_models_" + tag + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  size_t entries() const { return size_t(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
};

// The library's own forward on the same model and input: the reference the program's files are compared with.
// With `activations`, also every module's output under the names forward --activations gives them.
fg::SafeTensors library_forward(const std::string& model_name, double width, const fg::Tensor& x,
                                bool activations = true) {
  fg::Generator gen(0);  // the program's default --seed
  auto model = fg::models::create_model(model_name, gen, width);
  model->eval();
  fg::NoGradGuard no_grad;
  fg::SafeTensors ref;
  ref.tensors["input"] = x;
  fg::nn::ActivationRecorder recorder(*model, /*keep_outputs=*/true);
  for (const auto& [name, v] : fg::models::run_model(*model, fg::Variable(x))) ref.tensors[name] = v.data();
  std::map<std::string, int> calls;
  for (const auto& r : recorder.records()) {
    if (!activations) break;
    if (r.name.empty()) continue;
    const int k = ++calls[r.name];
    ref.tensors[k == 1 ? r.name : r.name + "#" + std::to_string(k)] = r.output;
  }
  return ref;
}

// Every tensor of `ref` is in `got` with the same shape and values (the same binary, the same arithmetic: only
// the thread scheduling of reductions may differ, hence a tolerance far below any real difference).
void expect_same_tensors(const fg::SafeTensors& ref, const fg::SafeTensors& got) {
  EXPECT_EQ(ref.tensors.size(), got.tensors.size());
  for (const auto& [name, t] : ref.tensors) {
    ASSERT_TRUE(got.has(name)) << "missing tensor " << name;
    EXPECT_EQ(got.get(name).shape(), t.shape()) << name;
    EXPECT_ALL_CLOSE(t.contiguous(), got.get(name), 1e-6, 1e-5) << name;
  }
}

void save_input(const std::string& path, const fg::Tensor& x, const std::string& name = "input") {
  fg::SafeTensors st;
  st.tensors[name] = x;
  fg::save_safetensors(path, st);
}

// A small RGB test image (smooth gradients and a disc), 8-bit, as interleaved bytes.
std::vector<unsigned char> test_pixels(int w, int h) {
  std::vector<unsigned char> px(size_t(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const bool disc = (x - w / 3) * (x - w / 3) + (y - h / 2) * (y - h / 2) < (w / 5) * (w / 5);
      px[size_t((y * w + x) * 3 + 0)] = (unsigned char)(disc ? 240 : x * 255 / (w - 1));
      px[size_t((y * w + x) * 3 + 1)] = (unsigned char)(y * 255 / (h - 1));
      px[size_t((y * w + x) * 3 + 2)] = (unsigned char)((x + y) * 127 / (w + h - 2) + (disc ? 100 : 0));
    }
  return px;
}

// The tensor the program must make of those pixels: (1, 3, H, W) in [0, 1], ImageNet-normalised when asked.
fg::Tensor pixels_to_tensor(const std::vector<unsigned char>& px, int w, int h, bool imagenet) {
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};
  fg::Tensor t = fg::Tensor::empty({1, 3, h, w});
  float* p = t.data<float>();
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < w * h; ++i) {
      float v = float(px[size_t(i * 3 + c)]) * (1.0f / 255.0f);
      if (imagenet) v = (v - mean[c]) / stdev[c];
      p[c * w * h + i] = v;
    }
  return t;
}

void expect_one_line_error(const fg::test::CommandResult& r, int status, const std::string& what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.out;
  EXPECT_EQ(fg::test::count_lines(r.out), 1) << what << ": " << r.out;
  EXPECT_EQ(r.out.rfind("filmgrad: error: ", 0), 0u) << what << ": " << r.out;
}

// ---------------------------------------------------------------------------------------------------------------

TEST(CliInspect, DynamicUNetTotalsAsTheDissertationCountsThem) {
  const fg::test::CommandResult r = fg::test::run_filmgrad("inspect --model dynamic_unet --size 64 64");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "Total params: 41,405,589")) << r.out;
  EXPECT_TRUE(contains(r.out, "Trainable params: 20,137,941")) << r.out;
  EXPECT_TRUE(contains(r.out, "Non-trainable params: 21,267,648")) << r.out;
  EXPECT_TRUE(contains(r.out, "encoder frozen except its BatchNorms")) << r.out;
  EXPECT_TRUE(contains(r.out, "Layer (type)")) << r.out;
  EXPECT_TRUE(contains(r.out, "Output Shape")) << r.out;
  EXPECT_TRUE(contains(r.out, "Param #")) << r.out;
  EXPECT_TRUE(contains(r.out, "Trainable")) << r.out;
  // Rows: frozen encoder conv, trainable encoder BatchNorm, the attention's gamma, the head.
  const std::string conv1 = table_row(r.out, "encoder.conv1 (Conv2d)");
  EXPECT_TRUE(contains(conv1, "[1, 64, 32, 32]") && contains(conv1, "9,408") && contains(conv1, "False")) << conv1;
  const std::string bn1 = table_row(r.out, "encoder.bn1 (BatchNorm2d)");
  EXPECT_TRUE(contains(bn1, "128") && contains(bn1, "True")) << bn1;
  const std::string head = table_row(r.out, "head (Conv2d)");
  EXPECT_TRUE(contains(head, "[1, 3, 64, 64]") && contains(head, "300") && contains(head, "True")) << head;
  EXPECT_NE(table_row(r.out, "blocks.1.attn (SelfAttention)"), "") << r.out;
  // Pure containers are left out by default; every leaf layer is in.
  EXPECT_EQ(table_row(r.out, "bridge (Sequential)"), "") << r.out;
  EXPECT_NE(table_row(r.out, "bridge.2 (Conv2d)"), "") << r.out;
  // The parts add up: the encoder is the ResNet34 body.
  const std::string encoder = line_starting(r.out, "encoder ", "Parameters by part:");
  EXPECT_TRUE(contains(encoder, " 21,284,672 ") && contains(encoder, "trainable 17,024")) << encoder;

  const fg::test::CommandResult unfrozen = fg::test::run_filmgrad("inspect --model dynamic_unet --size 64 64 --no-freeze --all");
  ASSERT_EQ(unfrozen.status, 0) << unfrozen.out;
  EXPECT_TRUE(contains(unfrozen.out, "Trainable params: 41,405,589")) << unfrozen.out;
  EXPECT_TRUE(contains(unfrozen.out, "Non-trainable params: 0")) << unfrozen.out;
  EXPECT_FALSE(contains(unfrozen.out, "encoder frozen")) << unfrozen.out;
  EXPECT_NE(table_row(unfrozen.out, "bridge (Sequential)"), "") << unfrozen.out;
}

TEST(CliInspect, ResNet34BodyCounts) {
  const fg::test::CommandResult r = fg::test::run_filmgrad("inspect --model resnet34 --size 64 64");
  ASSERT_EQ(r.status, 0) << r.out;
  // torchvision's resnet34: the body (21,267,648 conv weights + 17,024 BatchNorm) and the 1000-class fc.
  EXPECT_TRUE(contains(r.out, "Total params: 21,797,672")) << r.out;
  EXPECT_TRUE(contains(r.out, "Trainable params: 21,797,672")) << r.out;
  // by layer type, then by part
  EXPECT_TRUE(contains(line_starting(r.out, "Conv2d ", "Parameters by layer type:"), " 21,267,648 ")) << r.out;
  EXPECT_TRUE(contains(line_starting(r.out, "BatchNorm2d ", "Parameters by layer type:"), " 17,024 ")) << r.out;
  EXPECT_TRUE(contains(line_starting(r.out, "Linear ", "Parameters by layer type:"), " 513,000 ")) << r.out;
  EXPECT_TRUE(contains(line_starting(r.out, "layer4 ", "Parameters by part:"), " 13,114,368 ")) << r.out;
  EXPECT_TRUE(contains(line_starting(r.out, "fc ", "Parameters by part:"), " 513,000 ")) << r.out;
  const std::string fc = table_row(r.out, "fc (Linear)");
  EXPECT_TRUE(contains(fc, "[1, 1000]") && contains(fc, "513,000")) << fc;
}

TEST(CliInspect, EveryModelAtASmallWidthMatchesTheLibrary) {
  for (const fg::models::ModelSpec& spec : fg::models::list_models()) {
    fg::Generator gen(0);
    auto model = fg::models::create_model(spec.name, gen, 0.125);
    const fg::test::CommandResult r = fg::test::run_filmgrad("inspect --model " + spec.name + " --width 0.125");
    ASSERT_EQ(r.status, 0) << spec.name << ": " << r.out;
    EXPECT_TRUE(contains(r.out, "Total params: " + thousands(model->num_parameters()))) << spec.name << ": " << r.out;
  }
}

TEST(Registry, EveryModelBuildsAndRunsItsDefaultInputAtASmallWidth) {
  std::set<std::string> names;
  for (const fg::models::ModelSpec& spec : fg::models::list_models()) {
    SCOPED_TRACE(spec.name);
    names.insert(spec.name);
    ASSERT_EQ(spec.default_input.size(), 4u);
    EXPECT_EQ(spec.default_input[0], 1);
    EXPECT_EQ(spec.default_input[1], 3);
    EXPECT_EQ(fg::models::find_model(spec.name), fg::models::find_model(spec.name));
    fg::Generator gen(1);
    auto model = fg::models::create_model(spec.name, gen, 0.0625);
    EXPECT_GT(model->num_parameters(), 0);
    model->eval();
    fg::NoGradGuard no_grad;
    const fg::Tensor x = fg::test::random_tensor(spec.default_input, 7);
    const auto outputs = fg::models::run_model(*model, fg::Variable(x));
    ASSERT_FALSE(outputs.empty());
    EXPECT_EQ(outputs[0].first, "output");
    const fg::Tensor y = outputs[0].second.data();
    EXPECT_EQ(y.size(0), 1);
    for (float v : y.to_vector_f32()) ASSERT_TRUE(std::isfinite(v));
  }
  const std::set<std::string> expected = {
      "dynamic_unet", "cross_channel", "cross_channel_no_mask", "cross_channel_plain", "resnet34", "vgg16", "vgg16_bn",
      "critic",       "tiny_unet"};
  EXPECT_EQ(names, expected);
  fg::Generator gen(0);
  try {
    fg::models::create_model("resnet35", gen);
    FAIL() << "an unknown name must throw";
  } catch (const fg::Error& e) {
    EXPECT_TRUE(contains(e.what(), "resnet35") && contains(e.what(), "dynamic_unet, cross_channel")) << e.what();
  }
  EXPECT_EQ(fg::models::find_model("resnet35"), nullptr);
  EXPECT_THROW(fg::models::create_model("tiny_unet", gen, 0.0), fg::Error);
}

// ---------------------------------------------------------------------------------------------------------------

TEST(CliForward, TinyUNetFromATensorFileWithActivations) {
  TempDir dir("tiny");
  const fg::Tensor x = fg::test::random_tensor({1, 3, 32, 32}, 11, fg::DType::F32, 0.0, 1.0);
  save_input(dir / "x.safetensors", x);
  const fg::test::CommandResult r = fg::test::run_filmgrad("forward --model tiny_unet --input " + (dir / "x.safetensors") + " --output " +
                              (dir / "y.safetensors") + " --activations");
  ASSERT_EQ(r.status, 0) << r.out;
  const fg::SafeTensors got = fg::load_safetensors(dir / "y.safetensors");
  expect_same_tensors(library_forward("tiny_unet", 1.0, x), got);
  for (const char* layer : {"conv1a", "bn1", "mid", "dec1", "head"}) EXPECT_TRUE(got.has(layer)) << layer;
  EXPECT_EQ(got.get("head").shape(), (fg::Shape{1, 3, 32, 32}));
  EXPECT_EQ(got.metadata.at("model"), "tiny_unet");
  EXPECT_EQ(got.metadata.at("width"), "1");
  EXPECT_EQ(got.metadata.at("input_shape"), "(1, 3, 32, 32)");
  EXPECT_EQ(got.metadata.at("normalization"), "none");
  EXPECT_FALSE(got.metadata.at("filmgrad_version").empty());

  // Without --activations only the output; the weights written by --save-weights give the same output back.
  const fg::test::CommandResult r2 = fg::test::run_filmgrad("forward --model tiny_unet --seed 5 --input " + (dir / "x.safetensors") + " --output " +
                               (dir / "y2.safetensors") + " --save-weights " + (dir / "w.safetensors"));
  ASSERT_EQ(r2.status, 0) << r2.out;
  const fg::SafeTensors y2 = fg::load_safetensors(dir / "y2.safetensors");
  EXPECT_EQ(y2.tensors.size(), 2u);  // input and output
  const fg::SafeTensors w = fg::load_safetensors(dir / "w.safetensors");
  EXPECT_TRUE(w.has("conv1a.weight") && w.has("bn1.running_var") && w.has("head.bias"));
  const fg::test::CommandResult r3 = fg::test::run_filmgrad("forward --model tiny_unet --weights " + (dir / "w.safetensors") + " --input " +
                               (dir / "x.safetensors") + " --output " + (dir / "y3.safetensors"));
  ASSERT_EQ(r3.status, 0) << r3.out;
  EXPECT_ALL_CLOSE(y2.get("output"), fg::load_safetensors(dir / "y3.safetensors").get("output"), 0.0, 0.0);
  EXPECT_EQ(fg::load_safetensors(dir / "y3.safetensors").metadata.at("weights"), dir / "w.safetensors");

  // A filmgrad checkpoint (tensors "model.<name>") loads too.
  {
    fg::Generator gen(5);
    auto model = fg::models::create_model("tiny_unet", gen, 1.0);
    fg::nn::CheckpointInfo info;
    info.model = "tiny_unet";
    fg::nn::save_checkpoint(dir / "ckpt.safetensors", *model, nullptr, info);
  }
  const fg::test::CommandResult r4 = fg::test::run_filmgrad("forward --model tiny_unet --weights " + (dir / "ckpt.safetensors") + " --input " +
                               (dir / "x.safetensors") + " --output " + (dir / "y4.safetensors"));
  ASSERT_EQ(r4.status, 0) << r4.out;
  EXPECT_ALL_CLOSE(y2.get("output"), fg::load_safetensors(dir / "y4.safetensors").get("output"), 0.0, 0.0);
  const fg::test::CommandResult r5 = fg::test::run_filmgrad("inspect --model tiny_unet --weights " + (dir / "ckpt.safetensors"));
  ASSERT_EQ(r5.status, 0) << r5.out;
  EXPECT_TRUE(contains(r5.out, "weights: " + (dir / "ckpt.safetensors"))) << r5.out;
}

TEST(CliForward, SmallDynamicUNetFromATensorFileAndFromAPng) {
  TempDir dir("dunet");
  // A tensor file is used exactly as stored (no normalisation); (C, H, W) gains the batch dimension.
  const fg::Tensor x = fg::test::random_normal({3, 64, 64}, 12);
  save_input(dir / "x.safetensors", x, "only_tensor");
  const fg::test::CommandResult r = fg::test::run_filmgrad("forward --model dynamic_unet --width 0.125 --input " + (dir / "x.safetensors") +
                              " --output " + (dir / "y.safetensors") + " --activations");
  ASSERT_EQ(r.status, 0) << r.out;
  const fg::SafeTensors got = fg::load_safetensors(dir / "y.safetensors");
  {
    SCOPED_TRACE("tensor file");
    expect_same_tensors(library_forward("dynamic_unet", 0.125, x.unsqueeze(0)), got);
  }
  for (const char* layer :
       {"encoder.conv1", "encoder.layer1.0.conv1", "bridge.2", "blocks.1.attn", "last_shuf", "res", "head"})
    EXPECT_TRUE(got.has(layer)) << layer;
  EXPECT_EQ(got.get("output").shape(), (fg::Shape{1, 3, 64, 64}));
  EXPECT_EQ(got.metadata.at("width"), "0.125");
  EXPECT_EQ(got.metadata.at("normalization"), "none");

  // A PNG is read as RGB in [0, 1] and ImageNet-normalised for the Dynamic U-Net.
  const int w = 64, h = 64;
  const std::vector<unsigned char> px = test_pixels(w, h);
  ASSERT_NE(stbi_write_png((dir / "in.png").c_str(), w, h, 3, px.data(), w * 3), 0);
  const fg::test::CommandResult rp = fg::test::run_filmgrad("forward --model dynamic_unet --width 0.125 --input " + (dir / "in.png") + " --output " +
                               (dir / "yp.safetensors") + " --activations");
  ASSERT_EQ(rp.status, 0) << rp.out;
  EXPECT_TRUE(contains(rp.out, "ImageNet-normalised")) << rp.out;
  const fg::SafeTensors gotp = fg::load_safetensors(dir / "yp.safetensors");
  // The file's "input" is what the network saw: the pixels as the test computes them (to rounding: a compiler may
  // fuse the scale and the normalisation into one FMA), and the outputs are the library's on exactly that input.
  EXPECT_ALL_CLOSE(pixels_to_tensor(px, w, h, true), gotp.get("input"), 1e-6, 1e-6);
  expect_same_tensors(library_forward("dynamic_unet", 0.125, gotp.get("input")), gotp);
  EXPECT_EQ(gotp.metadata.at("normalization"), "imagenet");

  // tiny_unet takes the same PNG without normalisation.
  const fg::test::CommandResult rt =
      fg::test::run_filmgrad("forward --model tiny_unet --input " + (dir / "in.png") + " --output " + (dir / "yt.safetensors"));
  ASSERT_EQ(rt.status, 0) << rt.out;
  const fg::SafeTensors gott = fg::load_safetensors(dir / "yt.safetensors");
  EXPECT_ALL_CLOSE(pixels_to_tensor(px, w, h, false), gott.get("input"), 0.0, 0.0);
  expect_same_tensors(library_forward("tiny_unet", 1.0, gott.get("input"), false), gott);
}

TEST(CliForward, CrossChannelWritesItsSideOutputs) {
  TempDir dir("cross");
  const fg::Tensor x = fg::test::random_tensor({1, 3, 32, 32}, 13, fg::DType::F32, 0.0, 1.0);
  save_input(dir / "x.safetensors", x);
  const fg::test::CommandResult r = fg::test::run_filmgrad("forward --model cross_channel --width 0.0625 --input " + (dir / "x.safetensors") +
                              " --output " + (dir / "y.safetensors"));
  ASSERT_EQ(r.status, 0) << r.out;
  const fg::SafeTensors got = fg::load_safetensors(dir / "y.safetensors");
  EXPECT_EQ(got.tensors.size(), 4u);
  EXPECT_ALL_CLOSE(x, got.get("input"), 0.0, 0.0);
  for (const char* name : {"output", "mask_logits", "b_cross"})
    EXPECT_EQ(got.get(name).shape(), (fg::Shape{1, 1, 32, 32})) << name;
}

// ---------------------------------------------------------------------------------------------------------------

TEST(CliModels, HelpOnEverySubcommand) {
  for (const char* cmd : {"inspect", "forward", "demo", "version"}) {
    const fg::test::CommandResult r = fg::test::run_filmgrad(std::string(cmd) + " --help");
    EXPECT_EQ(r.status, 0) << cmd << ": " << r.out;
    EXPECT_TRUE(contains(r.out, std::string("usage: filmgrad ") + cmd)) << r.out;
  }
  const fg::test::CommandResult f = fg::test::run_filmgrad("forward --help");
  EXPECT_TRUE(contains(f.out, "ImageNet-normalised")) << f.out;
  EXPECT_TRUE(contains(f.out, "dynamic_unet")) << f.out;
  const fg::test::CommandResult top = fg::test::run_filmgrad("--help");
  EXPECT_TRUE(contains(top.out, "inspect") && contains(top.out, "forward")) << top.out;
}

TEST(CliModels, BadUsageIsOneLineWithTheRightStatusAndWritesNothing) {
  TempDir dir("bad");
  const fg::Tensor x = fg::test::random_tensor({1, 3, 32, 32}, 14, fg::DType::F32, 0.0, 1.0);
  save_input(dir / "x.safetensors", x);
  save_input(dir / "x4.safetensors", fg::test::random_tensor({1, 4, 32, 32}, 15));
  std::ofstream(dir / "corrupt.png", std::ios::binary) << "\x89PNG\r\n\x1a\n this is not really a png";
  std::ofstream(dir / "a_file") << "x";
  const std::string in = " --input " + (dir / "x.safetensors");
  const std::string out = " --output " + (dir / "out.safetensors");
  const size_t files_before = dir.entries();

  struct Case {
    std::string args;
    int status;
    std::string message;  // part of the one-line error
  };
  const std::vector<Case> cases = {
      {"forward --model tiny_unet" + in + out + " --bogus", 2, "unknown option '--bogus'"},
      {"inspect --model tiny_unet --frobnicate", 2, "unknown option '--frobnicate'"},
      {"forward --model resnet35" + in + out, 2, "unknown model 'resnet35'"},
      {"inspect --model resnet35", 2, "dynamic_unet"},
      {"inspect", 2, "needs --model"},
      {"inspect --model tiny_unet --size 64", 2, "--size needs 2 values"},
      {"inspect --model tiny_unet --width 0", 2, "--width needs a positive number"},
      {"inspect --model tiny_unet --width abc", 2, "--width needs a positive number"},
      {"forward --model tiny_unet" + out, 2, "needs --input"},
      {"forward --model tiny_unet" + in, 2, "needs --output"},
      {"forward --model tiny_unet" + in + " --output " + (dir / "out.txt"), 2, "must name a .safetensors file"},
      {"forward --model tiny_unet --input " + (dir / "missing.png") + out, 2, "does not exist"},
      {"forward --model tiny_unet --input " + dir.path.string() + out, 2, "is a folder"},
      {"forward --model tiny_unet --weights " + (dir / "missing.safetensors") + in + out, 2, "does not exist"},
      {"inspect --model tiny_unet --weights " + (dir / "missing.safetensors"), 2, "does not exist"},
      {"forward --model tiny_unet" + in + " --output " + (dir / "a_file") + "/out.safetensors", 1, "not a folder"},
      {"forward --model tiny_unet" + in + " --output " + (dir / "no_such_folder") + "/out.safetensors", 1,
       "does not exist"},
      {"forward --model tiny_unet --input " + (dir / "corrupt.png") + out, 1, "cannot decode the image"},
      {"forward --model tiny_unet --input " + (dir / "x4.safetensors") + out, 1, "takes 3 input channels"},
      {"forward --model tiny_unet --input " + (dir / "a_file") + out, 1, "cannot decode the image"},
      {"forward --model tiny_unet --input " + (dir / "corrupt.png") + " --output " + (dir / "out.safetensors") +
           " --save-weights " + (dir / "w.safetensors"),
       1, "cannot decode the image"},
      // weights of another model: every mismatch named, nothing loaded or written
      {"forward --model tiny_unet --weights " + (dir / "x.safetensors") + in + out, 1, "do not fit tiny_unet"},
      // a control: the same files and folder work
      {"forward --model tiny_unet --input " + (dir / "x.safetensors") + out + " --width 0.5", 0, ""},
      // a size the model cannot take
      {"inspect --model tiny_unet --size 30 30", 1, "cannot run on an input of shape (1, 3, 30, 30)"},
  };
  for (const Case& c : cases) {
    const fg::test::CommandResult r = fg::test::run_filmgrad(c.args);
    if (c.status == 0) {  // a control: the same files work
      EXPECT_EQ(r.status, 0) << c.args << ": " << r.out;
      fs::remove(dir / "out.safetensors");
      continue;
    }
    expect_one_line_error(r, c.status, c.args);
    EXPECT_TRUE(contains(r.out, c.message)) << c.args << ": " << r.out;
    EXPECT_FALSE(fs::exists(dir / "out.safetensors")) << c.args;
    EXPECT_EQ(dir.entries(), files_before) << c.args << ": something was written";
  }
  // root may write anywhere, so the unwritable-folder case uses a folder that cannot exist (under a file) above;
  // as another user, a read-only folder is refused too.
  if (geteuid() != 0) {
    fs::create_directories(dir.path / "ro");
    fs::permissions(dir.path / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    const fg::test::CommandResult r = fg::test::run_filmgrad("forward --model tiny_unet" + in + " --output " + (dir / "ro") + "/out.safetensors");
    expect_one_line_error(r, 1, "read-only folder");
    EXPECT_TRUE(contains(r.out, "not writable")) << r.out;
    fs::permissions(dir.path / "ro", fs::perms::owner_all);
  }
}

}  // namespace
