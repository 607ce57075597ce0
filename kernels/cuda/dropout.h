// CUDA entry points for kernels/dropout.h: the same Philox mask bit for bit (element i kept when
// double(philox_uniform01(word i)) < 1 - p; a kept element holds 1 / (1 - p) rounded to the dtype), and its
// application. f32, f64, f16 and bf16.
#pragma once
#include "kernels/dropout.h"

namespace fg::kernels::cuda {

Tensor dropout_mask(const Shape& shape, double p, Generator& gen, DType dtype, Device device);
Tensor apply_dropout_mask(const Tensor& x, const Tensor& mask);

}  // namespace fg::kernels::cuda
