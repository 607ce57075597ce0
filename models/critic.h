// The NoGAN critic (SPEC B, "NoGAN"; the dissertation's appendix E and its listing A.5): a ResNet34 body (torchvision,
// without avgpool/fc, so torchvision's weights load into it) plus DeOldify's patch-critic head. It scores every
// receptive-field patch of an image: logits (N, P), one per patch, trained with BCE with logits (real 1, fake 0).
//
// Children and state-dict names (w = width; head indices are the listing A.5 indices 3..10 minus 3, and each conv
// block is a Sequential as fastai's conv_layer builds it, so the names match a PyTorch model built that way):
//   body                 ResNet34(width, num_classes 0)                                512w x H/32 x W/32
//   head.0               Dropout2d(p)
//   head.1.0             Conv2d(512w -> 1024w, 4x4, stride 1, padding 1), spectral norm
//   head.1.1             LeakyReLU(0.2)
//   head.1.2             SelfAttention(1024w) (spectrally normalised query/key/value, gamma starting at 0)
//   head.2               Dropout2d(p)
//   head.3.0, head.3.1   Conv2d(1024w -> 2048w, 4x4, s1, p1), spectral norm; LeakyReLU(0.2)
//   head.4               Dropout2d(p)
//   head.5.0, head.5.1   Conv2d(2048w -> 4096w, 4x4, s1, p1), spectral norm; LeakyReLU(0.2)
//   head.6.0             Conv2d(4096w -> 1, 4x4, stride 1, no padding, no bias), spectral norm
//   head.7               Flatten: (N, 1, PH, PW) -> (N, PH * PW), patches in row-major order
// Each 4x4 conv with padding 1 shrinks the map by 1 and the last one by 3, so PH = H/32 - 6 (and PW likewise),
// where H/32 is the body's output size (ceil(H / 2) five times): the input must be at least 193 x 193 (one patch);
// 256 x 256 gives 2 x 2 patches.
//
// Spectral norm: SPEC does not say; the head follows DeOldify, whose critic convs are fastai conv_layers with
// NormType.Spectral ("weight_orig", "weight_u", "weight_v" per conv, one power iteration per training forward).
// Head init as fastai's conv_layer: kaiming_normal_ (fan_in, gain sqrt(2)) on the weights, biases 0, then spectral
// norm draws u and v. The body is initialised as torchvision does (models/resnet.h).
//
// Dropout: p = 0.15 as in the listing; the constructor takes p so that a training-mode forward can be made
// deterministic (p = 0) where a test or a twin needs one.
#pragma once
#include <cstdint>
#include <memory>

#include "models/resnet.h"
#include "nn/layers.h"

namespace fg::models {

class NoGanCritic : public nn::Module {  // type_name "NoGanCritic"
 public:
  // width multiplies every channel count (scaled_channels in models/resnet.h); the self-attention needs 1024w >= 8,
  // i.e. width >= 1/128.
  explicit NoGanCritic(Generator& gen, double width = 1.0, double dropout = 0.15);
  // x: (N, 3, H, W) with H, W >= 193 -> per-patch logits (N, (H/32 - 6) * (W/32 - 6)).
  Variable forward(const Variable& x) override;

  std::shared_ptr<ResNet34> body() const { return body_; }
  std::shared_ptr<nn::Sequential> head() const { return head_; }
  double width() const { return width_; }
  // The number of patch logits forward gives for an H x W input (0 when the input is too small).
  static int64_t patches(int64_t height, int64_t width);

 private:
  double width_;
  std::shared_ptr<ResNet34> body_;
  std::shared_ptr<nn::Sequential> head_;
};

}  // namespace fg::models
