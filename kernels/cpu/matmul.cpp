// Matrix products on the CPU: the triple-loop reference (gemm_plain) and the production path (gemm_blas,
// gemm_parallel: filmgrad's GEMM of kernels/cpu/gemm.h, or OpenBLAS when FG_CPU_GEMM=openblas), plus the
// Tensor-level entry points of kernels/matmul.h. Outputs are written (=), never accumulated, except where a caller
// passes beta = 1 to the raw GEMMs on purpose.
// Threading (see kernels/matmul.h): each GEMM call runs single-threaded, OpenMP splits the work.
#include "kernels/matmul.h"
#include "kernels/device_check.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <mutex>

#include "kernels/cpu/gemm.h"
#include "tensor/error.h"
#ifdef FG_WITH_CUDA
#include "kernels/backend.h"
#include "kernels/cuda/matmul.h"
#include "kernels/vendor/cublas_matmul.h"
#endif

namespace fg::cpu {

// Products smaller than this many flops run on one thread: forking costs more than it saves.
constexpr double kParallelGemmFlops = 4.0e6;

namespace {

// OpenBLAS's pthread pool would otherwise start one thread per core for every call, on top of the OpenMP
// threads that call it: set it to one thread, once, before the first GEMM.
void ensure_blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

blasint to_blas_int(int64_t v) {
  FG_ASSERT(v >= 0 && v <= INT_MAX, "GEMM dimension " << v << " does not fit OpenBLAS's 32-bit integers");
  return blasint(v);
}

}  // namespace

void gemm_blas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (gemm_backend() == GemmBackend::FILMGRAD) {
    gemm(gemm_isa(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  ensure_blas_single_threaded();
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              to_blas_int(M), to_blas_int(N), to_blas_int(K), alpha, A, to_blas_int(lda), B, to_blas_int(ldb), beta,
              C, to_blas_int(ldc));
}

void gemm_blas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
               int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (gemm_backend() == GemmBackend::FILMGRAD) {
    gemm(gemm_isa(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  ensure_blas_single_threaded();
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              to_blas_int(M), to_blas_int(N), to_blas_int(K), alpha, A, to_blas_int(lda), B, to_blas_int(ldb), beta,
              C, to_blas_int(ldc));
}

template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                   const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads <= 1 || 2.0 * double(M) * double(N) * double(K) < kParallelGemmFlops) {
    gemm_blas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the longer side of C so each block keeps a reasonable GEMM shape; blocks are multiples of 16 so the
  // micro-kernels see full tiles except at the end. With filmgrad's GEMM every element's result is the same however
  // C is split.
  const bool split_rows = M >= N;
  const int64_t extent = split_rows ? M : N;
  int64_t block = (extent + threads - 1) / threads;
  block = std::min(extent, (block + 15) / 16 * 16);
  const int64_t blocks = (extent + block - 1) / block;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t start = i * block;
    const int64_t len = std::min(block, extent - start);
    if (split_rows) {
      const T* a = trans_a ? A + start : A + start * lda;
      gemm_blas(trans_a, trans_b, len, N, K, alpha, a, lda, B, ldb, beta, C + start * ldc, ldc);
    } else {
      const T* b = trans_b ? B + start * ldb : B + start;
      gemm_blas(trans_a, trans_b, M, len, K, alpha, A, lda, b, ldb, beta, C + start, ldc);
    }
  }
}

// A: (M, K) row stride lda, or (K, M) when trans_a; B: (K, N) row stride ldb, or (N, K) when trans_b;
// C: (M, N) row stride ldc. C = alpha * op(A) op(B) + beta * C; C is not read when beta == 0.
template <typename T>
void gemm_plain(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
#pragma omp parallel for if (M * N * K > 65536) schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      T acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const T a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const T b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      T& c = C[i * ldc + j];
      c = beta == T(0) ? alpha * acc : alpha * acc + beta * c;
    }
  }
}

template void gemm_parallel<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                   const float*, int64_t, float, float*, int64_t);
template void gemm_parallel<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                    const double*, int64_t, double, double*, int64_t);
template void gemm_plain<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                int64_t, float, float*, int64_t);
template void gemm_plain<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                 const double*, int64_t, double, double*, int64_t);

}  // namespace fg::cpu

