// Layers: see nn/layers.h. extra_repr() strings follow PyTorch's, so a printed model reads like print(model).
#include "nn/layers.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "kernels/elementwise.h"
#include "nn/init.h"
#include "tensor/error.h"

namespace fg::nn {

namespace {

// Python's repr of a float for the values layers print (0.1, 1e-05, 2.0).
std::string py_float(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  std::string s = buf;
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}

const char* py_bool(bool b) { return b ? "True" : "False"; }

std::string pair_str(int64_t v) { return "(" + std::to_string(v) + ", " + std::to_string(v) + ")"; }
std::string single_str(int64_t v) { return "(" + std::to_string(v) + ",)"; }

void check_positive(int64_t v, const char* layer, const char* what) {
  FG_CHECK(v > 0, layer << ": " << what << " must be positive, got " << v);
}

// PyTorch's reset_parameters for Conv and Linear: kaiming_uniform_(a = sqrt(5)) gives U(+-1/sqrt(fan_in)), and the
// bias is U(+-1/sqrt(fan_in)).
void default_init(Generator& gen, const Variable& weight, const Variable& bias) {
  init::kaiming_uniform_(weight.data(), gen, std::sqrt(5.0));
  if (bias.defined()) {
    const int64_t fan_in = init::calculate_fans(weight.shape()).fan_in;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
    init::uniform_(bias.data(), gen, -bound, bound);
  }
}

}  // namespace

// ---- WeightLayer ----

Variable WeightLayer::weight() const { return spectral_norm_ ? spectral_norm_->weight_orig() : weight_; }

Variable WeightLayer::effective_weight() {
  return spectral_norm_ ? spectral_norm_->weight(is_training()) : weight_;
}

void WeightLayer::use_spectral_norm(Generator& gen, int64_t power_iterations, double eps) {
  FG_CHECK(!spectral_norm_, type_name() << ": spectral norm is already on");
  Variable w = take_parameter("weight");
  spectral_norm_ = std::make_unique<SpectralNorm>(*this, w, gen, power_iterations, eps);
  weight_ = Variable();
}

bool WeightLayer::fits_f16() const {
  if (spectral_norm_) return true;
  for (const Variable& v : {weight_, bias_}) {
    if (!v.defined() || v.dtype() == DType::F16) continue;
    const double largest = kernels::max_abs(v.data().to(Device::cpu()));
    if (!std::isfinite(largest) || largest > 65504.0) return false;
  }
  return true;
}

int64_t WeightLayer::store_f16() {
  if (spectral_norm_) return 0;
  FG_CHECK(fits_f16(), type_name() << ": a weight is beyond f16's range (65504); keep this model's weights in f32");
  int64_t saved = 0;
  for (const Variable& v : {weight_, bias_}) {
    if (!v.defined() || v.dtype() == DType::F16) continue;
    VariableImpl* impl = v.impl();
    saved += int64_t(impl->data.nbytes());
    impl->data = impl->data.to(DType::F16);
    impl->grad = Tensor();
    saved -= int64_t(impl->data.nbytes());
  }
  return saved;
}

Variable WeightLayer::weight_as(DType dtype) {
  Variable w = effective_weight();
  return w.dtype() == dtype ? w : cast(w, dtype);
}

Variable WeightLayer::bias_as(DType dtype) const {
  if (!bias_.defined() || bias_.dtype() == dtype) return bias_;
  return cast(bias_, dtype);
}

// ---- Conv2d ----

Conv2d::Conv2d(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
               int64_t padding, int64_t dilation, bool bias)
    : WeightLayer("Conv2d"),
      in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      params_(Conv2dParams::square(stride, padding, dilation)) {
  check_positive(in_channels, "Conv2d", "in_channels");
  check_positive(out_channels, "Conv2d", "out_channels");
  check_positive(kernel_size, "Conv2d", "kernel_size");
  check_positive(stride, "Conv2d", "stride");
  check_positive(dilation, "Conv2d", "dilation");
  FG_CHECK(padding >= 0, "Conv2d: padding must be >= 0, got " << padding);
  weight_ = register_parameter("weight", Tensor::empty({out_channels, in_channels, kernel_size, kernel_size}));
  if (bias) bias_ = register_parameter("bias", Tensor::empty({out_channels}));
  default_init(gen, weight_, bias_);
}

Variable Conv2d::forward(const Variable& x) {
  return conv2d(x, weight_as(x.dtype()), bias_as(x.dtype()), params_);
}

void Conv2d::fold_batch_norm(const BatchNorm2d& bn) {
  FG_CHECK(!spectral_norm_, "Conv2d: cannot fold a BatchNorm into a spectrally normalised weight");
  FG_CHECK(bn.num_features() == out_channels_, "Conv2d(" << in_channels_ << ", " << out_channels_
                                                         << "): cannot fold a BatchNorm2d of " << bn.num_features()
                                                         << " channels into its output");
  const auto [scale, shift] = bn.eval_scale_shift();
  const Tensor w_old = weight_.data();
  Tensor w = w_old.to(Device::cpu()).to(DType::F64).contiguous().clone();
  Tensor b = bias_.defined() ? bias_.data().to(Device::cpu()).to(DType::F64).contiguous().clone()
                             : Tensor::zeros({out_channels_}, DType::F64);
  const int64_t per_channel = w.numel() / out_channels_;
  double* wp = w.data<double>();
  double* bp = b.data<double>();
  const double* s = scale.data<double>();
  const double* t = shift.data<double>();
  for (int64_t o = 0; o < out_channels_; ++o) {
    for (int64_t i = 0; i < per_channel; ++i) wp[o * per_channel + i] *= s[o];
    bp[o] = bp[o] * s[o] + t[o];  // (b - mean) s + beta, with shift = beta - mean s
  }
  weight_.set_data(w.to(w_old.dtype()).to(w_old.device()));
  if (bias_.defined()) {
    bias_.set_data(b.to(bias_.dtype()).to(bias_.data().device()));
  } else {
    bias_ = register_parameter("bias", b.to(w_old.dtype()).to(w_old.device()), weight_.requires_grad());
  }
}

std::string Conv2d::extra_repr() const {
  std::ostringstream os;
  os << in_channels_ << ", " << out_channels_ << ", kernel_size=" << pair_str(kernel_size_)
     << ", stride=" << pair_str(params_.stride_h);
  if (params_.pad_h != 0) os << ", padding=" << pair_str(params_.pad_h);
  if (params_.dilation_h != 1) os << ", dilation=" << pair_str(params_.dilation_h);
  if (!bias_.defined()) os << ", bias=False";
  return os.str();
}

// ---- Conv1d ----

Conv1d::Conv1d(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
               int64_t padding, int64_t dilation, bool bias)
    : WeightLayer("Conv1d"),
      in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      stride_(stride),
      padding_(padding),
      dilation_(dilation) {
  check_positive(in_channels, "Conv1d", "in_channels");
  check_positive(out_channels, "Conv1d", "out_channels");
  check_positive(kernel_size, "Conv1d", "kernel_size");
  check_positive(stride, "Conv1d", "stride");
  check_positive(dilation, "Conv1d", "dilation");
  FG_CHECK(padding >= 0, "Conv1d: padding must be >= 0, got " << padding);
  weight_ = register_parameter("weight", Tensor::empty({out_channels, in_channels, kernel_size}));
  if (bias) bias_ = register_parameter("bias", Tensor::empty({out_channels}));
  default_init(gen, weight_, bias_);
}

Variable Conv1d::forward(const Variable& x) {
  return conv1d(x, weight_as(x.dtype()), bias_as(x.dtype()), stride_, padding_, dilation_);
}

std::string Conv1d::extra_repr() const {
  std::ostringstream os;
  os << in_channels_ << ", " << out_channels_ << ", kernel_size=" << single_str(kernel_size_)
     << ", stride=" << single_str(stride_);
  if (padding_ != 0) os << ", padding=" << single_str(padding_);
  if (dilation_ != 1) os << ", dilation=" << single_str(dilation_);
  if (!bias_.defined()) os << ", bias=False";
  return os.str();
}

// ---- Linear ----

Linear::Linear(Generator& gen, int64_t in_features, int64_t out_features, bool bias)
    : WeightLayer("Linear"), in_features_(in_features), out_features_(out_features) {
  check_positive(in_features, "Linear", "in_features");
  check_positive(out_features, "Linear", "out_features");
  weight_ = register_parameter("weight", Tensor::empty({out_features, in_features}));
  if (bias) bias_ = register_parameter("bias", Tensor::empty({out_features}));
  default_init(gen, weight_, bias_);
}

Variable Linear::forward(const Variable& x) {
  return linear(x, weight_as(x.dtype()), bias_as(x.dtype()));
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features_) + ", out_features=" + std::to_string(out_features_) +
         ", bias=" + py_bool(bias_.defined());
}

