// CPU reference for 2-D max and average pooling (kernels/pool.h). Inputs are viewed as P = N * C contiguous
// (H, W) planes. Forward outputs are written (=); backward kernels zero grad_input and then accumulate (+=)
// into it, since overlapping windows send several gradients to one input element.
#include "kernels/pool.h"
#include "kernels/device_check.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/loops.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/pool.h"
#endif

namespace fg::cpu {

// x: (P, H, W) contiguous.
// out: (P, OH, OW) written (=). indices: (P, OH, OW) written (=) with h * W + w of each window's maximum, or null.
template <typename T>
void max_pool2d_forward(const T* x, int64_t P, int64_t H, int64_t W, const kernels::Pool2dParams& p, int64_t OH,
                        int64_t OW, T* out, int64_t* indices) {
#pragma omp parallel for if (P * OH * OW * p.kernel_h * p.kernel_w > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < P; ++plane) {
    const T* xp = x + plane * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * p.stride_h - p.pad_h, 0);
      const int64_t h1 = std::min(oh * p.stride_h - p.pad_h + p.kernel_h, H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * p.stride_w - p.pad_w, 0);
        const int64_t w1 = std::min(ow * p.stride_w - p.pad_w + p.kernel_w, W);
        // Padding is -inf, so only the in-bounds part of the window is read. Strict '>' keeps the first
        // maximum; a NaN always replaces the running maximum, as in PyTorch's CPU kernel.
        int64_t best = h0 * W + w0;
        T best_value = -std::numeric_limits<T>::infinity();
        for (int64_t h = h0; h < h1; ++h) {
          for (int64_t w = w0; w < w1; ++w) {
            const T v = xp[h * W + w];
            if (v > best_value || std::isnan(v)) {
              best_value = v;
              best = h * W + w;
            }
          }
        }
        const int64_t o = (plane * OH + oh) * OW + ow;
        out[o] = best_value;
        if (indices) indices[o] = best;
      }
    }
  }
}

// grad_out, indices: (P, OH, OW) contiguous.
// grad_input: (P, H, W) zeroed, then each output's gradient accumulated (+=) at its argmax.
template <typename T>
void max_pool2d_backward(const T* grad_out, const int64_t* indices, int64_t P, int64_t H, int64_t W, int64_t OH,
                         int64_t OW, T* grad_input) {
#pragma omp parallel for if (P * H * W > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < P; ++plane) {
    T* gi = grad_input + plane * H * W;
    for (int64_t i = 0; i < H * W; ++i) gi[i] = T(0);
    const T* go = grad_out + plane * OH * OW;
    const int64_t* ind = indices + plane * OH * OW;
    for (int64_t o = 0; o < OH * OW; ++o) gi[ind[o]] += go[o];
  }
}

namespace {

// The window of output (oh, ow) clipped to the input, and the divisor PyTorch uses for it.
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  int64_t divisor;
};

AvgWindow avg_window(int64_t oh, int64_t ow, int64_t H, int64_t W, const kernels::Pool2dParams& p,
                     bool count_include_pad) {
  int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
  // The window is first clipped to the padded input: with ceil_mode = false this never cuts anything, but it is
  // the area PyTorch divides by when padding counts.
  int64_t h1 = std::min(h0 + p.kernel_h, H + p.pad_h), w1 = std::min(w0 + p.kernel_w, W + p.pad_w);
  const int64_t padded_area = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, H);
  w1 = std::min(w1, W);
  return {h0, h1, w0, w1, count_include_pad ? padded_area : (h1 - h0) * (w1 - w0)};
}

}  // namespace

// x: (P, H, W) contiguous. out: (P, OH, OW) written (=).
template <typename T>
void avg_pool2d_forward(const T* x, int64_t P, int64_t H, int64_t W, const kernels::Pool2dParams& p,
                        bool count_include_pad, int64_t OH, int64_t OW, T* out) {
#pragma omp parallel for if (P * OH * OW * p.kernel_h * p.kernel_w > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < P; ++plane) {
    const T* xp = x + plane * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        const AvgWindow win = avg_window(oh, ow, H, W, p, count_include_pad);
        double sum = 0.0;
        for (int64_t h = win.h0; h < win.h1; ++h) {
          for (int64_t w = win.w0; w < win.w1; ++w) sum += double(xp[h * W + w]);
        }
        out[(plane * OH + oh) * OW + ow] = T(sum / double(win.divisor));
      }
    }
  }
}