namespace fg::kernels {

namespace {

// How one stored matrix (the last two dims of a tensor) is handed to a row-major GEMM without copying: a
// unit-stride row layout is passed as is; a unit-stride column layout (a transposed view) is passed as the
// transpose of a row-major matrix. `holder` owns a contiguous copy when neither layout applies.
struct GemmOperand {
  Tensor holder;
  bool trans = false;       // the flag to give the GEMM (the caller's flag, flipped for a column layout)
  int64_t ld = 1;           // row stride of the row-major matrix the GEMM reads
  int64_t batch_stride = 0;  // elements between consecutive matrices (3-D tensors)
};

GemmOperand gemm_operand(const Tensor& t, bool trans) {
  const int64_t rows = t.size(-2), cols = t.size(-1);
  const int64_t rs = t.stride(-2), cs = t.stride(-1);
  GemmOperand op;
  op.holder = t;
  op.trans = trans;
  // A size-1 dim's stride is meaningless; only a valid leading dimension (>= the row length) matters.
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= std::max<int64_t>(1, cols))) {
    op.ld = rows == 1 ? std::max<int64_t>(1, cols) : rs;
  } else if ((rs == 1 || rows == 1) && (cols == 1 || cs >= std::max<int64_t>(1, rows))) {
    op.trans = !trans;
    op.ld = cols == 1 ? std::max<int64_t>(1, rows) : cs;
  } else {
    op.holder = t.contiguous();
    op.ld = std::max<int64_t>(1, cols);
  }
  op.batch_stride = op.holder.dim() == 3 ? op.holder.stride(0) : 0;
  return op;
}

void check_operands(const char* op, const Tensor& a, const Tensor& b, int64_t dims) {
  FG_CHECK(a.defined() && b.defined(), op << ": an operand is undefined");
  FG_CHECK(a.dim() == dims && b.dim() == dims, op << ": expects " << dims << "-D operands, got a " << shape_str(a.shape())
                                                  << " and b " << shape_str(b.shape()));
  FG_CHECK(a.dtype() == b.dtype(), op << ": a is " << dtype_name(a.dtype()) << " but b is " << dtype_name(b.dtype())
                                      << "; cast both to the same dtype");
  FG_CHECK(a.device() == b.device(), op << ": a is on " << a.device().str() << " but b is on " << b.device().str());
  require_cpu(a, op, "a");
}

