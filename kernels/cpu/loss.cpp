// CPU reference for the pixel losses (MSE, L1, BCE with logits) and their Tensor-level entry points.
// Forward: a sum over n contiguous elements, accumulated in double in fixed chunks (then the chunk sums in order),
// so the result does not depend on the thread count. Backward: gradients are written (=), never accumulated.
#include "kernels/loss.h"
#include "kernels/device_check.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/loops.h"
#include "tensor/error.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/loss.h"
#endif

namespace fg::cpu {

namespace {

// Elements per partial sum. Fixed, so the summation order is the same on any machine.
constexpr int64_t kSumChunk = 8192;

// Sum of term(i) for i in [0, n), in double. Four accumulators per chunk hide the latency of dependent adds.
template <typename Term>
double chunked_sum(int64_t n, Term term) {
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kSumChunk;
    const int64_t end = begin + kSumChunk < n ? begin + kSumChunk : n;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t i = begin;
    for (; i + 4 <= end; i += 4) {
      s0 += term(i);
      s1 += term(i + 1);
      s2 += term(i + 2);
      s3 += term(i + 3);
    }
    for (; i < end; ++i) s0 += term(i);
    partial[size_t(c)] = (s0 + s1) + (s2 + s3);
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

// pred, target: (n). Returns sum((pred - target)^2).
template <typename T>
double squared_error_sum(const T* pred, const T* target, int64_t n) {
  return chunked_sum(n, [&](int64_t i) {
    const double d = double(pred[i]) - double(target[i]);
    return d * d;
  });
}

// pred, target: (n). Returns sum(|pred - target|).
template <typename T>
double abs_error_sum(const T* pred, const T* target, int64_t n) {
  return chunked_sum(n, [&](int64_t i) { return std::fabs(double(pred[i]) - double(target[i])); });
}

// x (logits), t (targets): (n). Returns sum(max(x, 0) - x t + log1p(exp(-|x|))): never overflows, and log1p keeps
// the precision when exp(-|x|) is tiny.
template <typename T>
double bce_with_logits_sum(const T* x, const T* t, int64_t n) {
  return chunked_sum(n, [&](int64_t i) {
    const double xi = double(x[i]);
    return (xi > 0.0 ? xi : 0.0) - xi * double(t[i]) + std::log1p(std::exp(-std::fabs(xi)));
  });
}

// pred, target, grad_pred: (n). grad_pred = scale * (pred - target), with scale = 2 grad_out / n.
template <typename T>
void mse_loss_backward(const T* pred, const T* target, T* grad_pred, int64_t n, double scale) {
  const T s = T(scale);
  map2(pred, target, grad_pred, n, [s](T p, T t) { return s * (p - t); });
}

// pred, target, grad_pred: (n). grad_pred = scale * sign(pred - target), sign(0) = 0, with scale = grad_out / n.
template <typename T>
void l1_loss_backward(const T* pred, const T* target, T* grad_pred, int64_t n, double scale) {
  const T s = T(scale);
  map2(pred, target, grad_pred, n, [s](T p, T t) {
    const T d = p - t;
    return d > T(0) ? s : (d < T(0) ? -s : d * s);  // d * s: 0 at 0, NaN stays NaN as in PyTorch
  });
}

// x, t: (n); grad_x, grad_t: (n) or null when not wanted. With scale = grad_out / n:
// grad_x = scale * (sigmoid(x) - t), grad_t = -scale * x.
template <typename T>
void bce_with_logits_backward(const T* x, const T* t, T* grad_x, T* grad_t, int64_t n, double scale) {
  const T s = T(scale);
  if (grad_x) {
    map2(x, t, grad_x, n, [s](T xi, T ti) {
      // The two branches of the logistic keep exp's argument non-positive, so it never overflows.
      const T sig = xi >= T(0) ? T(1) / (T(1) + std::exp(-xi)) : std::exp(xi) / (T(1) + std::exp(xi));
      return s * (sig - ti);
    });
  }
  if (grad_t) map1(x, grad_t, n, [s](T xi) { return -s * xi; });
}

}  // namespace fg::cpu

namespace fg::kernels {

namespace {

void check_pair(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  FG_CHECK(a.defined() && b.defined(), op << ": " << a_name << " and " << b_name << " must both be defined");
  FG_CHECK(a.shape() == b.shape(), op << ": " << a_name << " has shape " << shape_str(a.shape()) << " but " << b_name
                                      << " has shape " << shape_str(b.shape())
                                      << "; they must match (reshape or expand one of them explicitly)");
  FG_CHECK(a.dtype() == b.dtype(), op << ": " << a_name << " is " << dtype_name(a.dtype()) << " but " << b_name
                                      << " is " << dtype_name(b.dtype()) << "; cast one so they match");
  FG_CHECK(a.device() == b.device(), op << ": " << a_name << " is on " << a.device().str() << " but " << b_name
                                        << " is on " << b.device().str() << "; move one so they match");
  require_cpu(a, op, a_name);
}

double grad_scalar(const char* op, const Tensor& grad_out) {
  FG_CHECK(grad_out.defined() && grad_out.numel() == 1,
           op << ": the output gradient must hold one element, got " << shape_str(grad_out.shape()));
  require_cpu(grad_out, op, "the output gradient");
  return grad_out.item();
}

// The reduction='mean' divisor; n = 0 gives NaN, as PyTorch's mean of nothing does.
double mean_of(double sum, int64_t n) {
  return sum / double(n);
}

}  // namespace

Tensor mse_loss(const Tensor& pred, const Tensor& target) {
#ifdef FG_WITH_CUDA
  if (pred.device().is_cuda() || target.device().is_cuda()) return cuda::mse_loss(pred, target);
#endif
  check_pair("mse_loss", "pred", pred, "target", target);
  const Tensor p = pred.contiguous(), t = target.contiguous();
  double sum = 0.0;
  FG_DISPATCH_FLOATING(p.dtype(), "mse_loss",
                       [&] { sum = cpu::squared_error_sum(p.data<scalar_t>(), t.data<scalar_t>(), p.numel()); });
  return Tensor::scalar(mean_of(sum, p.numel()), p.dtype());
}

Tensor mse_loss_backward(const Tensor& grad_out, const Tensor& pred, const Tensor& target) {
#ifdef FG_WITH_CUDA
  if (pred.device().is_cuda() || target.device().is_cuda()) return cuda::mse_loss_backward(grad_out, pred, target);
#endif
  check_pair("mse_loss_backward", "pred", pred, "target", target);
  const double g = grad_scalar("mse_loss_backward", grad_out);
  const Tensor p = pred.contiguous(), t = target.contiguous();
  Tensor grad = Tensor::empty(p.shape(), p.dtype());
  const double scale = 2.0 * g / double(p.numel());
  FG_DISPATCH_FLOATING(p.dtype(), "mse_loss_backward", [&] {
    cpu::mse_loss_backward(p.data<scalar_t>(), t.data<scalar_t>(), grad.data<scalar_t>(), p.numel(), scale);
  });
  return grad;
}

Tensor l1_loss(const Tensor& pred, const Tensor& target) {
#ifdef FG_WITH_CUDA
  if (pred.device().is_cuda() || target.device().is_cuda()) return cuda::l1_loss(pred, target);
#endif
  check_pair("l1_loss", "pred", pred, "target", target);
  const Tensor p = pred.contiguous(), t = target.contiguous();
  double sum = 0.0;
  FG_DISPATCH_FLOATING(p.dtype(), "l1_loss",
                       [&] { sum = cpu::abs_error_sum(p.data<scalar_t>(), t.data<scalar_t>(), p.numel()); });
  return Tensor::scalar(mean_of(sum, p.numel()), p.dtype());
}

Tensor l1_loss_backward(const Tensor& grad_out, const Tensor& pred, const Tensor& target) {
#ifdef FG_WITH_CUDA
  if (pred.device().is_cuda() || target.device().is_cuda()) return cuda::l1_loss_backward(grad_out, pred, target);
#endif
  check_pair("l1_loss_backward", "pred", pred, "target", target);
  const double g = grad_scalar("l1_loss_backward", grad_out);
  const Tensor p = pred.contiguous(), t = target.contiguous();
  Tensor grad = Tensor::empty(p.shape(), p.dtype());
  const double scale = g / double(p.numel());
  FG_DISPATCH_FLOATING(p.dtype(), "l1_loss_backward", [&] {
    cpu::l1_loss_backward(p.data<scalar_t>(), t.data<scalar_t>(), grad.data<scalar_t>(), p.numel(), scale);
  });
  return grad;
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& target) {
#ifdef FG_WITH_CUDA
  if (logits.device().is_cuda() || target.device().is_cuda()) return cuda::bce_with_logits(logits, target);
#endif
  check_pair("bce_with_logits", "logits", logits, "target", target);
  const Tensor x = logits.contiguous(), t = target.contiguous();
  double sum = 0.0;
  FG_DISPATCH_FLOATING(x.dtype(), "bce_with_logits",
                       [&] { sum = cpu::bce_with_logits_sum(x.data<scalar_t>(), t.data<scalar_t>(), x.numel()); });
  return Tensor::scalar(mean_of(sum, x.numel()), x.dtype());
}

BceWithLogitsGrads bce_with_logits_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& target,
                                            bool need_logits, bool need_target) {
#ifdef FG_WITH_CUDA
  if (logits.device().is_cuda() || target.device().is_cuda())
    return cuda::bce_with_logits_backward(grad_out, logits, target, need_logits, need_target);
#endif
  check_pair("bce_with_logits_backward", "logits", logits, "target", target);
  const double g = grad_scalar("bce_with_logits_backward", grad_out);
  const Tensor x = logits.contiguous(), t = target.contiguous();
  BceWithLogitsGrads grads;
  if (need_logits) grads.logits = Tensor::empty(x.shape(), x.dtype());
  if (need_target) grads.target = Tensor::empty(x.shape(), x.dtype());
  const double scale = g / double(x.numel());
  FG_DISPATCH_FLOATING(x.dtype(), "bce_with_logits_backward", [&] {
    cpu::bce_with_logits_backward(x.data<scalar_t>(), t.data<scalar_t>(),
                                  need_logits ? grads.logits.data<scalar_t>() : nullptr,
                                  need_target ? grads.target.data<scalar_t>() : nullptr, x.numel(), scale);
  });
  return grads;
}

}  // namespace fg::kernels