// ---- BatchNorm2d ----

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps, double momentum, bool affine)
    : Module("BatchNorm2d"), num_features_(num_features), eps_(eps), momentum_(momentum), affine_(affine) {
  check_positive(num_features, "BatchNorm2d", "num_features");
  FG_CHECK(eps > 0.0, "BatchNorm2d: eps must be positive, got " << eps);
  FG_CHECK(momentum >= 0.0 && momentum <= 1.0, "BatchNorm2d: momentum must be in [0, 1], got " << momentum);
  if (affine) {
    weight_ = register_parameter("weight", Tensor::ones({num_features}));
    bias_ = register_parameter("bias", Tensor::zeros({num_features}));
  }
  running_mean_ = register_buffer("running_mean", Tensor::zeros({num_features}));
  running_var_ = register_buffer("running_var", Tensor::ones({num_features}));
  num_batches_tracked_ = register_buffer("num_batches_tracked", Tensor::scalar(0.0, DType::I64));
}

int64_t BatchNorm2d::num_batches_tracked() const {
  return int64_t(num_batches_tracked_.data().to(Device::cpu()).item());
}

Variable BatchNorm2d::forward(const Variable& x) {
  FG_CHECK(x.dim() == 4, "BatchNorm2d: expected 4D input (N, C, H, W), got " << x.data().str());
  FG_CHECK(x.size(1) == num_features_, "BatchNorm2d(" << num_features_ << "): input " << x.data().str() << " has "
                                                      << x.size(1) << " channels");
  if (is_training()) {
    Tensor counter = num_batches_tracked_.data();
    if (counter.device().is_cpu()) {
      counter.data<int64_t>()[0] += 1;
    } else {  // a one-element round trip; the counter is informational and never on a hot path's critical data
      counter.copy_(Tensor::scalar(double(num_batches_tracked() + 1), DType::I64).to(counter.device()));
    }
  }
  if (is_training() && stats_all_reduce_)
    return sync_batch_norm(x, weight_, bias_, running_mean_.data(), running_var_.data(), momentum_, eps_,
                           stats_all_reduce_);
  return batch_norm(x, weight_, bias_, running_mean_.data(), running_var_.data(), is_training(), momentum_, eps_);
}

