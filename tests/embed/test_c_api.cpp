// The C API (include/filmgrad/filmgrad.h) as an embedding program uses it: every call's errors (null pointers,
// wrong sizes, strides and types, a missing, corrupt or mismatched model file, a cancelled run) give a status and
// a readable message and leave the outputs untouched; restored pixels agree with the C++ Restorer on the same
// image for 8-bit, 16-bit and float samples, RGB and RGBA, padded rows and in place; negative mode keeps R and G;
// separate handles restore in parallel threads as one thread does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "apps/commands.h"
#include "apps/restore.h"
#include "apps/task.h"
#include "filmgrad/filmgrad.h"
#include "nn/checkpoint.h"
#include "tensor/host_cache.h"
#include "tensor/philox.h"
#include "tensor/safetensors.h"
#include "tensor/storage.h"
#include "tests/support/test_util.h"

namespace {

namespace fs = std::filesystem;

// Keeps a random network's prediction inside (0, 1) (as tests/apps/test_cli_restore.cpp does), so comparisons see
// real values, not clamped ones.
void tame_head(fg::nn::Module& m, const std::string& prefix, float scale) {
  for (auto& [name, p] : m.named_parameters()) {
    if (name == prefix + ".weight") {
      fg::Tensor w = p.data();
      float* v = w.data<float>();
      for (int64_t i = 0; i < w.numel(); ++i) v[i] *= scale;
    } else if (name == prefix + ".bias") {
      fg::Tensor b = p.data();
      b.fill_(0.5f);
    }
  }
}

void save_model(const std::string& path, const std::string& task, const std::string& model, double width,
                const std::string& head, float head_scale, uint64_t seed, bool plain_state_dict = false) {
  fg::apps::ModelConfig config;
  config.task = task;
  config.model = model;
  config.width = width;
  config.loss = task == "negative" ? "cross_channel" : "mse";
  fg::Generator gen(seed);
  fg::apps::RestorationModel m(config, gen, /*build_loss=*/false);
  tame_head(m.module(), head, head_scale);
  if (plain_state_dict) {
    fg::SafeTensors st;
    for (const auto& [name, t] : m.module().state_dict()) st.tensors[name] = t.contiguous();
    fg::save_safetensors(path, st);
    return;
  }
  fg::nn::CheckpointInfo info;
  info.model = model;
  info.config = config.to_json();
  fg::nn::save_checkpoint(path, m.module(), nullptr, info);
}

// An interleaved test image: smooth waves plus texture, as floats in [0, 1] (H rows of W * C samples).
std::vector<float> wave_samples(int64_t W, int64_t H, int C, uint64_t seed) {
  const fg::Tensor noise = fg::test::random_tensor({H * W * C}, seed, fg::DType::F32, 0.0, 1.0);
  const float* n = noise.data<float>();
  std::vector<float> v(size_t(H * W * C));
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) {
        const size_t i = size_t((y * W + x) * C + c);
        v[i] = 0.2f * n[i] + 0.8f * float(0.5 + 0.4 * std::sin(0.13 * double(x + 5 * c) + 0.05 * double(y)));
      }
  return v;
}

// An image buffer of any sample type with `pad` bytes after each row, filled from floats (or a sentinel byte).
struct Buffer {
  std::vector<unsigned char> bytes;
  fg_image image{};

  Buffer(int64_t W, int64_t H, int C, fg_sample_type type, int64_t pad = 0) {
    const int64_t sample = type == FG_U8 ? 1 : type == FG_U16 ? 2 : 4;
    image.width = W;
    image.height = H;
    image.channels = C;
    image.type = type;
    image.stride = pad == 0 ? 0 : W * C * sample + pad;
    bytes.assign(size_t(H * (W * C * sample + pad)), 0xA5);
    image.data = bytes.data();
  }
  int64_t stride() const {
    const int64_t sample = image.type == FG_U8 ? 1 : image.type == FG_U16 ? 2 : 4;
    return image.stride ? image.stride : image.width * image.channels * sample;
  }
  void fill(const std::vector<float>& v) {
    for (int64_t y = 0; y < image.height; ++y)
      for (int64_t i = 0; i < image.width * image.channels; ++i)
        set(y, i, v[size_t(y * image.width * image.channels + i)]);
  }
  void set(int64_t y, int64_t i, float v) {
    unsigned char* row = bytes.data() + y * stride();
    if (image.type == FG_U8) {
      row[i] = uint8_t(std::lround(v * 255.0f));
    } else if (image.type == FG_U16) {
      const uint16_t s = uint16_t(std::lround(v * 65535.0f));
      std::memcpy(row + 2 * i, &s, 2);
    } else {
      std::memcpy(row + 4 * i, &v, 4);
    }
  }
  float get(int64_t y, int64_t i) const {
    const unsigned char* row = bytes.data() + y * stride();
    if (image.type == FG_U8) return float(row[i]) / 255.0f;
    if (image.type == FG_U16) {
      uint16_t s;
      std::memcpy(&s, row + 2 * i, 2);
      return float(s) / 65535.0f;
    }
    float f;
    std::memcpy(&f, row + 4 * i, 4);
    return f;
  }
  // Samples as floats, row by row, without the padding.
  std::vector<float> values() const {
    std::vector<float> v;
    for (int64_t y = 0; y < image.height; ++y)
      for (int64_t i = 0; i < image.width * image.channels; ++i) v.push_back(get(y, i));
    return v;
  }
};

class CApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("fg_c_api_" + std::to_string(getpid()));
    fs::create_directories(dir_ / "dust_run");
    save_model(path("dust_run/model.safetensors"), "dust", "tiny_unet", 0.5, "head", 4.0f, 7);
    save_model(path("dust_state_dict.safetensors"), "dust", "tiny_unet", 0.5, "head", 4.0f, 7, true);
    save_model(path("negative.safetensors"), "negative", "cross_channel", 0.0625, "final_net.out", 0.05f, 8);
    std::ofstream(path("garbage.safetensors")) << "this is not a safetensors file";
    // A real checkpoint cut in half.
    const std::string whole = fg::read_file(path("dust_run/model.safetensors"));
    std::ofstream(path("truncated.safetensors"), std::ios::binary) << whole.substr(0, whole.size() / 2);
    fs::create_directories(dir_ / "empty_run");
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string path(const std::string& rel) { return (dir_ / rel).string(); }

  static fg_model* load(const std::string& p, const fg_load_options* options = nullptr) {
    fg_model* m = nullptr;
    const fg_status s = fg_model_load(p.c_str(), options, &m);
    EXPECT_EQ(s, FG_OK) << fg_last_error();
    return m;
  }

  static fs::path dir_;
};
fs::path CApi::dir_;

// The call failed with `status`, and the message holds `needle`.
#define EXPECT_FAILS(call, status, needle)                                                      \
  do {                                                                                          \
    const fg_status s_ = (call);                                                                \
    EXPECT_EQ(s_, status) << #call << ": " << fg_status_name(s_) << ": " << fg_last_error();    \
    EXPECT_NE(std::string(fg_last_error()).find(needle), std::string::npos) << fg_last_error(); \
    EXPECT_EQ(std::string(fg_last_error()).find('\n'), std::string::npos) << fg_last_error();   \
  } while (0)

TEST_F(CApi, VersionAndBuildFeatures) {
  EXPECT_EQ(std::string(fg_version()), std::string(fg::apps::kFilmgradVersion));
  EXPECT_EQ(std::string(fg_version()), std::to_string(FILMGRAD_VERSION_MAJOR) + "." +
                                           std::to_string(FILMGRAD_VERSION_MINOR) + "." +
                                           std::to_string(FILMGRAD_VERSION_PATCH));
  fg_library_info info;
  ASSERT_EQ(fg_get_library_info(&info), FG_OK);
  EXPECT_EQ(std::string(info.version), fg_version());
  EXPECT_EQ(info.version_major, FILMGRAD_VERSION_MAJOR);
#ifdef FG_WITH_CUDA
  EXPECT_TRUE(info.features & FG_FEATURE_CUDA);
#else
  EXPECT_FALSE(info.features & FG_FEATURE_CUDA);
  EXPECT_EQ(info.cuda_devices, 0);
#endif
  EXPECT_NE(std::string(info.description).find(fg_version()), std::string::npos);
  EXPECT_FAILS(fg_get_library_info(nullptr), FG_ERROR_ARGUMENT, "info is NULL");
  EXPECT_STREQ(fg_status_name(FG_OK), "ok");
  EXPECT_STREQ(fg_status_name(FG_ERROR_CANCELLED), "cancelled");
  EXPECT_STREQ(fg_status_name(fg_status(99)), "unknown status");
  EXPECT_FAILS(fg_set_cpu_cache_limit(-1), FG_ERROR_ARGUMENT, "-1 MiB is not a size");
  ASSERT_EQ(fg_set_cpu_cache_limit(0), FG_OK);
  EXPECT_EQ(fg::host_cache_stats().cached_bytes, 0u);
  ASSERT_EQ(fg_set_cpu_cache_limit(256), FG_OK);
  EXPECT_FAILS(fg_load_options_init(nullptr), FG_ERROR_ARGUMENT, "options is NULL");
  EXPECT_FAILS(fg_restore_options_init(nullptr), FG_ERROR_ARGUMENT, "options is NULL");
}

