// The cuDNN twin of conv2d (see kernels/vendor/cudnn_conv2d.h): descriptors, one handle per device on its stream,
// a per-problem algorithm cache filled by cudnnFind*AlgorithmEx, and workspaces from the caching allocator.
// Compiled only with FG_WITH_CUDA; without FG_WITH_CUDNN every entry point throws a clear fg::Error.
#ifdef FG_WITH_CUDA

#include "kernels/vendor/cudnn_conv2d.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tensor/cuda/context.h"
#include "tensor/error.h"
#include "tensor/overlap.h"

#ifdef FG_WITH_CUDNN
#include <cudnn.h>
#endif

namespace fg::vendor {

#ifdef FG_WITH_CUDNN

namespace {

using kernels::Conv2dGeometry;

[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* statement, const char* file, int line) {
  throw Error(std::string("cuDNN error ") + cudnnGetErrorString(status) + " in " + statement + " at " + file + ":" +
              std::to_string(line));
}

#define CUDNN_CHECK(statement)                                                                                         \
  do {                                                                                                                 \
    const cudnnStatus_t fg_cudnn_status_ = (statement);                                                                \
    if (fg_cudnn_status_ != CUDNN_STATUS_SUCCESS) throw_cudnn_error(fg_cudnn_status_, #statement, __FILE__, __LINE__); \
  } while (0)

// Algorithms needing more workspace than this are not considered.
constexpr size_t kWorkspaceLimit = size_t(1) << 30;

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
    CUDNN_CHECK(cudnnCreate(&h));
    CUDNN_CHECK(cudnnSetStream(h, cuda::stream(device)));
    handles[size_t(device)] = h;
  }
  return handles[size_t(device)];
}

bool find_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("FG_CUDNN_FIND");
    return !(v && std::string(v) == "0");
  }();
  return enabled;
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
  throw Error(std::string("conv2d (cuDNN): dtype ") + dtype_name(dt) + " is not supported; use f32, f64, f16 or bf16");
}

