// 2-D max and average pooling (PyTorch's max_pool2d / avg_pool2d with ceil_mode = false, dilation 1).
// Tensor-level entry points; the CPU reference is kernels/cpu/pool.cpp. x is (N, C, H, W) or (C, H, W), any
// strides (made contiguous inside); results are new contiguous tensors.
//   out size = floor((in + 2 pad - kernel) / stride) + 1, which must be >= 1;
//   kernel >= 1, stride >= 1, 0 <= pad <= kernel / 2 (PyTorch's rule: every window then overlaps the input).
// Max pool: padding acts as -inf; within a window the first maximum in row-major order wins and a NaN wins
// over any number (PyTorch CPU), and the gradient goes to that element only.
// Avg pool: count_include_pad divides by the window's area clipped to the padded input; otherwise by the number
// of real input elements it covers.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fg::kernels {

struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // on each side
  static Pool2dParams square(int64_t kernel, int64_t stride, int64_t pad) {
    return {kernel, kernel, stride, stride, pad, pad};
  }
};

// floor((in + 2 pad - kernel) / stride) + 1; parameters assumed checked.
inline int64_t pool2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  return (in + 2 * pad - kernel) / stride + 1;
}

// Checks x and p as PyTorch does (throws fg::Error naming `op`) and returns the output shape.
Shape pool2d_output_shape(const Tensor& x, const Pool2dParams& p, const char* op);

// x: (N, C, H, W) -> (N, C, OH, OW). indices (N, C, OH, OW) i64 receives, per output, the argmax as h * W + w
// within its (H, W) plane (PyTorch's convention); pass null when no backward will follow.
Tensor max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor* indices);
// grad_out, indices: (N, C, OH, OW) -> grad_input (input_shape): each gradient added at its argmax. An index outside
// the (H, W) plane (indices of a forward on another input size) is an fg::Error on the CPU; the CUDA kernel skips it
// (checking there would make every backward wait for the device), so it never writes outside the gradient either.
Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape);

// x: (N, C, H, W) -> (N, C, OH, OW).
Tensor avg_pool2d_forward(const Tensor& x, const Pool2dParams& p, bool count_include_pad);
// grad_out: (N, C, OH, OW) -> grad_input (input_shape).
Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pool2dParams& p,
                           bool count_include_pad);

}  // namespace fg::kernels
