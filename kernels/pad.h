// 2-D padding of the last two dims: replication (edge values repeated, PyTorch's ReplicationPad2d) and zeros
// (PyTorch's ZeroPad2d / F.pad with a constant 0). Tensor-level entry points; the CPU reference is
// kernels/cpu/pad.cpp. Amounts may be negative, which crops, as in PyTorch. Output (H + top + bottom,
// W + left + right). Replication takes (N, C, H, W) or (C, H, W) and needs every output dim >= 1; zero padding
// takes any rank >= 2 and allows an empty result. Inputs may be strided; results are new contiguous tensors.
//   replication: out[i, j] = x[clamp(i - top, 0, H - 1), clamp(j - left, 0, W - 1)]
//   zeros:       out[i, j] = x[i - top, j - left] inside the input, else 0
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fg::kernels {

struct Pad2dParams {
  int64_t left = 0, right = 0, top = 0, bottom = 0;
};

Tensor replication_pad2d_forward(const Tensor& x, const Pad2dParams& p);
// grad_out: the padded shape -> grad_input (input_shape): each output's gradient added to the element it copied.
Tensor replication_pad2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pad2dParams& p);

Tensor zero_pad2d_forward(const Tensor& x, const Pad2dParams& p);
// grad_out: the padded shape -> grad_input (input_shape): the crop of grad_out (zero where cropped away).
Tensor zero_pad2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pad2dParams& p);

}  // namespace fg::kernels