std::pair<Tensor, Tensor> BatchNorm2d::eval_scale_shift() const {
  const int64_t C = num_features_;
  const Tensor mean = running_mean_.data().to(Device::cpu()).to(DType::F64).contiguous();
  const Tensor var = running_var_.data().to(Device::cpu()).to(DType::F64).contiguous();
  const Tensor gamma =
      weight_.defined() ? weight_.data().to(Device::cpu()).to(DType::F64).contiguous() : Tensor::ones({C}, DType::F64);
  const Tensor beta =
      bias_.defined() ? bias_.data().to(Device::cpu()).to(DType::F64).contiguous() : Tensor::zeros({C}, DType::F64);
  Tensor scale = Tensor::empty({C}, DType::F64), shift = Tensor::empty({C}, DType::F64);
  for (int64_t c = 0; c < C; ++c) {
    const double s = gamma.data<double>()[c] / std::sqrt(var.data<double>()[c] + eps_);
    scale.data<double>()[c] = s;
    shift.data<double>()[c] = beta.data<double>()[c] - mean.data<double>()[c] * s;
  }
  return {scale, shift};
}

std::string BatchNorm2d::extra_repr() const {
  return std::to_string(num_features_) + ", eps=" + py_float(eps_) + ", momentum=" + py_float(momentum_) +
         ", affine=" + py_bool(affine_) + ", track_running_stats=True";
}

// ---- ChannelAffine ----

ChannelAffine::ChannelAffine(const BatchNorm2d& bn) : Module("ChannelAffine"), num_features_(bn.num_features()) {
  const auto [scale, shift] = bn.eval_scale_shift();
  const Tensor like = bn.running_mean();
  scale_ = register_buffer("scale", scale.to(like.dtype()).to(like.device()));
  shift_ = register_buffer("shift", shift.to(like.dtype()).to(like.device()));
}

Variable ChannelAffine::forward(const Variable& x) {
  FG_CHECK(x.dim() == 4 && x.size(1) == num_features_, "ChannelAffine(" << num_features_ << "): expected input (N, "
                                                                        << num_features_ << ", H, W), got "
                                                                        << x.data().str());
  // The eval-mode normalisation with mean 0 and variance 1 (eps 0: invstd is exactly 1) is x * scale + shift in
  // one pass and one output, which two broadcast ops would not be.
  const Tensor& s = scale_.data();
  const Tensor zeros = Tensor::zeros({num_features_}, s.dtype(), s.device());
  const Tensor ones = Tensor::ones({num_features_}, s.dtype(), s.device());
  const DType dt = x.dtype();
  return batch_norm(x, Variable(s.to(dt)), Variable(shift_.data().to(dt)), zeros.to(dt), ones.to(dt),
                    /*training=*/false, 0.0, 0.0);
}

