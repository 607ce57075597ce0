// CUDA pixel losses (kernels/cuda/loss.h). Forward: every term computed in double from the elements (as the CPU
// reference, kernels/cpu/loss.cpp, does), summed per block in a fixed tree, then one block sums the block partials
// and writes mean = sum / n in the input dtype. The order of the additions is fixed by the launch shape, so a
// result repeats bit for bit on one GPU; against the CPU it differs only by double rounding. Backward: gradients
// are written (=), with the scale (2) grad_out / n computed in double on the device and rounded to the dtype, as
// the CPU rounds it.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/loss.h"

namespace fg::kernels::cuda {

namespace {

enum class Loss { MSE, L1, BCE_WITH_LOGITS };

template <Loss kLoss>
__device__ inline double loss_term(double x, double t) {
  if (kLoss == Loss::MSE) {
    const double d = x - t;
    return d * d;
  }
  if (kLoss == Loss::L1) return fabs(x - t);
  // max(x, 0) - x t + log1p(exp(-|x|)): never overflows.
  return (x > 0.0 ? x : 0.0) - x * t + log1p(exp(-fabs(x)));
}

// pred, target: (n) contiguous. partial[block] = the block's sum of terms.
template <typename T, Loss kLoss>
__global__ void loss_partial_kernel(const T* pred, const T* target, int64_t n, double* partial) {
  __shared__ double shared[32];
  double acc = 0.0;
  FG_CUDA_KERNEL_LOOP(i, n) { acc += loss_term<kLoss>(double(load(pred + i)), double(load(target + i))); }
  acc = block_sum_double(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// out[0] = (sum of partial[0 .. count)) / n, in T. One block.
template <typename T>
__global__ void loss_mean_kernel(const double* partial, int64_t count, int64_t n, T* out) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum_double(acc, shared);
  if (threadIdx.x == 0) out[0] = ::fg::cuda::convert<T, double>(acc / double(n));  // n = 0 gives NaN, as PyTorch
}

// The scale factor * grad_out / n, rounded as the CPU's T(scale).
template <typename T>
__device__ inline acc_t<T> grad_scale(const double* grad_out, double factor, int64_t n) {
  return acc_t<T>(factor * grad_out[0] / double(n));
}

// pred, target, grad: (n) contiguous. grad = s (pred - target), s = 2 grad_out / n.
template <typename T>
__global__ void mse_backward_kernel(const double* grad_out, const T* pred, const T* target, T* grad, int64_t n) {
  using A = acc_t<T>;
  const A s = grad_scale<T>(grad_out, 2.0, n);
  FG_CUDA_KERNEL_LOOP(i, n) { store(grad + i, s * (load(pred + i) - load(target + i))); }
}

// grad = s sign(pred - target), sign(0) = 0 and NaN kept, s = grad_out / n.
template <typename T>
__global__ void l1_backward_kernel(const double* grad_out, const T* pred, const T* target, T* grad, int64_t n) {
  using A = acc_t<T>;
  const A s = grad_scale<T>(grad_out, 1.0, n);
  FG_CUDA_KERNEL_LOOP(i, n) {
    const A d = load(pred + i) - load(target + i);
    store(grad + i, d > A(0) ? s : (d < A(0) ? -s : d * s));
  }
}

// grad_x = s (sigmoid(x) - t), grad_t = -s x, s = grad_out / n; either output may be null.
template <typename T>
__global__ void bce_backward_kernel(const double* grad_out, const T* x, const T* t, T* grad_x, T* grad_t, int64_t n) {
  using A = acc_t<T>;
  const A s = grad_scale<T>(grad_out, 1.0, n);
  FG_CUDA_KERNEL_LOOP(i, n) {
    const A xi = load(x + i);
    if (grad_x) {
      // The two branches keep exp's argument non-positive, so it never overflows.
      const A sig = xi >= A(0) ? A(1) / (A(1) + dev_exp(-xi)) : dev_exp(xi) / (A(1) + dev_exp(xi));
      store(grad_x + i, s * (sig - load(t + i)));
    }
    if (grad_t) store(grad_t + i, -s * xi);
  }
}

void check_pair(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  check_same(a, a_name, b, b_name, op);
}

// grad_out (one element, any device and dtype) as an f64 scalar on `device`, read there by the backward kernels.
Tensor grad_on_device(const char* op, const Tensor& grad_out, Device device) {
  FG_CHECK(grad_out.defined() && grad_out.numel() == 1,
           op << ": the output gradient must hold one element, got " << shape_str(grad_out.shape()));
  return grad_out.reshape({1}).to(device).to(DType::F64).contiguous();
}

template <Loss kLoss>
Tensor loss_forward(const char* op, const char* a_name, const Tensor& a_in, const char* b_name, const Tensor& b_in) {
  check_pair(op, a_name, a_in, b_name, b_in);
  const Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Tensor out = Tensor::empty({}, a.dtype(), a.device());
  const int64_t n = a.numel();
  DeviceGuard guard(a.device().index);
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(blocks_for(n), 1024));
  Tensor partial = Tensor::zeros({blocks}, DType::F64, a.device());
  dispatch_float_types(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    if (n > 0) {
      loss_partial_kernel<T, kLoss><<<unsigned(blocks), kThreads, 0, stream_of(a)>>>(a.data<T>(), b.data<T>(), n,
                                                                                    partial.data<double>());
      CUDA_CHECK_LAUNCH();
    }
    loss_mean_kernel<T><<<1, kThreads, 0, stream_of(a)>>>(partial.data<double>(), blocks, n, out.data<T>());
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

}  // namespace

Tensor mse_loss(const Tensor& pred, const Tensor& target) {
  return loss_forward<Loss::MSE>("mse_loss", "pred", pred, "target", target);
}

Tensor l1_loss(const Tensor& pred, const Tensor& target) {
  return loss_forward<Loss::L1>("l1_loss", "pred", pred, "target", target);
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& target) {
  return loss_forward<Loss::BCE_WITH_LOGITS>("bce_with_logits", "logits", logits, "target", target);
}

Tensor mse_loss_backward(const Tensor& grad_out, const Tensor& pred_in, const Tensor& target_in) {
  const char* op = "mse_loss_backward";
  check_pair(op, "pred", pred_in, "target", target_in);
  const Tensor g = grad_on_device(op, grad_out, pred_in.device());
  const Tensor p = pred_in.contiguous(), t = target_in.contiguous();
  Tensor grad = Tensor::empty(p.shape(), p.dtype(), p.device());
  const int64_t n = p.numel();
  if (n == 0) return grad;
  DeviceGuard guard(p.device().index);
  dispatch_float_types(p.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    mse_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(p)>>>(g.data<double>(), p.data<T>(),
                                                                                t.data<T>(), grad.data<T>(), n);
    CUDA_CHECK_LAUNCH();
  });
  return grad;
}

Tensor l1_loss_backward(const Tensor& grad_out, const Tensor& pred_in, const Tensor& target_in) {
  const char* op = "l1_loss_backward";
  check_pair(op, "pred", pred_in, "target", target_in);
  const Tensor g = grad_on_device(op, grad_out, pred_in.device());
  const Tensor p = pred_in.contiguous(), t = target_in.contiguous();
  Tensor grad = Tensor::empty(p.shape(), p.dtype(), p.device());
  const int64_t n = p.numel();
  if (n == 0) return grad;
  DeviceGuard guard(p.device().index);
  dispatch_float_types(p.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    l1_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(p)>>>(g.data<double>(), p.data<T>(),
                                                                               t.data<T>(), grad.data<T>(), n);
    CUDA_CHECK_LAUNCH();
  });
  return grad;
}

BceWithLogitsGrads bce_with_logits_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& target,
                                            bool need_logits, bool need_target) {
  const char* op = "bce_with_logits_backward";
  check_pair(op, "logits", logits, "target", target);
  const Tensor g = grad_on_device(op, grad_out, logits.device());
  const Tensor x = logits.contiguous(), t = target.contiguous();
  BceWithLogitsGrads grads;
  if (need_logits) grads.logits = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (need_target) grads.target = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t n = x.numel();
  if (n == 0 || (!need_logits && !need_target)) return grads;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    bce_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(x)>>>(
        g.data<double>(), x.data<T>(), t.data<T>(), need_logits ? grads.logits.data<T>() : nullptr,
        need_target ? grads.target.data<T>() : nullptr, n);
    CUDA_CHECK_LAUNCH();
  });
  return grads;
}

}  // namespace fg::kernels::cuda
