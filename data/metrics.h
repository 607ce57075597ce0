// Evaluation metrics: PSNR and SSIM of one image against its reference, as scikit-image 0.19 computes them
// (`skimage.metrics.peak_signal_noise_ratio` and `structural_similarity(..., gaussian_weights=True, sigma=1.5,
// use_sample_covariance=False, data_range=1, channel_axis=0)`). These are the numbers the evaluation reports
// (SPEC B, "Evaluation"; the papers' PSNR/SSIM tables), checked against skimage by tests/data/test_metrics.cpp on
// fixtures written by tools/make_metric_fixtures.py (agreement to about 1e-15).
//
// Images are (C, H, W) tensors, f32 or f64, any strides, values normally in [0, data_range] (not checked, so a
// prediction slightly outside the range is scored as it is; clamp first if that is what you want). Non-CPU tensors
// are copied to the CPU. All arithmetic runs in double and the results are doubles. NaN in an input gives NaN.
// Wrong rank, mismatched shapes or dtypes, an integer or half dtype, empty images, images smaller than the SSIM
// window and invalid options throw fg::Error.
//
// PSNR = 10 log10(data_range^2 / MSE), MSE the mean of (x - y)^2 over all C*H*W elements (psnr) or over one
// channel's H*W (psnr_per_channel). The whole-image PSNR is not the mean of the per-channel ones. Identical images
// (MSE 0) give +infinity, as skimage does (numpy divides by zero); callers that average PSNRs over a data set must
// decide what to do with them.
//
// SSIM, per channel, following skimage step by step:
//   r = int(truncate * sigma + 0.5) (5 for the defaults); g[k] = exp(-k^2 / (2 sigma^2)), k in [-r, r], normalised
//   to sum 1 (scipy.ndimage's 1-D Gaussian).
//   F(s) = s filtered by g along H, then along W (scipy.ndimage.gaussian_filter), borders extended in scipy's
//   mode 'reflect', the symmetric extension that repeats the edge sample (d c b a | a b c d | d c b a), repeated as
//   often as the radius needs (so a 7-pixel side with r = 5 is fine). F keeps the image size.
//   ux = F(x), uy = F(y), vx = F(x x) - ux^2, vy = F(y y) - uy^2, vxy = F(x y) - ux uy (population statistics);
//   C1 = (K1 R)^2, C2 = (K2 R)^2 with R = data_range, K1 = 0.01, K2 = 0.03;
//   S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2));
//   the channel's SSIM is the mean of S after dropping pad = (win_size - 1) / 2 pixels at every border, where
//   win_size = 2 r + 1 (11) unless SsimOptions::win_size sets it (skimage's win_size argument: it changes only
//   the crop and the minimum size, never the filter). H and W must both be >= win_size, as skimage requires.
// The whole-image SSIM is the mean of the per-channel values (skimage's channel_axis).
//
// How this differs from the training loss kernels/ssim.h (pytorch-ssim), which must not be used for reporting:
//   - borders: the loss zero-pads, which pulls the means down near the edges; this reflects the image;
//   - window: the loss takes a window size (11, or 5 for Model 3) centred on ws / 2; here the radius follows from
//     sigma and truncate, as in scipy;
//   - averaging: the loss averages the whole map, border included, over N*C planes; this crops the border strip
//     and averages one image's channels;
//   - constants: the loss fixes C1 = 0.01^2, C2 = 0.03^2 (data range 1); here they scale with data_range;
//   - the loss is differentiable (autograd, CPU and CUDA); this is a plain CPU function returning doubles.
// On the same interior-dominated image the two agree only roughly (they differ by the border treatment).
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace fg::data {

// Peak signal-to-noise ratio in dB over all elements of x and y ((C, H, W), same shape). +inf when x == y.
double psnr(const Tensor& x, const Tensor& y, double data_range = 1.0);
// One PSNR per channel (C values); +inf for a channel where x and y are identical.
std::vector<double> psnr_per_channel(const Tensor& x, const Tensor& y, double data_range = 1.0);

struct SsimOptions {
  double data_range = 1.0;  // R in C1 = (K1 R)^2, C2 = (K2 R)^2; must be > 0
  double sigma = 1.5;       // the Gaussian's standard deviation; > 0
  double truncate = 3.5;    // radius = int(truncate * sigma + 0.5); skimage fixes 3.5 for gaussian_weights
  int64_t win_size = 0;     // 0: 2 * radius + 1; otherwise odd and >= 1 (skimage's win_size)
  double k1 = 0.01;
  double k2 = 0.03;
};

// The Gaussian radius the options give (5 for the defaults) and the window size used for the crop (11).
int64_t ssim_radius(const SsimOptions& options);
int64_t ssim_win_size(const SsimOptions& options);

// Mean SSIM of (C, H, W) images: the mean of ssim_per_channel. 1 for identical images; symmetric in x and y.
double ssim(const Tensor& x, const Tensor& y, const SsimOptions& options = {});
// SSIM of each channel on its own (C values).
std::vector<double> ssim_per_channel(const Tensor& x, const Tensor& y, const SsimOptions& options = {});

}  // namespace fg::data