template <typename T>
void run_gemm(MatmulAlgo algo, bool parallel, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A,
              int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (algo == MatmulAlgo::PLAIN) {
    cpu::gemm_plain<T>(ta, tb, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
  } else if (parallel) {
    cpu::gemm_parallel<T>(ta, tb, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
  } else {
    cpu::gemm_blas(ta, tb, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
  }
}

// out: (batch, M, N) = op(A_i) op(B_i) for every matrix i of the batch, written.
template <typename T>
void bmm_batches(MatmulAlgo algo, int64_t batch, int64_t M, int64_t N, int64_t K, const GemmOperand& A,
                 const GemmOperand& B, T* out) {
  const T* pa = A.holder.data<T>();
  const T* pb = B.holder.data<T>();
  // Enough matrices to go round: one whole GEMM per thread. Otherwise split each product instead.
  const double flops = 2.0 * double(batch) * double(M) * double(N) * double(K);
  if (algo == MatmulAlgo::BLAS && batch >= omp_get_max_threads() && flops >= cpu::kParallelGemmFlops) {
#pragma omp parallel for schedule(dynamic)
    for (int64_t i = 0; i < batch; ++i)
      run_gemm<T>(algo, false, A.trans, B.trans, M, N, K, pa + i * A.batch_stride, A.ld, pb + i * B.batch_stride,
                  B.ld, T(0), out + i * M * N, N);
  } else {
    for (int64_t i = 0; i < batch; ++i)
      run_gemm<T>(algo, true, A.trans, B.trans, M, N, K, pa + i * A.batch_stride, A.ld, pb + i * B.batch_stride,
                  B.ld, T(0), out + i * M * N, N);
  }
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, MatmulAlgo algo) {
#ifdef FG_WITH_CUDA
  if (a.defined() && a.device().is_cuda())
    return use_vendor(OpFamily::MATMUL) ? vendor::matmul(a, b, trans_a, trans_b) : cuda::matmul(a, b, trans_a, trans_b);
#endif
  check_operands("matmul", a, b, 2);
  const int64_t M = trans_a ? a.size(1) : a.size(0), Ka = trans_a ? a.size(0) : a.size(1);
  const int64_t Kb = trans_b ? b.size(1) : b.size(0), N = trans_b ? b.size(0) : b.size(1);
  FG_CHECK(Ka == Kb, "matmul: a " << shape_str(a.shape()) << (trans_a ? " (transposed)" : "") << " and b "
                                  << shape_str(b.shape()) << (trans_b ? " (transposed)" : "")
                                  << " have different inner dimensions " << Ka << " and " << Kb);
  // Zeroed only when no product will write it (an empty inner dimension).
  Tensor out = Ka == 0 ? Tensor::zeros({M, N}, a.dtype()) : Tensor::empty({M, N}, a.dtype());
  if (M == 0 || N == 0 || Ka == 0) return out;
  const GemmOperand A = gemm_operand(a, trans_a), B = gemm_operand(b, trans_b);
  FG_DISPATCH_FLOATING(a.dtype(), "matmul", [&] {
    run_gemm<scalar_t>(algo, true, A.trans, B.trans, M, N, Ka, A.holder.data<scalar_t>(), A.ld,
                       B.holder.data<scalar_t>(), B.ld, scalar_t(0), out.data<scalar_t>(), N);
  });
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, MatmulAlgo algo) {
#ifdef FG_WITH_CUDA
  if (a.defined() && a.device().is_cuda())
    return use_vendor(OpFamily::MATMUL) ? vendor::bmm(a, b, trans_a, trans_b) : cuda::bmm(a, b, trans_a, trans_b);
#endif
  check_operands("bmm", a, b, 3);
  FG_CHECK(a.size(0) == b.size(0), "bmm: batch sizes differ: a " << shape_str(a.shape()) << ", b "
                                                                  << shape_str(b.shape()));
  const int64_t batch = a.size(0);
  const int64_t M = trans_a ? a.size(2) : a.size(1), Ka = trans_a ? a.size(1) : a.size(2);
  const int64_t Kb = trans_b ? b.size(2) : b.size(1), N = trans_b ? b.size(1) : b.size(2);
  FG_CHECK(Ka == Kb, "bmm: a " << shape_str(a.shape()) << (trans_a ? " (transposed)" : "") << " and b "
                               << shape_str(b.shape()) << (trans_b ? " (transposed)" : "")
                               << " have different inner dimensions " << Ka << " and " << Kb);
  Tensor out = Ka == 0 ? Tensor::zeros({batch, M, N}, a.dtype()) : Tensor::empty({batch, M, N}, a.dtype());
  if (batch == 0 || M == 0 || N == 0 || Ka == 0) return out;
  const GemmOperand A = gemm_operand(a, trans_a), B = gemm_operand(b, trans_b);
  FG_DISPATCH_FLOATING(a.dtype(), "bmm", [&] {
    bmm_batches<scalar_t>(algo, batch, M, N, Ka, A, B, out.data<scalar_t>());
  });
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, MatmulAlgo algo) {
#ifdef FG_WITH_CUDA
  if (x.defined() && x.device().is_cuda())
    return use_vendor(OpFamily::MATMUL) ? vendor::linear(x, w, b) : cuda::linear(x, w, b);
#endif
  check_operands("linear", x, w, 2);
  const int64_t M = x.size(0), in = x.size(1), out_features = w.size(0);
  FG_CHECK(w.size(1) == in, "linear: x " << shape_str(x.shape()) << " has " << in << " features but w "
                                         << shape_str(w.shape()) << " expects " << w.size(1));
  if (b.defined()) {
    FG_CHECK(b.dim() == 1 && b.size(0) == out_features,
             "linear: bias " << shape_str(b.shape()) << " should be (" << out_features << ")");
    FG_CHECK(b.dtype() == x.dtype(), "linear: bias is " << dtype_name(b.dtype()) << " but x is "
                                                         << dtype_name(x.dtype()));
    FG_CHECK(b.device() == x.device(), "linear: bias is on " << b.device().str() << " but x is on "
                                                              << x.device().str());
  }
  Tensor out = Tensor::empty({M, out_features}, x.dtype());
  FG_DISPATCH_FLOATING(x.dtype(), "linear", [&] {
    scalar_t* y = out.data<scalar_t>();
    // The bias is written first and the product accumulated onto it (beta = 1): no second pass over y.
    scalar_t beta = scalar_t(0);
    if (b.defined()) {
      const Tensor bc = b.contiguous();
      const scalar_t* pb = bc.data<scalar_t>();
      for (int64_t i = 0; i < M; ++i) std::copy(pb, pb + out_features, y + i * out_features);
      beta = scalar_t(1);
    } else if (in == 0) {
      std::fill(y, y + M * out_features, scalar_t(0));
    }
    if (M == 0 || out_features == 0 || in == 0) return;
    const GemmOperand X = gemm_operand(x, false), W = gemm_operand(w, true);
    run_gemm<scalar_t>(algo, true, X.trans, W.trans, M, out_features, in, X.holder.data<scalar_t>(), X.ld,
                       W.holder.data<scalar_t>(), W.ld, beta, y, out_features);
  });
  return out;
}

}  // namespace fg::kernels
