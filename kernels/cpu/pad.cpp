// CPU reference for 2-D replication and zero padding (kernels/pad.h). Inputs are viewed as P contiguous (H, W)
// planes (P = the product of the leading dims). Forward outputs are written (=). Replication backward zeroes
// grad_input and accumulates (+=) into it, since the border elements receive every copy's gradient; zero-pad
// backward writes (=).
#include "kernels/pad.h"
#include "kernels/device_check.h"

#include <algorithm>

#include "kernels/cpu/loops.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/pad.h"
#endif

namespace fg::cpu {

// x: (P, H, W) contiguous. out: (P, OH, OW) written (=), OH = H + top + bottom, OW = W + left + right.
template <typename T>
void replication_pad2d_forward(const T* x, int64_t P, int64_t H, int64_t W, const kernels::Pad2dParams& p, T* out) {
  const int64_t OH = H + p.top + p.bottom, OW = W + p.left + p.right;
#pragma omp parallel for if (P * OH * OW > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < P; ++plane) {
    const T* xp = x + plane * H * W;
    T* op = out + plane * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h = std::clamp<int64_t>(oh - p.top, 0, H - 1);
      for (int64_t ow = 0; ow < OW; ++ow) {
        op[oh * OW + ow] = xp[h * W + std::clamp<int64_t>(ow - p.left, 0, W - 1)];
      }
    }
  }
}

// grad_out: (P, OH, OW) contiguous. grad_input: (P, H, W) zeroed, then accumulated (+=).
template <typename T>
void replication_pad2d_backward(const T* grad_out, int64_t P, int64_t H, int64_t W, const kernels::Pad2dParams& p,
                                T* grad_input) {
  const int64_t OH = H + p.top + p.bottom, OW = W + p.left + p.right;
#pragma omp parallel for if (P * OH * OW > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < P; ++plane) {
    const T* go = grad_out + plane * OH * OW;
    T* gi = grad_input + plane * H * W;
    for (int64_t i = 0; i < H * W; ++i) gi[i] = T(0);
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h = std::clamp<int64_t>(oh - p.top, 0, H - 1);
      for (int64_t ow = 0; ow < OW; ++ow) {
        gi[h * W + std::clamp<int64_t>(ow - p.left, 0, W - 1)] += go[oh * OW + ow];
      }
    }
  }
}

// src: (P, SH, SW) contiguous; dst: (P, DH, DW) written (=). dst[i, j] = src[i - top, j - left] where that lies
// inside src, else 0. With (top, left) negated this is also the crop that undoes a padding.
template <typename T>
void shift_copy2d(const T* src, int64_t P, int64_t SH, int64_t SW, int64_t top, int64_t left, T* dst, int64_t DH,
                  int64_t DW) {
#pragma omp parallel for if (P * DH * DW > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < P; ++plane) {
    const T* sp = src + plane * SH * SW;
    T* dp = dst + plane * DH * DW;
    for (int64_t i = 0; i < DH; ++i) {
      const int64_t h = i - top;
      for (int64_t j = 0; j < DW; ++j) {
        const int64_t w = j - left;
        dp[i * DW + j] = (h >= 0 && h < SH && w >= 0 && w < SW) ? sp[h * SW + w] : T(0);
      }
    }
  }
}

// x: (P, H, W) contiguous. out: (P, H + top + bottom, W + left + right) written (=).
template <typename T>
void zero_pad2d_forward(const T* x, int64_t P, int64_t H, int64_t W, const kernels::Pad2dParams& p, T* out) {
  shift_copy2d(x, P, H, W, p.top, p.left, out, H + p.top + p.bottom, W + p.left + p.right);
}

// grad_out: (P, H + top + bottom, W + left + right) contiguous. grad_input: (P, H, W) written (=).
template <typename T>
void zero_pad2d_backward(const T* grad_out, int64_t P, int64_t H, int64_t W, const kernels::Pad2dParams& p,
                         T* grad_input) {
  shift_copy2d(grad_out, P, H + p.top + p.bottom, W + p.left + p.right, -p.top, -p.left, grad_input, H, W);
}

}  // namespace fg::cpu

