// CUDA nearest-neighbour resampling (kernels/cuda/upsample.h). Inputs are P = N * C contiguous planes.
// The source index is kernels::nearest_source_index computed on the device with the same f32 operations (an IEEE
// division and one multiply, neither contracted nor approximated: nvcc's default -prec-div), so every index equals
// the CPU's; tests/gpu/test_cuda_spatial.cpp checks that on sizes where the f32 rounding picks the lower index.
// Forward: one thread per output (a gather). Backward: one thread per input element, summing the outputs that
// copied it in row-major order, as the CPU accumulates them (bitwise the CPU's in f32, no atomics). The outputs
// copying input index i are found by scanning the exact-arithmetic range widened by two on each side: the f32
// rounding moves a boundary by at most one output index for any size below 2^22.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/upsample.h"

namespace fg::kernels::cuda {

namespace {

// kernels::nearest_source_index, on the device.
__device__ inline int64_t nearest_source(int64_t dst, int64_t in_size, int64_t out_size) {
  if (out_size == in_size) return dst;
  if (out_size == 2 * in_size) return dst >> 1;
  const float scale = __fdiv_rn(float(in_size), float(out_size));
  const float src = __fmul_rn(float(dst), scale);
  return min(int64_t(floorf(src)), in_size - 1);
}

// The output indices in [lo, hi] that may copy input index i; the caller checks each with nearest_source.
__device__ inline void candidate_outputs(int64_t i, int64_t in_size, int64_t out_size, int64_t& lo, int64_t& hi) {
  lo = max((i * out_size + in_size - 1) / in_size - 2, int64_t(0));
  hi = min(((i + 1) * out_size + in_size - 1) / in_size + 1, out_size - 1);
}

// x: (P, H, W); out: (P, OH, OW).
template <typename T>
__global__ void upsample_forward_kernel(const T* x, T* out, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  FG_CUDA_KERNEL_LOOP(o, P * OH * OW) {
    const int64_t ow = o % OW, oh = (o / OW) % OH, plane = o / (OW * OH);
    out[o] = x[(plane * H + nearest_source(oh, H, OH)) * W + nearest_source(ow, W, OW)];
  }
}

// grad_out: (P, OH, OW); grad_in: (P, H, W).
template <typename T>
__global__ void upsample_backward_kernel(const T* grad_out, T* grad_in, int64_t P, int64_t H, int64_t W, int64_t OH,
                                         int64_t OW) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(i, P * H * W) {
    const int64_t w = i % W, h = (i / W) % H, plane = i / (W * H);
    int64_t oh0, oh1, ow0, ow1;
    candidate_outputs(h, H, OH, oh0, oh1);
    candidate_outputs(w, W, OW, ow0, ow1);
    A acc = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      if (nearest_source(oh, H, OH) != h) continue;
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        if (nearest_source(ow, W, OW) != w) continue;
        acc += load(grad_out + (plane * OH + oh) * OW + ow);
      }
    }
    store(grad_in + i, acc);
  }
}

void check_shapes(const Shape& in, int64_t out_h, int64_t out_w, const char* op) {
  FG_CHECK(in.size() == 4, op << ": expected x of shape (N, C, H, W), got " << shape_str(in));
  FG_CHECK(in[2] >= 1 && in[3] >= 1, op << ": the input " << shape_str(in) << " has an empty spatial size");
  FG_CHECK(out_h >= 1 && out_w >= 1, op << ": the output size must be at least 1x1, got " << out_h << "x" << out_w);
  FG_CHECK(std::max({in[2], in[3], out_h, out_w}) < (int64_t(1) << 22),
           op << ": sizes of 2^22 and more are not supported on CUDA (f32 index rounding)");
}

}  // namespace

Tensor upsample_nearest2d_forward(const Tensor& x_in, int64_t out_h, int64_t out_w) {
  const char* op = "upsample_nearest2d";
  check_cuda_input(x_in, op, "input");
  check_shapes(x_in.shape(), out_h, out_w, op);
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    upsample_forward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(x)>>>(
        x.data<T>(), out.data<T>(), x.size(0) * x.size(1), x.size(2), x.size(3), out_h, out_w);
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor upsample_nearest2d_backward(const Tensor& grad_out_in, const Shape& input_shape) {
  const char* op = "upsample_nearest2d backward";
  check_cuda_input(grad_out_in, op, "grad_out");
  FG_CHECK(grad_out_in.dim() == 4, op << ": expected grad_out of shape (N, C, OH, OW)");
  check_shapes(input_shape, grad_out_in.size(2), grad_out_in.size(3), op);
  FG_CHECK(grad_out_in.size(0) == input_shape[0] && grad_out_in.size(1) == input_shape[1],
           op << ": grad_out " << shape_str(grad_out_in.shape()) << " does not match input " << shape_str(input_shape));
  const Tensor go = grad_out_in.contiguous();
  Tensor grad_in = Tensor::empty(input_shape, go.dtype(), go.device());
  const int64_t n = grad_in.numel();
  if (n == 0) return grad_in;
  DeviceGuard guard(go.device().index);
  dispatch_float_types(go.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    upsample_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(go)>>>(
        go.data<T>(), grad_in.data<T>(), input_shape[0] * input_shape[1], input_shape[2], input_shape[3], go.size(2),
        go.size(3));
    CUDA_CHECK_LAUNCH();
  });
  return grad_in;
}

}  // namespace fg::kernels::cuda
