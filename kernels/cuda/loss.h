// CUDA entry points for kernels/loss.h (same signatures and semantics: mean reduction, sums in double). The loss
// stays on the device as a shape () tensor of the input dtype, and the backward reads grad_out on the device, so
// neither waits for the GPU. f32, f64, f16 and bf16 (16-bit terms computed from their f32 values).
#pragma once
#include "kernels/loss.h"

namespace fg::kernels::cuda {

Tensor mse_loss(const Tensor& pred, const Tensor& target);
Tensor mse_loss_backward(const Tensor& grad_out, const Tensor& pred, const Tensor& target);
Tensor l1_loss(const Tensor& pred, const Tensor& target);
Tensor l1_loss_backward(const Tensor& grad_out, const Tensor& pred, const Tensor& target);
Tensor bce_with_logits(const Tensor& logits, const Tensor& target);
BceWithLogitsGrads bce_with_logits_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& target,
                                            bool need_logits, bool need_target);

}  // namespace fg::kernels::cuda
