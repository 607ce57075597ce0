// CPU reference for the pointwise activations (kernels/activation.h): one plain loop per op over contiguous
// buffers, f32 and f64. Gradients are written (=), not accumulated. The formulas and their evaluation order follow
// PyTorch's CPU kernels (so f32 results round the same way): sigmoid = 1 / (1 + exp(-x)), relu keeps NaN,
// relu's backward is 0 where the output is <= 0, leaky_relu's backward uses the slope where x <= 0.
#include <cmath>

#include "kernels/activation.h"
#include "kernels/device_check.h"
#include "kernels/cpu/loops.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/activation.h"
#endif

namespace fg::cpu {

// x, y: (n)
template <typename T>
void relu_forward(const T* x, T* y, int64_t n) {
  // `x < 0 ? 0 : x` rather than `x > 0 ? x : 0` so that NaN passes through, as torch.relu does.
  map1(x, y, n, [](T v) { return v < T(0) ? T(0) : v; });
}

// grad_out, out, grad_in: (n)
template <typename T>
void relu_backward(const T* grad_out, const T* out, T* grad_in, int64_t n) {
  map2(grad_out, out, grad_in, n, [](T g, T y) { return y <= T(0) ? T(0) : g; });
}

// x, y: (n)
template <typename T>
void leaky_relu_forward(const T* x, T* y, int64_t n, T slope) {
  map1(x, y, n, [slope](T v) { return v > T(0) ? v : v * slope; });
}

// grad_out, x, grad_in: (n)
template <typename T>
void leaky_relu_backward(const T* grad_out, const T* x, T* grad_in, int64_t n, T slope) {
  map2(grad_out, x, grad_in, n, [slope](T g, T v) { return v > T(0) ? g : g * slope; });
}

template <typename T>
inline T sigmoid_scalar(T v) {
  // exp(-v) overflows to +inf for v < -88 (f32), giving exactly 0 rather than NaN: no clamping needed.
  return T(1) / (T(1) + std::exp(-v));
}

// x, y: (n)
template <typename T>
void sigmoid_forward(const T* x, T* y, int64_t n) {
  map1(x, y, n, [](T v) { return sigmoid_scalar(v); });
}

// grad_out, out, grad_in: (n)
template <typename T>
void sigmoid_backward(const T* grad_out, const T* out, T* grad_in, int64_t n) {
  map2(grad_out, out, grad_in, n, [](T g, T y) { return g * (T(1) - y) * y; });
}

// x, y: (n)
template <typename T>
void tanh_forward(const T* x, T* y, int64_t n) {
  map1(x, y, n, [](T v) { return std::tanh(v); });
}

// grad_out, out, grad_in: (n)
template <typename T>
void tanh_backward(const T* grad_out, const T* out, T* grad_in, int64_t n) {
  map2(grad_out, out, grad_in, n, [](T g, T y) { return g * (T(1) - y * y); });
}

// x, y: (n). scale = hi - lo, rounded to T first as PyTorch's `sigmoid(x) * (hi - lo) + lo` does.
template <typename T>
void sigmoid_range_forward(const T* x, T* y, int64_t n, T scale, T lo) {
  map1(x, y, n, [scale, lo](T v) { return sigmoid_scalar(v) * scale + lo; });
}

// grad_out, x, grad_in: (n). The chain rule in the order autograd would apply it to the composite op:
// (g * scale) first, then sigmoid's backward.
template <typename T>
void sigmoid_range_backward(const T* grad_out, const T* x, T* grad_in, int64_t n, T scale) {
  map2(grad_out, x, grad_in, n, [scale](T g, T v) {
    const T s = sigmoid_scalar(v);
    return (g * scale) * (T(1) - s) * s;
  });
}

}  // namespace fg::cpu

namespace fg::kernels {
namespace {

void check_input(const Tensor& x, const char* op, const char* what) {
  FG_CHECK(x.defined(), op << ": " << what << " is an undefined tensor");
  FG_CHECK(dtype_is_floating(x.dtype()),
           op << ": " << what << " has dtype " << dtype_name(x.dtype()) << "; cast it to f32 or f64 first");
  require_cpu(x, op, what);
}

// Checks that a backward's two operands agree with each other.
void check_pair(const Tensor& grad_out, const Tensor& saved, const char* op, const char* saved_name) {
  check_input(grad_out, op, "grad_output");
  check_input(saved, op, saved_name);
  FG_CHECK(grad_out.shape() == saved.shape(), op << ": grad_output " << shape_str(grad_out.shape())
                                                 << " and " << saved_name << " " << shape_str(saved.shape())
                                                 << " must have the same shape");
  FG_CHECK(grad_out.dtype() == saved.dtype(), op << ": grad_output is " << dtype_name(grad_out.dtype()) << " but "
                                                 << saved_name << " is " << dtype_name(saved.dtype()));
  FG_CHECK(grad_out.device() == saved.device(), op << ": grad_output is on " << grad_out.device().str()
                                                   << " but " << saved_name << " is on "
                                                   << saved.device().str());
}

}  // namespace

Tensor relu(const Tensor& x) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::relu(x);
#endif
  check_input(x, "relu", "input");
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  FG_DISPATCH_FLOATING(x.dtype(), "relu",
                       [&] { cpu::relu_forward(xc.data<scalar_t>(), y.data<scalar_t>(), y.numel()); });
  return y;
}

