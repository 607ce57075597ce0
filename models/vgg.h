// torchvision's VGG16 and VGG16-BN `features` (Simonyan & Zisserman 2015, configuration "D"), with torchvision's
// Sequential indices and state-dict names ("features.0.weight", ...), so torchvision's weights load by name; the
// classifier is not built (the perceptual loss and the loss-network study use the features only).
//
// Configuration D: 64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M, where a number is a 3x3 conv
// (padding 1, with bias) followed, in VGG16-BN, by a BatchNorm2d, then a ReLU, and M is MaxPool2d(2, 2). Indices:
//   VGG16-BN: conv 0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40; ReLUs 2, 5, 9, 12, 16, 19, 22, 26, 29, 32, 36, 39,
//             42; max-pools 6, 13, 23, 33, 43 (44 modules). The perceptual loss taps 5, 12, 22, 32, 42 (the ReLUs
//             before each max-pool: 64, 128, 256, 512, 512 channels at H, H/2, H/4, H/8, H/16).
//   VGG16:    conv 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28; ReLUs one after each; max-pools 4, 9, 16, 23, 30
//             (31 modules). The ReLUs before the max-pools are 3, 8, 15, 22, 29.
//
// Initialisation, as torchvision's VGG._initialize_weights: conv weights kaiming_normal_(mode fan_out, relu), conv
// biases 0, BatchNorm weights 1 and biases 0. Width multiplies every channel count (models/resnet.h's
// scaled_channels); the input always has 3 channels.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace fg::models {

class VGG16 : public nn::Module {  // type_name "VGG"; one child "features" (torchvision indices)
 public:
  VGG16(Generator& gen, bool batch_norm, double width = 1.0);  // features only, no classifier
  // The whole features stack: x (N, 3, H, W) -> (N, 512w, H/32, W/32) (floor at each max-pool).
  Variable forward(const Variable& x) override;
  // Outputs of features[i] for each index (strictly ascending, each in [0, size)), running the stack only as far
  // as the last index. An empty list returns nothing and runs nothing.
  std::vector<Variable> forward_taps(const Variable& x, const std::vector<int64_t>& indices);
  // torchvision vgg16 / vgg16_bn state dict ("features.0.weight", ...; "classifier.*" skipped), as
  // load_torchvision_state (models/resnet.h) loads it.
  void load_torchvision(const std::map<std::string, Tensor>& state);

  bool batch_norm() const { return batch_norm_; }
  double width() const { return width_; }
  std::shared_ptr<nn::Sequential> features() const { return features_; }
  // Output channels of features[index] (the channel count after that module).
  int64_t channels_at(int64_t index) const;

 private:
  bool batch_norm_;
  double width_;
  std::shared_ptr<nn::Sequential> features_;
  std::vector<int64_t> channels_at_;
};

}  // namespace fg::models
