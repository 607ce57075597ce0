// Matrix products: matmul (M, K) x (K, N), batched matmul and linear (x w^T + b), with transposes as flags.
// Two versions of each, selected by MatmulAlgo so tests and benchmarks can run both:
//   PLAIN: a triple loop over raw pointers (kernels/cpu/matmul.cpp), the readable spec;
//   BLAS:  the production GEMM, parallelised by OpenMP: filmgrad's own kernels (kernels/cpu/gemm.h, picked from
//          the CPU's features) or, with FG_CPU_GEMM=openblas, OpenBLAS sgemm/dgemm, the twin.
// Threading: every GEMM call is single-threaded (for OpenBLAS: openblas_set_num_threads(1), set once on first
// use); all parallelism comes from OpenMP, which splits one product into row or column blocks, or spreads the
// matrices of a batch over the threads. Two thread pools (OpenBLAS's pthreads and OpenMP's) never run at once,
// so OMP_NUM_THREADS alone sets how many cores the engine uses and nothing is oversubscribed. With filmgrad's
// GEMM the split changes no bit of the result (kernels/cpu/gemm.h).
// Operands may be strided views: a matrix whose rows or whose columns are unit-stride is passed to BLAS as it is
// (a transposed view just flips the transpose flag); anything else is copied to a contiguous buffer first.
// Results are new contiguous tensors. CUDA tensors go to kernels/cuda/matmul.h (or cuBLAS, kernels/backend.h).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fg::kernels {

enum class MatmulAlgo {
  PLAIN,  // triple loop, the reference
  BLAS,   // the production GEMM (filmgrad's kernels or OpenBLAS, FG_CPU_GEMM), OpenMP-parallel
};

// a: (M, K), or (K, M) when trans_a; b: (K, N), or (N, K) when trans_b -> (M, N).
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
              MatmulAlgo algo = MatmulAlgo::BLAS);
// a: (B, M, K), or (B, K, M) when trans_a; b: (B, K, N), or (B, N, K) when trans_b -> (B, M, N).
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
           MatmulAlgo algo = MatmulAlgo::BLAS);
// x: (M, IN), w: (OUT, IN), b: (OUT) or undefined -> (M, OUT) = x w^T + b.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, MatmulAlgo algo = MatmulAlgo::BLAS);

}  // namespace fg::kernels

namespace fg::cpu {

// Row-major GEMM on raw pointers, shared by the matmul and conv2d kernels:
//   C (M, N) = alpha * op(A) op(B) + beta * C, op(A) = A (M, K) with row stride lda, or A^T with A stored (K, M).
// gemm_blas: one single-threaded call of the production GEMM (safe to call from inside an OpenMP parallel region):
// fg::cpu::gemm with the selected kernels, or OpenBLAS when FG_CPU_GEMM=openblas (kernels/cpu/gemm.h).
void gemm_blas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm_blas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
               int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);
// gemm_parallel: the same product split into row (or column) blocks of C over the OpenMP threads; runs as one
// call when already inside a parallel region or when the product is too small to pay for the threads.
template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                   const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
// gemm_plain: the triple loop, same contract as gemm_blas.
template <typename T>
void gemm_plain(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace fg::cpu