TEST_F(CApi, LoadsRunFoldersCheckpointsAndStateDicts) {
  fg_model* from_run = load(path("dust_run"));
  fg_model* from_file = load(path("dust_run/model.safetensors"));
  fg_load_options o;
  ASSERT_EQ(fg_load_options_init(&o), FG_OK);
  o.model = "tiny_unet";
  o.width = 0.5;
  fg_model* from_state = load(path("dust_state_dict.safetensors"), &o);
  ASSERT_TRUE(from_run && from_file && from_state);
  for (fg_model* m : {from_run, from_file, from_state}) {
    fg_model_info info;
    ASSERT_EQ(fg_model_get_info(m, &info), FG_OK) << fg_last_error();
    EXPECT_EQ(info.mode, FG_MODE_DUST);
    EXPECT_STREQ(info.model, "tiny_unet");
    EXPECT_EQ(info.width, 0.5);
    EXPECT_EQ(info.size_multiple, 4);
    EXPECT_GE(info.default_margin, 0);
    EXPECT_GT(info.parameters, 1000);
  }
  fg_model* negative = load(path("negative.safetensors"));
  fg_model_info info;
  ASSERT_EQ(fg_model_get_info(negative, &info), FG_OK);
  EXPECT_EQ(info.mode, FG_MODE_NEGATIVE);
  EXPECT_EQ(info.predicts_mask, 1);
  for (fg_model* m : {from_run, from_file, from_state, negative}) fg_model_free(m);
  fg_model_free(nullptr);  // allowed
}

TEST_F(CApi, LoadErrorsSayWhatWasWrong) {
  fg_model* m = reinterpret_cast<fg_model*>(0x1);  // must stay as it is on failure
  EXPECT_FAILS(fg_model_load(path("dust_run").c_str(), nullptr, nullptr), FG_ERROR_ARGUMENT, "out-pointer is NULL");
  EXPECT_FAILS(fg_model_load(nullptr, nullptr, &m), FG_ERROR_ARGUMENT, "path is NULL or empty");
  EXPECT_FAILS(fg_model_load("", nullptr, &m), FG_ERROR_ARGUMENT, "path is NULL or empty");
  EXPECT_FAILS(fg_model_load(path("missing").c_str(), nullptr, &m), FG_ERROR_MODEL, "does not exist");
  EXPECT_FAILS(fg_model_load(path("empty_run").c_str(), nullptr, &m), FG_ERROR_MODEL, "holds no model.safetensors");
  EXPECT_FAILS(fg_model_load(path("garbage.safetensors").c_str(), nullptr, &m), FG_ERROR_MODEL, "garbage.safetensors");
  EXPECT_FAILS(fg_model_load(path("truncated.safetensors").c_str(), nullptr, &m), FG_ERROR_MODEL,
               "truncated.safetensors");
  // A state dict needs the model it was saved from: no description inside, and the wrong width does not fit.
  EXPECT_FAILS(fg_model_load(path("dust_state_dict.safetensors").c_str(), nullptr, &m), FG_ERROR_MODEL,
               "dust_state_dict.safetensors");
  fg_load_options o;
  fg_load_options_init(&o);
  o.model = "tiny_unet";
  o.width = 1.0;
  EXPECT_FAILS(fg_model_load(path("dust_state_dict.safetensors").c_str(), &o, &m), FG_ERROR_MODEL,
               "do not fit tiny_unet at width 1");
  o.model = "resnet34";
  EXPECT_FAILS(fg_model_load(path("dust_state_dict.safetensors").c_str(), &o, &m), FG_ERROR_ARGUMENT,
               "'resnet34' is not a restoration network");
  o.model = "tiny_unet";
  o.width = -1;
  EXPECT_FAILS(fg_model_load(path("dust_state_dict.safetensors").c_str(), &o, &m), FG_ERROR_ARGUMENT,
               "not a positive number");
  o.width = NAN;
  EXPECT_FAILS(fg_model_load(path("dust_state_dict.safetensors").c_str(), &o, &m), FG_ERROR_ARGUMENT,
               "not a positive number");
  o.width = 0.5;
  o.gated = 1;
  EXPECT_FAILS(fg_model_load(path("dust_state_dict.safetensors").c_str(), &o, &m), FG_ERROR_ARGUMENT,
               "has no gated form");
  fg_load_options_init(&o);
  o.inference_mode = 2;
  EXPECT_FAILS(fg_model_load(path("dust_run").c_str(), &o, &m), FG_ERROR_ARGUMENT, "inference_mode is 2");
  o.inference_mode = 1;
  o.f16_weights = -1;
  EXPECT_FAILS(fg_model_load(path("dust_run").c_str(), &o, &m), FG_ERROR_ARGUMENT, "f16_weights is -1");
  o.f16_weights = 1;
  o.device = "cuda";
  EXPECT_FAILS(fg_model_load(path("dust_run").c_str(), &o, &m), FG_ERROR_UNSUPPORTED, "f16_weights is for the CPU");
  fg_load_options_init(&o);
  EXPECT_EQ(o.inference_mode, 0);
  EXPECT_EQ(o.f16_weights, 0);
  o.device = "gpu";
  EXPECT_FAILS(fg_model_load(path("dust_run").c_str(), &o, &m), FG_ERROR_ARGUMENT, "gpu");
#ifndef FG_WITH_CUDA
  o.device = "cuda";
  EXPECT_FAILS(fg_model_load(path("dust_run").c_str(), &o, &m), FG_ERROR_UNSUPPORTED, "built without");
#else
  o.device = "cuda:7";  // more devices than the lent machines have
  EXPECT_FAILS(fg_model_load(path("dust_run").c_str(), &o, &m), FG_ERROR_UNSUPPORTED, "'cuda:7' does not exist");
#endif
  EXPECT_EQ(m, reinterpret_cast<fg_model*>(0x1));
  EXPECT_FAILS(fg_model_get_info(nullptr, nullptr), FG_ERROR_ARGUMENT, "model is NULL");
  fg_model* good = load(path("dust_run"));
  EXPECT_FAILS(fg_model_get_info(good, nullptr), FG_ERROR_ARGUMENT, "info is NULL");
  fg_model_free(good);
}

