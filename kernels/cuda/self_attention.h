// Hand-written CUDA SAGAN / fastai self-attention with the semantics of kernels/self_attention.h (formulas there; the
// CPU reference is kernels/cpu/self_attention.cpp): the same SelfAttentionForward (out, f, g, h, and beta stored
// j-major) and SelfAttentionGrads (written, not accumulated). kernels/self_attention.h's entry points call these
// for CUDA tensors. Only with FG_WITH_CUDA.
//
// One kernel family. Forward, per call:
//   1. f, g, h in one GEMM: [wq; wk; wv] (2 Ck + C, C) times each image's X (C, N), rows routed to f, g and h;
//   2. scores and softmax fused: a block owns 32 output positions j of one image, computes s[j, i] = sum_c g[c, j]
//      f[c, i] tile by tile from shared memory, keeps an online (max, sum) per row, then recomputes the scores and
//      writes beta = exp(s - max) / sum once (the N x N scores never make a round trip through memory);
//   3. the weighted sum with the gamma residual fused into the GEMM's epilogue: out = gamma (h beta) + x.
// Backward: Q = dO beta^T and D = dO^T h (GEMMs, in f32); dgamma = sum(h Q) (a fixed-order tree) fused with
// dh = gamma Q; the softmax backward with the gamma scale, ds = gamma beta (D - rowsum(beta D)); df = g ds,
// dg = f ds^T; [dWq; dWk; dWv] = sum_b [df; dg; dh] X^T; and dX = dO + [Wq; Wk; Wv]^T [df; dg; dh] as one GEMM with
// the residual gradient in its epilogue. The GEMMs are the shared tiled engine of kernels/cuda/gemm_core.cuh (f32 on
// the FP32 pipes, f16/bf16 on the tensor cores with f32 accumulation, f64 on its naive kernel) with attention
// epilogues defined here; gamma is read on the device, so nothing waits for the host.
//
// Versions (tests compare each with the CPU reference; bench/bench_cuda_attention.cpp times each):
//   ATTENTION_DEFAULT:    the family above on the tiled GEMMs (production).
//   ATTENTION_NAIVE_GEMM: the same steps with every GEMM on the one-thread-per-output kernel (a GPU-side reference).
// f32, f64, f16, bf16; 16-bit intermediates that feed a GEMM (f, g, h, beta, ds, df, dg, dh) are stored in the input
// dtype as the API stores them, the others (Q, D, the per-image weight gradients) in f32.
#pragma once
#include "kernels/cuda/gemm_common.h"
#include "kernels/self_attention.h"

namespace fg::kernels::cuda {

enum class AttentionKernel { ATTENTION_DEFAULT, ATTENTION_NAIVE_GEMM };
const char* attention_kernel_name(AttentionKernel k);  // "default", "naive_gemm"

// x: (B, C, N); wq, wk: (Ck, C); wv: (C, C); gamma: one element. Any strides, one CUDA device, one float dtype.
// `tuning` forces the GEMMs' tile size or split count (tests, benchmarks).
SelfAttentionForward self_attention_forward(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor& wv,
                                            const Tensor& gamma,
                                            AttentionKernel kernel = AttentionKernel::ATTENTION_DEFAULT,
                                            const ::fg::cuda::GemmTuning& tuning = {});
// The same, writing into out.out, out.f, out.g, out.h (contiguous) and out.beta ((B, N, N) stored j-major, i.e.
// out.beta.transpose(1, 2) contiguous), all preallocated in x's dtype on its device.
void self_attention_forward_into(SelfAttentionForward& out, const Tensor& x, const Tensor& wq, const Tensor& wk,
                                 const Tensor& wv, const Tensor& gamma,
                                 AttentionKernel kernel = AttentionKernel::ATTENTION_DEFAULT,
                                 const ::fg::cuda::GemmTuning& tuning = {});

// grad_out: (B, C, N); saved: the forward's f, g, h, beta for the same inputs (any layout; copied when not in the
// forward's). As kernels::self_attention_backward.
SelfAttentionGrads self_attention_backward(const Tensor& grad_out, const Tensor& x, const Tensor& wq, const Tensor& wk,
                                           const Tensor& wv, const Tensor& gamma, const SelfAttentionForward& saved,
                                           AttentionKernel kernel = AttentionKernel::ATTENTION_DEFAULT,
                                           const ::fg::cuda::GemmTuning& tuning = {});
// The same, writing into out.dx, out.dwq, out.dwk, out.dwv, out.dgamma (contiguous, preallocated in their inputs'
// shapes, x's dtype and device).
void self_attention_backward_into(SelfAttentionGrads& out, const Tensor& grad_out, const Tensor& x, const Tensor& wq,
                                  const Tensor& wk, const Tensor& wv, const Tensor& gamma,
                                  const SelfAttentionForward& saved,
                                  AttentionKernel kernel = AttentionKernel::ATTENTION_DEFAULT,
                                  const ::fg::cuda::GemmTuning& tuning = {});

}  // namespace fg::kernels::cuda
