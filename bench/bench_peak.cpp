// This CPU's f32 FMA peak: the ceiling the convolution and matmul benchmarks report their pct_peak against.
// The measurement (independent FMA chains held in registers; see bench/peak.h for how it is derived) runs on 1 to
// all cores. Counters: FLOP/s (all threads together), FLOP/s_per_thread, FLOP_per_round_per_thread (chains x lanes
// x 2), and the chains and vector lanes used. bench_conv2d and bench_matmul call the same code at startup.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>

#include "bench/peak.h"

namespace {

void BM_fma_peak(benchmark::State& state) {
  const int threads = int(state.range(0));
  const long rounds = 1 << 22;  // about 20 ms per thread at 100 Gflop/s
  for (auto _ : state) benchmark::DoNotOptimize(fg::bench::time_fma_chains(threads, rounds));
  const double flops = double(rounds) * fg::bench::kFlopsPerRound * threads;
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s_per_thread"] =
      benchmark::Counter(flops / threads, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP_per_round_per_thread"] = fg::bench::kFlopsPerRound;
  state.counters["chains"] = fg::bench::kFmaChains;
  state.counters["lanes"] = fg::bench::kFmaLanes;
  state.counters["threads"] = threads;
}

BENCHMARK(BM_fma_peak)->Apply([](benchmark::internal::Benchmark* b) {
  for (int t = 1; t <= omp_get_num_procs(); ++t) b->Arg(t);
})->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("fma_isa", fg::bench::kFmaIsa);
  benchmark::AddCustomContext("fma_chains", std::to_string(fg::bench::kFmaChains));
  benchmark::AddCustomContext("fma_lanes", std::to_string(fg::bench::kFmaLanes));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
