// CPU reference for Gram matrices, G[n] = X[n] X[n]^T / (C*H*W), and their backward, in two variants: plain loops
// with double accumulators (the spec) and the production GEMM (the fast path: gemm_blas of kernels/matmul.h,
// filmgrad's kernels or OpenBLAS per FG_CPU_GEMM). Both write (=) their outputs; the backward writes the input
// gradient, it does not accumulate.
#include "kernels/gram.h"
#include "kernels/device_check.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/loops.h"
#include "kernels/matmul.h"
#include "tensor/error.h"
#ifdef FG_WITH_CUDA
#include "kernels/backend.h"
#include "kernels/cuda/matmul.h"
#include "kernels/vendor/cublas_matmul.h"
#endif

namespace fg::cpu {

namespace {

// Rows of G per GEMM call in the forward: the upper triangle is covered by row blocks that start on the diagonal,
// so about half of the full product is computed, in calls big enough for the micro-kernels.
constexpr int64_t kGramRowBlock = 96;

}  // namespace

// x: (N, C, L) contiguous, L = H*W; g: (N, C, C), written. g[n][i][j] = sum_k x[n][i][k] x[n][j][k] / (C*L).
template <typename T>
void gram_forward_loops(const T* x, T* g, int64_t N, int64_t C, int64_t L) {
  const double inv = 1.0 / double(C * L);
#pragma omp parallel for collapse(2) schedule(dynamic) if (N * C * C * L > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t i = 0; i < C; ++i) {
      const T* xi = x + (n * C + i) * L;
      T* gn = g + n * C * C;
      for (int64_t j = i; j < C; ++j) {
        const T* xj = x + (n * C + j) * L;
        double s = 0.0;
        for (int64_t k = 0; k < L; ++k) s += double(xi[k]) * double(xj[k]);
        gn[i * C + j] = gn[j * C + i] = T(s * inv);
      }
    }
  }
}

// x: (N, C, L) contiguous; g: (N, C, C), written. Row block [i0, i1) computes G[i0:i1, i0:C] = X[i0:i1] X[i0:]^T
// (the upper triangle and the rest of the block's diagonal square), unscaled, so g[i][j] and g[j][i] are the same
// products summed in the same order; then the blocks are scaled and the lower triangle is mirrored from the upper.
// Each (image, row block) is one single-threaded GEMM, spread over the OpenMP threads.
template <typename T>
void gram_forward_blas(const T* x, T* g, int64_t N, int64_t C, int64_t L) {
  const T alpha = T(1.0 / double(C * L));
  const int64_t blocks = (C + kGramRowBlock - 1) / kGramRowBlock;
#pragma omp parallel for collapse(2) schedule(dynamic) if (N * C * C * L > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t i0 = blk * kGramRowBlock, rows = std::min(kGramRowBlock, C - i0);
      const T* xn = x + n * C * L;
      T* gn = g + n * C * C;
      gemm_blas(false, true, rows, C - i0, L, T(1), xn + i0 * L, L, xn + i0 * L, L, T(0), gn + i0 * C + i0, C);
      for (int64_t i = i0; i < i0 + rows; ++i)
        for (int64_t j = i; j < C; ++j) gn[i * C + j] *= alpha;
    }
  }
#pragma omp parallel for schedule(static) if (N * C * C > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    T* gn = g + n * C * C;
    for (int64_t i = 1; i < C; ++i)
      for (int64_t j = 0; j < i; ++j) gn[i * C + j] = gn[j * C + i];
  }
}

// grad_g: (N, C, C) contiguous, x: (N, C, L) contiguous; grad_x: (N, C, L), written.
// grad_x[n] = (grad_g[n] + grad_g[n]^T) x[n] / (C*L).
template <typename T>
void gram_backward_loops(const T* grad_g, const T* x, T* grad_x, int64_t N, int64_t C, int64_t L) {
  const double inv = 1.0 / double(C * L);
#pragma omp parallel if (N * C * C * L > kParallelGrain)
  {
    std::vector<double> acc(static_cast<size_t>(L));
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t c = 0; c < C; ++c) {
        const T* gg = grad_g + n * C * C;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < C; ++j) {
          const double s = double(gg[c * C + j]) + double(gg[j * C + c]);
          const T* xj = x + (n * C + j) * L;
          for (int64_t k = 0; k < L; ++k) acc[size_t(k)] += s * double(xj[k]);
        }
        T* out = grad_x + (n * C + c) * L;
        for (int64_t k = 0; k < L; ++k) out[k] = T(acc[size_t(k)] * inv);
      }
    }
  }
}