TEST_F(CApi, RestoreErrorsLeaveTheOutputUntouched) {
  fg_model* m = load(path("dust_run"));
  ASSERT_NE(m, nullptr);
  Buffer in(20, 12, 3, FG_U8), out(20, 12, 3, FG_U8), mask(20, 12, 1, FG_U8);
  in.fill(wave_samples(20, 12, 3, 1));
  const std::vector<unsigned char> untouched = out.bytes;
  fg_restore_options o;
  fg_restore_options_init(&o);

  EXPECT_FAILS(fg_restore(nullptr, &in.image, &out.image, nullptr, nullptr), FG_ERROR_ARGUMENT, "model is NULL");
  EXPECT_FAILS(fg_restore(m, nullptr, &out.image, nullptr, nullptr), FG_ERROR_ARGUMENT, "input is NULL");
  EXPECT_FAILS(fg_restore(m, &in.image, nullptr, nullptr, nullptr), FG_ERROR_ARGUMENT, "output is NULL");
  auto with = [&](fg_image img, auto change) {
    change(img);
    return img;
  };
  fg_image bad = with(in.image, [](fg_image& i) { i.data = nullptr; });
  EXPECT_FAILS(fg_restore(m, &bad, &out.image, nullptr, nullptr), FG_ERROR_ARGUMENT, "input image has no pixels");
  bad = with(in.image, [](fg_image& i) { i.width = 0; });
  EXPECT_FAILS(fg_restore(m, &bad, &out.image, nullptr, nullptr), FG_ERROR_ARGUMENT, "both must be positive");
  bad = with(in.image, [](fg_image& i) { i.height = -3; });
  EXPECT_FAILS(fg_restore(m, &bad, &out.image, nullptr, nullptr), FG_ERROR_ARGUMENT, "both must be positive");
  bad = with(in.image, [](fg_image& i) { i.channels = 2; });
  EXPECT_FAILS(fg_restore(m, &bad, &out.image, nullptr, nullptr), FG_ERROR_ARGUMENT, "use 3 (RGB) or 4 (RGBA)");
  bad = with(in.image, [](fg_image& i) { i.type = fg_sample_type(9); });
  EXPECT_FAILS(fg_restore(m, &bad, &out.image, nullptr, nullptr), FG_ERROR_ARGUMENT, "unknown sample type 9");
  bad = with(in.image, [](fg_image& i) { i.stride = 59; });
  EXPECT_FAILS(fg_restore(m, &bad, &out.image, nullptr, nullptr), FG_ERROR_ARGUMENT, "smaller than a row (60 bytes)");
  bad = with(out.image, [](fg_image& i) { i.width = 19; });
  EXPECT_FAILS(fg_restore(m, &in.image, &bad, nullptr, nullptr), FG_ERROR_ARGUMENT, "must be the same size");
  Buffer f32(20, 12, 3, FG_F32);
  bad = with(f32.image, [](fg_image& i) { i.data = static_cast<char*>(i.data) + 2; });
  EXPECT_FAILS(fg_restore(m, &in.image, &bad, nullptr, nullptr), FG_ERROR_ARGUMENT, "not aligned");
  bad = with(mask.image, [](fg_image& i) { i.channels = 3; });
  EXPECT_FAILS(fg_restore(m, &in.image, &out.image, &bad, nullptr), FG_ERROR_ARGUMENT, "a mask has 1");
  bad = with(mask.image, [](fg_image& i) { i.height = 13; });
  EXPECT_FAILS(fg_restore(m, &in.image, &out.image, &bad, nullptr), FG_ERROR_ARGUMENT, "mask image is 20 x 13");

  fg_restore_options b = o;
  b.mode = FG_MODE_NEGATIVE;
  EXPECT_FAILS(fg_restore(m, &in.image, &out.image, nullptr, &b), FG_ERROR_UNSUPPORTED, "is a dust model");
  b = o, b.mode = fg_mode(7);
  EXPECT_FAILS(fg_restore(m, &in.image, &out.image, nullptr, &b), FG_ERROR_ARGUMENT, "unknown mode 7");
  b = o, b.tile = 2;
  EXPECT_FAILS(fg_restore(m, &in.image, &out.image, nullptr, &b), FG_ERROR_ARGUMENT, "smaller than the model's size");
  b = o, b.tile = 64, b.margin = 20;
  EXPECT_FAILS(fg_restore(m, &in.image, &out.image, nullptr, &b), FG_ERROR_ARGUMENT, "raise tile or lower margin");
  b = o, b.margin = -2;
  EXPECT_FAILS(fg_restore(m, &in.image, &out.image, nullptr, &b), FG_ERROR_ARGUMENT, "margin must be -1");
  b = o, b.threads = -1;
  EXPECT_FAILS(fg_restore(m, &in.image, &out.image, nullptr, &b), FG_ERROR_ARGUMENT, "threads -1 is negative");

  std::vector<float> nan_image = wave_samples(20, 12, 3, 1);
  nan_image[5 * 60 + 7] = NAN;
  f32.fill(nan_image);
  EXPECT_FAILS(fg_restore(m, &f32.image, &out.image, nullptr, nullptr), FG_ERROR_ARGUMENT,
               "at x 2, y 5, channel 1 is not finite");
  EXPECT_EQ(out.bytes, untouched) << "a failed restore wrote into the output";

  // A negative model refuses dust mode the same way.
  fg_model* neg = load(path("negative.safetensors"));
  b = o, b.mode = FG_MODE_DUST;
  EXPECT_FAILS(fg_restore(neg, &in.image, &out.image, nullptr, &b), FG_ERROR_UNSUPPORTED, "is a negative model");
  fg_model_free(neg);
  fg_model_free(m);
}

