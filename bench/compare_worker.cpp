// filmgrad's side of `make bench-compare` (tools/bench_compare.py): builds one network and one workload, then
// times it one repetition at a time when the runner asks, so that the runner can alternate it with the PyTorch
// twin (tools/torch_twins.py) in the same run. Not a Google Benchmark suite (hence no bench_ prefix: tools/
// run_cpu_bench.sh runs every build/bench_*).
//
//   compare_worker --model dynamic_unet|cross_channel --mode train|infer --size PX --batch N [--width W]
//                  [--frozen]
//
// The workloads are those of bench/bench_train_networks.cpp and of `filmgrad restore`:
//   train  forward, loss, backward, AdamW step of RestorationModel and its loss() (apps/task.h): dynamic_unet with
//          MSE in ImageNet-normalised space, AdamW lr 1e-3 weight decay 1e-3, --frozen freezing the encoder except
//          its BatchNorms; cross_channel (full) with BCE(mask) + MSE(B') + MSE(B''), AdamW lr 1e-4 (default decay
//          1e-2). Inputs and targets uniform in [0, 1].
//   infer  eval mode, no gradients: RestorationModel::predict (dynamic_unet: normalise, network, de-normalise;
//          cross_channel: all three sub-networks, B'' returned).
//
// Protocol, one line each way: after setting up it prints {"ready": true, "parameters": ..., "trainable": ...,
// ...} on stdout; then for each line "step" on stdin it runs one repetition and prints {"seconds": S}; "quit" or
// the end of stdin ends it. Errors: one line on stderr and a non-zero exit. Threads come from OMP_NUM_THREADS.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "apps/task.h"
#include "kernels/cpu/gemm.h"
#include "nn/optim.h"
#include "tensor/philox.h"

namespace {

struct Options {
  std::string model, mode;
  int64_t size = 0, batch = 0;
  double width = 1.0;
  bool frozen = false;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr,
               "compare_worker: error: %s\nusage: compare_worker --model dynamic_unet|cross_channel --mode "
               "train|infer --size PX --batch N [--width W] [--frozen]\n",
               message.c_str());
  std::exit(2);
}

int64_t positive_int(const std::string& flag, const char* text) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v <= 0) usage_error(flag + " needs a positive integer, got '" + text + "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--frozen") {
      o.frozen = true;
      continue;
    }
    if (i + 1 >= argc) usage_error("'" + a + "' needs a value or is unknown");
    const char* v = argv[++i];
    if (a == "--model") {
      o.model = v;
    } else if (a == "--mode") {
      o.mode = v;
    } else if (a == "--size") {
      o.size = positive_int(a, v);
    } else if (a == "--batch") {
      o.batch = positive_int(a, v);
    } else if (a == "--width") {
      char* end = nullptr;
      o.width = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(o.width > 0)) usage_error(std::string("--width needs a number > 0, got ") + v);
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  if (o.model != "dynamic_unet" && o.model != "cross_channel")
    usage_error("--model must be dynamic_unet or cross_channel");
  if (o.mode != "train" && o.mode != "infer") usage_error("--mode must be train or infer");
  if (o.size == 0 || o.batch == 0) usage_error("--size and --batch are required");
  if (o.frozen && (o.model != "dynamic_unet" || o.mode != "train"))
    usage_error("--frozen applies to dynamic_unet training only");
  return o;
}

fg::Tensor random_uniform(const fg::Shape& shape, fg::Generator& gen) {
  fg::Tensor t = fg::Tensor::empty(shape);
  fg::uniform_(t, gen, 0.0, 1.0);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    const auto setup_start = std::chrono::steady_clock::now();
    fg::apps::ModelConfig config;
    config.model = o.model;
    config.width = o.width;
    config.task = o.model == "cross_channel" ? "negative" : "dust";
    config.loss = o.model == "cross_channel" ? "cross_channel" : "mse";
    fg::Generator gen(1);
    fg::apps::RestorationModel model(config, gen, /*build_loss=*/false);
    model.set_encoder_frozen(o.frozen);
    std::optional<fg::nn::AdamW> opt;
    fg::data::Batch batch;
    batch.input = random_uniform({o.batch, 3, o.size, o.size}, gen);
    if (o.mode == "train") {
      model.module().train();
      // The options `filmgrad train` uses for each task (as bench_train_networks).
      fg::nn::AdamWOptions opts;
      opts.lr = config.task == "negative" ? 1e-4 : 1e-3;
      if (config.task != "negative") opts.weight_decay = 1e-3;
      opt.emplace(model.module().parameters(/*trainable_only=*/true), opts);
      batch.target = random_uniform({o.batch, model.out_channels(), o.size, o.size}, gen);
      batch.mask = random_uniform({o.batch, 1, o.size, o.size}, gen);
    } else {
      model.module().eval();
    }
    double loss_value = 0.0;
    const auto run_once = [&] {
      if (opt) {
        opt->zero_grad();
        fg::apps::LossValue loss = model.loss(batch);
        loss.total.backward();
        opt->step();
        loss_value = loss.terms.at("total");
      } else {
        fg::NoGradGuard no_grad;
        const fg::Tensor y = model.predict(fg::Variable(batch.input)).data();
        loss_value = double(y.numel());
      }
    };
    const double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_start).count();
    std::printf(
        "{\"ready\": true, \"parameters\": %lld, \"trainable\": %lld, \"threads\": %d, \"gemm\": \"%s\", "
        "\"setup_s\": %.3f}\n",
        static_cast<long long>(model.module().num_parameters()),
        static_cast<long long>(o.mode == "train" ? model.module().num_parameters(/*trainable_only=*/true) : 0),
        omp_get_max_threads(), fg::cpu::gemm_kernel_name().c_str(), setup_s);
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line == "quit") break;
      if (line != "step") {
        std::fprintf(stderr, "compare_worker: error: unknown command '%s' (step or quit)\n", line.c_str());
        return 2;
      }
      const auto start = std::chrono::steady_clock::now();
      run_once();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("{\"seconds\": %.6f, \"check\": %.9g}\n", seconds, loss_value);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare_worker: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