// Same contract as gram_backward_loops: symmetrise grad_g into a (C, C) scratch, then one gemm per image.
template <typename T>
void gram_backward_blas(const T* grad_g, const T* x, T* grad_x, int64_t N, int64_t C, int64_t L) {
  const T alpha = T(1.0 / double(C * L));
  std::vector<T> sym(static_cast<size_t>(C * C));
  for (int64_t n = 0; n < N; ++n) {
    const T* gg = grad_g + n * C * C;
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < C; ++j) sym[size_t(i * C + j)] = gg[i * C + j] + gg[j * C + i];
    gemm_parallel<T>(false, false, C, L, C, alpha, sym.data(), C, x + n * C * L, L, T(0), grad_x + n * C * L, L);
  }
}

}  // namespace fg::cpu

namespace fg::kernels {

namespace {

void check_input(const char* op, const Tensor& x) {
  FG_CHECK(x.defined(), op << ": the input is undefined");
  FG_CHECK(x.dim() == 4, op << ": expected x of shape (N, C, H, W), got " << shape_str(x.shape())
                            << "; reshape it to 4 dimensions first");
  require_cpu(x, op, "x");
  // OpenBLAS, the GEMM twin, takes int sizes.
  FG_CHECK(x.size(1) <= INT32_MAX && x.size(2) * x.size(3) <= INT32_MAX,
           op << ": x of shape " << shape_str(x.shape()) << " is too large for one BLAS call");
}

}  // namespace

Tensor gram_matrix(const Tensor& x, GramVariant variant) {
#ifdef FG_WITH_CUDA
  if (x.defined() && x.device().is_cuda())
    return use_vendor(OpFamily::GRAM) ? vendor::gram_matrix(x) : cuda::gram_matrix(x);
#endif
  check_input("gram_matrix", x);
  const Tensor xc = x.contiguous();
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) * x.size(3);
  // Zero-filled: when H*W = 0 the Gram matrix is 0/0 in PyTorch (NaN) but BLAS would leave it untouched.
  Tensor g = Tensor::zeros({N, C, C}, x.dtype());
  if (g.numel() == 0) return g;
  if (L == 0) {
    g.fill_(std::nan(""));
    return g;
  }
  FG_DISPATCH_FLOATING(x.dtype(), "gram_matrix", [&] {
    if (variant == GramVariant::BLAS)
      cpu::gram_forward_blas(xc.data<scalar_t>(), g.data<scalar_t>(), N, C, L);
    else
      cpu::gram_forward_loops(xc.data<scalar_t>(), g.data<scalar_t>(), N, C, L);
  });
  return g;
}

Tensor gram_matrix_backward(const Tensor& grad_out, const Tensor& x, GramVariant variant) {
#ifdef FG_WITH_CUDA
  if (x.defined() && x.device().is_cuda())
    return use_vendor(OpFamily::GRAM) ? vendor::gram_matrix_backward(grad_out, x)
                                      : cuda::gram_matrix_backward(grad_out, x);
#endif
  check_input("gram_matrix_backward", x);
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) * x.size(3);
  FG_CHECK(grad_out.defined() && grad_out.shape() == Shape({N, C, C}),
           "gram_matrix_backward: expected a gradient of shape " << shape_str({N, C, C}) << " for x of shape "
                                                                 << shape_str(x.shape()) << ", got "
                                                                 << shape_str(grad_out.shape()));
  FG_CHECK(grad_out.dtype() == x.dtype(), "gram_matrix_backward: the gradient is "
                                              << dtype_name(grad_out.dtype()) << " but x is " << dtype_name(x.dtype())
                                              << "; they must match");
  FG_CHECK(grad_out.device() == x.device(), "gram_matrix_backward: the gradient is on "
                                                << grad_out.device().str() << " but x is on " << x.device().str());
  const Tensor xc = x.contiguous(), gc = grad_out.contiguous();
  Tensor grad_x = Tensor::empty(x.shape(), x.dtype());
  if (grad_x.numel() == 0) return grad_x;
  FG_DISPATCH_FLOATING(x.dtype(), "gram_matrix_backward", [&] {
    if (variant == GramVariant::BLAS)
      cpu::gram_backward_blas(gc.data<scalar_t>(), xc.data<scalar_t>(), grad_x.data<scalar_t>(), N, C, L);
    else
      cpu::gram_backward_loops(gc.data<scalar_t>(), xc.data<scalar_t>(), grad_x.data<scalar_t>(), N, C, L);
  });
  return grad_x;
}

}  // namespace fg::kernels