std::string ChannelAffine::extra_repr() const {
  return std::to_string(num_features_);
}

// ---- activations ----

std::string LeakyReLU::extra_repr() const { return "negative_slope=" + py_float(negative_slope_); }

SigmoidRange::SigmoidRange(double lo, double hi) : Module("SigmoidRange"), lo_(lo), hi_(hi) {
  FG_CHECK(lo < hi, "SigmoidRange: low " << lo << " must be below high " << hi);
}

std::string SigmoidRange::extra_repr() const { return "low=" + py_float(lo_) + ", high=" + py_float(hi_); }

// ---- pooling, padding, resampling ----

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding)
    : Module("MaxPool2d"), kernel_(kernel_size), stride_(stride == 0 ? kernel_size : stride), padding_(padding) {
  check_positive(kernel_size, "MaxPool2d", "kernel_size");
  check_positive(stride_, "MaxPool2d", "stride");
  FG_CHECK(padding >= 0 && 2 * padding <= kernel_size,
           "MaxPool2d: padding " << padding << " must be in [0, kernel_size / 2] for kernel_size " << kernel_size);
}

std::string MaxPool2d::extra_repr() const {
  return "kernel_size=" + std::to_string(kernel_) + ", stride=" + std::to_string(stride_) +
         ", padding=" + std::to_string(padding_) + ", dilation=1, ceil_mode=False";
}

AvgPool2d::AvgPool2d(int64_t kernel_size, int64_t stride, int64_t padding, bool count_include_pad)
    : Module("AvgPool2d"),
      kernel_(kernel_size),
      stride_(stride == 0 ? kernel_size : stride),
      padding_(padding),
      count_include_pad_(count_include_pad) {
  check_positive(kernel_size, "AvgPool2d", "kernel_size");
  check_positive(stride_, "AvgPool2d", "stride");
  FG_CHECK(padding >= 0 && 2 * padding <= kernel_size,
           "AvgPool2d: padding " << padding << " must be in [0, kernel_size / 2] for kernel_size " << kernel_size);
}

Variable AvgPool2d::forward(const Variable& x) {
  return avg_pool2d(x, kernel_, stride_, padding_, count_include_pad_);
}

std::string AvgPool2d::extra_repr() const {
  return "kernel_size=" + std::to_string(kernel_) + ", stride=" + std::to_string(stride_) +
         ", padding=" + std::to_string(padding_);
}

namespace {
std::string pad_repr(int64_t l, int64_t r, int64_t t, int64_t b) {
  return "(" + std::to_string(l) + ", " + std::to_string(r) + ", " + std::to_string(t) + ", " + std::to_string(b) +
         ")";
}
}  // namespace

ReplicationPad2d::ReplicationPad2d(int64_t left, int64_t right, int64_t top, int64_t bottom)
    : Module("ReplicationPad2d"), left_(left), right_(right), top_(top), bottom_(bottom) {
  FG_CHECK(left >= 0 && right >= 0 && top >= 0 && bottom >= 0,
           "ReplicationPad2d: padding must be >= 0, got " << pad_repr(left, right, top, bottom));
}

std::string ReplicationPad2d::extra_repr() const { return pad_repr(left_, right_, top_, bottom_); }

ZeroPad2d::ZeroPad2d(int64_t left, int64_t right, int64_t top, int64_t bottom)
    : Module("ZeroPad2d"), left_(left), right_(right), top_(top), bottom_(bottom) {
  FG_CHECK(left >= 0 && right >= 0 && top >= 0 && bottom >= 0,
           "ZeroPad2d: padding must be >= 0, got " << pad_repr(left, right, top, bottom));
}

std::string ZeroPad2d::extra_repr() const { return pad_repr(left_, right_, top_, bottom_); }

PixelShuffle::PixelShuffle(int64_t upscale_factor) : Module("PixelShuffle"), factor_(upscale_factor) {
  check_positive(upscale_factor, "PixelShuffle", "upscale_factor");
}

std::string PixelShuffle::extra_repr() const { return "upscale_factor=" + std::to_string(factor_); }

UpsampleNearest::UpsampleNearest(int64_t scale_factor) : UpsampleNearest(scale_factor, 0, 0) {
  check_positive(scale_factor, "UpsampleNearest", "scale_factor");
}