namespace fg::kernels {
namespace {

struct Planes {
  int64_t P, H, W;
};
Planes planes_of(const Shape& s) {
  int64_t P = 1;
  for (size_t i = 0; i + 2 < s.size(); ++i) P *= s[i];
  return {P, s[s.size() - 2], s[s.size() - 1]};
}

Shape padded_shape(Shape s, const Pad2dParams& p) {
  s[s.size() - 2] += p.top + p.bottom;
  s[s.size() - 1] += p.left + p.right;
  return s;
}

// Checks the input shape and returns the padded shape.
Shape check_pad(const Shape& in, const Pad2dParams& p, bool replication, const char* op) {
  if (replication) {
    FG_CHECK(in.size() == 3 || in.size() == 4,
             op << ": expected x of shape (N, C, H, W) or (C, H, W), got " << shape_str(in));
    FG_CHECK(in[in.size() - 2] >= 1 && in[in.size() - 1] >= 1,
             op << ": cannot replicate the edges of an empty input " << shape_str(in));
  } else {
    FG_CHECK(in.size() >= 2, op << ": expected x with at least 2 dims (..., H, W), got " << shape_str(in));
  }
  const Shape out = padded_shape(in, p);
  const int64_t oh = out[out.size() - 2], ow = out.back();
  const int64_t min_size = replication ? 1 : 0;
  FG_CHECK(oh >= min_size && ow >= min_size, op << ": padding (left " << p.left << ", right " << p.right << ", top "
                                                << p.top << ", bottom " << p.bottom << ") of input " << shape_str(in)
                                                << " gives output size " << oh << "x" << ow
                                                << ", which is too small; crop less");
  return out;
}

}  // namespace

Tensor replication_pad2d_forward(const Tensor& x, const Pad2dParams& p) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::replication_pad2d_forward(x, p);
#endif
  const char* op = "replication_pad2d";
  FG_CHECK(x.defined(), op << ": the input is undefined");
  const Shape out_shape = check_pad(x.shape(), p, true, op);
  require_cpu(x, op);
  const Planes in = planes_of(x.shape());
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype());
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::replication_pad2d_forward<scalar_t>(xc.data<scalar_t>(), in.P, in.H, in.W, p, out.data<scalar_t>());
  });
  return out;
}

Tensor replication_pad2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pad2dParams& p) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda()) return cuda::replication_pad2d_backward(grad_out, input_shape, p);
#endif
  const char* op = "replication_pad2d backward";
  const Shape out_shape = check_pad(input_shape, p, true, op);
  FG_CHECK(grad_out.defined() && grad_out.shape() == out_shape,
           op << ": grad_out must have the padded shape " << shape_str(out_shape));
  require_cpu(grad_out, op);
  const Planes in = planes_of(input_shape);
  const Tensor go = grad_out.contiguous();
  Tensor grad_input = Tensor::empty(input_shape, grad_out.dtype());
  FG_DISPATCH_FLOATING(grad_out.dtype(), op, [&] {
    cpu::replication_pad2d_backward<scalar_t>(go.data<scalar_t>(), in.P, in.H, in.W, p, grad_input.data<scalar_t>());
  });
  return grad_input;
}

Tensor zero_pad2d_forward(const Tensor& x, const Pad2dParams& p) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::zero_pad2d_forward(x, p);
#endif
  const char* op = "zero_pad2d";
  FG_CHECK(x.defined(), op << ": the input is undefined");
  const Shape out_shape = check_pad(x.shape(), p, false, op);
  require_cpu(x, op);
  const Planes in = planes_of(x.shape());
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype());
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::zero_pad2d_forward<scalar_t>(xc.data<scalar_t>(), in.P, in.H, in.W, p, out.data<scalar_t>());
  });
  return out;
}

Tensor zero_pad2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pad2dParams& p) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda()) return cuda::zero_pad2d_backward(grad_out, input_shape, p);
#endif
  const char* op = "zero_pad2d backward";
  const Shape out_shape = check_pad(input_shape, p, false, op);
  FG_CHECK(grad_out.defined() && grad_out.shape() == out_shape,
           op << ": grad_out must have the padded shape " << shape_str(out_shape));
  require_cpu(grad_out, op);
  const Planes in = planes_of(input_shape);
  const Tensor go = grad_out.contiguous();
  Tensor grad_input = Tensor::empty(input_shape, grad_out.dtype());
  FG_DISPATCH_FLOATING(grad_out.dtype(), op, [&] {
    cpu::zero_pad2d_backward<scalar_t>(go.data<scalar_t>(), in.P, in.H, in.W, p, grad_input.data<scalar_t>());
  });
  return grad_input;
}

}  // namespace fg::kernels
