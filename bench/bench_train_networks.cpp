// One CPU training step of each restoration network at 64 px: forward, loss, backward, AdamW step, on batch 8 of
// 3x64x64 random images. The networks and losses are exactly those `filmgrad train` uses: RestorationModel and its
// loss() (apps/task.h):
//   dynamic_unet  width 1.0 and 0.25, the encoder frozen except its BatchNorms (the first stage of the
//                 dissertation's schedule), MSE in ImageNet-normalised space (input and target normalised inside
//                 loss()), AdamW (weight decay 1e-3)
//   cross_channel width 1.0 and 0.25, the full network (mask, cross-channel and final nets) and its combined loss
//                 BCE(mask) + MSE(B') + MSE(B''), AdamW
//   tiny_unet     the demo's (8 base channels), MSE, AdamW
// Reported: items_per_second = images per second, seconds_per_step, and the (trainable) parameter counts. Threads
// come from OMP_NUM_THREADS. Write JSON with --benchmark_out=FILE --benchmark_out_format=json.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "apps/task.h"
#include "nn/optim.h"
#include "tensor/philox.h"

namespace {

constexpr int64_t kBatch = 8, kSize = 64;

fg::Tensor random_uniform(const fg::Shape& shape, fg::Generator& gen, double lo, double hi) {
  fg::Tensor t = fg::Tensor::empty(shape);
  fg::uniform_(t, gen, lo, hi);
  return t;
}

// Runs `step` once as a warm-up (first-touch allocations, the host block cache), then times the benchmark's
// iterations and reports the counters.
void time_steps(benchmark::State& state, fg::nn::Module& net, const std::function<void()>& step,
                const std::string& label) {
  step();
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) step();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                         double(std::max<benchmark::IterationCount>(state.iterations(), 1));
  state.SetItemsProcessed(int64_t(state.iterations()) * kBatch);
  state.counters["seconds_per_step"] = seconds;
  state.counters["images_per_s"] = double(kBatch) / seconds;
  state.counters["parameters"] = double(net.num_parameters());
  state.counters["trainable"] = double(net.num_parameters(/*trainable_only=*/true));
  state.counters["threads"] = omp_get_max_threads();
  state.SetLabel(label);
}

struct Network {
  const char* model;
  double width;
  const char* loss;
  int iterations;  // fixed counts keep the slow full-width steps to a few seconds each
  const char* label;
};
const Network kNetworks[] = {
    {"dynamic_unet", 1.0, "mse", 5, "dynamic_unet width 1.0, encoder frozen, MSE, AdamW (wd 1e-3)"},
    {"dynamic_unet", 0.25, "mse", 10, "dynamic_unet width 0.25, encoder frozen, MSE, AdamW (wd 1e-3)"},
    {"cross_channel", 1.0, "cross_channel", 3, "cross_channel (full) width 1.0, BCE + MSE(B') + MSE(B''), AdamW"},
    {"cross_channel", 0.25, "cross_channel", 5, "cross_channel (full) width 0.25, BCE + MSE(B') + MSE(B''), AdamW"},
    {"tiny_unet", 1.0, "mse", 30, "tiny_unet (the demo's, 8 channels), MSE, AdamW"},
};

void BM_TrainStep(benchmark::State& state, const Network& n) {
  fg::apps::ModelConfig config;
  config.model = n.model;
  config.width = n.width;
  config.loss = n.loss;
  config.task = config.loss == "cross_channel" ? "negative" : "dust";
  fg::Generator gen(1);
  fg::apps::RestorationModel model(config, gen, /*build_loss=*/false);
  model.set_encoder_frozen(true);  // the first stage of the dissertation's schedule (a no-op without an encoder)
  model.module().train();
  fg::nn::AdamWOptions opts;
  opts.lr = config.task == "negative" ? 1e-4 : 1e-3;
  opts.weight_decay = config.task == "negative" ? opts.weight_decay : 1e-3;
  fg::nn::AdamW opt(model.module().parameters(/*trainable_only=*/true), opts);
  // A batch as the data loader makes it (data/dataset.h): images in [0, 1]; the dust target is the clean RGB, the
  // negative target the clean blue with the damage mask.
  fg::data::Batch batch;
  batch.input = random_uniform({kBatch, 3, kSize, kSize}, gen, 0.0, 1.0);
  batch.target = random_uniform({kBatch, model.out_channels(), kSize, kSize}, gen, 0.0, 1.0);
  batch.mask = random_uniform({kBatch, 1, kSize, kSize}, gen, 0.0, 1.0);
  time_steps(
      state, model.module(),
      [&] {
        opt.zero_grad();
        fg::apps::LossValue loss = model.loss(batch);
        loss.total.backward();
        opt.step();
      },
      std::string(n.label) + ", batch 8, 3x64x64");
}

// One benchmark per network, named BM_TrainStep/<model>/<width x 100>.
const bool kRegistered = [] {
  for (const Network& n : kNetworks) {
    const std::string name = std::string("BM_TrainStep/") + n.model + "/width_pct:" +
                             std::to_string(int(std::lround(n.width * 100)));
    benchmark::RegisterBenchmark(name.c_str(), [&n](benchmark::State& s) { BM_TrainStep(s, n); })
        ->Iterations(n.iterations)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
