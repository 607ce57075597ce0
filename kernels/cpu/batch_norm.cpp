// CPU reference for batch normalisation (kernels/batch_norm.h). x is viewed as (N, C, L) with L the product of
// the dims after C. Statistics and gradients are written (=), never accumulated; running statistics are updated
// in place. Per-channel sums accumulate in double whatever the element type.
#include "kernels/batch_norm.h"

#include <cmath>
#include <string>

#include "kernels/cpu/loops.h"
#include "kernels/device_check.h"
#include "tensor/overlap.h"
#ifdef FG_WITH_CUDA
#include "kernels/backend.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/vendor/cudnn_batch_norm.h"
#endif

namespace fg::cpu {

// x: (N, C, L) contiguous.
// mean, invstd: (C) written (=).
// running_mean, running_var: (C) with the given element strides, updated in place; null to skip.
template <typename T>
void batch_norm_stats(const T* x, int64_t N, int64_t C, int64_t L, double eps, T* mean, T* invstd, T* running_mean,
                      int64_t running_mean_stride, T* running_var, int64_t running_var_stride, double momentum) {
  const int64_t count = N * L;
#pragma omp parallel for if (N * C * L > kParallelGrain) schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = x + (n * C + c) * L;
      for (int64_t l = 0; l < L; ++l) sum += double(row[l]);
    }
    // PyTorch rounds the mean to the element type before the second pass; doing the same keeps the variance
    // bit-compatible with the mean that the normalisation then uses.
    const T mean_t = T(sum / double(count));
    const double m = double(mean_t);
    double squares = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = x + (n * C + c) * L;
      for (int64_t l = 0; l < L; ++l) {
        const double d = double(row[l]) - m;
        squares += d * d;
      }
    }
    mean[c] = mean_t;
    invstd[c] = T(1.0 / std::sqrt(squares / double(count) + eps));
    if (running_mean) {
      T& r = running_mean[c * running_mean_stride];
      r = T(momentum * m + (1.0 - momentum) * double(r));
    }
    if (running_var) {
      T& r = running_var[c * running_var_stride];
      r = T(momentum * (squares / double(count - 1)) + (1.0 - momentum) * double(r));
    }
  }
}

// running_mean, running_var: (C) with the given element strides.
// mean, invstd: (C) written (=).
template <typename T>
void batch_norm_running_stats(const T* running_mean, int64_t running_mean_stride, const T* running_var,
                              int64_t running_var_stride, int64_t C, double eps, T* mean, T* invstd) {
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = running_mean[c * running_mean_stride];
    invstd[c] = T(1.0 / std::sqrt(double(running_var[c * running_var_stride]) + eps));
  }
}

// x: (N, C, L) contiguous; mean, invstd: (C); weight, bias: (C) or null (1 and 0).
// y: (N, C, L) written (=).
template <typename T>
void batch_norm_forward(const T* x, int64_t N, int64_t C, int64_t L, const T* mean, const T* invstd, const T* weight,
                        const T* bias, T* y) {
  // y = x * scale + shift, the same factoring PyTorch uses, with scale and shift formed in double.
#pragma omp parallel for if (N * C * L > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < N * C; ++plane) {
    const int64_t c = plane % C;
    const double scale = double(invstd[c]) * (weight ? double(weight[c]) : 1.0);
    const double shift = (bias ? double(bias[c]) : 0.0) - double(mean[c]) * scale;
    const T* xp = x + plane * L;
    T* yp = y + plane * L;
    for (int64_t l = 0; l < L; ++l) yp[l] = T(double(xp[l]) * scale + shift);
  }
}