// f32 stays true f32 (no TF32); f16/bf16 use the tensor cores with f32 accumulation.
cudnnMathType_t math_type(DType dt) {
  if (dt == DType::F16 || dt == DType::BF16) return CUDNN_TENSOR_OP_MATH;
  if (dt == DType::F32) return CUDNN_FMA_MATH;
  return CUDNN_DEFAULT_MATH;
}

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(DType dt, const Shape& s) {
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, data_type(dt), int(s[0]), int(s[1]), int(s[2]), int(s[3])));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc(DType dt, const Shape& s) {
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
    CUDNN_CHECK(
        cudnnSetFilter4dDescriptor(d, data_type(dt), CUDNN_TENSOR_NCHW, int(s[0]), int(s[1]), int(s[2]), int(s[3])));
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc(DType dt, const Conv2dGeometry& g) {
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d, int(g.pad_h), int(g.pad_w), int(g.stride_h), int(g.stride_w),
                                                int(g.dilation_h), int(g.dilation_w), CUDNN_CROSS_CORRELATION,
                                                dt == DType::F64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(d, math_type(dt)));
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

// The descriptors of one problem, from x's and w's shapes.
struct Problem {
  DType dt;
  Shape xs, ws, ys;
  Conv2dGeometry g;
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  Problem(DType dt_, const Shape& xs_, const Shape& ws_, const Shape& ys_, const Conv2dGeometry& g_)
      : dt(dt_), xs(xs_), ws(ws_), ys(ys_), g(g_), x(dt_, xs_), y(dt_, ys_), w(dt_, ws_), conv(dt_, g_) {}
  std::string key(const char* direction, int device) const {
    std::string k = std::string(direction) + "/" + dtype_name(dt) + "/" + std::to_string(device);
    for (const Shape* s : {&xs, &ws})
      for (int64_t v : *s) k += "," + std::to_string(v);
    for (int64_t v : {g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h, g.dilation_w})
      k += ":" + std::to_string(v);
    return k;
  }
};

struct Choice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, Choice>& cache() {
  static std::map<std::string, Choice> c;
  return c;
}

// Picks the fastest algorithm Find measured (Find's results come sorted by time), or the heuristic's first
// choice, among those that succeed within the workspace limit.
template <typename Perf>
Choice pick(const std::vector<Perf>& perf, int returned, size_t workspace, const char* what) {
  for (int i = 0; i < returned; ++i) {
    if (perf[size_t(i)].status == CUDNN_STATUS_SUCCESS && perf[size_t(i)].memory <= workspace)
      return {int(perf[size_t(i)].algo), perf[size_t(i)].mathType};
  }
  throw Error(std::string("conv2d (cuDNN): no ") + what +
              " algorithm fits this problem; use the hand-written "
              "kernels (FG_VENDOR without conv2d)");
}

template <typename Perf>
size_t largest_workspace(const std::vector<Perf>& perf, int returned) {
  size_t bytes = 0;
  for (int i = 0; i < returned; ++i)
    if (perf[size_t(i)].status == CUDNN_STATUS_SUCCESS && perf[size_t(i)].memory <= kWorkspaceLimit)
      bytes = std::max(bytes, perf[size_t(i)].memory);
  return bytes;
}

Tensor workspace_tensor(size_t bytes, int device) {
  return Tensor::empty({int64_t(std::max<size_t>(bytes, 1))}, DType::U8, Device::cuda(device));
}

// The scaling factors cuDNN reads: double for f64 problems, float otherwise.
struct Scale {
  float f;
  double d;
  const void* ptr(DType dt) const { return dt == DType::F64 ? static_cast<const void*>(&d) : &f; }
};

void check_inputs(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  FG_CHECK(a.defined() && b.defined(), "conv2d (cuDNN): " << an << " and " << bn << " must be defined");
  FG_CHECK(a.device().is_cuda() && a.device() == b.device(),
           "conv2d (cuDNN): " << an << " is on " << a.device().str() << " and " << bn << " on " << b.device().str()
                              << "; both must be on one CUDA device");
  FG_CHECK(a.dtype() == b.dtype(), "conv2d (cuDNN): " << an << " is " << dtype_name(a.dtype()) << " but " << bn
                                                      << " is " << dtype_name(b.dtype()) << "; cast them to one dtype");
  FG_CHECK(a.dim() == 4 && b.dim() == 4, "conv2d (cuDNN): " << an << " " << shape_str(a.shape()) << " and " << bn << " "
                                                            << shape_str(b.shape()) << " must be 4-D");
}

// The output shape of x_shape convolved with w_shape; validates the geometry and the channel counts.
Shape output_shape(const Shape& xs, const Shape& ws, const Conv2dGeometry& g) {
  FG_CHECK(xs.size() == 4 && ws.size() == 4,
           "conv2d (cuDNN): x " << shape_str(xs) << " and w " << shape_str(ws) << " must be 4-D");
  FG_CHECK(xs[1] == ws[1], "conv2d (cuDNN): x " << shape_str(xs) << " has " << xs[1] << " channels but w "
                                                << shape_str(ws) << " expects " << ws[1] << " (groups = 1)");
  FG_CHECK(ws[0] >= 1 && ws[1] >= 1 && ws[2] >= 1 && ws[3] >= 1, "conv2d (cuDNN): w " << shape_str(ws) << " is empty");
  const auto [OH, OW] = kernels::conv2d_output_size(xs[2], xs[3], ws[2], ws[3], g);
  for (int64_t v : {xs[0], xs[1], xs[2], xs[3], ws[0], OH, OW})
    FG_CHECK(v < INT32_MAX, "conv2d (cuDNN): a dimension of " << v << " is too large for cuDNN's int sizes");
  return {xs[0], ws[0], OH, OW};
}

void check_out(const Tensor& out, const Shape& shape, const Tensor& ref) {
  FG_CHECK(out.defined() && out.is_contiguous() && out.shape() == shape && out.dtype() == ref.dtype() &&
               out.device() == ref.device(),
           "conv2d (cuDNN): the output must be a contiguous " << dtype_name(ref.dtype()) << shape_str(shape)
                                                              << " tensor on " << ref.device().str());
}

Choice choose_forward(cudnnHandle_t h, const Problem& p, const Tensor& x, const Tensor& w, const Tensor& y,
                      int device) {
  const std::string key = p.key("fwd", device);
  std::lock_guard<std::mutex> lock(cache_mutex());
  const auto it = cache().find(key);
  if (it != cache().end()) return it->second;
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  int returned = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.d, p.w.d, p.conv.d, p.y.d, int(perf.size()), &returned,
                                                     perf.data()));
  size_t limit = kWorkspaceLimit;
  if (find_enabled()) {
    limit = largest_workspace(perf, returned);
    const Tensor ws = workspace_tensor(limit, device);
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, p.x.d, x.raw_data(), p.w.d, w.raw_data(), p.conv.d, p.y.d,
                                                       y.raw_data(), int(perf.size()), &returned, perf.data(),
                                                       ws.raw_data(), limit));
  }
  const Choice c = pick(perf, returned, limit, "forward");
  cache()[key] = c;
  return c;
}

