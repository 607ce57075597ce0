// torchvision's ResNet34 (He et al. 2016) with torchvision's module tree, state-dict names and initialisation, so
// that a torchvision state dict converted to safetensors loads by name, plus a width multiplier so that small
// versions train on a CPU. The Dynamic U-Net (SPEC B) uses it as its encoder and the NoGAN critic as its body, both
// without avgpool/fc (num_classes 0) and both through forward_features' stage outputs.
//
//   conv1 7x7 s2 p3 (no bias) -> bn1 -> relu            s4   64w  H/2
//   maxpool 3x3 s2 p1 -> layer1 (3 BasicBlocks)         s3   64w  H/4
//   layer2 (4 BasicBlocks, the first with stride 2)     s2  128w  H/8
//   layer3 (6 BasicBlocks, the first with stride 2)     s1  256w  H/16
//   layer4 (3 BasicBlocks, the first with stride 2)     out 512w  H/32
//   avgpool (adaptive, 1x1) -> flatten -> fc            (N, num_classes), only when num_classes > 0
//
// BasicBlock(in, out, stride): conv1 3x3 stride s p1 (no bias), bn1, relu, conv2 3x3 p1 (no bias), bn2, plus
// "downsample" = Sequential(conv 1x1 stride s (no bias) "0", BatchNorm2d "1") on the identity when the stride is not
// 1 or the channel count changes; out = relu(bn2(conv2(relu(bn1(conv1(x))))) + identity).
// Spatial sizes follow PyTorch's floor rules, so odd sizes work: each stride-2 stage gives ceil(h / 2).
//
// Initialisation, as torchvision's ResNet.__init__: every Conv2d weight kaiming_normal_(mode fan_out, relu),
// every BatchNorm2d weight 1 and bias 0, fc PyTorch's Linear default (U(+-1/sqrt(fan_in)) for weight and bias).
//
// Width: every channel count c becomes scaled_channels(c, width) = max(1, round(c * width)), halves rounded up
// (64 * 0.125 = 8, 64 * 0.01 = 1). The input always has 3 channels.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace fg::models {

// max(1, round(channels * width)) with halves rounded up; throws fg::Error unless width is positive and finite.
// `who` names the model in the message.
int64_t scaled_channels(int64_t channels, double width, const char* who = "model");

// Loads a torchvision state dict into `module` (the torchvision backbones share this):
// - entries whose name starts with one of `skip_prefixes` ("fc.", "classifier.") are ignored;
// - floating tensors of another floating dtype are converted to the module's dtype (torchvision publishes f32; a
//   module converted to f64 or a file saved in f16 still loads);
// - a missing "<bn>.num_batches_tracked" is set to 0, as PyTorch's BatchNorm does for torchvision's published
//   weights, which predate that buffer;
// - anything else missing, unexpected, or of the wrong shape or dtype throws fg::Error listing it, prefixed with
//   `who`, and changes nothing.
void load_torchvision_state(nn::Module& module, const std::map<std::string, Tensor>& state,
                            const std::vector<std::string>& skip_prefixes, const std::string& who);

class BasicBlock : public nn::Module {  // type_name "BasicBlock"
 public:
  BasicBlock(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t stride);
  Variable forward(const Variable& x) override;  // (N, in, H, W) -> (N, out, ceil(H / stride), ceil(W / stride))
  // Inference (models/inference.h): bn1, bn2 and downsample.1 folded into the convolutions before them.
  void fold_batch_norm();

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::Module> bn1_, bn2_;  // BatchNorm2d, or Identity once folded
  std::shared_ptr<nn::ReLU> relu_;
  std::shared_ptr<nn::Sequential> downsample_;  // null when the block keeps its input's shape
};

// Stage outputs the Dynamic U-Net uses as skips: s4 = relu after bn1 (64w ch, H/2), s3 = layer1 (64w, H/4),
// s2 = layer2 (128w, H/8), s1 = layer3 (256w, H/16), out = layer4 (512w, H/32).
struct ResNetFeatures {
  Variable s4, s3, s2, s1, out;
};

class ResNet34 : public nn::Module {  // type_name "ResNet"
 public:
  // width multiplies every channel count (1.0 = torchvision; see scaled_channels).
  // num_classes 0 = the body only (no avgpool/fc), as the U-Net encoder and the critic use it.
  ResNet34(Generator& gen, double width = 1.0, int64_t num_classes = 1000);
  // Logits (N, num_classes), or layer4's output when num_classes == 0. x: (N, 3, H, W).
  Variable forward(const Variable& x) override;
  // Every stage output (see ResNetFeatures). Reports `out` to an active ActivationRecorder as this module's output.
  ResNetFeatures forward_features(const Variable& x);
  // 0: s4/s3 (64w), 1: s2 (128w), 2: s1 (256w), 3: out (512w).
  int64_t stage_channels(int stage) const;
  int64_t num_classes() const { return num_classes_; }
  double width() const { return width_; }
  // Loads a torchvision resnet34 state dict (keys "conv1.weight", "layer1.0.conv1.weight", ..., "fc.weight"), as
  // load_torchvision_state does. With num_classes == 0 the fc.* entries are skipped; anything else missing,
  // unexpected or mis-shaped is an error.
  void load_torchvision(const std::map<std::string, Tensor>& state);
  // Inference (models/inference.h): every BatchNorm folded into the convolution before it.
  void fold_batch_norm();

 private:
  ResNetFeatures features(const Variable& x);

  double width_;
  int64_t num_classes_;
  int64_t channels_[4];
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::Module> bn1_;  // BatchNorm2d, or Identity once folded
  std::shared_ptr<nn::ReLU> relu_;
  std::shared_ptr<nn::MaxPool2d> maxpool_;
  std::shared_ptr<nn::Sequential> layers_[4];
  std::shared_ptr<nn::Module> avgpool_;  // null when num_classes == 0
  std::shared_ptr<nn::Linear> fc_;       // null when num_classes == 0
};

}  // namespace fg::models