TEST_F(CApi, ImageFilesRoundTripAndRefuseBadInput) {
  const int64_t W = 17, H = 9;
  Buffer rgba(W, H, 4, FG_U16, /*pad=*/6);
  rgba.fill(wave_samples(W, H, 4, 9));
  ASSERT_EQ(fg_image_write(path("round.png").c_str(), &rgba.image), FG_OK) << fg_last_error();
  fg_image back;
  ASSERT_EQ(fg_image_read(path("round.png").c_str(), fg_sample_type(0), &back), FG_OK) << fg_last_error();
  EXPECT_EQ(back.type, FG_U16);
  EXPECT_EQ(back.channels, 4);
  ASSERT_EQ(back.width, W);
  ASSERT_EQ(back.height, H);
  const std::vector<float> want = rgba.values();
  const uint16_t* got = static_cast<const uint16_t*>(back.data);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], uint16_t(std::lround(want[i] * 65535.0f))) << i;
  fg_image_free(&back);
  EXPECT_EQ(back.data, nullptr);
  fg_image_free(&back);  // a cleared image may be freed again
  fg_image_free(nullptr);

  // A grey 8-bit mask is read back as RGB, in the sample type asked for.
  Buffer grey(W, H, 1, FG_U8);
  grey.fill(wave_samples(W, H, 1, 10));
  ASSERT_EQ(fg_image_write(path("grey.png").c_str(), &grey.image), FG_OK) << fg_last_error();
  ASSERT_EQ(fg_image_read(path("grey.png").c_str(), FG_F32, &back), FG_OK) << fg_last_error();
  EXPECT_EQ(back.channels, 3);
  EXPECT_EQ(static_cast<const float*>(back.data)[3 * 5 + 2], grey.get(0, 5));
  fg_image_free(&back);

  fg_image untouched{};
  EXPECT_FAILS(fg_image_read(nullptr, FG_U8, &untouched), FG_ERROR_ARGUMENT, "path is NULL");
  EXPECT_FAILS(fg_image_read(path("round.png").c_str(), FG_U8, nullptr), FG_ERROR_ARGUMENT, "image is NULL");
  EXPECT_FAILS(fg_image_read(path("round.png").c_str(), fg_sample_type(5), &untouched), FG_ERROR_ARGUMENT,
               "unknown sample type 5");
  EXPECT_FAILS(fg_image_read(path("missing.png").c_str(), FG_U8, &untouched), FG_ERROR_ARGUMENT, "missing.png");
  EXPECT_FAILS(fg_image_read(path("garbage.safetensors").c_str(), FG_U8, &untouched), FG_ERROR_ARGUMENT,
               "cannot decode");
  EXPECT_EQ(untouched.data, nullptr);
  EXPECT_FAILS(fg_image_write(path("x.webp").c_str(), &rgba.image), FG_ERROR_ARGUMENT, "x.webp");
  EXPECT_FAILS(fg_image_write(path("no/such/folder/x.png").c_str(), &rgba.image), FG_ERROR_ARGUMENT, "x.png");
  EXPECT_FAILS(fg_image_write(nullptr, &rgba.image), FG_ERROR_ARGUMENT, "path is NULL");
  EXPECT_FAILS(fg_image_write(path("x.png").c_str(), nullptr), FG_ERROR_ARGUMENT, "image is NULL");
  EXPECT_FALSE(fs::exists(path("x.png")));
}

