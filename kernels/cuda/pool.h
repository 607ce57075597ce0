// CUDA entry points for kernels/pool.h: 2-D max pooling (with PyTorch's argmax indices, i64) and average pooling,
// forward and backward, with the CPU reference's rules (padding is -inf for max, the first maximum wins, NaN wins;
// the two average divisors). f32, f64, f16 and bf16.
#pragma once
#include "kernels/pool.h"

namespace fg::kernels::cuda {

Tensor max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor* indices);
Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape);
Tensor avg_pool2d_forward(const Tensor& x, const Pool2dParams& p, bool count_include_pad);
Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pool2dParams& p,
                           bool count_include_pad);

}  // namespace fg::kernels::cuda