// grad_out, x: (N, C, L) contiguous; mean, invstd: (C) (the batch statistics when training, else the running
// ones); weight: (C) or null (1).
// grad_input: (N, C, L) written (=), or null to skip. grad_weight, grad_bias: (C) written (=), or null to skip.
template <typename T>
void batch_norm_backward(const T* grad_out, const T* x, int64_t N, int64_t C, int64_t L, const T* mean, const T* invstd,
                         const T* weight, bool training, T* grad_input, T* grad_weight, T* grad_bias) {
  const double count = double(N * L);
#pragma omp parallel for if (N * C * L > kParallelGrain) schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double m = double(mean[c]);
    const double is = double(invstd[c]);
    // sum(dy) and sum(dy * (x - mean)) over the channel give the bias and weight gradients, and are the two
    // terms through which the batch statistics pass the gradient back when training.
    double sum_dy = 0.0;
    double sum_dy_xmu = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const T* dy = grad_out + (n * C + c) * L;
      const T* xp = x + (n * C + c) * L;
      for (int64_t l = 0; l < L; ++l) {
        sum_dy += double(dy[l]);
        sum_dy_xmu += double(dy[l]) * (double(xp[l]) - m);
      }
    }
    if (grad_weight) grad_weight[c] = T(sum_dy_xmu * is);
    if (grad_bias) grad_bias[c] = T(sum_dy);
    if (!grad_input) continue;
    const double w = weight ? double(weight[c]) : 1.0;
    if (training) {
      // dx = w * invstd * (dy - mean(dy) - (x - mean) * invstd^2 * mean(dy * (x - mean)))
      const double mean_dy = sum_dy / count;
      const double k = sum_dy_xmu * is * is / count;
      for (int64_t n = 0; n < N; ++n) {
        const T* dy = grad_out + (n * C + c) * L;
        const T* xp = x + (n * C + c) * L;
        T* dx = grad_input + (n * C + c) * L;
        for (int64_t l = 0; l < L; ++l) {
          dx[l] = T((double(dy[l]) - mean_dy - (double(xp[l]) - m) * k) * is * w);
        }
      }
    } else {
      const double scale = is * w;
      for (int64_t n = 0; n < N; ++n) {
        const T* dy = grad_out + (n * C + c) * L;
        T* dx = grad_input + (n * C + c) * L;
        for (int64_t l = 0; l < L; ++l) dx[l] = T(double(dy[l]) * scale);
      }
    }
  }
}

}  // namespace fg::cpu

namespace fg::kernels {
namespace {

struct NCL {
  int64_t N, C, L;
};

NCL check_input(const Tensor& x, const char* op) {
  FG_CHECK(x.defined(), op << ": the input is undefined");
  FG_CHECK(x.dim() >= 2, op << ": expected x of shape (N, C) or (N, C, ...), got " << shape_str(x.shape()));
  require_cpu(x, op);
  int64_t L = 1;
  for (int64_t d = 2; d < x.dim(); ++d) L *= x.size(d);
  return {x.size(0), x.size(1), L};
}

// A per-channel vector: (C), same dtype and device as x. Undefined is allowed when `optional`.
void check_channel_vector(const Tensor& t, const Tensor& x, const char* op, const char* name) {
  if (!t.defined()) return;
  FG_CHECK(t.dim() == 1 && t.size(0) == x.size(1), op << ": " << name << " must have shape (" << x.size(1)
                                                      << ") to match x " << shape_str(x.shape()) << ", got "
                                                      << shape_str(t.shape()));
  FG_CHECK(t.dtype() == x.dtype(), op << ": " << name << " has dtype " << dtype_name(t.dtype()) << " but x has "
                                      << dtype_name(x.dtype()) << "; cast them to the same dtype");
  require_cpu(t, op);
}

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

BatchNormStats batch_norm_batch_stats(const Tensor& x, double eps, const Tensor& running_mean,
                                      const Tensor& running_var, double momentum) {
#ifdef FG_WITH_CUDA
  // cuDNN has no statistics-only call, so both backend selections use the hand-written kernel here.
  if (x.defined() && x.device().is_cuda())
    return cuda::batch_norm_batch_stats(x, eps, running_mean, running_var, momentum);
#endif
  const char* op = "batch_norm";
  const NCL s = check_input(x, op);
  check_channel_vector(running_mean, x, op, "running_mean");
  check_channel_vector(running_var, x, op, "running_var");
  FG_CHECK(s.N * s.L > 1, op << ": Expected more than 1 value per channel when training, got input size "
                             << shape_str(x.shape()) << "; use a larger batch or eval mode");
  // tensor/overlap.h, as the CUDA kernel: the running statistics are updated in place while x is read.
  check_outputs_separate({&running_mean, &running_var}, {&x}, op);
  const Tensor xc = x.contiguous();
  BatchNormStats out{Tensor::empty({s.C}, x.dtype()), Tensor::empty({s.C}, x.dtype())};
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::batch_norm_stats<scalar_t>(xc.data<scalar_t>(), s.N, s.C, s.L, eps, out.mean.data<scalar_t>(),
                                    out.invstd.data<scalar_t>(),
                                    running_mean.defined() ? running_mean.data<scalar_t>() : nullptr,
                                    running_mean.defined() ? running_mean.stride(0) : 0,
                                    running_var.defined() ? running_var.data<scalar_t>() : nullptr,
                                    running_var.defined() ? running_var.stride(0) : 0, momentum);
  });
  return out;
}

