// Tensor-level pixel losses: mean squared error, mean absolute error and binary cross-entropy with logits, each
// reduced by the mean over all elements (PyTorch's reduction='mean'). The CPU reference is kernels/cpu/loss.cpp;
// other devices throw until their kernels exist. Inputs may be any strided view; the two inputs must have the
// same shape, dtype and device (no broadcasting: a shape mismatch in a loss is almost always a bug).
// Losses are returned as shape () tensors of the input dtype; sums are accumulated in double and in a fixed order,
// so the same inputs give the same bits whatever the thread count.
#pragma once
#include "tensor/tensor.h"

namespace fg::kernels {

// pred, target: same shape -> () = mean((pred - target)^2).
Tensor mse_loss(const Tensor& pred, const Tensor& target);
// grad_out: one element -> d/dpred = 2 (pred - target) grad_out / n, shape of pred. d/dtarget is its negation.
Tensor mse_loss_backward(const Tensor& grad_out, const Tensor& pred, const Tensor& target);

// pred, target: same shape -> () = mean(|pred - target|).
Tensor l1_loss(const Tensor& pred, const Tensor& target);
// grad_out: one element -> d/dpred = sign(pred - target) grad_out / n with sign(0) = 0. d/dtarget is its negation.
Tensor l1_loss_backward(const Tensor& grad_out, const Tensor& pred, const Tensor& target);

// logits, target: same shape -> () = mean(max(x, 0) - x t + log1p(exp(-|x|))).
Tensor bce_with_logits(const Tensor& logits, const Tensor& target);
struct BceWithLogitsGrads {
  Tensor logits;  // (sigmoid(x) - t) grad_out / n; undefined unless asked for
  Tensor target;  // -x grad_out / n; undefined unless asked for
};
BceWithLogitsGrads bce_with_logits_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& target,
                                            bool need_logits, bool need_target);

}  // namespace fg::kernels
