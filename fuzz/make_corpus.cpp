// Writes the seed corpus of the fuzz targets: small valid inputs made by filmgrad itself, one folder per target.
//   fg_make_corpus OUT_DIR     (tools/run_fuzz.sh --corpus runs it into fuzz/corpus; the result is committed)
// Everything is deterministic (fixed seeds), so running it again rewrites the same bytes.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/presets.h"
#include "apps/task.h"
#include "apps/train.h"
#include "autograd/ops.h"
#include "data/image_io.h"
#include "fuzz/checkpoint_net.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tensor/philox.h"
#include "tensor/safetensors.h"

namespace fs = std::filesystem;
using namespace fg;

namespace {

fs::path g_out;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_out / target);
  write_file_atomic((g_out / target / name).string(), bytes);
}

// A (C, H, W) image of smooth waves with every channel different.
Tensor waves(int64_t c, int64_t h, int64_t w) {
  Tensor t = Tensor::empty({c, h, w});
  float* p = t.data<float>();
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        p[(k * h + y) * w + x] = float(0.5 + 0.45 * std::sin(0.9 * double(x) + 1.3 * double(y) + 2.0 * double(k)));
  return t;
}

void images() {
  put("image", "rgb8.png", data::encode_image(data::make_image(waves(3, 5, 7), 8), "png"));
  put("image", "grey_alpha16.png", data::encode_image(data::make_image(waves(2, 4, 6), 16), "png"));
  put("image", "rgba8.png", data::encode_image(data::make_image(waves(4, 3, 5), 8), "png"));
  put("image", "rgb.jpg", data::encode_image(data::make_image(waves(3, 8, 8), 8), "jpeg"));
  put("image", "grey.jpg", data::encode_image(data::make_image(waves(1, 9, 7), 8), "jpeg"));
  put("image", "rgb.bmp", data::encode_image(data::make_image(waves(3, 4, 5), 8), "bmp"));
  put("image", "rgba.tga", data::encode_image(data::make_image(waves(4, 4, 3), 8), "tga"));
  put("image", "rgb16.tif", data::encode_image(data::make_image(waves(3, 4, 5), 16), "tiff"));
  put("image", "grey8.tif", data::encode_image(data::make_image(waves(1, 6, 4), 8), "tiff"));
  put("image", "rgba8.tif", data::encode_image(data::make_image(waves(4, 3, 3), 8), "tiff"));
}

void safetensors() {
  SafeTensors st;
  Generator gen(1);
  Tensor w = Tensor::empty({2, 3});
  uniform_(w, gen, -1.0, 1.0);
  st.tensors["weight"] = w;
  st.tensors["half"] = w.to(DType::F16);
  st.tensors["bf16"] = w.to(DType::BF16);
  st.tensors["count"] = Tensor::full({}, 5.0, DType::I64);
  st.tensors["bytes"] = Tensor::full({4}, 7.0, DType::U8);
  st.tensors["ints"] = Tensor::full({1, 2}, -3.0, DType::I32);
  st.tensors["empty"] = Tensor::empty({0, 3});
  st.metadata["format"] = "pt";
  st.metadata["note"] = "quote \" backslash \\ newline \n";
  put("safetensors", "mixed.safetensors", serialize_safetensors(st));
  put("safetensors", "empty.safetensors", serialize_safetensors(SafeTensors()));
  SafeTensors one;
  one.tensors["x"] = Tensor::full({3}, 0.25, DType::F64);
  put("safetensors", "f64.safetensors", serialize_safetensors(one));
}

apps::TrainOptions sample_options() {
  apps::TrainOptions o;
  o.data_dir = "photos";
  o.out_dir = "run";
  const apps::Preset& p = apps::find_preset("dissertation");
  o.preset = p.name;
  o.model = p.model;
  o.model.model = "tiny_unet";
  o.stages = apps::build_stages(p);
  return o;
}

void checkpoints() {
  const fs::path dir = g_out / "checkpoint";
  fs::create_directories(dir);
  auto net = fuzz::make_checkpoint_net();
  nn::AdamW opt(net->parameters(), nn::AdamWOptions());
  // One step, so the optimizer has state to save.
  Generator gen(3);
  Tensor x = Tensor::empty({2, 3, 4, 4});
  normal_(x, gen);
  net->train();
  opt.zero_grad();
  mse_loss((*net)(Variable(x)), Variable(Tensor::zeros({2, 3, 4, 4}))).backward();
  opt.step();
  nn::CheckpointInfo info;
  info.model = fuzz::kCheckpointModel;
  info.config = sample_options().model.to_json();
  info.step = 1;
  info.epoch = 0;
  info.extra["train_options"] = sample_options().to_json();
  info.extra["train_stage"] = "0";
  nn::save_checkpoint((dir / "last.safetensors").string(), *net, &opt, info);
  info.extra.clear();
  nn::save_checkpoint((dir / "weights_only.safetensors").string(), *net, nullptr, info);
}

void json() {
  put("json", "model.json", apps::ModelConfig().to_json());
  put("json", "options.json", sample_options().to_json());
  apps::TrainOptions cross = sample_options();
  cross.model = apps::find_preset("cross-channel").model;
  cross.stages = apps::build_stages(apps::find_preset("cross-channel"));
  cross.log_format = "csv";
  put("json", "options_cross.json", cross.to_json());
  put("json", "metrics_line.json",
      "{\"kind\":\"epoch\",\"step\":4,\"train_loss\":0.0123,\"val_loss\":null,\"best\":true,"
      "\"terms\":{\"bce_mask\":1e-3,\"mse\":-2.5E+2},\"list\":[1,[2,[]],{}],\"s\":\"\\u00e9\\t\\\"\"}");
}

void command_lines() {
  const std::vector<std::pair<std::string, std::vector<std::string>>> lines = {
      {"train_fresh",
       {"train", "--data", "photos", "--out", "run", "--model", "tiny_unet", "--sizes", "32,64", "--batches", "4",
        "--epochs", "2", "--lr", "1e-3", "--seed", "5", "--no-progress"}},
      {"train_cross",
       {"train", "--preset", "cross-channel", "--width", "0.25", "--data", "photos", "--out", "run",
        "--epochs-per-size", "1", "--unfrozen-epochs", "0", "--log", "csv", "--wd", "0"}},
      {"train_resume", {"train", "--out", "run", "--resume", "--max-steps", "10", "--workers", "0"}},
      {"inspect", {"inspect", "--model", "dynamic_unet", "--width", "0.5", "--seed", "3"}},
      {"synth", {"synth", "in", "-o", "out", "--n", "3", "--pair", "1", "2", "--", "-x"}},
  };
  for (const auto& [name, words] : lines) {
    std::string text;
    for (const std::string& w : words) text += (text.empty() ? "" : "\n") + w;
    put("cmdline", name, text);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fg_make_corpus OUT_DIR\n");
    return 2;
  }
  g_out = argv[1];
  try {
    images();
    safetensors();
    checkpoints();
    json();
    command_lines();
  } catch (const Error& e) {
    std::fprintf(stderr, "fg_make_corpus: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
