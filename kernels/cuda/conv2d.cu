// Hand-written CUDA conv2d: the direct kernels (one thread per output element, the CPU reference's loops), the
// channels-last transform and the three implicit GEMMs (operands in kernels/cuda/conv2d_operands.h, tiled kernels in
// kernels/cuda/gemm_core.cuh), the bias gradient, and the entry points of kernels/cuda/conv2d.h. Every output is
// written (=), never accumulated. Every launch is followed by CUDA_CHECK_LAUNCH; every kernel bounds-checks its
// own indices (grid-stride loops, operands that return zeros outside their matrix, epilogue stores only for
// m < M and n < N).
#include <cuda_runtime.h>

#include <string>

#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/conv2d_operands.h"
#include "kernels/cuda/gemm_core.cuh"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/error.h"
#include "tensor/overlap.h"

namespace fg::cuda {

namespace {

using kernels::Conv2dGeometry;

// ---- the direct kernels: the reference's loops, one thread per output element ----

// x: (N, C, H, W), w: (O, C, KH, KW), b: (O) or null -> y: (N, O, OH, OW), written. All contiguous.
template <typename T>
__global__ void conv2d_forward_direct_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                             T* __restrict__ y, const ConvDims d) {
  using A = acc_t<T>;
  const int64_t total = int64_t(d.N) * d.O * d.OH * d.OW;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = idx;
    const int ow = int(r % d.OW);
    r /= d.OW;
    const int oh = int(r % d.OH);
    r /= d.OH;
    const int o = int(r % d.O);
    const int n = int(r / d.O);
    A acc = b ? to_acc(b[o]) : A(0);
    for (int c = 0; c < d.C; ++c) {
      for (int kh = 0; kh < d.KH; ++kh) {
        const int ih = oh * d.sh - d.ph + kh * d.dh;
        if (ih < 0 || ih >= d.H) continue;
        for (int kw = 0; kw < d.KW; ++kw) {
          const int iw = ow * d.sw - d.pw + kw * d.dw;
          if (iw < 0 || iw >= d.W) continue;
          acc += to_acc(x[((int64_t(n) * d.C + c) * d.H + ih) * d.W + iw]) *
                 to_acc(w[((int64_t(o) * d.C + c) * d.KH + kh) * d.KW + kw]);
        }
      }
    }
    y[idx] = from_acc<T>(acc);
  }
}

// dy: (N, O, OH, OW), w: (O, C, KH, KW) -> dx: (N, C, H, W), written. For each input pixel, every output position
// whose window covers it: oh = (ih + ph - kh*dh) / sh when that division is exact.
template <typename T>
__global__ void conv2d_backward_input_direct_kernel(const T* __restrict__ dy, const T* __restrict__ w,
                                                    T* __restrict__ dx, const ConvDims d) {
  using A = acc_t<T>;
  const int64_t total = int64_t(d.N) * d.C * d.H * d.W;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = idx;
    const int iw = int(r % d.W);
    r /= d.W;
    const int ih = int(r % d.H);
    r /= d.H;
    const int c = int(r % d.C);
    const int n = int(r / d.C);
    A acc = 0;
    for (int o = 0; o < d.O; ++o) {
      for (int kh = 0; kh < d.KH; ++kh) {
        const int th = ih + d.ph - kh * d.dh;
        if (th < 0 || th % d.sh != 0 || th / d.sh >= d.OH) continue;
        const int oh = th / d.sh;
        for (int kw = 0; kw < d.KW; ++kw) {
          const int tw = iw + d.pw - kw * d.dw;
          if (tw < 0 || tw % d.sw != 0 || tw / d.sw >= d.OW) continue;
          const int ow = tw / d.sw;
          acc += to_acc(dy[((int64_t(n) * d.O + o) * d.OH + oh) * d.OW + ow]) *
                 to_acc(w[((int64_t(o) * d.C + c) * d.KH + kh) * d.KW + kw]);
        }
      }
    }
    dx[idx] = from_acc<T>(acc);
  }
}

