// Hand-written CUDA matrix products (matmul, bmm, linear) and the fused Gram matrix with its backward, with the
// semantics of kernels/matmul.h and kernels/gram.h: results are new contiguous tensors (or written into `out`),
// inputs may be any strided views (transposes and slices are read in place, never copied). kernels/matmul.h's and
// kernels/gram.h's entry points call these for CUDA tensors unless the cuBLAS twin
// (kernels/vendor/cublas_matmul.h) is selected for OpFamily::MATMUL / OpFamily::GRAM. Only with FG_WITH_CUDA.
//
// Versions (tests compare each with the CPU reference; bench/bench_cuda_matmul.cpp times each):
//   MATMUL_DEFAULT:   production: MATMUL_TILED_F32 for f32, MATMUL_WMMA for f16/bf16, MATMUL_NAIVE for f64.
//   MATMUL_NAIVE:     one thread per output element; every float dtype.
//   MATMUL_TILED_F32: shared-memory tiles on the FP32 pipes (128x128 with 8x8 per thread, or 64x64 with 4x4),
//                     split-K when the output is small; f32.
//   MATMUL_WMMA:      the same tiling on the tensor cores (nvcuda::wmma 16x16x16, f32 accumulation); f16, bf16.
// The Gram matrix G[n] = X[n] X[n]^T / (C*H*W) is one fused kernel on the same engines: the scale is applied in
// the epilogue, only tiles on or above the diagonal are computed, and each value is written to (i, j) and (j, i), so
// G is exactly symmetric. Its backward dX = (G' + G'^T) X / (C*H*W) is fused too: the symmetrised gradient is
// formed while loading the tiles. f16/bf16 are multiplied exactly and summed in f32, rounded once on store.
#pragma once
#include "kernels/cuda/gemm_common.h"
#include "tensor/tensor.h"

namespace fg::cuda {

enum class MatmulKernel {
  MATMUL_DEFAULT,
  MATMUL_NAIVE,
  MATMUL_TILED_F32,
  MATMUL_WMMA,
};
const char* matmul_kernel_name(MatmulKernel k);  // "default", "naive", "tiled_f32", "wmma"

// a: (M, K), or (K, M) when trans_a; b: (K, N), or (N, K) when trans_b -> (M, N).
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
              MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT, const GemmTuning& tuning = {});
// a: (B, M, K) or (B, K, M); b: (B, K, N) or (B, N, K) -> (B, M, N).
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
           MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT, const GemmTuning& tuning = {});
// x: (M, IN), w: (OUT, IN), b: (OUT) or undefined -> (M, OUT) = x w^T + b (the bias added in the epilogue).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT,
              const GemmTuning& tuning = {});
// x: (N, C, H, W) -> (N, C, C).
Tensor gram_matrix(const Tensor& x, MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT, const GemmTuning& tuning = {});
// grad_out: (N, C, C), x: (N, C, H, W) -> (N, C, H, W).
Tensor gram_matrix_backward(const Tensor& grad_out, const Tensor& x, MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT,
                            const GemmTuning& tuning = {});

// The same, writing into `out` (contiguous, of the result's shape, dtype and device), so tests can surround the
// output with sentinel bytes.
void matmul_into(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
                 MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT, const GemmTuning& tuning = {});
void bmm_into(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
              MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT, const GemmTuning& tuning = {});
void linear_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                 MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT, const GemmTuning& tuning = {});
void gram_matrix_into(Tensor& out, const Tensor& x, MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT,
                      const GemmTuning& tuning = {});
void gram_matrix_backward_into(Tensor& out, const Tensor& grad_out, const Tensor& x,
                               MatmulKernel kernel = MatmulKernel::MATMUL_DEFAULT, const GemmTuning& tuning = {});

}  // namespace fg::cuda
