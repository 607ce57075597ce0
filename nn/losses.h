// Losses built from the differentiable ops of autograd/ops.h, shared by the training code and by the perceptual
// loss (models/perceptual_loss.h). Each returns a single-element Variable; gradients reach both arguments unless
// one of them does not require them.
#pragma once
#include <cstdint>

#include "autograd/ops.h"

namespace fg::nn {

// The scale the style term of fastai/DeOldify's FeatureLoss applies to the L1 distance of two Gram matrices:
// 5e3 * w^2 for a layer of weight w.
inline constexpr double kGramStyleScale = 5e3;

// 1 - SSIM(x, y) with pytorch-ssim's definition (Gaussian window of `window_size`, sigma 1.5, zero padding,
// C1 = 0.01^2, C2 = 0.03^2, mean over the map; see fg::ssim). x, y: (N, C, H, W), any C (feature maps too).
// The dissertation uses window 5; pytorch-ssim's default is 11.
Variable ssim_loss(const Variable& x, const Variable& y, int64_t window_size = 11);

// The style term of one layer: l1(gram(feature_in), gram(feature_target)) * 5e3 * weight^2, with
// gram(x) = X X^T / (C H W) for X = x viewed (N, C, H*W). feature_in, feature_target: (N, C, H, W).
Variable gram_style_loss(const Variable& feature_in, const Variable& feature_target, double weight);

}  // namespace fg::nn