Choice choose_backward_data(cudnnHandle_t h, const Problem& p, const Tensor& w, const Tensor& dy, const Tensor& dx,
                            int device) {
  const std::string key = p.key("bwd_data", device);
  std::lock_guard<std::mutex> lock(cache_mutex());
  const auto it = cache().find(key);
  if (it != cache().end()) return it->second;
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  int returned = 0;
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w.d, p.y.d, p.conv.d, p.x.d, int(perf.size()), &returned,
                                                          perf.data()));
  size_t limit = kWorkspaceLimit;
  if (find_enabled()) {
    limit = largest_workspace(perf, returned);
    const Tensor ws = workspace_tensor(limit, device);
    CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w.d, w.raw_data(), p.y.d, dy.raw_data(), p.conv.d,
                                                            p.x.d, dx.raw_data(), int(perf.size()), &returned,
                                                            perf.data(), ws.raw_data(), limit));
  }
  const Choice c = pick(perf, returned, limit, "backward-data");
  cache()[key] = c;
  return c;
}

Choice choose_backward_filter(cudnnHandle_t h, const Problem& p, const Tensor& x, const Tensor& dy, const Tensor& dw,
                              int device) {
  const std::string key = p.key("bwd_filter", device);
  std::lock_guard<std::mutex> lock(cache_mutex());
  const auto it = cache().find(key);
  if (it != cache().end()) return it->second;
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
  int returned = 0;
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x.d, p.y.d, p.conv.d, p.w.d, int(perf.size()),
                                                            &returned, perf.data()));
  size_t limit = kWorkspaceLimit;
  if (find_enabled()) {
    limit = largest_workspace(perf, returned);
    const Tensor ws = workspace_tensor(limit, device);
    CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, p.x.d, x.raw_data(), p.y.d, dy.raw_data(), p.conv.d,
                                                              p.w.d, dw.raw_data(), int(perf.size()), &returned,
                                                              perf.data(), ws.raw_data(), limit));
  }
  const Choice c = pick(perf, returned, limit, "backward-filter");
  cache()[key] = c;
  return c;
}

// f32 keeps CUDNN_FMA_MATH whatever Find reports; 16-bit problems take the math type the algorithm was timed with.
void apply_math(const Problem& p, const Choice& c) {
  if (p.dt == DType::F16 || p.dt == DType::BF16) CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.d, c.math));
}

}  // namespace

bool cudnn_available() {
  return true;
}

