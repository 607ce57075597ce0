// Memory-bound CUDA benchmarks (bench_cuda_pointwise, bench_cuda_spatial): a visible skip without a device, and
// GPU timing with CUDA events (bench/cuda_peak.h's time_with_events) reported with two counters: "bytes/s" (the
// compulsory traffic of one call, every input read once and every output written once, over the measured time)
// and "pct_bw" (that rate against the memory bandwidth the device reports). Include only with FG_WITH_CUDA.
#pragma once
#include <benchmark/benchmark.h>

#include "bench/cuda_peak.h"
#include "tensor/cuda/context.h"

namespace fg::bench {

// Skips (with the reason, visible in the output and the JSON) when there is no device; returns true then.
inline bool skip_without_gpu(benchmark::State& state) {
  if (fg::cuda::device_count() > 0) return false;
  state.SkipWithError("no CUDA device present: GPU benchmark skipped");
  return true;
}

// Times fn() (which queues kernels on stream(0)) once per iteration after one warm-up call (first launches, and
// the allocator's cache filled with the call's sizes); bytes: the compulsory traffic of one call.
template <typename Fn>
void time_memory_bound(benchmark::State& state, double bytes, Fn&& fn) {
  time_with_events(state, 0, 1, fn);
  using C = benchmark::Counter;
  state.counters["bytes/s"] = C(bytes, C::kIsIterationInvariantRate);
  state.counters["pct_bw"] = C(100.0 * bytes / gpu_peaks(0).bytes, C::kIsIterationInvariantRate);
}

}  // namespace fg::bench
