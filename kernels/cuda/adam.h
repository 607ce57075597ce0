// The optimizers' fused updates on CUDA: one kernel per parameter tensor that performs the whole update of
// nn/optim.h (torch.optim's single-tensor rules, same operation order, scalars rounded to the parameter's dtype
// as the CPU loops in nn/optim.cpp round them). nn/optim.cpp calls these for parameters on CUDA; they know
// nothing of modules or parameter groups. Parameters, gradients and state are contiguous tensors of one dtype on
// one device: f32 (the master weights under mixed precision) or f64. Updated in place.
#pragma once
#include "tensor/tensor.h"

namespace fg::kernels::cuda {

struct AdamStep {
  double lr = 1e-3, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool decoupled = false;             // AdamW: p *= 1 - lr wd first, and no L2 term in the gradient
  double step_size = 1e-3;            // lr / (1 - beta1^t)
  double bias_correction2_sqrt = 1.0;  // sqrt(1 - beta2^t)
};
// Adam / AdamW: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= step_size m / (sqrt(v) / bc2_sqrt + eps),
// with g = grad + wd p for Adam (L2) and p *= 1 - lr wd before it for AdamW.
void adam_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamStep& step);

struct SgdStep {
  double lr = 0.01, weight_decay = 0.0, momentum = 0.0;
  bool first_step = false;  // the momentum buffer is set to the gradient rather than updated
};
// SGD: d = grad + wd p; with momentum_buffer: buf = d (first step) or momentum buf + d, d = buf; p -= lr d.
// momentum_buffer: null without momentum.
void sgd_update(Tensor& param, const Tensor& grad, Tensor* momentum_buffer, const SgdStep& step);

}  // namespace fg::kernels::cuda