// dy: (N, O, OH, OW), x: (N, C, H, W) -> dw: (O, C, KH, KW), written.
template <typename T>
__global__ void conv2d_backward_weight_direct_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                     T* __restrict__ dw, const ConvDims d) {
  using A = acc_t<T>;
  const int64_t total = int64_t(d.O) * d.C * d.KH * d.KW;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = idx;
    const int kw = int(r % d.KW);
    r /= d.KW;
    const int kh = int(r % d.KH);
    r /= d.KH;
    const int c = int(r % d.C);
    const int o = int(r / d.C);
    A acc = 0;
    for (int n = 0; n < d.N; ++n) {
      for (int oh = 0; oh < d.OH; ++oh) {
        const int ih = oh * d.sh - d.ph + kh * d.dh;
        if (ih < 0 || ih >= d.H) continue;
        for (int ow = 0; ow < d.OW; ++ow) {
          const int iw = ow * d.sw - d.pw + kw * d.dw;
          if (iw < 0 || iw >= d.W) continue;
          acc += to_acc(dy[((int64_t(n) * d.O + o) * d.OH + oh) * d.OW + ow]) *
                 to_acc(x[((int64_t(n) * d.C + c) * d.H + ih) * d.W + iw]);
        }
      }
    }
    dw[idx] = from_acc<T>(acc);
  }
}

// dy: (N, O, P) contiguous -> db: (O), written. One block per channel; each thread sums a fixed stride of the
// channel's N*P values, then a tree in shared memory: the same order on every run.
constexpr int kBiasThreads = 256;
template <typename T>
__global__ void __launch_bounds__(kBiasThreads)
    conv2d_backward_bias_kernel(const T* __restrict__ dy, int N, int O, int P, T* __restrict__ db) {
  using A = acc_t<T>;
  __shared__ A partial[kBiasThreads];
  const int o = int(blockIdx.x), t = int(threadIdx.x);
  A sum = 0;
  for (int64_t i = t; i < int64_t(N) * P; i += kBiasThreads) {
    const int64_t n = i / P, p = i - n * P;
    sum += to_acc(dy[(n * O + o) * P + p]);
  }
  partial[t] = sum;
  __syncthreads();
  for (int step = kBiasThreads / 2; step > 0; step >>= 1) {
    if (t < step) partial[t] += partial[t + step];
    __syncthreads();
  }
  if (t == 0) db[o] = from_acc<T>(partial[0]);
}

// ---- channels-last copies ----

// dst[outer][h*W + w][c] = c < chans ? src[outer*s_outer + c*s_chan + h*s_h + w*s_w] : 0, for c < padded.
// A 32x32 (pixel x channel) tile moves through shared memory so both the reads (along pixels) and the writes
// (along channels) are coalesced. U is a same-size unsigned stand-in for the element type: the copy moves bits.
template <typename U>
__global__ void channels_last_kernel(const U* __restrict__ src, int64_t s_outer, int64_t s_chan, int64_t s_h,
                                     int64_t s_w, int chans, int H, int W, int padded, U* __restrict__ dst) {
  __shared__ U tile[32][33];
  const int HW = H * W;
  const int outer = int(blockIdx.z), p0 = int(blockIdx.x) * 32, c0 = int(blockIdx.y) * 32;
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);  // blockDim = (32, 8)
  for (int i = ty; i < 32; i += 8) {
    const int c = c0 + i, p = p0 + tx;
    U v = 0;
    if (c < chans && p < HW) {
      const int h = p / W, w = p - h * W;
      v = src[outer * s_outer + c * s_chan + h * s_h + w * s_w];
    }
    tile[i][tx] = v;  // tile[channel][pixel]
  }
  __syncthreads();
  for (int i = ty; i < 32; i += 8) {
    const int p = p0 + i, c = c0 + tx;
    if (p < HW && c < padded) dst[(int64_t(outer) * HW + p) * padded + c] = tile[tx][i];
  }
}

