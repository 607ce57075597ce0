// CUDA 2-D pooling (kernels/cuda/pool.h). Inputs are P = N * C contiguous (H, W) planes, as in the CPU reference
// (kernels/cpu/pool.cpp). Forward: one thread per output, the window read in row-major order with the CPU's
// comparisons (max) or its double sum and divisor (average), so forward results are bitwise the CPU's.
// Backward, average: a gather, one thread per input element summing the windows that contain it in the CPU's
// order (bitwise the CPU's in f32). Backward, max: the indices do not say which windows could have chosen an
// element (the pooling geometry is not an argument), so each output gradient is added at its argmax with
// atomicAdd into an f32 (f64 for f64) buffer, then rounded to the dtype. Where windows overlap (kernel > stride)
// the order of those additions varies from run to run: results agree with the CPU to rounding, not bitwise.
// Indices outside the plane are skipped rather than written out of bounds.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pool.h"

namespace fg::kernels::cuda {

namespace {

struct PoolGeometry {
  int64_t P, H, W, OH, OW;
  int64_t kh, kw, sh, sw, ph, pw;
};

PoolGeometry geometry_of(const Shape& in, const Shape& out, const Pool2dParams& p) {
  int64_t P = 1;
  for (size_t i = 0; i + 2 < in.size(); ++i) P *= in[i];
  return {P,         in[in.size() - 2], in.back(),  out[out.size() - 2], out.back(), p.kernel_h,
          p.kernel_w, p.stride_h,        p.stride_w, p.pad_h,             p.pad_w};
}

// x: (P, H, W); out, indices: (P, OH, OW). indices may be null.
template <typename T>
__global__ void max_pool_forward_kernel(const T* x, T* out, int64_t* indices, PoolGeometry g) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(o, g.P * g.OH * g.OW) {
    const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH, plane = o / (g.OW * g.OH);
    const T* xp = x + plane * g.H * g.W;
    const int64_t h0 = max(oh * g.sh - g.ph, int64_t(0)), h1 = min(oh * g.sh - g.ph + g.kh, g.H);
    const int64_t w0 = max(ow * g.sw - g.pw, int64_t(0)), w1 = min(ow * g.sw - g.pw + g.kw, g.W);
    int64_t best = h0 * g.W + w0;
    A best_value = -INFINITY;
    T best_raw = from_acc<T>(best_value);
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t w = w0; w < w1; ++w) {
        const T raw = xp[h * g.W + w];
        const A v = to_acc(raw);
        // Strict '>' keeps the first maximum; a NaN always replaces the running maximum (PyTorch's CPU rule).
        if (v > best_value || isnan(v)) {
          best_value = v;
          best_raw = raw;
          best = h * g.W + w;
        }
      }
    }
    out[o] = best_raw;
    if (indices) indices[o] = best;
  }
}

__device__ inline void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ inline void atomic_add(double* p, double v) { atomicAdd(p, v); }

// grad_out, indices: (P, OH * OW); grad_acc: (P, H * W) zeroed, in the compute type A.
template <typename T>
__global__ void max_pool_backward_kernel(const T* grad_out, const int64_t* indices, acc_t<T>* grad_acc, int64_t P,
                                         int64_t plane_in, int64_t plane_out) {
  FG_CUDA_KERNEL_LOOP(o, P * plane_out) {
    const int64_t plane = o / plane_out;
    const int64_t idx = indices[o];
    if (idx >= 0 && idx < plane_in) atomic_add(grad_acc + plane * plane_in + idx, load(grad_out + o));
  }
}

// The window of output (oh, ow) clipped to the input, and PyTorch's divisor for it (kernels/cpu/pool.cpp).
struct AvgWindow {
  int64_t h0, h1, w0, w1, divisor;
};
__device__ inline AvgWindow avg_window(int64_t oh, int64_t ow, const PoolGeometry& g, bool count_include_pad) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = min(h0 + g.kh, g.H + g.ph), w1 = min(w0 + g.kw, g.W + g.pw);
  const int64_t padded_area = (h1 - h0) * (w1 - w0);
  h0 = max(h0, int64_t(0));
  w0 = max(w0, int64_t(0));
  h1 = min(h1, g.H);
  w1 = min(w1, g.W);
  return {h0, h1, w0, w1, count_include_pad ? padded_area : (h1 - h0) * (w1 - w0)};
}

// x: (P, H, W); out: (P, OH, OW).
template <typename T>
__global__ void avg_pool_forward_kernel(const T* x, T* out, PoolGeometry g, bool count_include_pad) {
  FG_CUDA_KERNEL_LOOP(o, g.P * g.OH * g.OW) {
    const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH, plane = o / (g.OW * g.OH);
    const T* xp = x + plane * g.H * g.W;
    const AvgWindow win = avg_window(oh, ow, g, count_include_pad);
    double sum = 0.0;
    for (int64_t h = win.h0; h < win.h1; ++h)
      for (int64_t w = win.w0; w < win.w1; ++w) sum += double(load(xp + h * g.W + w));
    out[o] = ::fg::cuda::convert<T, double>(sum / double(win.divisor));
  }
}

// The outputs along one axis whose window [o * stride - pad, o * stride - pad + kernel) contains input index i.
__device__ inline void windows_containing(int64_t i, int64_t kernel, int64_t stride, int64_t pad, int64_t out_size,
                                          int64_t& lo, int64_t& hi) {
  const int64_t num = i + pad - kernel + 1;  // o * stride >= num
  lo = num <= 0 ? 0 : (num + stride - 1) / stride;
  hi = min((i + pad) / stride, out_size - 1);
}