void conv2d_forward_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g) {
  check_inputs(x, "x", w, "w");
  const Shape ys = output_shape(x.shape(), w.shape(), g);
  check_out(out, ys, x);
  check_outputs_separate({&out}, {&x, &w, &b}, "conv2d (cuDNN)");  // tensor/overlap.h
  if (b.defined()) {
    FG_CHECK(b.device() == x.device() && b.dtype() == x.dtype(),
             "conv2d (cuDNN): bias " << b.str() << " must match x " << x.str() << " in device and dtype");
    FG_CHECK(b.dim() == 1 && b.size(0) == w.size(0),
             "conv2d (cuDNN): bias " << shape_str(b.shape()) << " should be (" << w.size(0) << ")");
  }
  if (out.numel() == 0) return;
  const int device = x.device().index;
  cuda::DeviceGuard guard(device);
  if (x.numel() == 0) {  // an empty image padded into a window: only the bias (cuDNN rejects empty tensors)
    if (b.defined())
      out.copy_(b.reshape({1, -1, 1, 1}).expand(out.shape()));
    else
      out.zero_();
    return;
  }
  const cudnnHandle_t h = handle(device);
  const Tensor xc = x.contiguous(), wc = w.contiguous();
  const Problem p(x.dtype(), x.shape(), w.shape(), ys, g);
  const Choice c = choose_forward(h, p, xc, wc, out, device);
  apply_math(p, c);
  const auto algo = cudnnConvolutionFwdAlgo_t(c.algo);
  size_t bytes = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, p.x.d, p.w.d, p.conv.d, p.y.d, algo, &bytes));
  const Tensor ws = workspace_tensor(bytes, device);
  const Scale one{1.0f, 1.0}, zero{0.0f, 0.0};
  CUDNN_CHECK(cudnnConvolutionForward(h, one.ptr(p.dt), p.x.d, xc.raw_data(), p.w.d, wc.raw_data(), p.conv.d, algo,
                                      ws.raw_data(), bytes, zero.ptr(p.dt), p.y.d, out.raw_data()));
  if (b.defined()) {
    const Tensor bc = b.contiguous();
    const TensorDesc bias_desc(p.dt, {1, w.size(0), 1, 1});
    CUDNN_CHECK(cudnnAddTensor(h, one.ptr(p.dt), bias_desc.d, bc.raw_data(), one.ptr(p.dt), p.y.d, out.raw_data()));
  }
}

void conv2d_backward_input_into(Tensor& out, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g) {
  check_inputs(grad_out, "grad_out", w, "w");
  FG_CHECK(out.defined() && out.dim() == 4, "conv2d (cuDNN): dx must be a 4-D tensor");
  const Shape ys = output_shape(out.shape(), w.shape(), g);
  FG_CHECK(grad_out.shape() == ys, "conv2d backward (cuDNN): grad_out is " << shape_str(grad_out.shape())
                                                                           << " but the output is " << shape_str(ys));
  check_out(out, out.shape(), grad_out);
  check_outputs_separate({&out}, {&grad_out, &w}, "conv2d backward (cuDNN)");
  if (out.numel() == 0) return;
  const int device = grad_out.device().index;
  cuda::DeviceGuard guard(device);
  const cudnnHandle_t h = handle(device);
  const Tensor dyc = grad_out.contiguous(), wc = w.contiguous();
  const Problem p(w.dtype(), out.shape(), w.shape(), ys, g);
  const Choice c = choose_backward_data(h, p, wc, dyc, out, device);
  apply_math(p, c);
  const auto algo = cudnnConvolutionBwdDataAlgo_t(c.algo);
  size_t bytes = 0;
  CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w.d, p.y.d, p.conv.d, p.x.d, algo, &bytes));
  const Tensor ws = workspace_tensor(bytes, device);
  const Scale one{1.0f, 1.0}, zero{0.0f, 0.0};
  CUDNN_CHECK(cudnnConvolutionBackwardData(h, one.ptr(p.dt), p.w.d, wc.raw_data(), p.y.d, dyc.raw_data(), p.conv.d,
                                           algo, ws.raw_data(), bytes, zero.ptr(p.dt), p.x.d, out.raw_data()));
}

