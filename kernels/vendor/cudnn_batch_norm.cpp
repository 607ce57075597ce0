// The cuDNN twin of batch normalisation (see kernels/vendor/cudnn_batch_norm.h): descriptors, one handle per device
// on its stream, and the f32 (f64 for f64) per-channel buffers cuDNN wants. Compiled only with FG_WITH_CUDA; without
// FG_WITH_CUDNN every entry point throws a clear fg::Error.
#ifdef FG_WITH_CUDA

#include "kernels/vendor/cudnn_batch_norm.h"

#include <climits>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "tensor/cuda/context.h"
#include "tensor/error.h"
#include "tensor/overlap.h"

#ifdef FG_WITH_CUDNN
#include <cudnn.h>
#endif

namespace fg::vendor {

using kernels::BatchNormGrads;
using kernels::BatchNormStats;

namespace {

struct NCL {
  int64_t N, C, L;
};

NCL check_x(const Tensor& x, const char* op) {
  FG_CHECK(x.defined(), op << ": the input is undefined");
  FG_CHECK(x.device().is_cuda(), op << ": x is on " << x.device().str() << "; the cuDNN twin runs on CUDA tensors");
  FG_CHECK(x.dim() >= 2, op << ": expected x of shape (N, C) or (N, C, ...), got " << shape_str(x.shape()));
  int64_t L = 1;
  for (int64_t d = 2; d < x.dim(); ++d) L *= x.size(d);
  FG_CHECK(x.numel() < INT_MAX, op << ": x " << shape_str(x.shape())
                                   << " is too large for cuDNN's int sizes; normalise it in smaller batches");
  return {x.size(0), x.size(1), L};
}

}  // namespace

#ifdef FG_WITH_CUDNN

namespace {

void check_channel_vector(const Tensor& t, const Tensor& x, const char* op, const char* name) {
  if (!t.defined()) return;
  FG_CHECK(t.dim() == 1 && t.size(0) == x.size(1), op << ": " << name << " must have shape (" << x.size(1)
                                                      << ") to match x " << shape_str(x.shape()) << ", got "
                                                      << shape_str(t.shape()));
  FG_CHECK(t.dtype() == x.dtype(), op << ": " << name << " has dtype " << dtype_name(t.dtype()) << " but x has "
                                      << dtype_name(x.dtype()) << "; cast them to the same dtype");
  FG_CHECK(t.device() == x.device(), op << ": " << name << " is on " << t.device().str() << " but x is on "
                                        << x.device().str() << "; move them to one device");
}

void check_output(const Tensor& out, const Shape& shape, const Tensor& x, const char* op, const char* name) {
  FG_CHECK(out.defined() && out.shape() == shape && out.dtype() == x.dtype() && out.device() == x.device() &&
               out.is_contiguous(),
           op << ": the output " << name << " must be a contiguous " << dtype_name(x.dtype()) << shape_str(shape)
              << " tensor on " << x.device().str() << ", got " << (out.defined() ? out.str() : "undefined"));
}

void check_stats(const BatchNormStats& stats, const Tensor& x, const char* op) {
  FG_CHECK(stats.mean.defined() && stats.invstd.defined(), op << ": the statistics are undefined");
  check_channel_vector(stats.mean, x, op, "mean");
  check_channel_vector(stats.invstd, x, op, "invstd");
}

[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* statement, const char* file, int line) {
  throw Error(std::string("cuDNN error ") + cudnnGetErrorString(status) + " in " + statement + " at " + file + ":" +
              std::to_string(line) +
              (status == CUDNN_STATUS_NOT_SUPPORTED
                   ? "; this cuDNN does not support the case, use the hand-written batch norm (leave batch_norm out "
                     "of FG_VENDOR)"
                   : ""));
}

#define CUDNN_BN_CHECK(statement)                                                                                      \
  do {                                                                                                                 \
    const cudnnStatus_t fg_cudnn_status_ = (statement);                                                                \
    if (fg_cudnn_status_ != CUDNN_STATUS_SUCCESS) throw_cudnn_error(fg_cudnn_status_, #statement, __FILE__, __LINE__); \
  } while (0)

// One handle per device, created on first use and bound to the device's stream. Never destroyed: at process exit
// the CUDA context may already be gone when static destructors run.
cudnnHandle_t handle(int device) {
  static std::mutex mutex;
  static std::vector<cudnnHandle_t> handles;
  std::lock_guard<std::mutex> lock(mutex);
  if (handles.size() <= size_t(device)) handles.resize(size_t(device) + 1, nullptr);
  if (!handles[size_t(device)]) {
    cuda::DeviceGuard guard(device);
    cudnnHandle_t h = nullptr;
    CUDNN_BN_CHECK(cudnnCreate(&h));
    CUDNN_BN_CHECK(cudnnSetStream(h, cuda::stream(device)));
    handles[size_t(device)] = h;
  }
  return handles[size_t(device)];
}

cudnnDataType_t data_type(DType dt) {
  switch (dt) {
    case DType::F32:
      return CUDNN_DATA_FLOAT;
    case DType::F64:
      return CUDNN_DATA_DOUBLE;
    case DType::F16:
      return CUDNN_DATA_HALF;
    case DType::BF16:
      return CUDNN_DATA_BFLOAT16;
    default:
      break;
  }
  throw Error(std::string("batch_norm (cuDNN): dtype ") + dtype_name(dt) +
              " is not supported; use f32, f64, f16 or bf16");
}

// cuDNN's dtype for the per-channel tensors: f64 for f64 data, f32 otherwise.
DType param_dtype(DType dt) {
  return dt == DType::F64 ? DType::F64 : DType::F32;
}

// x as (N, C, L, 1) and the (1, C, 1, 1) per-channel descriptor cuDNN derives from it.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, param = nullptr;
  Descriptors(DType dt, const NCL& s) {
    CUDNN_BN_CHECK(cudnnCreateTensorDescriptor(&x));
    CUDNN_BN_CHECK(cudnnCreateTensorDescriptor(&param));
    CUDNN_BN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, data_type(dt), int(s.N), int(s.C), int(s.L), 1));
    CUDNN_BN_CHECK(cudnnDeriveBNTensorDescriptor(param, x, CUDNN_BATCHNORM_SPATIAL));
  }
  ~Descriptors() {
    cudnnDestroyTensorDescriptor(param);
    cudnnDestroyTensorDescriptor(x);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

// alpha / beta: host scalars of the data's compute type (double for f64 data, float otherwise).
struct Scale {
  float f;
  double d;
  const void* ptr(DType dt) const { return dt == DType::F64 ? static_cast<const void*>(&d) : &f; }
};

// A per-channel input in cuDNN's dtype: t itself when it already is one and contiguous, a converted copy otherwise,
// or `fill` everywhere when t is undefined.
Tensor param_in(const Tensor& t, DType pdt, int64_t C, Device dev, double fill) {
  if (!t.defined()) return Tensor::full({C}, fill, pdt, dev);
  if (t.dtype() == pdt && t.is_contiguous()) return t;
  Tensor copy = Tensor::empty({C}, pdt, dev);
  copy.copy_(t);
  return copy;
}

// A per-channel output in cuDNN's dtype: `out` itself when it already is one (contiguous), scratch otherwise (which
// copy_back rounds into `out`).
Tensor param_out(const Tensor& out, DType pdt, int64_t C, Device dev) {
  if (out.defined() && out.dtype() == pdt && out.is_contiguous()) return out;
  return Tensor::empty({C}, pdt, dev);
}

void copy_back(const Tensor& out, const Tensor& buffer) {
  if (!out.defined() || out.raw_data() == buffer.raw_data()) return;
  Tensor target = out;  // a handle on the same storage
  target.copy_(buffer);
}

}  // namespace

void batch_norm_forward_training_into(Tensor& y, BatchNormStats& stats, const Tensor& x, const Tensor& weight,
                                      const Tensor& bias, double eps, const Tensor& running_mean,
                                      const Tensor& running_var, double momentum) {
  const char* op = "batch_norm (cuDNN)";
  const NCL s = check_x(x, op);
  check_channel_vector(weight, x, op, "weight");
  check_channel_vector(bias, x, op, "bias");
  check_channel_vector(running_mean, x, op, "running_mean");
  check_channel_vector(running_var, x, op, "running_var");
  FG_CHECK(s.N * s.L > 1, op << ": Expected more than 1 value per channel when training, got input size "
                             << shape_str(x.shape()) << "; use a larger batch or eval mode");
  FG_CHECK(eps >= CUDNN_BN_MIN_EPSILON, op << ": eps must be at least " << CUDNN_BN_MIN_EPSILON << ", got " << eps);
  check_output(y, x.shape(), x, op, "y");
  check_output(stats.mean, {s.C}, x, op, "mean");
  check_output(stats.invstd, {s.C}, x, op, "invstd");
  check_outputs_separate({&y, &stats.mean, &stats.invstd, &running_mean, &running_var}, {&x, &weight, &bias},
                         op);  // tensor/overlap.h
  if (s.C == 0) return;
  const Device dev = x.device();
  cuda::DeviceGuard guard(dev.index);
  const cudnnHandle_t h = handle(dev.index);
  const DType pdt = param_dtype(x.dtype());
  const Descriptors d(x.dtype(), s);
  const Tensor xc = x.contiguous();
  const Tensor w = param_in(weight, pdt, s.C, dev, 1.0), b = param_in(bias, pdt, s.C, dev, 0.0);
  // cuDNN takes both running buffers or neither: a missing one gets scratch whose update is dropped.
  const bool running = running_mean.defined() || running_var.defined();
  const Tensor rm = running ? param_in(running_mean, pdt, s.C, dev, 0.0) : Tensor();
  const Tensor rv = running ? param_in(running_var, pdt, s.C, dev, 1.0) : Tensor();
  const Tensor save_mean = param_out(stats.mean, pdt, s.C, dev), save_invstd = param_out(stats.invstd, pdt, s.C, dev);
  const Scale one{1.0f, 1.0}, zero{0.0f, 0.0};
  CUDNN_BN_CHECK(cudnnBatchNormalizationForwardTraining(
      h, CUDNN_BATCHNORM_SPATIAL, one.ptr(x.dtype()), zero.ptr(x.dtype()), d.x, xc.raw_data(), d.x, y.raw_data(),
      d.param, w.raw_data(), b.raw_data(), momentum, running ? rm.raw_data() : nullptr,
      running ? rv.raw_data() : nullptr, eps, save_mean.raw_data(), save_invstd.raw_data()));
  copy_back(stats.mean, save_mean);
  copy_back(stats.invstd, save_invstd);
  copy_back(running_mean, rm);
  copy_back(running_var, rv);
}

void batch_norm_forward_into(Tensor& y, const Tensor& x, const BatchNormStats& stats, const Tensor& weight,
                             const Tensor& bias) {
  const char* op = "batch_norm (cuDNN)";
  const NCL s = check_x(x, op);
  check_stats(stats, x, op);
  check_channel_vector(weight, x, op, "weight");
  check_channel_vector(bias, x, op, "bias");
  check_output(y, x.shape(), x, op, "y");
  check_outputs_separate({&y}, {&x, &stats.mean, &stats.invstd, &weight, &bias}, op);  // tensor/overlap.h
  if (x.numel() == 0) return;
  const Device dev = x.device();
  cuda::DeviceGuard guard(dev.index);
  const cudnnHandle_t h = handle(dev.index);
  const DType pdt = param_dtype(x.dtype());
  const Descriptors d(x.dtype(), s);
  const Tensor xc = x.contiguous();
  const Tensor w = param_in(weight, pdt, s.C, dev, 1.0), b = param_in(bias, pdt, s.C, dev, 0.0);
  const Tensor mean = param_in(stats.mean, pdt, s.C, dev, 0.0);
  // variance = invstd^-2 in f64 (exact widening, one rounding of the power), then one rounding to cuDNN's dtype;
  // with epsilon 0 cuDNN's 1 / sqrt(variance) gives back invstd to within about one unit in the last place.
  const Tensor var = param_in(kernels::pow_scalar(stats.invstd.to(DType::F64), -2.0), pdt, s.C, dev, 0.0);
  const Scale one{1.0f, 1.0}, zero{0.0f, 0.0};
  CUDNN_BN_CHECK(cudnnBatchNormalizationForwardInference(
      h, CUDNN_BATCHNORM_SPATIAL, one.ptr(x.dtype()), zero.ptr(x.dtype()), d.x, xc.raw_data(), d.x, y.raw_data(),
      d.param, w.raw_data(), b.raw_data(), mean.raw_data(), var.raw_data(), CUDNN_BN_MIN_EPSILON));
}

void batch_norm_backward_into(BatchNormGrads& out, const Tensor& grad_out, const Tensor& x, const BatchNormStats& stats,
                              const Tensor& weight) {
  const char* op = "batch_norm backward (cuDNN)";
  const NCL s = check_x(x, op);
  FG_CHECK(grad_out.defined() && grad_out.shape() == x.shape() && grad_out.dtype() == x.dtype() &&
               grad_out.device() == x.device(),
           op << ": grad_out must match x " << x.str() << ", got " << (grad_out.defined() ? grad_out.str() : "none"));
  check_stats(stats, x, op);
  check_channel_vector(weight, x, op, "weight");
  if (out.input.defined()) check_output(out.input, x.shape(), x, op, "input gradient");
  if (out.weight.defined()) check_output(out.weight, {s.C}, x, op, "weight gradient");
  if (out.bias.defined()) check_output(out.bias, {s.C}, x, op, "bias gradient");
  check_outputs_separate({&out.input, &out.weight, &out.bias}, {&grad_out, &x, &stats.mean, &stats.invstd, &weight},
                         op);  // tensor/overlap.h
  if (s.C == 0 || (!out.input.defined() && !out.weight.defined() && !out.bias.defined())) return;
  FG_CHECK(s.N * s.L > 1, op << ": the training backward needs more than 1 value per channel, got input size "
                             << shape_str(x.shape()));
  const Device dev = x.device();
  cuda::DeviceGuard guard(dev.index);
  const cudnnHandle_t h = handle(dev.index);
  const DType pdt = param_dtype(x.dtype());
  const Descriptors d(x.dtype(), s);
  const Tensor xc = x.contiguous(), dyc = grad_out.contiguous();
  const Tensor w = param_in(weight, pdt, s.C, dev, 1.0);
  const Tensor mean = param_in(stats.mean, pdt, s.C, dev, 0.0), invstd = param_in(stats.invstd, pdt, s.C, dev, 1.0);
  const Tensor dx = out.input.defined() ? out.input : Tensor::empty(x.shape(), x.dtype(), dev);
  const Tensor dw = param_out(out.weight, pdt, s.C, dev), db = param_out(out.bias, pdt, s.C, dev);
  const Scale one{1.0f, 1.0}, zero{0.0f, 0.0};
  // The saved mean and invstd are passed, so cuDNN uses them and does not recompute the statistics; epsilon then
  // only has to be a valid value (the saved invstd already includes the forward's eps).
  CUDNN_BN_CHECK(cudnnBatchNormalizationBackward(
      h, CUDNN_BATCHNORM_SPATIAL, one.ptr(x.dtype()), zero.ptr(x.dtype()), one.ptr(x.dtype()), zero.ptr(x.dtype()), d.x,
      xc.raw_data(), d.x, dyc.raw_data(), d.x, dx.raw_data(), d.param, w.raw_data(), dw.raw_data(), db.raw_data(),
      CUDNN_BN_MIN_EPSILON, mean.raw_data(), invstd.raw_data()));
  copy_back(out.weight, dw);
  copy_back(out.bias, db);
}

#else  // !FG_WITH_CUDNN

namespace {
[[noreturn]] void no_cudnn() {
  throw Error(
      "batch_norm: the cuDNN twin is selected (FG_VENDOR or set_vendor) but this filmgrad was built without "
      "cuDNN; select the hand-written kernels (leave batch_norm out of FG_VENDOR) or rebuild with cuDNN "
      "installed");
}
}  // namespace

void batch_norm_forward_training_into(Tensor&, BatchNormStats&, const Tensor&, const Tensor&, const Tensor&, double,
                                      const Tensor&, const Tensor&, double) {
  no_cudnn();
}
void batch_norm_forward_into(Tensor&, const Tensor&, const BatchNormStats&, const Tensor&, const Tensor&) {
  no_cudnn();
}
void batch_norm_backward_into(BatchNormGrads&, const Tensor&, const Tensor&, const BatchNormStats&, const Tensor&) {
  no_cudnn();
}

#endif  // FG_WITH_CUDNN

Tensor batch_norm_forward(const Tensor& x, const BatchNormStats& stats, const Tensor& weight, const Tensor& bias) {
  check_x(x, "batch_norm (cuDNN)");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  batch_norm_forward_into(y, x, stats, weight, bias);
  return y;
}

BatchNormGrads batch_norm_backward(const Tensor& grad_out, const Tensor& x, const BatchNormStats& stats,
                                   const Tensor& weight, bool need_input, bool need_weight, bool need_bias) {
  check_x(x, "batch_norm backward (cuDNN)");
  BatchNormGrads g;
  if (need_input) g.input = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (need_weight) g.weight = Tensor::empty({x.size(1)}, x.dtype(), x.device());
  if (need_bias) g.bias = Tensor::empty({x.size(1)}, x.dtype(), x.device());
  batch_norm_backward_into(g, grad_out, x, stats, weight);
  return g;
}

}  // namespace fg::vendor

#endif  // FG_WITH_CUDA
