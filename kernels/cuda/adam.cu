// CUDA fused optimizer updates (kernels/cuda/adam.h): Adam/AdamW and SGD, one thread per element in a grid-stride
// loop, each element's update a line-by-line port of adam_loop / sgd_loop in nn/optim.cpp.
#include "kernels/cuda/adam.h"
#include "kernels/cuda/common.cuh"
#include "tensor/overlap.h"

namespace fg::kernels::cuda {

namespace {

// The scalars of one Adam step, rounded to T as nn/optim.cpp rounds them.
template <typename T>
struct AdamScalars {
  bool l2, decay_weights;
  T wd, decay_factor, b1, one_minus_b1, b2, one_minus_b2, bc2_sqrt, eps, neg_step_size;
};

// p, g, m, v: (n) contiguous.
template <typename T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, int64_t n, AdamScalars<T> s) {
  FG_CUDA_KERNEL_LOOP(i, n) {
    T pi = p[i];
    if (s.decay_weights) pi = pi * s.decay_factor;
    const T d = s.l2 ? g[i] + s.wd * pi : g[i];
    const T mi = m[i] * s.b1 + s.one_minus_b1 * d;
    const T vi = v[i] * s.b2 + s.one_minus_b2 * d * d;
    const T denom = sqrt(vi) / s.bc2_sqrt + s.eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + s.neg_step_size * (mi / denom);
  }
}

// p, g, buf: (n) contiguous; buf null without momentum.
template <typename T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, bool decay, T wd, T mom, T neg_lr, bool first) {
  FG_CUDA_KERNEL_LOOP(i, n) {
    T d = decay ? g[i] + wd * p[i] : g[i];
    if (buf) {
      buf[i] = first ? d : buf[i] * mom + d;
      d = buf[i];
    }
    p[i] = p[i] + neg_lr * d;
  }
}

void check_state(const Tensor& param, const Tensor& t, const char* what, const char* op) {
  check_cuda_input(t, op, what);
  FG_CHECK(t.shape() == param.shape() && t.dtype() == param.dtype() && t.device() == param.device(),
           op << ": " << what << " " << t.str() << " does not match its parameter " << param.str());
  FG_CHECK(t.is_contiguous(), op << ": " << what << " must be contiguous");
}

template <typename Fn>
void dispatch_master(DType dt, const char* op, Fn fn) {
  switch (dt) {
    case DType::F32: fn(float{}); return;
    case DType::F64: fn(double{}); return;
    default:
      throw Error(std::string(op) + ": parameters of dtype " + dtype_name(dt) +
                  " cannot be updated on CUDA; keep f32 master weights (cast copies to f16/bf16 for compute)");
  }
}

}  // namespace

void adam_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamStep& st) {
  const char* op = st.decoupled ? "AdamW" : "Adam";
  check_cuda_input(param, op, "parameter");
  FG_CHECK(param.is_contiguous(), op << ": parameter must be contiguous");
  check_state(param, grad, "gradient", op);
  check_state(param, exp_avg, "exp_avg", op);
  check_state(param, exp_avg_sq, "exp_avg_sq", op);
  check_elementwise_update({&param, &exp_avg, &exp_avg_sq}, {&grad}, op);  // tensor/overlap.h, as the CPU loop
  const int64_t n = param.numel();
  if (n == 0) return;
  DeviceGuard guard(param.device().index);
  dispatch_master(param.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    AdamScalars<T> s;
    s.l2 = !st.decoupled && st.weight_decay != 0.0;
    s.decay_weights = st.decoupled && st.weight_decay != 0.0;
    s.wd = T(st.weight_decay);
    s.decay_factor = T(1.0 - st.lr * st.weight_decay);
    s.b1 = T(st.beta1);
    s.one_minus_b1 = T(1.0 - st.beta1);
    s.b2 = T(st.beta2);
    s.one_minus_b2 = T(1.0 - st.beta2);
    s.bc2_sqrt = T(st.bias_correction2_sqrt);
    s.eps = T(st.eps);
    s.neg_step_size = T(-st.step_size);
    adam_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(param)>>>(
        param.data<T>(), grad.data<T>(), exp_avg.data<T>(), exp_avg_sq.data<T>(), n, s);
    CUDA_CHECK_LAUNCH();
  });
}

void sgd_update(Tensor& param, const Tensor& grad, Tensor* momentum_buffer, const SgdStep& st) {
  const char* op = "SGD";
  check_cuda_input(param, op, "parameter");
  FG_CHECK(param.is_contiguous(), op << ": parameter must be contiguous");
  check_state(param, grad, "gradient", op);
  if (momentum_buffer) check_state(param, *momentum_buffer, "momentum_buffer", op);
  const Tensor none;
  check_elementwise_update({&param, momentum_buffer ? momentum_buffer : &none}, {&grad}, op);
  const int64_t n = param.numel();
  if (n == 0) return;
  DeviceGuard guard(param.device().index);
  dispatch_master(param.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    sgd_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(param)>>>(
        param.data<T>(), grad.data<T>(), momentum_buffer ? momentum_buffer->data<T>() : nullptr, n,
        st.weight_decay != 0.0, T(st.weight_decay), T(st.momentum), T(-st.lr), st.first_step);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace fg::kernels::cuda