// t (4-D, any strides) -> (t.size(outer_dim), t.size(2), t.size(3), padded): dims 2 and 3 become the pixel index,
// dim chan_dim the channel index, padded with zeros up to `padded`.
Tensor channels_last(const Tensor& t, int outer_dim, int chan_dim, int padded) {
  const int64_t outer = t.size(outer_dim), chans = t.size(chan_dim), H = t.size(2), W = t.size(3);
  Tensor out = Tensor::empty({outer, H, W, padded}, t.dtype(), t.device());
  if (out.numel() == 0) return out;
  FG_CHECK(outer <= 65535, "conv2d (CUDA): " << outer << " images or channels in one call; at most 65535");
  const dim3 grid(unsigned(ceil_div64(H * W, 32)), unsigned(ceil_div64(padded, 32)), unsigned(outer));
  const dim3 block(32, 8);
  const int dev = t.device().index;
  const auto launch = [&](auto tag) {
    using U = decltype(tag);
    const U* src = static_cast<const U*>(t.raw_data());
    channels_last_kernel<U><<<grid, block, 0, stream(dev)>>>(src, t.stride(outer_dim), t.stride(chan_dim), t.stride(2),
                                                             t.stride(3), int(chans), int(H), int(W), padded,
                                                             static_cast<U*>(out.raw_data()));
    CUDA_CHECK_LAUNCH();
  };
  if (dtype_size(t.dtype()) == 4)
    launch(uint32_t{});
  else if (dtype_size(t.dtype()) == 2)
    launch(uint16_t{});
  else
    FG_ASSERT(false, "channels_last: the tiled kernels take f32, f16 or bf16");
  return out;
}

// ---- validation ----

void check_on_device(const Tensor& t, const char* what, const Tensor& ref) {
  FG_CHECK(t.defined(), "conv2d (CUDA): " << what << " is undefined");
  FG_CHECK(t.device() == ref.device(), "conv2d (CUDA): " << what << " is on " << t.device().str() << " but the other "
                                                         << "operands are on " << ref.device().str());
  FG_CHECK(t.dtype() == ref.dtype(), "conv2d (CUDA): " << what << " is " << dtype_name(t.dtype()) << " but the other "
                                                       << "operands are " << dtype_name(ref.dtype())
                                                       << "; cast them to one dtype");
}

void check_shapes(const Shape& xs, const Shape& ws) {
  FG_CHECK(xs.size() == 4, "conv2d (CUDA): x must be (N, C, H, W), got " << shape_str(xs));
  FG_CHECK(ws.size() == 4, "conv2d (CUDA): w must be (O, C, KH, KW), got " << shape_str(ws));
  FG_CHECK(xs[1] == ws[1], "conv2d (CUDA): x " << shape_str(xs) << " has " << xs[1] << " channels but w "
                                               << shape_str(ws) << " expects " << ws[1] << " (groups = 1)");
  FG_CHECK(ws[0] >= 1 && ws[1] >= 1 && ws[2] >= 1 && ws[3] >= 1,
           "conv2d (CUDA): w " << shape_str(ws) << " is empty; every dim of (O, C, KH, KW) must be at least 1");
}

void check_out(const Tensor& out, const Shape& shape, const Tensor& ref, const char* what) {
  FG_CHECK(out.defined() && out.is_contiguous() && out.shape() == shape && out.dtype() == ref.dtype() &&
               out.device() == ref.device(),
           "conv2d (CUDA): " << what << " must be a contiguous " << dtype_name(ref.dtype()) << shape_str(shape)
                             << " tensor on " << ref.device().str() << ", got "
                             << (out.defined() ? out.str() : std::string("undefined")));
}

void check_grad_out(const Tensor& grad_out, const ConvDims& d) {
  const Shape expected{d.N, d.O, d.OH, d.OW};
  FG_CHECK(grad_out.shape() == expected, "conv2d backward (CUDA): grad_out is " << shape_str(grad_out.shape())
                                                                                << " but the output is "
                                                                                << shape_str(expected));
}

