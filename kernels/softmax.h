// Softmax along one dimension and its backward: the Tensor-level entry points the autograd op calls.
// Any dim (negative counts from the end), any strided input (made contiguous); results are new contiguous tensors.
// The forward subtracts the maximum along `dim` before exponentiating, so large inputs (|x| ~ 100 and beyond in
// f32) neither overflow nor lose the answer; a slice that is all -inf gives NaN, as in PyTorch.
// The backward is PyTorch's: grad_in = y * (grad_out - sum_dim(grad_out * y)), from the saved output y.
// The CPU reference (f32, f64) is kernels/cpu/softmax.cpp; other devices throw until their kernels are built.
#pragma once
#include "tensor/tensor.h"

namespace fg::kernels {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim);

}  // namespace fg::kernels
