// CUDA entry points for kernels/pad.h: replication and zero padding of the last two dims (negative amounts crop),
// forward and backward, with the CPU reference's shapes and checks. f32, f64, f16 and bf16.
#pragma once
#include "kernels/pad.h"

namespace fg::kernels::cuda {

Tensor replication_pad2d_forward(const Tensor& x, const Pad2dParams& p);
Tensor replication_pad2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pad2dParams& p);
Tensor zero_pad2d_forward(const Tensor& x, const Pad2dParams& p);
Tensor zero_pad2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pad2dParams& p);

}  // namespace fg::kernels::cuda