struct Progress {
  std::vector<std::pair<int64_t, int64_t>> calls;
  int64_t stop_after = -1;  // returns nonzero once `done` reaches this
};
int record_progress(int64_t done, int64_t total, void* user) {
  Progress* p = static_cast<Progress*>(user);
  p->calls.emplace_back(done, total);
  return p->stop_after >= 0 && done >= p->stop_after;
}

TEST_F(CApi, ProgressCountsTilesAndCancellingWritesNothing) {
  fg_model* m = load(path("dust_run"));
  Buffer in(100, 70, 3, FG_U8), out(100, 70, 3, FG_U8);
  in.fill(wave_samples(100, 70, 3, 2));
  const std::vector<unsigned char> untouched = out.bytes;
  fg_restore_options o;
  fg_restore_options_init(&o);
  o.tile = 48, o.margin = 4, o.ramp = 8;
  o.progress = record_progress;
  Progress all;
  o.user_data = &all;
  ASSERT_EQ(fg_restore(m, &in.image, &out.image, nullptr, &o), FG_OK) << fg_last_error();
  ASSERT_GT(all.calls.size(), 3u);
  const int64_t total = all.calls[0].second;
  EXPECT_EQ(all.calls.size(), size_t(total + 1));
  for (size_t i = 0; i < all.calls.size(); ++i) EXPECT_EQ(all.calls[i], std::make_pair(int64_t(i), total));
  EXPECT_NE(out.bytes, untouched);

  for (int64_t stop : {int64_t(0), int64_t(2)}) {
    Buffer out2(100, 70, 3, FG_U8);
    const std::vector<unsigned char> before = out2.bytes;
    Progress cancel;
    cancel.stop_after = stop;
    o.user_data = &cancel;
    EXPECT_FAILS(fg_restore(m, &in.image, &out2.image, nullptr, &o), FG_ERROR_CANCELLED, "cancelled");
    EXPECT_EQ(cancel.calls.size(), size_t(stop + 1)) << "the restore went on after the callback asked to stop";
    EXPECT_EQ(out2.bytes, before);
  }
  // The handle is usable after a cancelled run, and the callback is not kept.
  Buffer out3(100, 70, 3, FG_U8);
  o.progress = nullptr;  // the cancelling callback of the last call would stop this one if it were kept
  ASSERT_EQ(fg_restore(m, &in.image, &out3.image, nullptr, &o), FG_OK) << fg_last_error();
  // The same restore again: equal up to one level (OpenMP may split the sums another way).
  for (size_t i = 0; i < out.bytes.size(); ++i) ASSERT_LE(std::abs(int(out3.bytes[i]) - int(out.bytes[i])), 1) << i;
  fg_model_free(m);
}

// The C++ restore of the same samples (as floats) with the same tiling: what the C API must reproduce.
fg::Tensor reference_restore(const std::string& model_path, const std::vector<float>& samples, int64_t W, int64_t H,
                             int C, fg::Tensor* mask) {
  fg::apps::RestoreOptions ro;
  ro.tile = 48, ro.margin = 4, ro.ramp = 8;
  fg::apps::Restorer r(fg::apps::load_restoration_model(fg::apps::resolve_model_path(model_path)), ro);
  fg::data::Image image;
  image.pixels = fg::Tensor::empty({C, H, W});
  float* p = image.pixels.data<float>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) p[(c * H + y) * W + x] = samples[size_t((y * W + x) * C + c)];
  image.channels = C;
  return r.restore(std::move(image), mask).pixels.contiguous();
}

// |got - clamp(ref)| over every sample, got interleaved, ref (C, H, W).
double max_error(const std::vector<float>& got, const fg::Tensor& ref, int64_t W, int64_t H, int C) {
  const float* r = ref.data<float>();
  double worst = 0;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) {
        const double want = std::clamp(double(r[(c * H + y) * W + x]), 0.0, 1.0);
        worst = std::max(worst, std::fabs(double(got[size_t((y * W + x) * C + c)]) - want));
      }
  return worst;
}

