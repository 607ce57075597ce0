// The non-GEMM steps of the CUDA self-attention (kernels/cuda/self_attention.h), as host launchers on raw device
// pointers. They live in their own translation unit (kernels/cuda/self_attention_steps.cu) because they are written
// with kernels/cuda/common.cuh, while the GEMM steps use kernels/cuda/gemm_core.cuh, and the two headers each define
// the element conversions in fg::cuda. Internal to the self-attention; every launch goes to `stream` and is checked.
// Explicitly instantiated for T = float, double, half_t, bf16_t; Wide<T> is f32 (f64 for f64), the type of the f32
// intermediates (Q, D, the per-image weight gradients).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "tensor/dtype.h"

namespace fg::kernels::cuda::attention_steps {

template <typename T>
struct WideOf {
  using type = float;
};
template <>
struct WideOf<double> {
  using type = double;
};
template <typename T>
using Wide = typename WideOf<T>::type;

// f, g: (B, Ck, N) contiguous -> bt: (B, N, N) contiguous, bt[b, j, :] = softmax over i of sum_c g[b, c, j] f[b, c, i].
template <typename T>
void scores_softmax(const T* f, const T* g, T* bt, int64_t B, int64_t Ck, int64_t N, cudaStream_t stream);

// bt: (rows, N) E; d: (rows, N) Wide -> ds: (rows, N) = gamma[0] * bt * (d - rowsum(bt * d)).
template <typename T>
void softmax_backward(const T* bt, const Wide<T>* d, const T* gamma, T* ds, int64_t rows, int64_t N,
                      cudaStream_t stream);

// h: (B, C, N) T; q: (B, C, N) Wide. Writes dh = gamma[0] * q into rows [row_offset, row_offset + C) of each image of
// dy_all (B, rows_all, N), and dgamma[0] = sum(h * q) in a fixed order (T). workspace: at least
// gamma_workspace_doubles(B * C * N) doubles.
int64_t gamma_workspace_doubles(int64_t total);
template <typename T>
void gamma_and_dh(const T* h, const Wide<T>* q, const T* gamma, int64_t B, int64_t C, int64_t N, T* dy_all,
                  int64_t rows_all, int64_t row_offset, T* dgamma, double* workspace, cudaStream_t stream);

// per_image: (B, Mo, C) Wide, Mo = 2 Ck + C -> dwq = sum_b rows [0, Ck), dwk = rows [Ck, 2 Ck), dwv = rows [2 Ck, Mo),
// each contiguous, summed over b in double in order and rounded once to T.
template <typename T>
void weight_grads(const Wide<T>* per_image, int64_t B, int64_t Ck, int64_t C, T* dwq, T* dwk, T* dwv,
                  cudaStream_t stream);

}  // namespace fg::kernels::cuda::attention_steps
