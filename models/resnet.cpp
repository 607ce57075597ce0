// ResNet34 as torchvision builds it: see models/resnet.h.
#include "models/resnet.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "autograd/ops.h"
#include "models/inference.h"
#include "nn/init.h"
#include "tensor/error.h"

namespace fg::models {

int64_t scaled_channels(int64_t channels, double width, const char* who) {
  FG_CHECK(std::isfinite(width) && width > 0.0,
           who << ": width must be a positive number (1.0 is the published network), got " << width);
  const double scaled = std::floor(double(channels) * width + 0.5);
  FG_CHECK(scaled < 1e9, who << ": width " << width << " makes " << channels << " channels into " << scaled
                             << "; use a width of at most a few times 1.0");
  return std::max<int64_t>(1, int64_t(scaled));
}

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// torchvision's init for a convolution: kaiming_normal_(mode="fan_out", nonlinearity="relu").
void torchvision_conv_init(nn::Conv2d& conv, Generator& gen) {
  nn::init::kaiming_normal_(conv.weight().data(), gen, 0.0, nn::init::FanMode::FanOut, nn::init::Nonlinearity::Relu);
}

std::shared_ptr<nn::Conv2d> make_conv(Generator& gen, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                      int64_t padding) {
  auto conv = std::make_shared<nn::Conv2d>(gen, in, out, kernel, stride, padding, 1, /*bias=*/false);
  torchvision_conv_init(*conv, gen);
  return conv;
}

// nn.AdaptiveAvgPool2d((1, 1)): the mean over H and W, keeping them as size-1 dims.
class AdaptiveAvgPool2d : public nn::Module {
 public:
  AdaptiveAvgPool2d() : Module("AdaptiveAvgPool2d") {}
  Variable forward(const Variable& x) override {
    FG_CHECK(x.dim() == 4, "AdaptiveAvgPool2d: expected 4D input (N, C, H, W), got " << x.data().str());
    return mean(x, {2, 3}, /*keepdim=*/true);
  }
  std::string extra_repr() const override { return "output_size=(1, 1)"; }
};

}  // namespace

void load_torchvision_state(nn::Module& module, const std::map<std::string, Tensor>& state,
                            const std::vector<std::string>& skip_prefixes, const std::string& who) {
  std::map<std::string, Tensor> own;
  for (const auto& e : module.state_dict()) own.emplace(e.first, e.second);

  std::map<std::string, Tensor> filtered;
  for (const auto& e : state) {
    bool skip = false;
    for (const auto& p : skip_prefixes) skip = skip || starts_with(e.first, p);
    if (skip) continue;
    Tensor t = e.second;
    auto it = own.find(e.first);
    if (t.defined() && it != own.end() && t.dtype() != it->second.dtype() && dtype_is_floating(t.dtype()) &&
        dtype_is_floating(it->second.dtype()))
      t = t.to(it->second.dtype());
    filtered.emplace(e.first, t);
  }
  // torchvision's published ResNet and VGG weights were saved before BatchNorm had num_batches_tracked; PyTorch's
  // BatchNorm fills it with 0 when loading them, and so does this.
  for (const auto& e : own) {
    if (ends_with(e.first, ".num_batches_tracked") && !filtered.count(e.first))
      filtered.emplace(e.first, Tensor::zeros(e.second.shape(), e.second.dtype()));
  }
  try {
    module.load_state_dict(filtered, /*strict=*/true);
  } catch (const Error& err) {
    throw Error(who + ": " + err.what());
  }
}

// ---- BasicBlock ----

BasicBlock::BasicBlock(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t stride)
    : Module("BasicBlock") {
  conv1_ = register_module("conv1", make_conv(gen, in_channels, out_channels, 3, stride, 1));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(out_channels));
  relu_ = register_module("relu", std::make_shared<nn::ReLU>());
  conv2_ = register_module("conv2", make_conv(gen, out_channels, out_channels, 3, 1, 1));
  bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(out_channels));
  if (stride != 1 || in_channels != out_channels) {
    downsample_ = register_module(
        "downsample",
        std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
            make_conv(gen, in_channels, out_channels, 1, stride, 0), std::make_shared<nn::BatchNorm2d>(out_channels)}));
  }
}