// grad_out: (P, OH, OW) contiguous.
// grad_input: (P, H, W) zeroed, then each output's gradient / divisor accumulated (+=) over its window.
template <typename T>
void avg_pool2d_backward(const T* grad_out, int64_t P, int64_t H, int64_t W, const kernels::Pool2dParams& p,
                         bool count_include_pad, int64_t OH, int64_t OW, T* grad_input) {
#pragma omp parallel for if (P * OH * OW * p.kernel_h * p.kernel_w > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < P; ++plane) {
    T* gi = grad_input + plane * H * W;
    for (int64_t i = 0; i < H * W; ++i) gi[i] = T(0);
    const T* go = grad_out + plane * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        const AvgWindow win = avg_window(oh, ow, H, W, p, count_include_pad);
        const T g = T(double(go[oh * OW + ow]) / double(win.divisor));
        for (int64_t h = win.h0; h < win.h1; ++h) {
          for (int64_t w = win.w0; w < win.w1; ++w) gi[h * W + w] += g;
        }
      }
    }
  }
}

}  // namespace fg::cpu

namespace fg::kernels {
namespace {

// Planes (N * C, or C for a 3-D input), H, W of a pooling input shape.
struct Planes {
  int64_t P, H, W;
};
Planes planes_of(const Shape& s) {
  const size_t d = s.size();
  int64_t P = 1;
  for (size_t i = 0; i + 2 < d; ++i) P *= s[i];
  return {P, s[d - 2], s[d - 1]};
}

Shape with_spatial(Shape s, int64_t h, int64_t w) {
  s[s.size() - 2] = h;
  s[s.size() - 1] = w;
  return s;
}

}  // namespace

Shape pool2d_output_shape(const Tensor& x, const Pool2dParams& p, const char* op) {
  FG_CHECK(x.defined(), op << ": the input is undefined");
  FG_CHECK(x.dim() == 3 || x.dim() == 4,
           op << ": expected x of shape (N, C, H, W) or (C, H, W), got " << shape_str(x.shape()));
  FG_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1,
           op << ": kernel size must be >= 1, got " << p.kernel_h << "x" << p.kernel_w);
  FG_CHECK(p.stride_h >= 1 && p.stride_w >= 1, op << ": stride must be >= 1, got " << p.stride_h << "x" << p.stride_w);
  FG_CHECK(p.pad_h >= 0 && p.pad_w >= 0 && p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2,
           op << ": padding must be between 0 and half the kernel size, got padding " << p.pad_h << "x" << p.pad_w
              << " for kernel " << p.kernel_h << "x" << p.kernel_w);
  const int64_t H = x.size(-2), W = x.size(-1);
  const int64_t OH = pool2d_output_size(H, p.kernel_h, p.stride_h, p.pad_h);
  const int64_t OW = pool2d_output_size(W, p.kernel_w, p.stride_w, p.pad_w);
  // (in + 2 pad - kernel) can be negative; C++ division truncates toward zero, so test it directly.
  FG_CHECK(H + 2 * p.pad_h >= p.kernel_h && W + 2 * p.pad_w >= p.kernel_w && OH >= 1 && OW >= 1,
           op << ": input " << shape_str(x.shape()) << " is too small for kernel " << p.kernel_h << "x" << p.kernel_w
              << " with padding " << p.pad_h << "x" << p.pad_w << "; use a larger input or a smaller kernel");
  return with_spatial(x.shape(), OH, OW);
}

Tensor max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor* indices) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::max_pool2d_forward(x, p, indices);
#endif
  const char* op = "max_pool2d";
  const Shape out_shape = pool2d_output_shape(x, p, op);
  require_cpu(x, op);
  const Planes in = planes_of(x.shape());
  const int64_t OH = out_shape[out_shape.size() - 2], OW = out_shape.back();
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype());
  if (indices) *indices = Tensor::empty(out_shape, DType::I64);
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::max_pool2d_forward<scalar_t>(xc.data<scalar_t>(), in.P, in.H, in.W, p, OH, OW, out.data<scalar_t>(),
                                      indices ? indices->data<int64_t>() : nullptr);
  });
  return out;
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda() || indices.device().is_cuda())
    return cuda::max_pool2d_backward(grad_out, indices, input_shape);
