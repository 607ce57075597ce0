// CUDA entry points for kernels/pixel_shuffle.h: PixelShuffle and PixelUnshuffle (each the other's backward), any
// leading dims, any strides. f32, f64, f16 and bf16 (pure permutations: values are copied, never rounded).
#pragma once
#include "kernels/pixel_shuffle.h"

namespace fg::kernels::cuda {

Tensor pixel_shuffle(const Tensor& x, int64_t r);
Tensor pixel_unshuffle(const Tensor& x, int64_t r);

}  // namespace fg::kernels::cuda
