// CUDA entry points for kernels/softmax.h (same signatures and semantics: maximum subtracted first, an all -inf
// slice gives NaN, PyTorch's backward). f32, f64, f16 and bf16, computed in f32 (f64 for f64).
#pragma once
#include "kernels/softmax.h"

namespace fg::kernels::cuda {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim);

}  // namespace fg::kernels::cuda