Tensor relu_backward(const Tensor& grad_out, const Tensor& out) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda() || out.device().is_cuda()) return cuda::relu_backward(grad_out, out);
#endif
  check_pair(grad_out, out, "relu_backward", "output");
  const Tensor gc = grad_out.contiguous(), yc = out.contiguous();
  Tensor gx = Tensor::empty(out.shape(), out.dtype(), out.device());
  FG_DISPATCH_FLOATING(out.dtype(), "relu_backward", [&] {
    cpu::relu_backward(gc.data<scalar_t>(), yc.data<scalar_t>(), gx.data<scalar_t>(), gx.numel());
  });
  return gx;
}

Tensor leaky_relu(const Tensor& x, double negative_slope) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::leaky_relu(x, negative_slope);
#endif
  check_input(x, "leaky_relu", "input");
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  FG_DISPATCH_FLOATING(x.dtype(), "leaky_relu", [&] {
    cpu::leaky_relu_forward(xc.data<scalar_t>(), y.data<scalar_t>(), y.numel(), scalar_t(negative_slope));
  });
  return y;
}

Tensor leaky_relu_backward(const Tensor& grad_out, const Tensor& x, double negative_slope) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda() || x.device().is_cuda())
    return cuda::leaky_relu_backward(grad_out, x, negative_slope);
#endif
  check_pair(grad_out, x, "leaky_relu_backward", "input");
  const Tensor gc = grad_out.contiguous(), xc = x.contiguous();
  Tensor gx = Tensor::empty(x.shape(), x.dtype(), x.device());
  FG_DISPATCH_FLOATING(x.dtype(), "leaky_relu_backward", [&] {
    cpu::leaky_relu_backward(gc.data<scalar_t>(), xc.data<scalar_t>(), gx.data<scalar_t>(), gx.numel(),
                             scalar_t(negative_slope));
  });
  return gx;
}

Tensor sigmoid(const Tensor& x) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::sigmoid(x);
#endif
  check_input(x, "sigmoid", "input");
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  FG_DISPATCH_FLOATING(x.dtype(), "sigmoid",
                       [&] { cpu::sigmoid_forward(xc.data<scalar_t>(), y.data<scalar_t>(), y.numel()); });
  return y;
}

Tensor sigmoid_backward(const Tensor& grad_out, const Tensor& out) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda() || out.device().is_cuda()) return cuda::sigmoid_backward(grad_out, out);
#endif
  check_pair(grad_out, out, "sigmoid_backward", "output");
  const Tensor gc = grad_out.contiguous(), yc = out.contiguous();
  Tensor gx = Tensor::empty(out.shape(), out.dtype(), out.device());
  FG_DISPATCH_FLOATING(out.dtype(), "sigmoid_backward", [&] {
    cpu::sigmoid_backward(gc.data<scalar_t>(), yc.data<scalar_t>(), gx.data<scalar_t>(), gx.numel());
  });
  return gx;
}

Tensor tanh(const Tensor& x) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::tanh(x);
#endif
  check_input(x, "tanh", "input");
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  FG_DISPATCH_FLOATING(x.dtype(), "tanh",
                       [&] { cpu::tanh_forward(xc.data<scalar_t>(), y.data<scalar_t>(), y.numel()); });
  return y;
}

Tensor tanh_backward(const Tensor& grad_out, const Tensor& out) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda() || out.device().is_cuda()) return cuda::tanh_backward(grad_out, out);
#endif
  check_pair(grad_out, out, "tanh_backward", "output");
  const Tensor gc = grad_out.contiguous(), yc = out.contiguous();
  Tensor gx = Tensor::empty(out.shape(), out.dtype(), out.device());
  FG_DISPATCH_FLOATING(out.dtype(), "tanh_backward", [&] {
    cpu::tanh_backward(gc.data<scalar_t>(), yc.data<scalar_t>(), gx.data<scalar_t>(), gx.numel());
  });
  return gx;
}

Tensor sigmoid_range(const Tensor& x, double lo, double hi) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::sigmoid_range(x, lo, hi);
#endif
  check_input(x, "sigmoid_range", "input");
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  FG_DISPATCH_FLOATING(x.dtype(), "sigmoid_range", [&] {
    cpu::sigmoid_range_forward(xc.data<scalar_t>(), y.data<scalar_t>(), y.numel(), scalar_t(hi - lo),
                               scalar_t(lo));
  });
  return y;
}

Tensor sigmoid_range_backward(const Tensor& grad_out, const Tensor& x, double lo, double hi) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda() || x.device().is_cuda()) return cuda::sigmoid_range_backward(grad_out, x, lo, hi);
#endif
  check_pair(grad_out, x, "sigmoid_range_backward", "input");
  const Tensor gc = grad_out.contiguous(), xc = x.contiguous();
  Tensor gx = Tensor::empty(x.shape(), x.dtype(), x.device());
  FG_DISPATCH_FLOATING(x.dtype(), "sigmoid_range_backward", [&] {
    cpu::sigmoid_range_backward(gc.data<scalar_t>(), xc.data<scalar_t>(), gx.data<scalar_t>(), gx.numel(),
                                scalar_t(hi - lo));
  });
  return gx;
}

}  // namespace fg::kernels
