// One CPU training step (forward, MSE loss, backward, Adam step) of models/tiny_unet.h at 64 px, batch 8,
// width 32, with 1 and 2 threads (apps/bench_suite.h's step, which `filmgrad bench` times too). When
// FG_TORCH_STEP_JSON names the file tools/bench_torch_step.py wrote for the same shapes, each run also reports
// PyTorch's time (torch_ms) and filmgrad's time relative to it (vs_torch = filmgrad / PyTorch; below 1 is faster).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "apps/bench_suite.h"

namespace {

constexpr int64_t kBatch = fg::bench::kTrainStepBatch, kSize = fg::bench::kTrainStepSize,
                  kWidth = fg::bench::kTrainStepWidth;

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
  for (const auto& [key, want] :
       {std::make_pair("batch", kBatch), std::make_pair("size", kSize), std::make_pair("width", kWidth)}) {
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
  fg::bench::TinyUNetTrainStep train_step(kBatch, kSize, kWidth);
  auto step = [&] { train_step.run(); };
  for (int i = 0; i < 2; ++i) step();  // warm-up
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) step();
  const double ours_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
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
