// A small U-Net built from the same op families as the two film-restoration networks (3x3 and dilated convs,
// BatchNorm, max-pool, pixel-shuffle upsampling, concatenated skips). It is what `filmgrad demo` trains on the CPU
// and what bench/bench_train_step.cpp times against an identical PyTorch network (tools/bench_torch_step.py).
//
//   e1 = bn1(relu(conv1b(relu(conv1a(x)))))                 w   x H   x W
//   e2 = bn2(relu(conv2b(relu(conv2a(maxpool(e1))))))       2w  x H/2 x W/2
//   m  = bn3(relu(mid(maxpool(e2))))      mid: 3x3 dilation 2, 2w -> 4w, H/4
//   u2 = pixel_shuffle(relu(up2(m)), 2)   up2: 1x1 4w -> 8w, so u2 has 2w channels at H/2
//   d2 = bn4(relu(dec2(cat(u2, e2))))     4w -> 2w
//   u1 = pixel_shuffle(relu(up1(d2)), 2)  up1: 1x1 2w -> 4w, so u1 has w channels at H
//   d1 = relu(dec1(cat(u1, e1)))          2w -> w
//   y  = head(d1)                         1x1 w -> out_channels
// H and W must be multiples of 4.
#pragma once
#include <memory>

#include "nn/layers.h"

namespace fg::models {

class TinyUNet : public nn::Module {
 public:
  TinyUNet(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t width);
  Variable forward(const Variable& x) override;
  // Inference (models/inference.h): each BatchNorm (all follow a ReLU) becomes a ChannelAffine. Needs eval mode.
  void fold_batch_norm();

 private:
  std::shared_ptr<nn::Conv2d> conv1a_, conv1b_, conv2a_, conv2b_, mid_, up2_, dec2_, up1_, dec1_, head_;
  std::shared_ptr<nn::Module> bn1_, bn2_, bn3_, bn4_;  // BatchNorm2d, or ChannelAffine once folded
};

}  // namespace fg::models
