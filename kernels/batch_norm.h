// Batch normalisation over dim 1 of x (N, C, *): per-channel statistics, the normalisation and its backward.
// Tensor-level entry points; the CPU reference is kernels/cpu/batch_norm.cpp. Every entry point takes any
// strided x (it is made contiguous inside) and returns new contiguous tensors. Statistics accumulate in double
// and use two passes (mean, then squared deviations), so an f32 input with a large mean loses nothing to
// cancellation. Semantics follow PyTorch's native_batch_norm on the CPU.
#pragma once
#include "tensor/tensor.h"

namespace fg::kernels {

// Per-channel statistics the normalisation uses and backward needs.
struct BatchNormStats {
  Tensor mean;    // (C), x's dtype
  Tensor invstd;  // (C), x's dtype: 1 / sqrt(var + eps)
};

// Training statistics of x (N, C, *): the batch mean and 1 / sqrt(biased variance + eps) per channel. Throws
// fg::Error when a channel has a single value (PyTorch: "Expected more than 1 value per channel when
// training"). Each of running_mean / running_var that is defined ((C), x's dtype, any stride) is updated in
// place: r = (1 - momentum) r + momentum s, with the unbiased variance (n / (n - 1)) for running_var.
BatchNormStats batch_norm_batch_stats(const Tensor& x, double eps, const Tensor& running_mean,
                                      const Tensor& running_var, double momentum);

// Evaluation statistics: mean = running_mean, invstd = 1 / sqrt(running_var + eps). Both (C), copied.
BatchNormStats batch_norm_running_stats(const Tensor& running_mean, const Tensor& running_var, double eps);

// y = (x - mean) * invstd * weight + bias, with weight and bias (C) or undefined (taken as 1 and 0).
Tensor batch_norm_forward(const Tensor& x, const BatchNormStats& stats, const Tensor& weight, const Tensor& bias);

struct BatchNormGrads {
  Tensor input;   // like x; undefined unless asked for
  Tensor weight;  // (C); undefined unless asked for
  Tensor bias;    // (C); undefined unless asked for
};

// Gradients of batch_norm_forward. `training` says the statistics were computed from x itself, so the input
// gradient also flows through the mean and variance; otherwise they were constants (eval mode).
BatchNormGrads batch_norm_backward(const Tensor& grad_out, const Tensor& x, const BatchNormStats& stats,
                                   const Tensor& weight, bool training, bool need_input, bool need_weight,
                                   bool need_bias);

}  // namespace fg::kernels