Variable BasicBlock::forward(const Variable& x) {
  // One layer per statement: at inference (no graph) each map is freed as soon as the next exists, where one
  // expression would keep all its temporaries until its end.
  Variable out = (*conv1_)(x);
  out = (*bn1_)(out);
  out = (*relu_)(out);
  out = (*conv2_)(out);
  out = (*bn2_)(out);
  if (downsample_) {
    out = add(out, (*downsample_)(x));
  } else {
    out = add(out, x);
  }
  return (*relu_)(out);
}

void BasicBlock::fold_batch_norm() {
  bn1_ = fold_batch_norm_into(*this, "bn1", *conv1_);
  bn2_ = fold_batch_norm_into(*this, "bn2", *conv2_);
  if (downsample_) fold_batch_norm_into(*downsample_, "1", *downsample_->at<nn::Conv2d>(0));
}

// ---- ResNet34 ----

ResNet34::ResNet34(Generator& gen, double width, int64_t num_classes)
    : Module("ResNet"), width_(width), num_classes_(num_classes) {
  FG_CHECK(num_classes >= 0,
           "ResNet34: num_classes must be >= 0 (0 = the body without avgpool/fc), got " << num_classes);
  static constexpr int64_t kChannels[4] = {64, 128, 256, 512};
  static constexpr int64_t kBlocks[4] = {3, 4, 6, 3};
  for (int i = 0; i < 4; ++i) channels_[i] = scaled_channels(kChannels[i], width, "ResNet34");

  conv1_ = register_module("conv1", make_conv(gen, 3, channels_[0], 7, 2, 3));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(channels_[0]));
  relu_ = register_module("relu", std::make_shared<nn::ReLU>());
  maxpool_ = register_module("maxpool", std::make_shared<nn::MaxPool2d>(3, 2, 1));
  int64_t in = channels_[0];
  for (int i = 0; i < 4; ++i) {
    auto layer = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < kBlocks[i]; ++b) {
      const int64_t stride = (i > 0 && b == 0) ? 2 : 1;
      layer->push_back(std::make_shared<BasicBlock>(gen, in, channels_[i], stride));
      in = channels_[i];
    }
    layers_[i] = register_module("layer" + std::to_string(i + 1), layer);
  }
  if (num_classes > 0) {
    avgpool_ = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>());
    fc_ = register_module("fc", std::make_shared<nn::Linear>(gen, channels_[3], num_classes));
  }
}

ResNetFeatures ResNet34::features(const Variable& x) {
  FG_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet34: expected an RGB batch (N, 3, H, W), got " << x.data().str());
  ResNetFeatures f;
  f.s4 = (*conv1_)(x);
  f.s4 = (*bn1_)(f.s4);
  f.s4 = (*relu_)(f.s4);
  f.s3 = (*layers_[0])((*maxpool_)(f.s4));
  f.s2 = (*layers_[1])(f.s3);
  f.s1 = (*layers_[2])(f.s2);
  f.out = (*layers_[3])(f.s1);
  return f;
}

ResNetFeatures ResNet34::forward_features(const Variable& x) {
  ResNetFeatures f = features(x);
  record_output(f.out);
  return f;
}

Variable ResNet34::forward(const Variable& x) {
  const Variable body = features(x).out;
  if (num_classes_ == 0) return body;
  return (*fc_)(flatten((*avgpool_)(body), 1));
}

void ResNet34::fold_batch_norm() {
  bn1_ = fold_batch_norm_into(*this, "bn1", *conv1_);
  for (const auto& layer : layers_)
    for (size_t b = 0; b < layer->size(); ++b) layer->at<BasicBlock>(b)->fold_batch_norm();
}

int64_t ResNet34::stage_channels(int stage) const {
  FG_CHECK(stage >= 0 && stage < 4,
           "ResNet34::stage_channels: stage must be 0 (s4/s3), 1 (s2), 2 (s1) or 3 (out), got " << stage);
  return channels_[stage];
}

void ResNet34::load_torchvision(const std::map<std::string, Tensor>& state) {
  std::ostringstream who;
  who << "ResNet34::load_torchvision (width " << width_ << ", " << num_classes_ << " classes)";
  std::vector<std::string> skip;
  if (num_classes_ == 0) skip.push_back("fc.");
  load_torchvision_state(*this, state, skip, who.str());
}

}  // namespace fg::models
