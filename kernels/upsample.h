// Nearest-neighbour resampling of (N, C, H, W) to any (OH, OW): PyTorch's F.interpolate(mode='nearest', size=...).
// Tensor-level entry points; the CPU reference is kernels/cpu/upsample.cpp. Inputs may be strided; results are
// new contiguous tensors.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tensor/tensor.h"

namespace fg::kernels {

// The input index that output index `dst` copies: floor(dst * in / out), computed as PyTorch does, with the scale
// in f32 (in / out rounded to float, then dst * scale rounded to float), and the 1x and 2x sizes exact. The f32
// rounding occasionally picks the index below the exact one (in 2, out 82, dst 41 gives 0, not 1); golden files
// from PyTorch need that, so it is kept.
inline int64_t nearest_source_index(int64_t dst, int64_t in_size, int64_t out_size) {
  if (out_size == in_size) return dst;
  if (out_size == 2 * in_size) return dst >> 1;
  const float scale = float(in_size) / float(out_size);
  const float src = float(dst) * scale;
  return std::min(int64_t(std::floor(src)), in_size - 1);
}

// x: (N, C, H, W) -> (N, C, out_h, out_w).
Tensor upsample_nearest2d_forward(const Tensor& x, int64_t out_h, int64_t out_w);
// grad_out: (N, C, OH, OW) -> grad_input (input_shape): each output's gradient added to the input it copied.
Tensor upsample_nearest2d_backward(const Tensor& grad_out, const Shape& input_shape);

}  // namespace fg::kernels
