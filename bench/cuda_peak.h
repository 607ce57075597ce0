// The GPU's peak rates for the CUDA benchmarks' percent-of-peak counters, and GPU timing with CUDA events.
//
// Peaks are derived from the device, not looked up by name: SMs x per-SM rate x clock, with the clock from
// cudaDevAttrClockRate (the maximum boost clock) and the per-SM rates per compute capability below (dense, no
// sparsity). Memory bandwidth comes from fg::cuda::properties (memory clock x bus width, double data rate).
//   sm_90 (H100): 128 f32 FMA / clock / SM on the FP32 pipes; 2048 dense f16/bf16 tensor-core FMA / clock / SM.
//   sm_80 (A100): 64 f32 FMA; 1024 tensor FMA.    sm_86/89: 128 f32 FMA; 512 tensor FMA.
// For an H100 SXM (132 SMs, 1.98 GHz boost) that gives 66.9 TFLOP/s f32 and 1070 TFLOP/s bf16; NVIDIA's datasheet
// states 66.9 TFLOP/s f32, 989.4 TFLOP/s dense bf16 (quoted at the 1.83 GHz tensor clock) and 3.35 TB/s HBM3. The
// datasheet figures are recorded beside the derived ones in the JSON context, so either can be used afterwards.
// Only for builds with FG_WITH_CUDA.
#pragma once
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <string>

#include "tensor/cuda/context.h"

namespace fg::bench {

struct GpuPeaks {
  double f32_flops = 0;     // FP32 FMA pipes, flop/s
  double tensor_flops = 0;  // dense f16/bf16 tensor cores, flop/s
  double bytes = 0;         // memory bandwidth, bytes/s
  int sm_count = 0;
  double clock_hz = 0;
  std::string name;
};

inline GpuPeaks gpu_peaks(int device) {
  const cuda::DeviceProperties& p = cuda::properties(device);
  int clock_khz = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device) != cudaSuccess) clock_khz = 0;
  double f32_fma = 64, tensor_fma = 512;
  if (p.major == 9) {
    f32_fma = 128;
    tensor_fma = 2048;
  } else if (p.major == 8 && p.minor == 0) {
    f32_fma = 64;
    tensor_fma = 1024;
  } else if (p.major == 8) {
    f32_fma = 128;
    tensor_fma = 512;
  }
  GpuPeaks g;
  g.sm_count = p.sm_count;
  g.clock_hz = double(clock_khz) * 1e3;
  g.f32_flops = double(p.sm_count) * f32_fma * 2.0 * g.clock_hz;
  g.tensor_flops = double(p.sm_count) * tensor_fma * 2.0 * g.clock_hz;
  g.bytes = p.memory_bandwidth_gbs * 1e9;
  g.name = p.name;
  return g;
}

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