// The version that runs for `kernel` on dtype dt; throws when the pair does not exist.
Conv2dKernel resolve(Conv2dKernel kernel, DType dt) {
  FG_CHECK(dt == DType::F32 || dt == DType::F64 || dt == DType::F16 || dt == DType::BF16,
           "conv2d (CUDA): dtype " << dtype_name(dt) << " is not supported; use f32, f64, f16 or bf16");
  if (kernel == Conv2dKernel::CONV_DEFAULT) {
    if (dt == DType::F32) return Conv2dKernel::CONV_IMPLICIT_GEMM_F32;
    if (dt == DType::F64) return Conv2dKernel::CONV_DIRECT;
    return Conv2dKernel::CONV_WMMA;
  }
  FG_CHECK(kernel != Conv2dKernel::CONV_IMPLICIT_GEMM_F32 || dt == DType::F32,
           "conv2d (CUDA): the implicit_gemm_f32 kernel computes f32, but the tensors are "
               << dtype_name(dt) << "; use the wmma or direct kernel");
  FG_CHECK(kernel != Conv2dKernel::CONV_WMMA || dt == DType::F16 || dt == DType::BF16,
           "conv2d (CUDA): the wmma kernel computes f16 and bf16, but the tensors are "
               << dtype_name(dt) << "; use the implicit_gemm_f32 or direct kernel");
  return kernel;
}

// Calls f(T{}) with T the element type of dt (f32, f64, f16, bf16).
template <typename F>
void dispatch_dtype(DType dt, F&& f) {
  switch (dt) {
    case DType::F32:
      f(float{});
      return;
    case DType::F64:
      f(double{});
      return;
    case DType::F16:
      f(half_t{});
      return;
    case DType::BF16:
      f(bf16_t{});
      return;
    default:
      FG_ASSERT(false, "conv2d (CUDA): unreachable dtype");
  }
}

template <typename T>
constexpr bool is_tiled_type() {
  return std::is_same<T, float>::value || std::is_same<T, half_t>::value || std::is_same<T, bf16_t>::value;
}

GemmEngine engine_for(DType dt) {
  return dt == DType::F32 ? GemmEngine::SIMT : GemmEngine::WMMA;
}

template <typename T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

const char* conv2d_kernel_name(Conv2dKernel k) {
  switch (k) {
    case Conv2dKernel::CONV_DEFAULT:
      return "default";
    case Conv2dKernel::CONV_DIRECT:
      return "direct";
    case Conv2dKernel::CONV_IMPLICIT_GEMM_F32:
      return "implicit_gemm_f32";
    case Conv2dKernel::CONV_WMMA:
      return "wmma";
  }
  return "?";
}

void conv2d_forward_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g,
                         Conv2dKernel kernel, const GemmTuning& tuning) {
  FG_CHECK(x.defined() && x.device().is_cuda(), "conv2d (CUDA): x must be a CUDA tensor");
  check_on_device(w, "w", x);
  check_shapes(x.shape(), w.shape());
  const ConvDims d = make_conv_dims(x.shape(), w.shape(), g);
  if (b.defined()) {
    check_on_device(b, "bias", x);
    FG_CHECK(b.dim() == 1 && b.size(0) == d.O,
             "conv2d (CUDA): bias " << shape_str(b.shape()) << " should be (" << d.O << ")");
  }
  check_out(out, {d.N, d.O, d.OH, d.OW}, x, "the output");
  check_outputs_separate({&out}, {&x, &w, &b}, "conv2d (CUDA)");  // tensor/overlap.h
  const Conv2dKernel version = resolve(kernel, x.dtype());
  if (out.numel() == 0) return;
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  const Tensor bc = b.defined() ? b.contiguous() : Tensor();
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (version == Conv2dKernel::CONV_DIRECT) {
      const Tensor xc = x.contiguous(), wc = w.contiguous();
      conv2d_forward_direct_kernel<T><<<grid_stride_blocks(out.numel(), 256), 256, 0, stream(dev)>>>(
          xc.data<T>(), wc.data<T>(), data_or_null<T>(bc), out.data<T>(), d);
      CUDA_CHECK_LAUNCH();
    } else if constexpr (is_tiled_type<T>()) {
      const Tensor xt = channels_last(x, 0, 1, d.Cp), wf = channels_last(w, 0, 1, d.Cp);
      run_tiled_gemm(fprop_problem<T>(d, wf.data<T>(), xt.data<T>(), data_or_null<T>(bc), out.data<T>()),
                     engine_for(x.dtype()), tuning, dev);
    }
  });
}

