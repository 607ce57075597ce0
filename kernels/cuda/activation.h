// CUDA entry points for kernels/activation.h (same signatures, same derivative conventions; the Tensor-level
// functions there dispatch here for CUDA tensors). f32, f64, f16 and bf16 (16-bit computed in f32, rounded once).
// Inputs may be strided (made contiguous); results are new contiguous tensors on the input's device.
#pragma once
#include "kernels/activation.h"

namespace fg::kernels::cuda {

Tensor relu(const Tensor& x);
Tensor relu_backward(const Tensor& grad_out, const Tensor& out);
Tensor leaky_relu(const Tensor& x, double negative_slope);
Tensor leaky_relu_backward(const Tensor& grad_out, const Tensor& x, double negative_slope);
Tensor sigmoid(const Tensor& x);
Tensor sigmoid_backward(const Tensor& grad_out, const Tensor& out);
Tensor tanh(const Tensor& x);
Tensor tanh_backward(const Tensor& grad_out, const Tensor& out);
Tensor sigmoid_range(const Tensor& x, double lo, double hi);
Tensor sigmoid_range_backward(const Tensor& grad_out, const Tensor& x, double lo, double hi);

}  // namespace fg::kernels::cuda