// grad_out: (P, OH, OW); grad_in: (P, H, W). Each input sums grad / divisor over the windows containing it.
template <typename T>
__global__ void avg_pool_backward_kernel(const T* grad_out, T* grad_in, PoolGeometry g, bool count_include_pad) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(i, g.P * g.H * g.W) {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.W * g.H);
    int64_t oh0, oh1, ow0, ow1;
    windows_containing(h, g.kh, g.sh, g.ph, g.OH, oh0, oh1);
    windows_containing(w, g.kw, g.sw, g.pw, g.OW, ow0, ow1);
    A acc = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const AvgWindow win = avg_window(oh, ow, g, count_include_pad);
        // The CPU rounds each share to T before adding it.
        acc += A(double(load(grad_out + (plane * g.OH + oh) * g.OW + ow)) / double(win.divisor));
      }
    }
    store(grad_in + i, acc);
  }
}

void check_input_shape(const Shape& input_shape, const char* op) {
  FG_CHECK(input_shape.size() == 3 || input_shape.size() == 4,
           op << ": expected an input shape (N, C, H, W) or (C, H, W), got " << shape_str(input_shape));
}

}  // namespace

Tensor max_pool2d_forward(const Tensor& x_in, const Pool2dParams& p, Tensor* indices) {
  const char* op = "max_pool2d";
  check_cuda_input(x_in, op, "input");
  const Shape out_shape = pool2d_output_shape(x_in, p, op);
  const Tensor x = x_in.contiguous();
  const PoolGeometry g = geometry_of(x.shape(), out_shape, p);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (indices) *indices = Tensor::empty(out_shape, DType::I64, x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    max_pool_forward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(x)>>>(
        x.data<T>(), out.data<T>(), indices ? indices->data<int64_t>() : nullptr, g);
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor max_pool2d_backward(const Tensor& grad_out_in, const Tensor& indices_in, const Shape& input_shape) {
  const char* op = "max_pool2d backward";
  check_input_shape(input_shape, op);
  check_cuda_input(grad_out_in, op, "grad_out");
  check_cuda_input(indices_in, op, "indices");
  FG_CHECK(grad_out_in.shape() == indices_in.shape() && grad_out_in.dim() == int64_t(input_shape.size()),
           op << ": grad_out and indices must share a shape of the input's rank " << shape_str(input_shape));
  FG_CHECK(indices_in.dtype() == DType::I64, op << ": indices must be i64, got " << dtype_name(indices_in.dtype()));
  FG_CHECK(grad_out_in.device() == indices_in.device(), op << ": grad_out and indices are on different devices");
  const Pool2dParams unit;
  const PoolGeometry g = geometry_of(input_shape, grad_out_in.shape(), unit);
  int64_t out_planes = 1;
  for (int64_t d = 0; d + 2 < grad_out_in.dim(); ++d) out_planes *= grad_out_in.size(d);
  FG_CHECK(out_planes == g.P,
           op << ": grad_out " << shape_str(grad_out_in.shape()) << " does not match input " << shape_str(input_shape));
  const Tensor go = grad_out_in.contiguous(), ind = indices_in.contiguous();
  Tensor result;
  DeviceGuard guard(go.device().index);
  dispatch_float_types(go.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const DType acc_dtype = std::is_same_v<A, double> ? DType::F64 : DType::F32;
    Tensor acc = Tensor::zeros(input_shape, acc_dtype, go.device());
    const int64_t n = go.numel();
    if (n > 0) {
      max_pool_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(go)>>>(
          go.data<T>(), ind.data<int64_t>(), acc.data<A>(), g.P, g.H * g.W, g.OH * g.OW);
      CUDA_CHECK_LAUNCH();
    }
    result = acc.to(go.dtype());  // f16/bf16: one rounding of the f32 sums (the strided copy kernel)
  });
  return result;
}

Tensor avg_pool2d_forward(const Tensor& x_in, const Pool2dParams& p, bool count_include_pad) {
  const char* op = "avg_pool2d";
  check_cuda_input(x_in, op, "input");
  const Shape out_shape = pool2d_output_shape(x_in, p, op);
  const Tensor x = x_in.contiguous();
  const PoolGeometry g = geometry_of(x.shape(), out_shape, p);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    avg_pool_forward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(x)>>>(x.data<T>(), out.data<T>(), g,
                                                                                    count_include_pad);
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor avg_pool2d_backward(const Tensor& grad_out_in, const Shape& input_shape, const Pool2dParams& p,
                           bool count_include_pad) {
  const char* op = "avg_pool2d backward";
  check_input_shape(input_shape, op);
  check_cuda_input(grad_out_in, op, "grad_out");
  const int64_t H = input_shape[input_shape.size() - 2], W = input_shape.back();
  Shape pooled = input_shape;
  pooled[pooled.size() - 2] = pool2d_output_size(H, p.kernel_h, p.stride_h, p.pad_h);
  pooled[pooled.size() - 1] = pool2d_output_size(W, p.kernel_w, p.stride_w, p.pad_w);
  FG_CHECK(grad_out_in.shape() == pooled, op << ": grad_out " << shape_str(grad_out_in.shape())
                                             << " does not match the pooled shape of input " << shape_str(input_shape));
  FG_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0,
           op << ": kernel and stride must be >= 1 and padding >= 0");
  const Tensor go = grad_out_in.contiguous();
  const PoolGeometry g = geometry_of(input_shape, pooled, p);
  Tensor grad_in = Tensor::empty(input_shape, go.dtype(), go.device());
  const int64_t n = grad_in.numel();
  if (n == 0) return grad_in;
  DeviceGuard guard(go.device().index);
  dispatch_float_types(go.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    avg_pool_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(go)>>>(go.data<T>(),
                                                                                      grad_in.data<T>(), g,
                                                                                      count_include_pad);
    CUDA_CHECK_LAUNCH();
  });
  return grad_in;
}

}  // namespace fg::kernels::cuda
