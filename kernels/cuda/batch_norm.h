// Hand-written CUDA batch normalisation with the semantics of kernels/batch_norm.h (the CPU reference is
// kernels/cpu/batch_norm.cpp): training statistics with the running-statistics update, evaluation statistics, the
// normalisation, and its backward. kernels/batch_norm.h's entry points call these for CUDA tensors unless the cuDNN
// twin (kernels/vendor/cudnn_batch_norm.h) is selected for OpFamily::BATCH_NORM. Only with FG_WITH_CUDA.
//
// f32, f64, f16 and bf16. Elements are loaded into f32 (f64 for f64); every per-channel sum is carried in f32 only
// over a thread's own few elements and in double from there on (between threads, blocks and splits), and the
// per-channel results (mean, invstd, the gradient coefficients) are formed in double, as the CPU forms them, then
// rounded once to the tensor's dtype. The statistics tensors have x's dtype, as on the CPU.
//
// One kernel family, no alternative versions; BatchNormTuning only forces launch choices so that tests reach
// every path:
//   statistics (Welford): each channel's N*L values are cut into `splits` contiguous ranges, one thread block per
//     (range, channel); a thread keeps a Welford (count, mean, M2) over groups of 1 or 4 values, the block merges
//     its threads' triples in double (Chan et al.), and a finalize kernel merges the splits in a fixed order.
//     Splits are chosen so that about one full wave of blocks runs whatever C is (64 channels at 128x128 would
//     otherwise leave most SMs idle).
//   normalisation / input gradient: one thread per group of 1 or 4 elements (vector loads when L % 4 == 0 and the
//     pointers are aligned), the channel's coefficients read from L1.
//   backward sums (sum dy, sum dy (x - mean)): the same split layout as the statistics.
// No fused ReLU: the CPU reference (kernels/batch_norm.h) has none, and the networks apply ReLU as its own op.
#pragma once
#include "kernels/batch_norm.h"
#include "tensor/tensor.h"

namespace fg::kernels::cuda {

struct BatchNormTuning {
  int splits = 0;         // blocks per channel for the reductions; 0 chooses from the shape and the GPU
  bool vectorize = true;  // false forces the one-element path even where 4-element vectors would work
};

// Training statistics of x (N, C, *), as kernels::batch_norm_batch_stats (running statistics updated in place).
BatchNormStats batch_norm_batch_stats(const Tensor& x, double eps, const Tensor& running_mean,
                                      const Tensor& running_var, double momentum, const BatchNormTuning& tuning = {});
// The same, writing out.mean and out.invstd ((C) contiguous, x's dtype and device), so tests can guard them.
void batch_norm_batch_stats_into(BatchNormStats& out, const Tensor& x, double eps, const Tensor& running_mean,
                                 const Tensor& running_var, double momentum, const BatchNormTuning& tuning = {});

// Evaluation statistics, as kernels::batch_norm_running_stats.
BatchNormStats batch_norm_running_stats(const Tensor& running_mean, const Tensor& running_var, double eps);

// y = (x - mean) * invstd * weight + bias, as kernels::batch_norm_forward.
Tensor batch_norm_forward(const Tensor& x, const BatchNormStats& stats, const Tensor& weight, const Tensor& bias,
                          const BatchNormTuning& tuning = {});
void batch_norm_forward_into(Tensor& y, const Tensor& x, const BatchNormStats& stats, const Tensor& weight,
                             const Tensor& bias, const BatchNormTuning& tuning = {});

// Gradients, as kernels::batch_norm_backward.
BatchNormGrads batch_norm_backward(const Tensor& grad_out, const Tensor& x, const BatchNormStats& stats,
                                   const Tensor& weight, bool training, bool need_input, bool need_weight,
                                   bool need_bias, const BatchNormTuning& tuning = {});
// The same, writing each defined member of `out` (input like x, weight and bias (C); contiguous, x's dtype and
// device); undefined members are not computed.
void batch_norm_backward_into(BatchNormGrads& out, const Tensor& grad_out, const Tensor& x, const BatchNormStats& stats,
                              const Tensor& weight, bool training, const BatchNormTuning& tuning = {});

}  // namespace fg::kernels::cuda
