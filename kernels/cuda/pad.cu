// CUDA 2-D padding (kernels/cuda/pad.h). Inputs are P contiguous (H, W) planes, as in the CPU reference
// (kernels/cpu/pad.cpp). One thread per output element in every kernel; all outputs are written (=).
// The replication backward is a gather: each input element sums the output gradients that copied it, over the
// range of output rows and columns that clamp onto it, in the row-major order in which the CPU accumulates them,
// so f32 results are bitwise the CPU's and no atomics are needed.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pad.h"

namespace fg::kernels::cuda {

namespace {

// x: (P, H, W), out: (P, OH, OW). out[i, j] = x[clamp(i - top), clamp(j - left)].
template <typename T>
__global__ void replication_pad_forward_kernel(const T* x, T* out, int64_t P, int64_t H, int64_t W, int64_t OH,
                                               int64_t OW, int64_t top, int64_t left) {
  FG_CUDA_KERNEL_LOOP(o, P * OH * OW) {
    const int64_t ow = o % OW, oh = (o / OW) % OH, plane = o / (OW * OH);
    const int64_t h = min(max(oh - top, int64_t(0)), H - 1);
    const int64_t w = min(max(ow - left, int64_t(0)), W - 1);
    out[o] = x[(plane * H + h) * W + w];
  }
}

// The output indices in [0, out_size) that clamp(o - before, 0, in_size - 1) maps onto index i: [lo, hi].
__device__ inline void clamp_preimage(int64_t i, int64_t in_size, int64_t out_size, int64_t before, int64_t& lo,
                                      int64_t& hi) {
  lo = i == 0 ? 0 : i + before;
  hi = i == in_size - 1 ? out_size - 1 : i + before;
  lo = max(lo, int64_t(0));
  hi = min(hi, out_size - 1);
}

// grad_out: (P, OH, OW), grad_in: (P, H, W).
template <typename T>
__global__ void replication_pad_backward_kernel(const T* grad_out, T* grad_in, int64_t P, int64_t H, int64_t W,
                                                int64_t OH, int64_t OW, int64_t top, int64_t left) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(i, P * H * W) {
    const int64_t w = i % W, h = (i / W) % H, plane = i / (W * H);
    int64_t oh0, oh1, ow0, ow1;
    clamp_preimage(h, H, OH, top, oh0, oh1);
    clamp_preimage(w, W, OW, left, ow0, ow1);
    A acc = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) acc += load(grad_out + (plane * OH + oh) * OW + ow);
    store(grad_in + i, acc);
  }
}

// src: (P, SH, SW), dst: (P, DH, DW). dst[i, j] = src[i - top, j - left] inside src, else 0: the zero padding,
// and with (top, left) negated the crop that is its backward.
template <typename T>
__global__ void shift_copy_kernel(const T* src, T* dst, int64_t P, int64_t SH, int64_t SW, int64_t DH, int64_t DW,
                                  int64_t top, int64_t left) {
  FG_CUDA_KERNEL_LOOP(o, P * DH * DW) {
    const int64_t j = o % DW, i = (o / DW) % DH, plane = o / (DW * DH);
    const int64_t h = i - top, w = j - left;
    dst[o] = (h >= 0 && h < SH && w >= 0 && w < SW) ? src[(plane * SH + h) * SW + w] : T{};
  }
}

struct Planes {
  int64_t P, H, W;
};
Planes planes_of(const Shape& s) {
  int64_t P = 1;
  for (size_t i = 0; i + 2 < s.size(); ++i) P *= s[i];
  return {P, s[s.size() - 2], s[s.size() - 1]};
}

