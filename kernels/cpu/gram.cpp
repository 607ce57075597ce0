// CPU reference for Gram matrices, G[n] = X[n] X[n]^T / (C*H*W), and their backward, in two variants: plain loops
// with double accumulators (the spec) and OpenBLAS (the fast path). Both write (=) their outputs; the backward
// writes the input gradient, it does not accumulate.
#include "kernels/gram.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/loops.h"
#include "tensor/error.h"
#ifdef FG_WITH_CUDA
#include "kernels/backend.h"
#include "kernels/cuda/matmul.h"
#include "kernels/vendor/cublas_matmul.h"
#endif

namespace fg::cpu {

namespace {

// Overloads so the templates below pick sgemm/dgemm and ssyrk/dsyrk from the element type.
void blas_syrk_upper(int n, int k, float alpha, const float* a, float* c) {
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, alpha, a, k, 0.0f, c, n);
}
void blas_syrk_upper(int n, int k, double alpha, const double* a, double* c) {
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, alpha, a, k, 0.0, c, n);
}
// c (m, n) = alpha a (m, k) b (k, n), all row-major and contiguous.
void blas_gemm(int m, int n, int k, float alpha, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, alpha, a, k, b, n, 0.0f, c, n);
}
void blas_gemm(int m, int n, int k, double alpha, const double* a, const double* b, double* c) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, alpha, a, k, b, n, 0.0, c, n);
}

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

// x: (N, C, L) contiguous; g: (N, C, C), written. BLAS computes the upper triangle (half the work of a gemm) and
// the lower one is mirrored, so the result is exactly symmetric.
template <typename T>
void gram_forward_blas(const T* x, T* g, int64_t N, int64_t C, int64_t L) {
  const T alpha = T(1.0 / double(C * L));
  for (int64_t n = 0; n < N; ++n) {
    T* gn = g + n * C * C;
    blas_syrk_upper(int(C), int(L), alpha, x + n * C * L, gn);
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
    blas_gemm(int(C), int(L), int(C), alpha, sym.data(), x + n * C * L, grad_x + n * C * L);
  }
}

}  // namespace fg::cpu

namespace fg::kernels {

namespace {

void check_input(const char* op, const Tensor& x) {
  FG_CHECK(x.defined(), op << ": the input is undefined");
  FG_CHECK(x.dim() == 4, op << ": expected x of shape (N, C, H, W), got " << shape_str(x.shape())
                            << "; reshape it to 4 dimensions first");
  FG_CHECK(x.device().is_cpu(),
           op << ": the CUDA kernel is not built yet; move x to the CPU (tensor.to(Device::cpu()))");
  // BLAS takes int sizes.
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
