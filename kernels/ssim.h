// Tensor-level SSIM exactly as pytorch-ssim computes it, and its analytic backward. The CPU reference is
// kernels/cpu/ssim.cpp; CUDA tensors run the kernels of kernels/cuda/ssim.h.
//
// Definition (x, y: (N, C, H, W); ws = window_size, p = ws / 2 in integer division):
//   g[i] = exp(-(i - p)^2 / (2 sigma^2)) normalised to sum 1, i in [0, ws); the window is outer(g, g).
//   F(s) = the window correlated with each channel of s after zero padding p on every side, as
//          F.conv2d(s, window, padding=p, groups=C) does: the map is (OH, OW) = (H + 2p - ws + 1, W + 2p - ws + 1),
//          which is (H, W) for odd ws and (H + 1, W + 1) for even ws.
//   mu_x = F(x), mu_y = F(y), var_x = F(x^2) - mu_x^2, var_y = F(y^2) - mu_y^2, cov_xy = F(x y) - mu_x mu_y;
//   map = (2 mu_x mu_y + C1)(2 cov_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2)), C1 = 0.01^2,
//   C2 = 0.03^2; SSIM = the mean of the map over all N*C*OH*OW entries.
// Filtering and sums run in double for every input dtype.
//
// Variants (the results agree to rounding):
//   SEPARABLE  - filter rows then columns (2 ws taps per pixel instead of ws^2). Production uses it.
//   DIRECT_2D  - the ws x ws window applied directly, and its adjoint as a scatter; the tests compare against it.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace fg::kernels {

struct SsimParams {
  int64_t window_size = 11;
  double sigma = 1.5;
};

enum class SsimVariant { SEPARABLE, DIRECT_2D };

// The normalised 1-D Gaussian g above (ws >= 1, sigma > 0; throws fg::Error otherwise).
std::vector<double> ssim_gaussian_window(int64_t window_size, double sigma);
// The size of the SSIM map along a dimension of `size` pixels: size + 2 (ws / 2) - ws + 1.
int64_t ssim_map_size(int64_t size, int64_t window_size);

// What the backward needs from the forward, with the parameters it was made with: for odd windows every window
// size gives statistics of one shape ((OH, OW) = (H, W)), so only the parameters tell window 5's from window 11's.
struct SsimStats {
  Tensor moments;  // (5, N, C, OH, OW): mu_x, mu_y, var_x, var_y, cov_xy; the input dtype
  SsimParams params;
  bool defined() const { return moments.defined(); }
};

struct SsimResult {
  Tensor value;        // (): the mean of the map, the input dtype
  Tensor per_channel;  // (N, C): the mean of the map over each image channel, the input dtype
  SsimStats stats;     // defined only when asked for
};

// x, y: (N, C, H, W), same shape, dtype and device, any strides.
SsimResult ssim(const Tensor& x, const Tensor& y, const SsimParams& params = {}, bool keep_stats = false,
                SsimVariant variant = SsimVariant::SEPARABLE);

struct SsimGrads {
  Tensor x;  // (N, C, H, W), undefined unless asked for
  Tensor y;  // (N, C, H, W), undefined unless asked for
};

// grad_out: one element (any float dtype, on the CPU or x's device), the gradient of the loss with respect to SSIM
// itself (the mean): -1 for loss = 1 - SSIM, times the loss scale under mixed precision. The mean's 1 / (N C OH OW)
// is applied inside, in double, so grad_out stays the size of a loss gradient: a 16-bit grad_out holding the
// per-entry sum instead (N C OH OW is 393216 for a 2x3x256x256 batch) would overflow f16 (max 65504).
// stats: the forward's SsimResult::stats for the same x and y; fg::Error when its params or shape differ from
// these (check_ssim_stats).
SsimGrads ssim_backward(const Tensor& grad_out, const Tensor& x, const Tensor& y, const SsimStats& stats,
                        const SsimParams& params, bool need_x, bool need_y,
                        SsimVariant variant = SsimVariant::SEPARABLE);

// The backward's check of what it is given against what the forward made (CPU and CUDA): stats.params must equal
// params, and stats.moments must be (5, N, C, OH, OW) for x's shape and window, in x's dtype and on its device.
void check_ssim_stats(const SsimStats& stats, const Tensor& x, const SsimParams& params, const char* op);

}  // namespace fg::kernels