BatchNormStats batch_norm_running_stats(const Tensor& running_mean, const Tensor& running_var, double eps) {
#ifdef FG_WITH_CUDA
  if (running_mean.defined() && running_mean.device().is_cuda())
    return cuda::batch_norm_running_stats(running_mean, running_var, eps);
#endif
  const char* op = "batch_norm";
  FG_CHECK(running_mean.defined() && running_var.defined(),
           op << ": eval mode needs running_mean and running_var; pass them, or use training mode");
  FG_CHECK(running_mean.dim() == 1 && running_var.shape() == running_mean.shape(),
           op << ": running_mean " << shape_str(running_mean.shape()) << " and running_var "
              << shape_str(running_var.shape()) << " must both have shape (C)");
  FG_CHECK(running_mean.dtype() == running_var.dtype(), op << ": running_mean and running_var must share a dtype");
  require_cpu(running_mean, op);
  require_cpu(running_var, op);
  const int64_t C = running_mean.size(0);
  BatchNormStats out{Tensor::empty({C}, running_mean.dtype()), Tensor::empty({C}, running_mean.dtype())};
  FG_DISPATCH_FLOATING(running_mean.dtype(), op, [&] {
    cpu::batch_norm_running_stats<scalar_t>(running_mean.data<scalar_t>(), running_mean.stride(0),
                                            running_var.data<scalar_t>(), running_var.stride(0), C, eps,
                                            out.mean.data<scalar_t>(), out.invstd.data<scalar_t>());
  });
  return out;
}

Tensor batch_norm_forward(const Tensor& x, const BatchNormStats& stats, const Tensor& weight, const Tensor& bias) {
#ifdef FG_WITH_CUDA
  if (x.defined() && x.device().is_cuda())
    return use_vendor(OpFamily::BATCH_NORM) ? vendor::batch_norm_forward(x, stats, weight, bias)
                                            : cuda::batch_norm_forward(x, stats, weight, bias);
#endif
  const char* op = "batch_norm";
  const NCL s = check_input(x, op);
  check_channel_vector(stats.mean, x, op, "mean");
  check_channel_vector(stats.invstd, x, op, "invstd");
  check_channel_vector(weight, x, op, "weight");
  check_channel_vector(bias, x, op, "bias");
  const Tensor xc = x.contiguous();
  const Tensor mean = stats.mean.contiguous(), invstd = stats.invstd.contiguous();
  const Tensor w = weight.defined() ? weight.contiguous() : Tensor();
  const Tensor b = bias.defined() ? bias.contiguous() : Tensor();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::batch_norm_forward<scalar_t>(xc.data<scalar_t>(), s.N, s.C, s.L, mean.data<scalar_t>(),
                                      invstd.data<scalar_t>(), ptr_or_null<scalar_t>(w), ptr_or_null<scalar_t>(b),
                                      y.data<scalar_t>());
  });
  return y;
}

BatchNormGrads batch_norm_backward(const Tensor& grad_out, const Tensor& x, const BatchNormStats& stats,
                                   const Tensor& weight, bool training, bool need_input, bool need_weight,
                                   bool need_bias) {
#ifdef FG_WITH_CUDA
  // cuDNN's backward is the training formula; eval mode stays on the hand-written kernel under either selection.
  if (x.defined() && x.device().is_cuda())
    return use_vendor(OpFamily::BATCH_NORM) && training
               ? vendor::batch_norm_backward(grad_out, x, stats, weight, need_input, need_weight, need_bias)
               : cuda::batch_norm_backward(grad_out, x, stats, weight, training, need_input, need_weight, need_bias);
#endif
  const char* op = "batch_norm backward";
  const NCL s = check_input(x, op);
  FG_CHECK(grad_out.defined() && grad_out.shape() == x.shape() && grad_out.dtype() == x.dtype(),
           op << ": grad_out must match x " << x.str() << ", got " << (grad_out.defined() ? grad_out.str() : "none"));
  require_cpu(grad_out, op);
  check_channel_vector(stats.mean, x, op, "mean");
  check_channel_vector(stats.invstd, x, op, "invstd");
  check_channel_vector(weight, x, op, "weight");
  const Tensor xc = x.contiguous(), dyc = grad_out.contiguous();
  const Tensor mean = stats.mean.contiguous(), invstd = stats.invstd.contiguous();
  const Tensor w = weight.defined() ? weight.contiguous() : Tensor();
  BatchNormGrads g;
  if (need_input) g.input = Tensor::empty(x.shape(), x.dtype());
  if (need_weight) g.weight = Tensor::empty({s.C}, x.dtype());
  if (need_bias) g.bias = Tensor::empty({s.C}, x.dtype());
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::batch_norm_backward<scalar_t>(
        dyc.data<scalar_t>(), xc.data<scalar_t>(), s.N, s.C, s.L, mean.data<scalar_t>(), invstd.data<scalar_t>(),
        ptr_or_null<scalar_t>(w), training, need_input ? g.input.data<scalar_t>() : nullptr,
        need_weight ? g.weight.data<scalar_t>() : nullptr, need_bias ? g.bias.data<scalar_t>() : nullptr);
  });
  return g;
}

}  // namespace fg::kernels