void conv2d_backward_weight_into(Tensor& out, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g) {
  check_inputs(grad_out, "grad_out", x, "x");
  FG_CHECK(out.defined() && out.dim() == 4, "conv2d (cuDNN): dw must be a 4-D tensor");
  const Shape ys = output_shape(x.shape(), out.shape(), g);
  FG_CHECK(grad_out.shape() == ys, "conv2d backward (cuDNN): grad_out is " << shape_str(grad_out.shape())
                                                                           << " but the output is " << shape_str(ys));
  check_out(out, out.shape(), grad_out);
  check_outputs_separate({&out}, {&grad_out, &x}, "conv2d backward (cuDNN)");
  if (out.numel() == 0) return;
  const int device = grad_out.device().index;
  cuda::DeviceGuard guard(device);
  if (grad_out.numel() == 0) {  // no output positions: the gradient is zero (cuDNN rejects empty tensors)
    out.zero_();
    return;
  }
  const cudnnHandle_t h = handle(device);
  const Tensor dyc = grad_out.contiguous(), xc = x.contiguous();
  const Problem p(x.dtype(), x.shape(), out.shape(), ys, g);
  const Choice c = choose_backward_filter(h, p, xc, dyc, out, device);
  apply_math(p, c);
  const auto algo = cudnnConvolutionBwdFilterAlgo_t(c.algo);
  size_t bytes = 0;
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x.d, p.y.d, p.conv.d, p.w.d, algo, &bytes));
  const Tensor ws = workspace_tensor(bytes, device);
  const Scale one{1.0f, 1.0}, zero{0.0f, 0.0};
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, one.ptr(p.dt), p.x.d, xc.raw_data(), p.y.d, dyc.raw_data(), p.conv.d,
                                             algo, ws.raw_data(), bytes, zero.ptr(p.dt), p.w.d, out.raw_data()));
}

#else  // !FG_WITH_CUDNN

namespace {
[[noreturn]] void no_cudnn() {
  throw Error(
      "conv2d: the cuDNN twin is selected (FG_VENDOR or set_vendor) but this filmgrad was built without "
      "cuDNN; select the hand-written kernels (leave conv2d out of FG_VENDOR) or rebuild with cuDNN installed");
}
}  // namespace

bool cudnn_available() {
  return false;
}
void conv2d_forward_into(Tensor&, const Tensor&, const Tensor&, const Tensor&, const kernels::Conv2dGeometry&) {
  no_cudnn();
}
void conv2d_backward_input_into(Tensor&, const Tensor&, const Tensor&, const kernels::Conv2dGeometry&) {
  no_cudnn();
}
void conv2d_backward_weight_into(Tensor&, const Tensor&, const Tensor&, const kernels::Conv2dGeometry&) {
  no_cudnn();
}

#endif  // FG_WITH_CUDNN

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const kernels::Conv2dGeometry& g) {
  FG_CHECK(x.defined() && w.defined() && x.dim() == 4 && w.dim() == 4,
           "conv2d (cuDNN): x must be (N, C, H, W) and w (O, C, KH, KW)");
  const auto [OH, OW] = kernels::conv2d_output_size(x.size(2), x.size(3), w.size(2), w.size(3), g);
  Tensor out = Tensor::empty({x.size(0), w.size(0), OH, OW}, x.dtype(), x.device());
  conv2d_forward_into(out, x, w, b, g);
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& x_shape,
                             const kernels::Conv2dGeometry& g) {
  FG_CHECK(grad_out.defined(), "conv2d backward (cuDNN): grad_out must be defined");
  Tensor out = Tensor::empty(x_shape, grad_out.dtype(), grad_out.device());
  conv2d_backward_input_into(out, grad_out, w, g);
  return out;
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& w_shape,
                              const kernels::Conv2dGeometry& g) {
  FG_CHECK(grad_out.defined(), "conv2d backward (cuDNN): grad_out must be defined");
  Tensor out = Tensor::empty(w_shape, grad_out.dtype(), grad_out.device());
  conv2d_backward_weight_into(out, grad_out, x, g);
  return out;
}

}  // namespace fg::vendor

#endif  // FG_WITH_CUDA
