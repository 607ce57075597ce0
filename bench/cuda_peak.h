// The GPU's peak rates for the CUDA benchmarks' percent-of-peak counters, and GPU timing with CUDA events.
//
// Peaks are derived from the device by apps/bench_gpu_peak.h (shared with `filmgrad bench`; the per-SM rates are
// listed there).
// For an H100 SXM (132 SMs, 1.98 GHz boost) that gives 66.9 TFLOP/s f32 and 1070 TFLOP/s bf16; NVIDIA's datasheet
// states 66.9 TFLOP/s f32, 989.4 TFLOP/s dense bf16 (quoted at the 1.83 GHz tensor clock) and 3.35 TB/s HBM3. The
// datasheet figures are recorded beside the derived ones in the JSON context, so either can be used afterwards.
// Only for builds with FG_WITH_CUDA.
#pragma once
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <string>

#include "apps/bench_gpu_peak.h"
#include "tensor/cuda/context.h"

namespace fg::bench {

// Records the peaks (derived and datasheet) in the benchmark JSON's context.
inline void add_gpu_context(const GpuPeaks& g) {
  benchmark::AddCustomContext("gpu", g.name);
  benchmark::AddCustomContext("gpu_sm_count", std::to_string(g.sm_count));
  benchmark::AddCustomContext("gpu_clock_hz", std::to_string(g.clock_hz));
  benchmark::AddCustomContext("gpu_peak_f32_flops", std::to_string(g.f32_flops));
  benchmark::AddCustomContext("gpu_peak_tensor16_flops", std::to_string(g.tensor_flops));
  benchmark::AddCustomContext("gpu_peak_bytes_per_s", std::to_string(g.bytes));
  benchmark::AddCustomContext("h100_sxm_datasheet",
                              "f32 66.9e12 flop/s, dense bf16/f16 989.4e12 flop/s, HBM3 3.35e12 B/s");
}

// Counters for one iteration doing `flops` flops and moving `bytes` bytes: FLOP/s, bytes/s, pct_peak (against
// the compute peak of the path: f32 pipes or tensor cores) and pct_bw (against the memory bandwidth). Rates are
// over the iterations' manual (CUDA event) time.
inline void report_gpu_rates(benchmark::State& state, double flops, double bytes, double peak_flops,
                             double peak_bytes) {
  using C = benchmark::Counter;
  state.counters["FLOP/s"] = C(flops, C::kIsIterationInvariantRate);
  state.counters["bytes/s"] = C(bytes, C::kIsIterationInvariantRate);
  if (peak_flops > 0) state.counters["pct_peak"] = C(100.0 * flops / peak_flops, C::kIsIterationInvariantRate);
  if (peak_bytes > 0) state.counters["pct_bw"] = C(100.0 * bytes / peak_bytes, C::kIsIterationInvariantRate);
}

// Runs op `warmup` times, then times each benchmark iteration with a pair of events on the device's stream.
template <typename Op>
void time_with_events(benchmark::State& state, int device, int warmup, Op&& op) {
  for (int i = 0; i < warmup; ++i) op();
  cuda::synchronize(device);
  cuda::Event start(device), stop(device);
  for (auto _ : state) {
    start.record();
    op();
    stop.record();
    stop.synchronize();
    state.SetIterationTime(double(stop.elapsed_ms(start)) * 1e-3);
  }
}

}  // namespace fg::bench
