// The cuDNN twin of the CUDA batch normalisation (kernels/cuda/batch_norm.h), selectable at run time
// (kernels/backend.h, OpFamily::BATCH_NORM) so that one training run can be timed on either. Same semantics as
// kernels/batch_norm.h: x (N, C, *) any strided view on one CUDA device (made contiguous), f32/f64/f16/bf16,
// statistics and gradients in x's dtype, outputs written (=).
//
// How cuDNN is driven: the legacy batch-norm API in CUDNN_BATCHNORM_SPATIAL mode, x described as (N, C, L, 1), one
// handle per device bound to fg::cuda::stream(device). For f16/bf16 inputs cuDNN keeps its per-channel tensors in
// f32, so 16-bit weights, biases, statistics and running buffers are widened into f32 copies and the results are
// rounded back into x's dtype (the hand-written kernels round at the same points).
//   batch_norm_forward_training_into: cudnnBatchNormalizationForwardTraining - y, the batch statistics and the
//       running-statistics update in one call (what a training step uses; the benchmark times this).
//   batch_norm_forward_into: cudnnBatchNormalizationForwardInference with the given statistics. filmgrad's
//       statistics carry invstd, not the variance, so cuDNN is handed variance = 1 / invstd^2 (formed in double)
//       and epsilon = 0 (CUDNN_BN_MIN_EPSILON is 0 since cuDNN 7.5): it recomputes 1 / sqrt(var) = invstd to within
//       one rounding.
//   batch_norm_backward_into: cudnnBatchNormalizationBackward with the saved mean and invstd (training mode).
// Not twinned, the hand-written kernel serving both selections: the training statistics on their own (cuDNN has no
// statistics-only call; kernels/batch_norm.h's batch_norm_batch_stats) and the eval-mode backward (cuDNN's backward
// is the training formula only).
//
// cuDNN is optional: without FG_WITH_CUDNN these functions exist but throw an fg::Error that says how to get the
// hand-written kernels back. Only in builds with FG_WITH_CUDA.
#pragma once
#include "kernels/batch_norm.h"
#include "tensor/tensor.h"

namespace fg::vendor {

// y (like x, contiguous) and stats.mean / stats.invstd ((C) contiguous, x's dtype) are written; running_mean and
// running_var (each (C) x's dtype any stride, or undefined) are updated with `momentum` and the unbiased variance.
void batch_norm_forward_training_into(Tensor& y, kernels::BatchNormStats& stats, const Tensor& x, const Tensor& weight,
                                      const Tensor& bias, double eps, const Tensor& running_mean,
                                      const Tensor& running_var, double momentum);

// y = (x - mean) * invstd * weight + bias for given statistics (weight, bias (C) or undefined).
Tensor batch_norm_forward(const Tensor& x, const kernels::BatchNormStats& stats, const Tensor& weight,
                          const Tensor& bias);
void batch_norm_forward_into(Tensor& y, const Tensor& x, const kernels::BatchNormStats& stats, const Tensor& weight,
                             const Tensor& bias);

// The training-mode gradients (stats: the batch statistics of x). Each defined member of `out` (input like x,
// weight and bias (C); contiguous, x's dtype) is written; cuDNN computes all three, the others go to scratch.
kernels::BatchNormGrads batch_norm_backward(const Tensor& grad_out, const Tensor& x,
                                            const kernels::BatchNormStats& stats, const Tensor& weight, bool need_input,
                                            bool need_weight, bool need_bias);
void batch_norm_backward_into(kernels::BatchNormGrads& out, const Tensor& grad_out, const Tensor& x,
                              const kernels::BatchNormStats& stats, const Tensor& weight);

}  // namespace fg::vendor