UpsampleNearest::UpsampleNearest(int64_t scale, int64_t out_h, int64_t out_w)
    : Module("Upsample"), scale_(scale), out_h_(out_h), out_w_(out_w) {}

std::shared_ptr<UpsampleNearest> UpsampleNearest::with_size(int64_t out_h, int64_t out_w) {
  check_positive(out_h, "UpsampleNearest", "output height");
  check_positive(out_w, "UpsampleNearest", "output width");
  return std::shared_ptr<UpsampleNearest>(new UpsampleNearest(0, out_h, out_w));
}

Variable UpsampleNearest::forward(const Variable& x) {
  FG_CHECK(x.dim() == 4, "Upsample: expected 4D input (N, C, H, W), got " << x.data().str());
  if (scale_ == 0) return upsample_nearest2d(x, out_h_, out_w_);
  return upsample_nearest2d(x, x.size(2) * scale_, x.size(3) * scale_);
}

std::string UpsampleNearest::extra_repr() const {
  if (scale_ == 0) return "size=(" + std::to_string(out_h_) + ", " + std::to_string(out_w_) + "), mode=nearest";
  return "scale_factor=" + py_float(double(scale_)) + ", mode=nearest";
}

// ---- dropout ----

uint64_t derive_seed(Generator& gen) {
  const uint64_t first = gen.reserve(2);
  return uint64_t(gen.word(first, 0)) | (uint64_t(gen.word(first, 1)) << 32);
}

namespace {
void check_probability(double p, const char* layer) {
  FG_CHECK(p >= 0.0 && p <= 1.0, layer << ": dropout probability has to be between 0 and 1, but got " << p);
}
}  // namespace

Dropout::Dropout(double p, uint64_t seed) : Module("Dropout"), p_(p), gen_(seed) { check_probability(p, "Dropout"); }
Dropout::Dropout(double p, Generator& seed_source) : Dropout(p, derive_seed(seed_source)) {}
std::string Dropout::extra_repr() const { return "p=" + py_float(p_) + ", inplace=False"; }

Dropout2d::Dropout2d(double p, uint64_t seed) : Module("Dropout2d"), p_(p), gen_(seed) {
  check_probability(p, "Dropout2d");
}
Dropout2d::Dropout2d(double p, Generator& seed_source) : Dropout2d(p, derive_seed(seed_source)) {}
std::string Dropout2d::extra_repr() const { return "p=" + py_float(p_) + ", inplace=False"; }

std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim_) + ", end_dim=" + std::to_string(end_dim_);
}

// ---- Sequential ----

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) : Module("Sequential") {
  for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(size()), std::move(module));
}

std::shared_ptr<Module> Sequential::operator[](size_t i) const {
  FG_CHECK(i < size(), "Sequential: index " << i << " is out of range for " << size() << " modules");
  return named_children()[i].second;
}

Variable Sequential::forward(const Variable& x) {
  Variable y = x;
  for (const auto& c : named_children()) y = (*c.second)(y);
  return y;
}

// ---- SelfAttention ----

SelfAttention::SelfAttention(Generator& gen, int64_t channels, bool spectral_norm)
    : Module("SelfAttention"), channels_(channels) {
  FG_CHECK(channels >= 8, "SelfAttention: needs at least 8 channels (query and key have channels / 8), got "
                              << channels);
  // fastai's conv1d: PyTorch's Conv1d, then kaiming_normal_ on the weight, then spectral_norm (its u, v draws).
  auto make = [&](int64_t out) {
    auto conv = std::make_shared<Conv1d>(gen, channels, out, 1, 1, 0, 1, false);
    init::kaiming_normal_(conv->weight().data(), gen);
    if (spectral_norm) conv->use_spectral_norm(gen);
    return conv;
  };
  query_ = register_module("query", make(channels / 8));
  key_ = register_module("key", make(channels / 8));
  value_ = register_module("value", make(channels));
  gamma_ = register_parameter("gamma", Tensor::zeros({1}));
}

Variable SelfAttention::forward(const Variable& x) {
  FG_CHECK(x.dim() == 4 && x.size(1) == channels_, "SelfAttention(" << channels_ << "): expected input (B, "
                                                                    << channels_ << ", H, W), got "
                                                                    << x.data().str());
  return self_attention(x, query_->weight_as(x.dtype()), key_->weight_as(x.dtype()), value_->weight_as(x.dtype()),
                        gamma_);
}

}  // namespace fg::nn
