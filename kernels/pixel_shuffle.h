// Pixel shuffle and its inverse, PyTorch's PixelShuffle / PixelUnshuffle. Tensor-level entry points; the CPU
// reference is kernels/cpu/pixel_shuffle.cpp. x is (*, C, H, W) with any leading dims, any strides; results are
// new contiguous tensors. Both are permutations, so each one's backward is the other.
//   shuffle:   (*, C * r * r, H, W) -> (*, C, H * r, W * r),
//              out[c, h * r + i, w * r + j] = in[c * r * r + i * r + j, h, w]
//   unshuffle: (*, C, H * r, W * r) -> (*, C * r * r, H, W), the inverse
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fg::kernels {

Tensor pixel_shuffle(const Tensor& x, int64_t r);
Tensor pixel_unshuffle(const Tensor& x, int64_t r);

}  // namespace fg::kernels
