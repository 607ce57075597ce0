// The cuBLAS twins of the CUDA matmul, bmm, linear and Gram matrix, selectable at run time (kernels/backend.h,
// OpFamily::MATMUL and OpFamily::GRAM). Same semantics as kernels/matmul.h and kernels/gram.h; f32, f64, f16,
// bf16 on one CUDA device.
//
// How cuBLAS is driven: one handle per device bound to fg::cuda::stream(device); every product is one
// cublasGemmStridedBatchedEx on the row-major operands read as column-major transposes (C^T = B^T A^T), with
// f32 accumulation (CUBLAS_COMPUTE_32F: true f32, no TF32, for f32; tensor cores for f16/bf16) or f64 for f64.
// A view with a unit stride in either of its last two dims is passed as it is (a transposed view flips the
// transpose flag); anything else is copied to a contiguous tensor first. linear adds its bias as a rank-1 product
// (ones (M, 1) x b (1, OUT), beta = 1). The Gram matrix is one batched X X^T with alpha = 1/(C*H*W); its backward
// is two batched products (alpha G X, then + alpha G^T X), so for f16/bf16 the sum is rounded twice. Only in
// builds with FG_WITH_CUDA.
#pragma once
#include "tensor/tensor.h"

namespace fg::vendor {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
Tensor gram_matrix(const Tensor& x);
Tensor gram_matrix_backward(const Tensor& grad_out, const Tensor& x);

// The same, writing into `out` (contiguous, of the result's shape, dtype and device).
void matmul_into(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
void bmm_into(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
void linear_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b);
void gram_matrix_into(Tensor& out, const Tensor& x);
void gram_matrix_backward_into(Tensor& out, const Tensor& grad_out, const Tensor& x);

}  // namespace fg::vendor