// The CPU reference's checks (kernels/cpu/pad.cpp); returns the padded shape.
Shape check_pad(const Shape& in, const Pad2dParams& p, bool replication, const char* op) {
  if (replication) {
    FG_CHECK(in.size() == 3 || in.size() == 4,
             op << ": expected x of shape (N, C, H, W) or (C, H, W), got " << shape_str(in));
    FG_CHECK(in[in.size() - 2] >= 1 && in[in.size() - 1] >= 1,
             op << ": cannot replicate the edges of an empty input " << shape_str(in));
  } else {
    FG_CHECK(in.size() >= 2, op << ": expected x with at least 2 dims (..., H, W), got " << shape_str(in));
  }
  Shape out = in;
  out[out.size() - 2] += p.top + p.bottom;
  out[out.size() - 1] += p.left + p.right;
  const int64_t oh = out[out.size() - 2], ow = out.back();
  const int64_t min_size = replication ? 1 : 0;
  FG_CHECK(oh >= min_size && ow >= min_size, op << ": padding (left " << p.left << ", right " << p.right << ", top "
                                                << p.top << ", bottom " << p.bottom << ") of input " << shape_str(in)
                                                << " gives output size " << oh << "x" << ow
                                                << ", which is too small; crop less");
  return out;
}

// Launches shift_copy_kernel from src (P, SH, SW) into a new dst (P, DH, DW) of dst_shape.
Tensor shift_copy(const Tensor& src_in, const Shape& dst_shape, int64_t top, int64_t left, const char* op) {
  const Tensor src = src_in.contiguous();
  Tensor dst = Tensor::empty(dst_shape, src.dtype(), src.device());
  const Planes s = planes_of(src.shape()), d = planes_of(dst_shape);
  const int64_t n = dst.numel();
  if (n == 0) return dst;
  DeviceGuard guard(src.device().index);
  dispatch_float_types(src.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    shift_copy_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(src)>>>(src.data<T>(), dst.data<T>(), s.P,
                                                                                s.H, s.W, d.H, d.W, top, left);
    CUDA_CHECK_LAUNCH();
  });
  return dst;
}

}  // namespace

Tensor replication_pad2d_forward(const Tensor& x_in, const Pad2dParams& p) {
  const char* op = "replication_pad2d";
  check_cuda_input(x_in, op, "input");
  const Shape out_shape = check_pad(x_in.shape(), p, true, op);
  const Tensor x = x_in.contiguous();
  const Planes in = planes_of(x.shape()), out_planes = planes_of(out_shape);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    replication_pad_forward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(x)>>>(
        x.data<T>(), out.data<T>(), in.P, in.H, in.W, out_planes.H, out_planes.W, p.top, p.left);
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor replication_pad2d_backward(const Tensor& grad_out_in, const Shape& input_shape, const Pad2dParams& p) {
  const char* op = "replication_pad2d backward";
  check_cuda_input(grad_out_in, op, "grad_out");
  const Shape out_shape = check_pad(input_shape, p, true, op);
  FG_CHECK(grad_out_in.shape() == out_shape, op << ": grad_out must have the padded shape " << shape_str(out_shape));
  const Tensor go = grad_out_in.contiguous();
  const Planes in = planes_of(input_shape), out_planes = planes_of(out_shape);
  Tensor grad_in = Tensor::empty(input_shape, go.dtype(), go.device());
  const int64_t n = grad_in.numel();
  if (n == 0) return grad_in;
  DeviceGuard guard(go.device().index);
  dispatch_float_types(go.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    replication_pad_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(go)>>>(
        go.data<T>(), grad_in.data<T>(), in.P, in.H, in.W, out_planes.H, out_planes.W, p.top, p.left);
    CUDA_CHECK_LAUNCH();
  });
  return grad_in;
}

Tensor zero_pad2d_forward(const Tensor& x, const Pad2dParams& p) {
  const char* op = "zero_pad2d";
  check_cuda_input(x, op, "input");
  const Shape out_shape = check_pad(x.shape(), p, false, op);
  return shift_copy(x, out_shape, p.top, p.left, op);
}

Tensor zero_pad2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pad2dParams& p) {
  const char* op = "zero_pad2d backward";
  check_cuda_input(grad_out, op, "grad_out");
  const Shape out_shape = check_pad(input_shape, p, false, op);
  FG_CHECK(grad_out.shape() == out_shape, op << ": grad_out must have the padded shape " << shape_str(out_shape));
  return shift_copy(grad_out, input_shape, -p.top, -p.left, op);
}

}  // namespace fg::kernels::cuda
