// Tensor-level Gram matrices for the style term of the perceptual loss: G = X X^T / (C*H*W) with X = x viewed
// (N, C, H*W). The CPU reference is kernels/cpu/gram.cpp; CUDA tensors go to kernels/cuda/matmul.h (or cuBLAS).
// Variants (the results agree to rounding; bench/bench_loss.cpp times both):
//   BLAS  - the production GEMM (gemm_blas, kernels/cpu/gemm.h: filmgrad's kernels, or OpenBLAS when
//           FG_CPU_GEMM=openblas): row blocks of the upper triangle for the forward (mirrored), one gemm per image
//           for the backward. Production uses it.
//   LOOPS - plain loops with double accumulators, the readable reference the tests compare BLAS against.
#pragma once
#include "tensor/tensor.h"

namespace fg::kernels {

enum class GramVariant { BLAS, LOOPS };

// x: (N, C, H, W), any strides -> (N, C, C), contiguous.
Tensor gram_matrix(const Tensor& x, GramVariant variant = GramVariant::BLAS);
// grad_out: (N, C, C), x: (N, C, H, W) -> (N, C, H, W) = (grad_out + grad_out^T) X / (C*H*W).
Tensor gram_matrix_backward(const Tensor& grad_out, const Tensor& x, GramVariant variant = GramVariant::BLAS);

}  // namespace fg::kernels