#endif
  const char* op = "max_pool2d backward";
  FG_CHECK(input_shape.size() == 3 || input_shape.size() == 4,
           op << ": expected an input shape (N, C, H, W) or (C, H, W), got " << shape_str(input_shape));
  FG_CHECK(grad_out.defined() && indices.defined() && grad_out.shape() == indices.shape() &&
               grad_out.dim() == int64_t(input_shape.size()),
           op << ": grad_out and indices must share a shape of the input's rank " << shape_str(input_shape));
  FG_CHECK(indices.dtype() == DType::I64, op << ": indices must be i64, got " << dtype_name(indices.dtype()));
  require_cpu(grad_out, op);
  require_cpu(indices, op);
  const Planes in = planes_of(input_shape);
  const Planes out = planes_of(grad_out.shape());
  FG_CHECK(in.P == out.P,
           op << ": grad_out " << shape_str(grad_out.shape()) << " does not match input " << shape_str(input_shape));
  const Tensor go = grad_out.contiguous(), ind = indices.contiguous();
  // The loop scatters into the input plane at each index: one that does not lie in the plane (indices from a forward
  // on another input size) would write outside the gradient. The CUDA kernel skips such an index; here it is an error.
  const int64_t* iv = ind.data<int64_t>();
  for (int64_t o = 0; o < ind.numel(); ++o)
    FG_CHECK(iv[o] >= 0 && iv[o] < in.H * in.W,
             op << ": index " << iv[o] << " at output element " << o << " lies outside the " << in.H << "x" << in.W
                << " input plane; pass the indices max_pool2d_forward made for an input of shape "
                << shape_str(input_shape));
  Tensor grad_input = Tensor::empty(input_shape, grad_out.dtype());
  FG_DISPATCH_FLOATING(grad_out.dtype(), op, [&] {
    cpu::max_pool2d_backward<scalar_t>(go.data<scalar_t>(), ind.data<int64_t>(), in.P, in.H, in.W, out.H, out.W,
                                       grad_input.data<scalar_t>());
  });
  return grad_input;
}

Tensor avg_pool2d_forward(const Tensor& x, const Pool2dParams& p, bool count_include_pad) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::avg_pool2d_forward(x, p, count_include_pad);
#endif
  const char* op = "avg_pool2d";
  const Shape out_shape = pool2d_output_shape(x, p, op);
  require_cpu(x, op);
  const Planes in = planes_of(x.shape());
  const int64_t OH = out_shape[out_shape.size() - 2], OW = out_shape.back();
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype());
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::avg_pool2d_forward<scalar_t>(xc.data<scalar_t>(), in.P, in.H, in.W, p, count_include_pad, OH, OW,
                                      out.data<scalar_t>());
  });
  return out;
}

Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape, const Pool2dParams& p,
                           bool count_include_pad) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda()) return cuda::avg_pool2d_backward(grad_out, input_shape, p, count_include_pad);
#endif
  const char* op = "avg_pool2d backward";
  FG_CHECK(input_shape.size() == 3 || input_shape.size() == 4,
           op << ": expected an input shape (N, C, H, W) or (C, H, W), got " << shape_str(input_shape));
  FG_CHECK(grad_out.defined(), op << ": grad_out is undefined");
  require_cpu(grad_out, op);
  const Planes in = planes_of(input_shape);
  const int64_t OH = pool2d_output_size(in.H, p.kernel_h, p.stride_h, p.pad_h);
  const int64_t OW = pool2d_output_size(in.W, p.kernel_w, p.stride_w, p.pad_w);
  FG_CHECK(grad_out.shape() == with_spatial(input_shape, OH, OW), op << ": grad_out " << shape_str(grad_out.shape())
                                                                     << " does not match the pooled shape of input "
                                                                     << shape_str(input_shape));
  const Tensor go = grad_out.contiguous();
  Tensor grad_input = Tensor::empty(input_shape, grad_out.dtype());
  FG_DISPATCH_FLOATING(grad_out.dtype(), op, [&] {
    cpu::avg_pool2d_backward<scalar_t>(go.data<scalar_t>(), in.P, in.H, in.W, p, count_include_pad, OH, OW,
                                       grad_input.data<scalar_t>());
  });
  return grad_input;
}

}  // namespace fg::kernels
