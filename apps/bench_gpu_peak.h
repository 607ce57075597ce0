// The GPU's peak rates, derived from the device rather than looked up by name: SMs x per-SM rate x clock, with the
// clock from cudaDevAttrClockRate (the maximum boost clock) and the per-SM rates per compute capability below (dense,
// no sparsity). Memory bandwidth comes from fg::cuda::properties (memory clock x bus width, double data rate).
//   sm_90 (H100): 128 f32 FMA / clock / SM on the FP32 pipes; 2048 dense f16/bf16 tensor-core FMA / clock / SM.
//   sm_80 (A100): 64 f32 FMA; 1024 tensor FMA.    sm_86/89: 128 f32 FMA; 512 tensor FMA.
// Shared by the CUDA benchmarks (bench/cuda_peak.h) and `filmgrad bench`, so it has no Google Benchmark dependency.
// Only for builds with FG_WITH_CUDA.
#pragma once
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

}  // namespace fg::bench