TEST_F(CApi, RestoresEverySampleTypeStrideAndAlphaLikeTheCppRestorer) {
  const int64_t W = 90, H = 53;  // not multiples of the tile or the size multiple
  fg_model* m = load(path("dust_run"));
  fg_restore_options o;
  fg_restore_options_init(&o);
  o.tile = 48, o.margin = 4, o.ramp = 8;
  for (int C : {3, 4}) {
    const std::vector<float> samples = wave_samples(W, H, C, 3);
    for (fg_sample_type type : {FG_U8, FG_U16, FG_F32}) {
      SCOPED_TRACE("channels " + std::to_string(C) + ", type " + std::to_string(int(type)));
      Buffer in(W, H, C, type, /*pad=*/13 * (type == FG_U8 ? 1 : 4)), out(W, H, C, type, 8 * 4), mask(W, H, 1, type);
      in.fill(samples);
      // The reference sees exactly the samples the C API reads (8- and 16-bit quantised).
      const std::vector<float> quantised = in.values();
      fg::Tensor ref_mask;
      const fg::Tensor ref = reference_restore(path("dust_run"), quantised, W, H, C, &ref_mask);
      ASSERT_EQ(fg_restore(m, &in.image, &out.image, &mask.image, &o), FG_OK) << fg_last_error();
      // Half a level of rounding, plus float noise: OpenMP and GEMM kernels may sum in another order per call.
      const double level = type == FG_U8 ? 1.0 / 255 : type == FG_U16 ? 1.0 / 65535 : 0.0;
      EXPECT_LE(max_error(out.values(), ref, W, H, C), 0.5 * level + 1e-4);
      EXPECT_LE(max_error(mask.values(), ref_mask, W, H, 1), 0.5 * level + 1e-4);
      if (C == 4) {  // alpha is the input's, exactly
        const std::vector<float> got = out.values();
        for (int64_t i = 3; i < W * H * 4; i += 4) ASSERT_EQ(got[size_t(i)], quantised[size_t(i)]) << i;
      }
      // The padding after each row is not written.
      for (int64_t y = 0; y < H; ++y)
        for (int64_t b = W * C * (type == FG_U8 ? 1 : type == FG_U16 ? 2 : 4); b < out.stride(); ++b)
          ASSERT_EQ(out.bytes[size_t(y * out.stride() + b)], 0xA5) << "row " << y << " byte " << b;
    }
  }
  // In place, and RGB in with RGBA out (alpha opaque).
  const std::vector<float> samples = wave_samples(W, H, 3, 4);
  Buffer a(W, H, 3, FG_U16), b(W, H, 3, FG_U16), rgba(W, H, 4, FG_U8);
  a.fill(samples), b.fill(samples);
  ASSERT_EQ(fg_restore(m, &a.image, &a.image, nullptr, &o), FG_OK) << fg_last_error();
  Buffer separate(W, H, 3, FG_U16);
  ASSERT_EQ(fg_restore(m, &b.image, &separate.image, nullptr, &o), FG_OK) << fg_last_error();
  EXPECT_LE(max_error(a.values(), reference_restore(path("dust_run"), b.values(), W, H, 3, nullptr), W, H, 3),
            0.5 / 65535 + 1e-4);
  ASSERT_EQ(fg_restore(m, &b.image, &rgba.image, nullptr, &o), FG_OK) << fg_last_error();
  const std::vector<float> got = rgba.values();
  for (int64_t i = 3; i < W * H * 4; i += 4) ASSERT_EQ(got[size_t(i)], 1.0f);
  fg_model_free(m);
}