void conv2d_backward_input_into(Tensor& out, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g,
                                Conv2dKernel kernel, const GemmTuning& tuning) {
  FG_CHECK(grad_out.defined() && grad_out.device().is_cuda(), "conv2d backward (CUDA): grad_out must be a CUDA tensor");
  check_on_device(w, "w", grad_out);
  FG_CHECK(out.defined(), "conv2d backward (CUDA): the output tensor is undefined");
  check_shapes(out.shape(), w.shape());
  const ConvDims d = make_conv_dims(out.shape(), w.shape(), g);
  check_grad_out(grad_out, d);
  check_out(out, out.shape(), grad_out, "dx");
  check_outputs_separate({&out}, {&grad_out, &w}, "conv2d backward (CUDA)");
  const Conv2dKernel version = resolve(kernel, grad_out.dtype());
  if (out.numel() == 0) return;
  const int dev = grad_out.device().index;
  DeviceGuard guard(dev);
  dispatch_dtype(grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (version == Conv2dKernel::CONV_DIRECT) {
      const Tensor dyc = grad_out.contiguous(), wc = w.contiguous();
      conv2d_backward_input_direct_kernel<T><<<grid_stride_blocks(out.numel(), 256), 256, 0, stream(dev)>>>(
          dyc.data<T>(), wc.data<T>(), out.data<T>(), d);
      CUDA_CHECK_LAUNCH();
    } else if constexpr (is_tiled_type<T>()) {
      // wd (C, KH, KW, Op): w's dim 1 (C) is the outer index, dim 0 (O) the channel index.
      const Tensor dyt = channels_last(grad_out, 0, 1, d.Op), wd = channels_last(w, 1, 0, d.Op);
      run_tiled_gemm(dgrad_problem<T>(d, wd.data<T>(), dyt.data<T>(), out.data<T>()), engine_for(w.dtype()), tuning,
                     dev);
    }
  });
}

void conv2d_backward_weight_into(Tensor& out, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g,
                                 Conv2dKernel kernel, const GemmTuning& tuning) {
  FG_CHECK(grad_out.defined() && grad_out.device().is_cuda(), "conv2d backward (CUDA): grad_out must be a CUDA tensor");
  check_on_device(x, "x", grad_out);
  FG_CHECK(out.defined(), "conv2d backward (CUDA): the output tensor is undefined");
  check_shapes(x.shape(), out.shape());
  const ConvDims d = make_conv_dims(x.shape(), out.shape(), g);
  check_grad_out(grad_out, d);
  check_out(out, out.shape(), grad_out, "dw");
  check_outputs_separate({&out}, {&grad_out, &x}, "conv2d backward (CUDA)");
  const Conv2dKernel version = resolve(kernel, grad_out.dtype());
  if (out.numel() == 0) return;
  const int dev = grad_out.device().index;
  DeviceGuard guard(dev);
  dispatch_dtype(grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (version == Conv2dKernel::CONV_DIRECT) {
      const Tensor dyc = grad_out.contiguous(), xc = x.contiguous();
      conv2d_backward_weight_direct_kernel<T><<<grid_stride_blocks(out.numel(), 256), 256, 0, stream(dev)>>>(
          dyc.data<T>(), xc.data<T>(), out.data<T>(), d);
      CUDA_CHECK_LAUNCH();
    } else if constexpr (is_tiled_type<T>()) {
      const Tensor dyt = channels_last(grad_out, 0, 1, d.Op), xt = channels_last(x, 0, 1, d.Cp);
      run_tiled_gemm(wgrad_problem<T>(d, dyt.data<T>(), xt.data<T>(), out.data<T>()), engine_for(x.dtype()), tuning,
                     dev);
    }
  });
}

