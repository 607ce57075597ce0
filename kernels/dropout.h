// Dropout masks from the counter-based Philox stream, and their application: the Tensor-level entry points the
// autograd ops (dropout, dropout2d) call. The mask is defined element by element from the Generator's (seed,
// offset), so every backend draws the same mask:
//   element i of the mask (row-major) is kept when  double(philox_uniform01(word i)) < 1 - p
// which is exactly fg::bernoulli_(mask, gen, 1 - p) (tensor/philox.h); a kept element holds 1 / (1 - p) rounded to
// the mask's dtype, a dropped one 0. The output is x * mask, as PyTorch's dropout computes it, and the backward
// multiplies the gradient by the same mask. The CPU reference (f32, f64) is kernels/cpu/dropout.cpp.
#pragma once
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace fg::kernels {

// A mask of `shape` for drop probability p in [0, 1). Advances gen by ceil(numel / 4) blocks.
Tensor dropout_mask(const Shape& shape, double p, Generator& gen, DType dtype, Device device);

// y = x * mask, where mask covers x's leading mask.dim() dims: mask.shape == x.shape for dropout, (N, C) for
// dropout2d on x (N, C, ...). Each mask element scales the block of x.numel() / mask.numel() elements it indexes.
// x may be any strided view; mask must match x's dtype and device.
Tensor apply_dropout_mask(const Tensor& x, const Tensor& mask);

}  // namespace fg::kernels