TEST_F(CApi, InferenceModeAndF16WeightsRestoreLikeThePlainModel) {
  const int64_t W = 70, H = 45;
  fg_restore_options r;
  fg_restore_options_init(&r);
  r.tile = 48, r.margin = 4, r.ramp = 8;
  for (const char* model : {"dust_run", "negative.safetensors"}) {
    SCOPED_TRACE(model);
    fg_model* plain = load(path(model));
    fg_load_options o;
    fg_load_options_init(&o);
    o.inference_mode = 1;
    fg_model* folded = load(path(model), &o);
    o.f16_weights = 1;
    fg_model* half = load(path(model), &o);
    ASSERT_TRUE(plain && folded && half);
    Buffer in(W, H, 3, FG_F32), a(W, H, 3, FG_F32), b(W, H, 3, FG_F32), c(W, H, 3, FG_F32);
    in.fill(wave_samples(W, H, 3, 9));
    ASSERT_EQ(fg_restore(plain, &in.image, &a.image, nullptr, &r), FG_OK) << fg_last_error();
    ASSERT_EQ(fg_restore(folded, &in.image, &b.image, nullptr, &r), FG_OK) << fg_last_error();
    ASSERT_EQ(fg_restore(half, &in.image, &c.image, nullptr, &r), FG_OK) << fg_last_error();
    const std::vector<float> va = a.values(), vb = b.values(), vc = c.values();
    double folded_err = 0, half_err = 0;
    for (size_t i = 0; i < va.size(); ++i) {
      folded_err = std::max(folded_err, double(std::fabs(va[i] - vb[i])));
      half_err = std::max(half_err, double(std::fabs(va[i] - vc[i])));
    }
    // Folding changes only the order of float roundings (tests/models/test_inference.cpp bounds it by the
    // network's own f32 rounding); 1e-4 is far above that and far below any visible change.
    EXPECT_LE(folded_err, 1e-4);
    // f16 weights: 11 significant bits per weight; the bound of tests/models/test_inference.cpp (~40 u of the
    // output's scale, here 1) is 2e-2.
    EXPECT_LE(half_err, 2e-2);
    EXPECT_GT(half_err, 0.0);
    fg_model_info info;
    ASSERT_EQ(fg_model_get_info(half, &info), FG_OK);
    fg_model_free(plain);
    fg_model_free(folded);
    fg_model_free(half);
  }
}

TEST_F(CApi, NegativeModeKeepsRedAndGreenExactly) {
  const int64_t W = 40, H = 36;
  fg_model* m = load(path("negative.safetensors"));
  Buffer in(W, H, 3, FG_U16), out(W, H, 3, FG_U16), mask(W, H, 1, FG_F32);
  in.fill(wave_samples(W, H, 3, 5));
  fg_restore_options o;
  fg_restore_options_init(&o);
  o.mode = FG_MODE_NEGATIVE;
  ASSERT_EQ(fg_restore(m, &in.image, &out.image, &mask.image, &o), FG_OK) << fg_last_error();
  const std::vector<float> a = in.values(), b = out.values(), k = mask.values();
  int64_t blue_changed = 0;
  for (int64_t i = 0; i < W * H; ++i) {
    ASSERT_EQ(b[size_t(3 * i)], a[size_t(3 * i)]) << i;
    ASSERT_EQ(b[size_t(3 * i + 1)], a[size_t(3 * i + 1)]) << i;
    blue_changed += b[size_t(3 * i + 2)] != a[size_t(3 * i + 2)];
    ASSERT_GE(k[size_t(i)], 0.0f);
    ASSERT_LE(k[size_t(i)], 1.0f);
  }
  EXPECT_GT(blue_changed, W * H / 2);
  fg_model_free(m);
}

TEST_F(CApi, SeparateHandlesInParallelThreadsMatchOneThread) {
  const int64_t W = 96, H = 64;
  constexpr int kThreads = 3;
  const std::vector<float> samples = wave_samples(W, H, 3, 6);
  Buffer in(W, H, 3, FG_F32);
  in.fill(samples);
  fg_restore_options o;
  fg_restore_options_init(&o);
  o.tile = 48, o.margin = 4, o.ramp = 8;
  o.threads = 1;  // each call on one OpenMP thread, so the threads below really run side by side

  std::vector<Buffer> serial, parallel;
  for (int t = 0; t < kThreads; ++t) serial.emplace_back(W, H, 3, FG_F32), parallel.emplace_back(W, H, 3, FG_F32);
  fg_model* one = load(path("dust_run"));
  for (int t = 0; t < kThreads; ++t) ASSERT_EQ(fg_restore(one, &in.image, &serial[t].image, nullptr, &o), FG_OK);
  fg_model_free(one);

  fg_get_library_info(nullptr);  // this thread's last error, which the other threads must not change
  const std::string main_error = fg_last_error();
  std::vector<fg_status> status(kThreads, FG_ERROR_INTERNAL);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      fg_model* m = nullptr;
      status[t] = fg_model_load(path("dust_run").c_str(), nullptr, &m);
      if (status[t] == FG_OK) status[t] = fg_restore(m, &in.image, &parallel[t].image, nullptr, &o);
      // A failure in this thread is reported in this thread only.
      fg_restore(nullptr, &in.image, &parallel[t].image, nullptr, &o);
      errors[t] = fg_last_error();
      fg_model_free(m);
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(fg_last_error(), main_error) << "another thread's error leaked into this one";
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(status[t], FG_OK) << "thread " << t;
    EXPECT_NE(errors[t].find("model is NULL"), std::string::npos) << errors[t];
    // One OpenMP thread per call: the same sums in the same order; 1e-6 leaves room for nothing but that.
    const std::vector<float> a = serial[t].values(), b = parallel[t].values();
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
    EXPECT_LE(worst, 1e-6) << "thread " << t;
  }
}

}  // namespace
