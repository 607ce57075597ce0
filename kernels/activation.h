// Pointwise activations and their backward passes: the Tensor-level entry points the autograd ops call.
// Inputs may be any strided view (they are made contiguous); results are new contiguous tensors of the input's
// shape and dtype. The CPU reference (f32, f64) is kernels/cpu/activation.cpp; other devices throw until their
// kernels are built. The derivative conventions are PyTorch's:
//   relu:          dy/dx = (y > 0)               (0 at x == 0), taken from the saved output
//   leaky_relu:    dy/dx = x > 0 ? 1 : slope      (slope at x == 0), taken from the saved input
//   sigmoid:       dy/dx = y (1 - y)              from the saved output
//   tanh:          dy/dx = 1 - y^2                from the saved output
//   sigmoid_range: y = sigmoid(x) (hi - lo) + lo, dy/dx = (hi - lo) s (1 - s) with s = sigmoid(x) recomputed from
//                  the saved input (recovering s from y would lose precision when hi - lo is large)
#pragma once
#include "tensor/tensor.h"

namespace fg::kernels {

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

}  // namespace fg::kernels
