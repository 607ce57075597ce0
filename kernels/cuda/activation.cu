// CUDA pointwise activations and their backward passes (kernels/cuda/activation.h). One forward and one backward
// kernel, each switching on the activation; the formulas and their order are the CPU reference's
// (kernels/cpu/activation.cpp): relu keeps NaN, sigmoid = 1 / (1 + exp(-x)), and so on. Gradients are written (=).
#include "kernels/cuda/activation.h"
#include "kernels/cuda/common.cuh"

namespace fg::kernels::cuda {

namespace {

enum class Act { RELU, LEAKY_RELU, SIGMOID, TANH, SIGMOID_RANGE };

template <typename A>
__device__ inline A sigmoid_of(A v) {
  // exp(-v) overflows to +inf for very negative v, giving exactly 0 rather than NaN.
  return A(1) / (A(1) + dev_exp(-v));
}

// x, y: (n) contiguous. p0, p1: the slope (leaky relu) or scale and lo (sigmoid range).
template <typename T>
__global__ void activation_forward_kernel(Act act, const T* x, T* y, int64_t n, acc_t<T> p0, acc_t<T> p1) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(i, n) {
    const A v = load(x + i);
    A r;
    switch (act) {
      case Act::RELU: r = v < A(0) ? A(0) : v; break;
      case Act::LEAKY_RELU: r = v > A(0) ? v : v * p0; break;
      case Act::SIGMOID: r = sigmoid_of(v); break;
      case Act::TANH: r = dev_tanh(v); break;
      default: r = sigmoid_of(v) * p0 + p1; break;  // SIGMOID_RANGE
    }
    store(y + i, r);
  }
}

// grad_out, saved, grad_in: (n) contiguous. saved is the output (relu, sigmoid, tanh) or the input (leaky relu,
// sigmoid range), as kernels/activation.h says.
template <typename T>
__global__ void activation_backward_kernel(Act act, const T* grad_out, const T* saved, T* grad_in, int64_t n,
                                           acc_t<T> p0) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(i, n) {
    const A g = load(grad_out + i), v = load(saved + i);
    A r;
    switch (act) {
      case Act::RELU: r = v <= A(0) ? A(0) : g; break;
      case Act::LEAKY_RELU: r = v > A(0) ? g : g * p0; break;
      case Act::SIGMOID: r = g * (A(1) - v) * v; break;
      case Act::TANH: r = g * (A(1) - v * v); break;
      default: {  // SIGMOID_RANGE: (g * scale) first, then sigmoid's backward, as autograd would order them
        const A s = sigmoid_of(v);
        r = (g * p0) * (A(1) - s) * s;
        break;
      }
    }
    store(grad_in + i, r);
  }
}

void check_input(const Tensor& x, const char* op) {
  check_cuda_input(x, op, "input");
  FG_CHECK(dtype_is_floating(x.dtype()),
           op << ": input has dtype " << dtype_name(x.dtype()) << "; cast it to f32, f16, bf16 or f64 first");
}

Tensor forward(Act act, const char* op, const Tensor& x_in, double p0, double p1) {
  check_input(x_in, op);
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t n = x.numel();
  if (n == 0) return y;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    activation_forward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(x)>>>(
        act, x.data<T>(), y.data<T>(), n, scalar_param<T>(p0), scalar_param<T>(p1));
    CUDA_CHECK_LAUNCH();
  });
  return y;
}

Tensor backward(Act act, const char* op, const Tensor& grad_out, const Tensor& saved, const char* saved_name,
                double p0) {
  check_same(grad_out, "grad_output", saved, saved_name, op);
  const Tensor g = grad_out.contiguous(), s = saved.contiguous();
  Tensor gx = Tensor::empty(s.shape(), s.dtype(), s.device());
  const int64_t n = s.numel();
  if (n == 0) return gx;
  DeviceGuard guard(s.device().index);
  dispatch_float_types(s.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    activation_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(s)>>>(
        act, g.data<T>(), s.data<T>(), gx.data<T>(), n, scalar_param<T>(p0));
    CUDA_CHECK_LAUNCH();
  });
  return gx;
}

}  // namespace

Tensor relu(const Tensor& x) { return forward(Act::RELU, "relu", x, 0, 0); }
Tensor relu_backward(const Tensor& grad_out, const Tensor& out) {
  return backward(Act::RELU, "relu_backward", grad_out, out, "output", 0);
}
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return forward(Act::LEAKY_RELU, "leaky_relu", x, negative_slope, 0);
}
Tensor leaky_relu_backward(const Tensor& grad_out, const Tensor& x, double negative_slope) {
  return backward(Act::LEAKY_RELU, "leaky_relu_backward", grad_out, x, "input", negative_slope);
}
Tensor sigmoid(const Tensor& x) { return forward(Act::SIGMOID, "sigmoid", x, 0, 0); }
Tensor sigmoid_backward(const Tensor& grad_out, const Tensor& out) {
  return backward(Act::SIGMOID, "sigmoid_backward", grad_out, out, "output", 0);
}
Tensor tanh(const Tensor& x) { return forward(Act::TANH, "tanh", x, 0, 0); }
Tensor tanh_backward(const Tensor& grad_out, const Tensor& out) {
  return backward(Act::TANH, "tanh_backward", grad_out, out, "output", 0);
}
// scale = hi - lo rounded to the dtype first, as the CPU does.
Tensor sigmoid_range(const Tensor& x, double lo, double hi) {
  return forward(Act::SIGMOID_RANGE, "sigmoid_range", x, hi - lo, lo);
}
Tensor sigmoid_range_backward(const Tensor& grad_out, const Tensor& x, double lo, double hi) {
  return backward(Act::SIGMOID_RANGE, "sigmoid_range_backward", grad_out, x, "input", hi - lo);
}

}  // namespace fg::kernels::cuda