void conv2d_backward_bias_into(Tensor& out, const Tensor& grad_out) {
  FG_CHECK(grad_out.defined() && grad_out.dim() == 4 && grad_out.device().is_cuda(),
           "conv2d backward (CUDA): grad_out must be a (N, O, OH, OW) CUDA tensor, got "
               << (grad_out.defined() ? grad_out.str() : std::string("undefined")));
  resolve(Conv2dKernel::CONV_DEFAULT, grad_out.dtype());
  const int64_t N = grad_out.size(0), O = grad_out.size(1), P = grad_out.size(2) * grad_out.size(3);
  check_out(out, {O}, grad_out, "db");
  check_outputs_separate({&out}, {&grad_out}, "conv2d backward (CUDA)");
  FG_CHECK(grad_out.numel() < INT32_MAX && O <= INT32_MAX,
           "conv2d backward (CUDA): grad_out " << shape_str(grad_out.shape()) << " is too large; split the batch");
  if (O == 0) return;
  const int dev = grad_out.device().index;
  DeviceGuard guard(dev);
  const Tensor dyc = grad_out.contiguous();
  dispatch_dtype(grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv2d_backward_bias_kernel<T>
        <<<unsigned(O), kBiasThreads, 0, stream(dev)>>>(dyc.data<T>(), int(N), int(O), int(P), out.data<T>());
    CUDA_CHECK_LAUNCH();
  });
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g, Conv2dKernel kernel,
                      const GemmTuning& tuning) {
  FG_CHECK(x.defined() && w.defined(), "conv2d (CUDA): x and w must be defined");
  check_shapes(x.shape(), w.shape());
  const auto [OH, OW] = kernels::conv2d_output_size(x.size(2), x.size(3), w.size(2), w.size(3), g);
  Tensor out = Tensor::empty({x.size(0), w.size(0), OH, OW}, x.dtype(), x.device());
  conv2d_forward_into(out, x, w, b, g, kernel, tuning);
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& x_shape, const Conv2dGeometry& g,
                             Conv2dKernel kernel, const GemmTuning& tuning) {
  FG_CHECK(grad_out.defined() && w.defined(), "conv2d backward (CUDA): grad_out and w must be defined");
  Tensor out = Tensor::empty(x_shape, grad_out.dtype(), grad_out.device());
  conv2d_backward_input_into(out, grad_out, w, g, kernel, tuning);
  return out;
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& w_shape, const Conv2dGeometry& g,
                              Conv2dKernel kernel, const GemmTuning& tuning) {
  FG_CHECK(grad_out.defined() && x.defined(), "conv2d backward (CUDA): grad_out and x must be defined");
  Tensor out = Tensor::empty(w_shape, grad_out.dtype(), grad_out.device());
  conv2d_backward_weight_into(out, grad_out, x, g, kernel, tuning);
  return out;
}

Tensor conv2d_backward_bias(const Tensor& grad_out) {
  FG_CHECK(grad_out.defined() && grad_out.dim() == 4,
           "conv2d backward (CUDA): grad_out must be (N, O, OH, OW), got "
               << (grad_out.defined() ? shape_str(grad_out.shape()) : std::string("undefined")));
  Tensor out = Tensor::empty({grad_out.size(1)}, grad_out.dtype(), grad_out.device());
  conv2d_backward_bias_into(out, grad_out);
  return out;
}

}  // namespace fg::cuda
