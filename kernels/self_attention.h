// Tensor-level entry points of the SAGAN / fastai self-attention block, forward and backward as single kernels.
// The CPU code is kernels/cpu/self_attention.cpp; CUDA tensors run kernels/cuda/self_attention.h.
//
// With X = x as (B, C, N):
//   f = wq X (B, Ck, N),  g = wk X (B, Ck, N),  h = wv X (B, C, N)
//   s[b, i, j] = sum_c f[b, c, i] g[b, c, j]                     (B, N, N)
//   beta[b, :, j] = softmax over i of s[b, :, j]                  (each column sums to 1)
//   out[b, c, j] = gamma * sum_i h[b, c, i] beta[b, i, j] + X[b, c, j]
//
// CPU versions (same results up to rounding; tests compare them, bench/bench_self_attention.cpp times both):
//   SelfAttentionImpl::BLAS       GEMMs (kernels/cpu/gemm.h) for every product, a row softmax between them (production).
//   SelfAttentionImpl::REFERENCE  plain loops written straight from the formulas: the readable spec.
//
// Memory: the forward keeps f, g, h and beta for the backward, i.e. (2 Ck + C) N + N^2 elements per image.
// beta dominates at large N: for the Dynamic U-Net at 256 px (C = 384, Ck = 48, N = 32 * 32 = 1024, batch 8) that is
// 8 * 1024^2 * 4 B = 32 MiB for beta and 15 MiB for f, g, h in f32. The backward needs one image's worth of
// workspace on top (N^2 + (2 Ck + C) N elements), not a batch's.
#pragma once
#include "tensor/tensor.h"

namespace fg::kernels {

enum class SelfAttentionImpl { BLAS, REFERENCE };

// What the forward produces; everything but `out` is what the backward needs.
// `beta` is indexed as beta[b, i, j] like the formulas above, but stored j-major (beta.stride(1) == 1,
// beta.stride(2) == N): each stored row is one output position's distribution over the N source positions, so the
// softmax and its backward run over contiguous memory. The backward accepts beta in any layout (it copies one that
// is not j-major).
struct SelfAttentionForward {
  Tensor out;   // (B, C, N) contiguous
  Tensor f;     // (B, Ck, N) contiguous
  Tensor g;     // (B, Ck, N) contiguous
  Tensor h;     // (B, C, N) contiguous
  Tensor beta;  // (B, N, N), j-major (see above)
};

// Gradients of a loss with respect to each input, written (not accumulated), each in its input's shape.
struct SelfAttentionGrads {
  Tensor dx;      // (B, C, N)
  Tensor dwq;     // (Ck, C)
  Tensor dwk;     // (Ck, C)
  Tensor dwv;     // (C, C)
  Tensor dgamma;  // gamma's shape (one element)
};

// x: (B, C, N); wq, wk: (Ck, C); wv: (C, C); gamma: one element. Any strides; one floating dtype (f32 or f64
// on the CPU) and one device for all of them. Throws fg::Error naming the shapes when they do not fit.
SelfAttentionForward self_attention_forward(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor& wv,
                                            const Tensor& gamma, SelfAttentionImpl impl = SelfAttentionImpl::BLAS);

// grad_out: (B, C, N), the gradient of the loss with respect to `out`; saved: the forward's f, g, h, beta for the
// same inputs (saved.out is not used and may be undefined).
SelfAttentionGrads self_attention_backward(const Tensor& grad_out, const Tensor& x, const Tensor& wq, const Tensor& wk,
                                           const Tensor& wv, const Tensor& gamma, const SelfAttentionForward& saved,
                                           SelfAttentionImpl impl = SelfAttentionImpl::BLAS);

}  // namespace fg::kernels
