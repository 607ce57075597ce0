// One CPU training step (forward, MSE loss, backward, Adam step) of models/tiny_unet.h at 64 px, batch 8,
// width 32, with 1 and 2 threads. When FG_TORCH_STEP_JSON names the file tools/bench_torch_step.py wrote for the
// same shapes, each run also reports PyTorch's time (torch_ms) and filmgrad's time relative to it
// (vs_torch = filmgrad / PyTorch; below 1 is faster).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "autograd/ops.h"
#include "models/tiny_unet.h"
#include "nn/optim.h"
#include "tensor/philox.h"

namespace {

constexpr int64_t kBatch = 8, kSize = 64, kWidth = 32;

// PyTorch's time for `threads` threads from the JSON file, or a negative number when there is none.
double torch_ms(int threads) {
  const char* path = std::getenv("FG_TORCH_STEP_JSON");
  if (!path) return -1;
  std::ifstream in(path);
  if (!in) return -1;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::smatch m;
  for (const auto& [key, want] : {std::make_pair("batch", kBatch), std::make_pair("size", kSize),
                                  std::make_pair("width", kWidth)}) {
    const std::regex re(std::string("\"") + key + "\":\\s*(\\d+)");
    if (!std::regex_search(text, m, re) || std::stoll(m[1]) != want) return -1;  // other shapes: no comparison
  }
  const std::regex t_re("\"" + std::to_string(threads) + "\":\\s*([0-9.eE+-]+)");
  if (!std::regex_search(text, m, t_re)) return -1;
  return std::stod(m[1]);
}

void BM_TrainStep_TinyUNet(benchmark::State& state) {
  const int threads = int(state.range(0));
  omp_set_num_threads(threads);
  fg::Generator gen(0);
  fg::models::TinyUNet net(gen, 3, 3, kWidth);
  fg::nn::AdamOptions opts;
  opts.lr = 1e-3;
  fg::nn::Adam opt(net.parameters(), opts);
  fg::Tensor x = fg::Tensor::empty({kBatch, 3, kSize, kSize}), y = fg::Tensor::empty({kBatch, 3, kSize, kSize});
  fg::uniform_(x, gen);
  fg::uniform_(y, gen);
  const fg::Variable xv(x), yv(y);
  auto step = [&] {
    opt.zero_grad();
    fg::Variable loss = fg::mse_loss(net.forward(xv), yv);
    loss.backward();
    opt.step();
  };
  for (int i = 0; i < 2; ++i) step();  // warm-up
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) step();
  const double ours_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      double(std::max<benchmark::IterationCount>(state.iterations(), 1));
  state.counters["images_per_s"] = benchmark::Counter(double(kBatch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["filmgrad_ms"] = ours_ms;
  const double t = torch_ms(threads);
  if (t > 0) {
    state.counters["torch_ms"] = t;
    state.counters["vs_torch"] = ours_ms / t;
  }
  state.SetLabel("batch 8, 3x64x64, width 32, Adam");
}
BENCHMARK(BM_TrainStep_TinyUNet)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
