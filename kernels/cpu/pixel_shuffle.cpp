// CPU reference for pixel shuffle and unshuffle (kernels/pixel_shuffle.h). Outputs are written (=); there are no
// separate backward kernels because each op's backward is the other op.
#include "kernels/pixel_shuffle.h"
#include "kernels/device_check.h"

#include "kernels/cpu/loops.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/pixel_shuffle.h"
#endif

namespace fg::cpu {

// x: (B, C * r * r, H, W) contiguous. out: (B, C, H * r, W * r) written (=).
template <typename T>
void pixel_shuffle(const T* x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t r, T* out) {
  const int64_t OH = H * r, OW = W * r;
#pragma omp parallel for if (B * C * OH * OW > kParallelGrain) schedule(static)
  for (int64_t bc = 0; bc < B * C; ++bc) {
    const int64_t b = bc / C, c = bc % C;
    T* op = out + bc * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h = oh / r, i = oh % r;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w = ow / r, j = ow % r;
        const int64_t in_channel = c * r * r + i * r + j;
        op[oh * OW + ow] = x[((b * C * r * r + in_channel) * H + h) * W + w];
      }
    }
  }
}

// x: (B, C, H * r, W * r) contiguous (H, W are the output's spatial sizes). out: (B, C * r * r, H, W) written (=).
template <typename T>
void pixel_unshuffle(const T* x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t r, T* out) {
  const int64_t IH = H * r, IW = W * r;
#pragma omp parallel for if (B * C * IH * IW > kParallelGrain) schedule(static)
  for (int64_t bc = 0; bc < B * C; ++bc) {
    const int64_t b = bc / C, c = bc % C;
    const T* xp = x + bc * IH * IW;
    for (int64_t ih = 0; ih < IH; ++ih) {
      const int64_t h = ih / r, i = ih % r;
      for (int64_t iw = 0; iw < IW; ++iw) {
        const int64_t w = iw / r, j = iw % r;
        const int64_t out_channel = c * r * r + i * r + j;
        out[((b * C * r * r + out_channel) * H + h) * W + w] = xp[ih * IW + iw];
      }
    }
  }
}

}  // namespace fg::cpu

namespace fg::kernels {
namespace {

void check_common(const Tensor& x, int64_t r, const char* op) {
  FG_CHECK(x.defined(), op << ": the input is undefined");
  FG_CHECK(x.dim() >= 3, op << ": expected x of shape (*, C, H, W), got " << shape_str(x.shape()));
  FG_CHECK(r >= 1, op << ": the factor must be >= 1, got " << r);
  require_cpu(x, op);
}

int64_t leading(const Shape& s) {
  int64_t b = 1;
  for (size_t i = 0; i + 3 < s.size(); ++i) b *= s[i];
  return b;
}

}  // namespace

Tensor pixel_shuffle(const Tensor& x, int64_t r) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::pixel_shuffle(x, r);
#endif
  const char* op = "pixel_shuffle";
  check_common(x, r, op);
  const int64_t C = x.size(-3), H = x.size(-2), W = x.size(-1);
  FG_CHECK(C % (r * r) == 0, op << ": the channel count " << C << " of " << shape_str(x.shape())
                                << " must be divisible by the square of the factor " << r);
  Shape out_shape = x.shape();
  const size_t d = out_shape.size();
  out_shape[d - 3] = C / (r * r);
  out_shape[d - 2] = H * r;
  out_shape[d - 1] = W * r;
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype());
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::pixel_shuffle<scalar_t>(xc.data<scalar_t>(), leading(x.shape()), C / (r * r), H, W, r, out.data<scalar_t>());
  });
  return out;
}

Tensor pixel_unshuffle(const Tensor& x, int64_t r) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::pixel_unshuffle(x, r);
#endif
  const char* op = "pixel_unshuffle";
  check_common(x, r, op);
  const int64_t C = x.size(-3), H = x.size(-2), W = x.size(-1);
  FG_CHECK(H % r == 0 && W % r == 0,
           op << ": the height and width of " << shape_str(x.shape()) << " must be divisible by the factor " << r);
  Shape out_shape = x.shape();
  const size_t d = out_shape.size();
  out_shape[d - 3] = C * r * r;
  out_shape[d - 2] = H / r;
  out_shape[d - 1] = W / r;
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype());
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::pixel_unshuffle<scalar_t>(xc.data<scalar_t>(), leading(x.shape()), C, H / r, W / r, r, out.data<scalar_t>());
  });
  return out;
}

}  // namespace fg::kernels
