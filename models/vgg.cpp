// VGG16 / VGG16-BN features as torchvision builds them: see models/vgg.h.
#include "models/vgg.h"

#include <sstream>

#include "models/resnet.h"
#include "nn/init.h"
#include "tensor/error.h"

namespace fg::models {

VGG16::VGG16(Generator& gen, bool batch_norm, double width) : Module("VGG"), batch_norm_(batch_norm), width_(width) {
  // torchvision's cfgs["D"]; 0 marks a max-pool.
  static constexpr int64_t kConfigD[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
  features_ = register_module("features", std::make_shared<nn::Sequential>());
  int64_t in = 3;
  for (int64_t v : kConfigD) {
    if (v == 0) {
      features_->push_back(std::make_shared<nn::MaxPool2d>(2, 2));
      channels_at_.push_back(in);
      continue;
    }
    const int64_t out = scaled_channels(v, width, batch_norm ? "VGG16-BN" : "VGG16");
    auto conv = std::make_shared<nn::Conv2d>(gen, in, out, 3, 1, 1);
    nn::init::kaiming_normal_(conv->weight().data(), gen, 0.0, nn::init::FanMode::FanOut, nn::init::Nonlinearity::Relu);
    nn::init::zeros_(conv->bias().data());
    features_->push_back(conv);
    channels_at_.push_back(out);
    if (batch_norm) {
      features_->push_back(std::make_shared<nn::BatchNorm2d>(out));
      channels_at_.push_back(out);
    }
    features_->push_back(std::make_shared<nn::ReLU>());
    channels_at_.push_back(out);
    in = out;
  }
}

Variable VGG16::forward(const Variable& x) {
  FG_CHECK(x.dim() == 4 && x.size(1) == 3, "VGG16: expected an RGB batch (N, 3, H, W), got " << x.data().str());
  return (*features_)(x);
}

std::vector<Variable> VGG16::forward_taps(const Variable& x, const std::vector<int64_t>& indices) {
  FG_CHECK(x.dim() == 4 && x.size(1) == 3, "VGG16: expected an RGB batch (N, 3, H, W), got " << x.data().str());
  const int64_t n = int64_t(features_->size());
  for (size_t i = 0; i < indices.size(); ++i) {
    FG_CHECK(indices[i] >= 0 && indices[i] < n, "VGG16::forward_taps: index " << indices[i] << " is outside the " << n
                                                                              << " modules of features (0.." << n - 1
                                                                              << ")");
    FG_CHECK(i == 0 || indices[i] > indices[i - 1], "VGG16::forward_taps: indices must be strictly ascending, got "
                                                        << indices[i - 1] << " then " << indices[i]);
  }
  std::vector<Variable> taps;
  if (indices.empty()) return taps;
  Variable y = x;
  size_t next = 0;
  for (int64_t i = 0; i <= indices.back(); ++i) {
    y = (*(*features_)[size_t(i)])(y);
    if (i == indices[next]) {
      taps.push_back(y);
      ++next;
    }
  }
  return taps;
}

int64_t VGG16::channels_at(int64_t index) const {
  FG_CHECK(index >= 0 && index < int64_t(channels_at_.size()),
           "VGG16::channels_at: index " << index << " is outside 0.." << channels_at_.size() - 1);
  return channels_at_[size_t(index)];
}

void VGG16::load_torchvision(const std::map<std::string, Tensor>& state) {
  std::ostringstream who;
  who << "VGG16" << (batch_norm_ ? "-BN" : "") << "::load_torchvision (width " << width_ << ")";
  load_torchvision_state(*this, state, {"classifier."}, who.str());
}

}  // namespace fg::models
