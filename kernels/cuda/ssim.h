// Hand-written CUDA SSIM with the semantics of kernels/ssim.h (pytorch-ssim: Gaussian window of any size, even ones
// included, zero padding ws / 2, C1 = 0.01^2, C2 = 0.03^2) and its analytic backward; the CPU reference is
// kernels/cpu/ssim.cpp. kernels/ssim.h's entry points call these for CUDA tensors. Only with FG_WITH_CUDA.
//
// Versions (tests compare each with the CPU reference; bench/bench_cuda_ssim.cpp times each):
//   SSIM_DEFAULT:    production: SSIM_FUSED where it applies (f32/f16/bf16, window_size <= 31), else SSIM_FIVE_CONVS.
//   SSIM_FUSED:      one kernel per direction. Forward: a block stages a 32x32 output tile's input region (zero
//                    padded) in shared memory, filters it along columns then rows (the separable Gaussian, 2 ws taps
//                    per moment instead of ws^2) for all five moments (x, y, x^2, y^2, xy) in the same pass, and
//                    writes the statistics and the tile's map sum. Backward: a block turns the statistics of its
//                    map region into the four derivative maps in shared memory, applies the adjoint filter
//                    (flipped taps) along columns then rows, and combines them with x and y into both gradients.
//                    Moments and derivatives in f32 (as pytorch-ssim's f32 convolutions); f32, f16, bf16.
//   SSIM_FIVE_CONVS: the unfused baseline, what pytorch-ssim does: the products x^2, y^2, xy into buffers, five
//                    depthwise convolutions with the ws x ws window (one thread per output, ws^2 taps), the map
//                    kernel, a mean; the backward as four adjoint depthwise convolutions. Intermediates in f32
//                    (f64 for f64); every float dtype, window_size <= 63.
// Sums of the map run in double in a fixed order (per tile or per plane, then per plane, then over planes), so a
// result repeats bit for bit on one GPU.
#pragma once
#include "kernels/ssim.h"
#include "tensor/tensor.h"

namespace fg::kernels::cuda {

enum class SsimKernel { SSIM_DEFAULT, SSIM_FUSED, SSIM_FIVE_CONVS };
const char* ssim_kernel_name(SsimKernel k);  // "default", "fused", "five_convs"
// Whether `k` runs for this dtype and window (SSIM_DEFAULT always does, up to window_size 63).
bool ssim_kernel_supports(SsimKernel k, DType dtype, int64_t window_size);

// x, y: (N, C, H, W), same shape, dtype and CUDA device, any strides. As kernels::ssim.
SsimResult ssim(const Tensor& x, const Tensor& y, const SsimParams& params = {}, bool keep_stats = false,
                SsimKernel kernel = SsimKernel::SSIM_DEFAULT);
// The same, writing into out.value (shape (), contiguous), out.per_channel ((N, C), contiguous) and, when defined,
// out.stats.moments ((5, N, C, OH, OW), contiguous): x's dtype and device; out.stats.params is set to params.
// Tests surround them with sentinels.
void ssim_into(SsimResult& out, const Tensor& x, const Tensor& y, const SsimParams& params = {},
               SsimKernel kernel = SsimKernel::SSIM_DEFAULT);

// grad_out: one element (any device and float dtype), dL/dSSIM; the mean's 1 / (N C OH OW) is applied inside, in
// double. stats: the forward's statistics for the same x, y, params (checked as kernels::check_ssim_stats does).
// As kernels::ssim_backward.
SsimGrads ssim_backward(const Tensor& grad_out, const Tensor& x, const Tensor& y, const SsimStats& stats,
                        const SsimParams& params, bool need_x, bool need_y,
                        SsimKernel kernel = SsimKernel::SSIM_DEFAULT);
// The same, writing each defined member of `out` ((N, C, H, W) contiguous, x's dtype and device).
void ssim_backward_into(SsimGrads& out, const Tensor& grad_out, const Tensor& x, const Tensor& y,
                        const SsimStats& stats, const SsimParams& params, SsimKernel kernel = SsimKernel::SSIM_DEFAULT);

}  // namespace fg::kernels::cuda
