// CUDA pixel shuffle and unshuffle (kernels/cuda/pixel_shuffle.h): one thread per output element gathering the
// input element the CPU reference (kernels/cpu/pixel_shuffle.cpp) maps onto it. Outputs are written (=).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pixel_shuffle.h"

namespace fg::kernels::cuda {

namespace {

// x: (B, C * r * r, H, W); out: (B, C, H * r, W * r). out[c, h r + i, w r + j] = x[c r r + i r + j, h, w].
template <typename T>
__global__ void pixel_shuffle_kernel(const T* x, T* out, int64_t B, int64_t C, int64_t H, int64_t W, int64_t r) {
  const int64_t OH = H * r, OW = W * r;
  FG_CUDA_KERNEL_LOOP(o, B * C * OH * OW) {
    const int64_t ow = o % OW, oh = (o / OW) % OH, bc = o / (OW * OH);
    const int64_t b = bc / C, c = bc % C;
    const int64_t in_channel = c * r * r + (oh % r) * r + ow % r;
    out[o] = x[((b * C * r * r + in_channel) * H + oh / r) * W + ow / r];
  }
}

// x: (B, C, H * r, W * r); out: (B, C * r * r, H, W), the inverse permutation.
template <typename T>
__global__ void pixel_unshuffle_kernel(const T* x, T* out, int64_t B, int64_t C, int64_t H, int64_t W, int64_t r) {
  const int64_t IH = H * r, IW = W * r, OC = C * r * r;
  FG_CUDA_KERNEL_LOOP(o, B * OC * H * W) {
    const int64_t w = o % W, h = (o / W) % H, boc = o / (W * H);
    const int64_t b = boc / OC, oc = boc % OC;
    const int64_t c = oc / (r * r), i = (oc / r) % r, j = oc % r;
    out[o] = x[((b * C + c) * IH + h * r + i) * IW + w * r + j];
  }
}

void check_common(const Tensor& x, int64_t r, const char* op) {
  check_cuda_input(x, op, "input");
  FG_CHECK(x.dim() >= 3, op << ": expected x of shape (*, C, H, W), got " << shape_str(x.shape()));
  FG_CHECK(r >= 1, op << ": the factor must be >= 1, got " << r);
}

int64_t leading(const Shape& s) {
  int64_t b = 1;
  for (size_t i = 0; i + 3 < s.size(); ++i) b *= s[i];
  return b;
}

}  // namespace

Tensor pixel_shuffle(const Tensor& x_in, int64_t r) {
  const char* op = "pixel_shuffle";
  check_common(x_in, r, op);
  const int64_t C = x_in.size(-3), H = x_in.size(-2), W = x_in.size(-1);
  FG_CHECK(C % (r * r) == 0, op << ": the channel count " << C << " of " << shape_str(x_in.shape())
                                << " must be divisible by the square of the factor " << r);
  Shape out_shape = x_in.shape();
  const size_t d = out_shape.size();
  out_shape[d - 3] = C / (r * r);
  out_shape[d - 2] = H * r;
  out_shape[d - 1] = W * r;
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    pixel_shuffle_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(x)>>>(x.data<T>(), out.data<T>(),
                                                                                 leading(x.shape()), C / (r * r), H,
                                                                                 W, r);
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor pixel_unshuffle(const Tensor& x_in, int64_t r) {
  const char* op = "pixel_unshuffle";
  check_common(x_in, r, op);
  const int64_t C = x_in.size(-3), H = x_in.size(-2), W = x_in.size(-1);
  FG_CHECK(H % r == 0 && W % r == 0,
           op << ": the height and width of " << shape_str(x_in.shape()) << " must be divisible by the factor " << r);
  Shape out_shape = x_in.shape();
  const size_t d = out_shape.size();
  out_shape[d - 3] = C * r * r;
  out_shape[d - 2] = H / r;
  out_shape[d - 1] = W / r;
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    pixel_unshuffle_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(x)>>>(x.data<T>(), out.data<T>(),
                                                                                   leading(x.shape()), C, H / r,
                                                                                   W / r, r);
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

}  // namespace fg::kernels::cuda
