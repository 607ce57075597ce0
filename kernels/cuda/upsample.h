// CUDA entry points for kernels/upsample.h: nearest-neighbour resampling with PyTorch's f32 source-index rounding
// (kernels::nearest_source_index), forward and backward. f32, f64, f16 and bf16.
#pragma once
#include "kernels/upsample.h"

namespace fg::kernels::cuda {

Tensor upsample_nearest2d_forward(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor upsample_nearest2d_backward(const Tensor& grad_out, const Shape& input_shape);

}  // namespace fg::kernels::cuda
