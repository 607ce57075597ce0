// CPU reference for softmax (kernels/softmax.h), f32 and f64. The tensor is seen as (outer, n, inner) with the
// softmax taken over n: rows are contiguous when inner == 1 (softmax over the last dim); otherwise a block of up
// to kBlock neighbouring columns is processed together so every inner loop walks contiguous memory (the
// self-attention softmax is over dim 1 of (B, N, N), i.e. inner = N). Gradients are written (=), not accumulated.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/loops.h"
#include "kernels/device_check.h"
#include "kernels/softmax.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/softmax.h"
#endif

namespace fg::cpu {

// Columns handled together in the strided (inner > 1) case: the per-column max and sum live in two small arrays.
constexpr int64_t kSoftmaxBlock = 64;

// x, y: (outer, n, inner), contiguous
template <typename T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  if (inner == 1) {
#pragma omp parallel for if (outer * n > kParallelGrain) schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      const T* xr = x + o * n;  // xr: (n)
      T* yr = y + o * n;        // yr: (n)
      T max_value = neg_inf;
      for (int64_t k = 0; k < n; ++k) max_value = std::max(max_value, xr[k]);
      T sum = 0;
      for (int64_t k = 0; k < n; ++k) {
        const T e = std::exp(xr[k] - max_value);
        yr[k] = e;
        sum += e;
      }
      const T inv_sum = T(1) / sum;
      for (int64_t k = 0; k < n; ++k) yr[k] *= inv_sum;
    }
    return;
  }
  const int64_t blocks = (inner + kSoftmaxBlock - 1) / kSoftmaxBlock;
#pragma omp parallel for collapse(2) if (outer * n * inner > kParallelGrain) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t j0 = b * kSoftmaxBlock;
      const int64_t w = std::min(kSoftmaxBlock, inner - j0);
      const T* xb = x + o * n * inner + j0;  // xb: (n, w) with row stride inner
      T* yb = y + o * n * inner + j0;        // yb: (n, w) with row stride inner
      T max_value[kSoftmaxBlock];
      T sum[kSoftmaxBlock];
      for (int64_t j = 0; j < w; ++j) {
        max_value[j] = neg_inf;
        sum[j] = 0;
      }
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < w; ++j) max_value[j] = std::max(max_value[j], xb[k * inner + j]);
      for (int64_t k = 0; k < n; ++k) {
        for (int64_t j = 0; j < w; ++j) {
          const T e = std::exp(xb[k * inner + j] - max_value[j]);
          yb[k * inner + j] = e;
          sum[j] += e;
        }
      }
      for (int64_t j = 0; j < w; ++j) sum[j] = T(1) / sum[j];
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < w; ++j) yb[k * inner + j] *= sum[j];
    }
  }
}

// grad_out, out, grad_in: (outer, n, inner), contiguous
template <typename T>
void softmax_backward(const T* grad_out, const T* out, T* grad_in, int64_t outer, int64_t n, int64_t inner) {
  if (inner == 1) {
#pragma omp parallel for if (outer * n > kParallelGrain) schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      const T* gr = grad_out + o * n;  // gr: (n)
      const T* yr = out + o * n;       // yr: (n)
      T* gxr = grad_in + o * n;        // gxr: (n)
      T dot = 0;
      for (int64_t k = 0; k < n; ++k) dot += gr[k] * yr[k];
      for (int64_t k = 0; k < n; ++k) gxr[k] = yr[k] * (gr[k] - dot);
    }
    return;
  }
  const int64_t blocks = (inner + kSoftmaxBlock - 1) / kSoftmaxBlock;
#pragma omp parallel for collapse(2) if (outer * n * inner > kParallelGrain) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t j0 = b * kSoftmaxBlock;
      const int64_t w = std::min(kSoftmaxBlock, inner - j0);
      const int64_t base = o * n * inner + j0;  // each of the three operands: (n, w) with row stride inner
      T dot[kSoftmaxBlock];
      for (int64_t j = 0; j < w; ++j) dot[j] = 0;
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < w; ++j) dot[j] += grad_out[base + k * inner + j] * out[base + k * inner + j];
      for (int64_t k = 0; k < n; ++k) {
        for (int64_t j = 0; j < w; ++j) {
          const int64_t i = base + k * inner + j;
          grad_in[i] = out[i] * (grad_out[i] - dot[j]);
        }
      }
    }
  }
}

}  // namespace fg::cpu

namespace fg::kernels {
namespace {

struct SoftmaxGeometry {
  int64_t outer = 1, n = 1, inner = 1;
};

// A 0-d tensor is treated as one element along dim 0 (or -1), as PyTorch does.
SoftmaxGeometry softmax_geometry(const Shape& shape, int64_t dim, const char* op) {
  const int64_t nd = int64_t(shape.size());
  FG_CHECK(dim >= -std::max<int64_t>(nd, 1) && dim < std::max<int64_t>(nd, 1),
           op << ": dim " << dim << " is out of range for a tensor of shape " << shape_str(shape)
              << "; use a dim in [" << -std::max<int64_t>(nd, 1) << ", " << std::max<int64_t>(nd, 1) - 1 << "]");
  SoftmaxGeometry g;
  if (nd == 0) return g;
  const int64_t d = dim < 0 ? dim + nd : dim;
  for (int64_t i = 0; i < d; ++i) g.outer *= shape[size_t(i)];
  g.n = shape[size_t(d)];
  for (int64_t i = d + 1; i < nd; ++i) g.inner *= shape[size_t(i)];
  return g;
}

void check_input(const Tensor& x, const char* op, const char* what) {
  FG_CHECK(x.defined(), op << ": " << what << " is an undefined tensor");
  FG_CHECK(dtype_is_floating(x.dtype()),
           op << ": " << what << " has dtype " << dtype_name(x.dtype()) << "; cast it to f32 or f64 first");
  require_cpu(x, op, what);
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::softmax(x, dim);
#endif
  check_input(x, "softmax", "input");
  const SoftmaxGeometry g = softmax_geometry(x.shape(), dim, "softmax");
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  FG_DISPATCH_FLOATING(x.dtype(), "softmax", [&] {
    cpu::softmax_forward(xc.data<scalar_t>(), y.data<scalar_t>(), g.outer, g.n, g.inner);
  });
  return y;
}

Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda() || out.device().is_cuda()) return cuda::softmax_backward(grad_out, out, dim);
#endif
  check_input(grad_out, "softmax_backward", "grad_output");
  check_input(out, "softmax_backward", "output");
  FG_CHECK(grad_out.shape() == out.shape(), "softmax_backward: grad_output " << shape_str(grad_out.shape())
                                                << " and output " << shape_str(out.shape())
                                                << " must have the same shape");
  FG_CHECK(grad_out.dtype() == out.dtype(), "softmax_backward: grad_output is " << dtype_name(grad_out.dtype())
                                                << " but output is " << dtype_name(out.dtype()));
  const SoftmaxGeometry g = softmax_geometry(out.shape(), dim, "softmax_backward");
  const Tensor gc = grad_out.contiguous(), yc = out.contiguous();
  Tensor gx = Tensor::empty(out.shape(), out.dtype(), out.device());
  FG_DISPATCH_FLOATING(out.dtype(), "softmax_backward", [&] {
    cpu::softmax_backward(gc.data<scalar_t>(), yc.data<scalar_t>(), gx.data<scalar_t>(), g.outer, g.n, g.inner);
  });
  return gx;
}

}  // namespace fg::kernels
