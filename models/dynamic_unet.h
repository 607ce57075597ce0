// The Dynamic U-Net of SPEC section B: fastai v1's DynamicUnet on a torchvision ResNet34 encoder, the generator
// that removes dust and scratches. Input and output are ImageNet-normalised RGB; H and W must be multiples of 32.
//
// With w the width multiplier and c0..c3 = encoder().stage_channels(0..3) (64w, 128w, 256w, 512w), for an input
// 3 x H x W:
//   encoder    ResNet34 body (no avgpool/fc). Skips: S4 = relu after bn1 (c0, H/2), S3 = layer1 (c0, H/4),
//              S2 = layer2 (c1, H/8), S1 = layer3 (c2, H/16); out = layer4 (c3, H/32)
//   bridge     BatchNorm2d(c3), ReLU, conv3x3 c3 -> 2 c3, ReLU, conv3x3 2 c3 -> c3, ReLU
//   blocks.0   UnetBlock(up c3, skip S1)             -> 512w at H/16
//   blocks.1   UnetBlock(up 512w, skip S2) + attn    -> 384w at H/8
//   blocks.2   UnetBlock(up 384w, skip S3)           -> 256w at H/4
//   blocks.3   UnetBlock(up 256w, skip S4), halves   -> 96w at H/2
//   last_shuf  PixelShuffleICNR(96w -> 96w), no blur -> 96w at H
//   (cross)    concatenate the network input          -> 96w + 3
//   res        x + relu(conv2(relu(conv1(x))))        -> 96w + 3
//   head       conv1x1 (96w + 3) -> out_channels, then sigmoid(x) (y_hi - y_lo) + y_lo
//   (gated)    mask_head conv1x1 (96w + 3) -> 1: damage-mask logits; the output is then
//              damage_gate(mask logits, head's image, input) (models/gate.h): the input kept where no damage is
//              predicted. Not in the dissertation's network (config.gated is off by default; its golden tests
//              and parameter counts are the ungated network's).
// At width 1: 41,405,589 parameters; the encoder 21,284,672 (17,024 of them BatchNorm); 20,137,941 trainable
// after freeze_encoder(). (Every count is derived from stage_channels, so other widths scale consistently.)
//
// State-dict names (an interface: golden files and users' weight files depend on them):
//   encoder.*                 torchvision's ResNet34 names without fc ("encoder.conv1.weight",
//                             "encoder.layer1.0.bn1.running_mean", "encoder.layer2.0.downsample.0.weight", ...),
//                             so a torchvision state dict loads into encoder() as it is
//   bridge.0                  BatchNorm2d(c3): weight, bias, running_mean, running_var, num_batches_tracked
//   bridge.2, bridge.4        Conv2d 3x3 with bias (1 and 3 and 5 are ReLUs)
//   blocks.<i>.shuf.conv      Conv2d 1x1 up -> 2 up with bias (PixelShuffleICNR)
//   blocks.<i>.bn             BatchNorm2d on the skip
//   blocks.<i>.conv1, .conv2  Conv2d 3x3 with bias
//   blocks.1.attn             SelfAttention: gamma, query/key/value.weight_orig, .weight_u, .weight_v
//                             (query/key/value.weight without spectral norm)
//   last_shuf.conv            Conv2d 1x1 96w -> 384w with bias
//   res.conv1, res.conv2      Conv2d 3x3 (96w + 3) -> (96w + 3) with bias
//   head                      Conv2d 1x1 (96w + 3) -> out_channels with bias
//   mask_head                 gated only: Conv2d 1x1 (96w + 3) -> 1 with bias (kaiming weight, bias
//                             kMaskPriorLogit so an untrained network passes its input through)
//
// Initialisation follows fastai v1: decoder convs kaiming_normal_ with zero bias, the pixel-shuffle convs ICNR with
// zero bias, BatchNorms weight 1 / bias 0, self-attention as nn::SelfAttention (gamma 0); the encoder is
// torchvision's ResNet34 init (load ImageNet weights into encoder() to start from them).
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "models/resnet.h"
#include "nn/layers.h"

namespace fg::models {

// fastai's PixelShuffle_ICNR(in -> out, scale 2): y = shuf(relu(conv(x))) with conv a 1x1 Conv2d in -> 4 out
// (bias, ICNR init), shuf PixelShuffle(2); with blur, y = AvgPool2d(2, stride 1)(ReplicationPad2d(1, 0, 1, 0)(y)),
// which keeps the size and smooths the checkerboard. x: (N, in, H, W) -> (N, out, 2H, 2W).
// Children: conv, relu, shuf, and pad, blur when blur is on (only conv has parameters). type_name
// "PixelShuffle_ICNR", fastai's class name.
class PixelShuffleICNR : public nn::Module {
 public:
  PixelShuffleICNR(Generator& gen, int64_t in_channels, int64_t out_channels, bool blur);
  Variable forward(const Variable& x) override;
  nn::Conv2d& conv() { return *conv_; }
  int64_t out_channels() const { return out_channels_; }
  bool blur() const { return blur_ != nullptr; }

 private:
  int64_t out_channels_;
  std::shared_ptr<nn::Conv2d> conv_;
  std::shared_ptr<nn::ReLU> relu_;
  std::shared_ptr<nn::PixelShuffle> shuf_;
  std::shared_ptr<nn::ReplicationPad2d> pad_;
  std::shared_ptr<nn::AvgPool2d> blur_;
};

// fastai's UnetBlock(up_c, skip_c): up = shuf(up_in) (PixelShuffleICNR up_c -> up_c / 2); when up's H, W differ
// from the skip's, up is resized to the skip's size by nearest neighbour; x = relu(cat(up, bn(skip)));
// y = relu(conv2(relu(conv1(x)))), then attn(y) when self-attention is on. With ni = up_c / 2 + skip_c, the convs
// are ni -> ni -> ni, or ni -> ni / 2 -> ni / 2 when `halve` (the last block).
class UnetBlock : public nn::Module {
 public:
  UnetBlock(Generator& gen, int64_t up_channels, int64_t skip_channels, bool halve, bool blur, bool self_attention,
            bool spectral_norm);
  using nn::Module::forward;  // the single-input form throws: this block needs its skip
  // up_in: (N, up_c, h, w), skip: (N, skip_c, H, W) -> (N, out_channels(), H, W). Records its output. Taken by
  // value: a caller that moves them in lets each be freed here as soon as it is read.
  Variable forward(Variable up_in, Variable skip);
  Variable operator()(Variable up_in, Variable skip) { return forward(std::move(up_in), std::move(skip)); }
  int64_t out_channels() const { return out_channels_; }
  PixelShuffleICNR& shuf() { return *shuf_; }
  nn::SelfAttention* attn() { return attn_.get(); }  // nullptr without self-attention
  // Inference (models/inference.h): bn (which reads the encoder's ReLU output) becomes a ChannelAffine.
  void fold_batch_norm();

 private:
  int64_t up_channels_, skip_channels_, out_channels_;
  std::shared_ptr<PixelShuffleICNR> shuf_;
  std::shared_ptr<nn::Module> bn_;  // BatchNorm2d, or ChannelAffine once folded
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::SelfAttention> attn_;
};

// fastai's res_block (two conv_layers and an additive MergeLayer): x + relu(conv2(relu(conv1(x)))), both convs
// 3x3 channels -> channels with bias. type_name "ResBlock".
class ResBlock : public nn::Module {
 public:
  ResBlock(Generator& gen, int64_t channels);
  Variable forward(const Variable& x) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
};

struct DynamicUNetConfig {
  double width = 1.0;  // multiplies every channel count (through the encoder's stage_channels)
  int64_t out_channels = 3;
  bool self_attention = true;  // in blocks.1, as the dissertation's model
  bool spectral_norm = true;   // on the self-attention's query, key and value (fastai's SelfAttention)
  bool blur = true;            // in the four UnetBlocks' upsampling (never in last_shuf)
  double y_lo = -3.0, y_hi = 3.0;
  // A damage-mask head and the damage gate (models/gate.h): forward() returns
  // mask * image + (1 - mask) * input. Needs out_channels == 3 (the gate blends with the RGB input).
  bool gated = false;
};

// One forward of a gated network: every output, all in the network's (ImageNet-normalised) space.
struct GatedOutput {
  Variable output;       // (N, 3, H, W): damage_gate(mask_logits, image, input), what forward() returns
  Variable image;        // (N, 3, H, W): the image head's prediction before the gate
  Variable mask_logits;  // (N, 1, H, W): the damage mask is sigmoid(mask_logits)
};

class DynamicUNet : public nn::Module {  // type_name "DynamicUnet"
 public:
  DynamicUNet(Generator& gen, const DynamicUNetConfig& config = {});
  // x: (N, 3, H, W), H and W multiples of 32 -> (N, out_channels, H, W), each value in (y_lo, y_hi).
  // Gated: the gated output (see GatedOutput).
  Variable forward(const Variable& x) override;
  // Gated networks only (fg::Error otherwise): the output with the image and mask logits it is made of.
  GatedOutput forward_gated(const Variable& x);

  ResNet34& encoder() { return *encoder_; }
  UnetBlock& block(int64_t i);  // i in 0..3
  PixelShuffleICNR& last_shuf() { return *last_shuf_; }
  // fastai's default for training: the encoder's parameters frozen except its BatchNorms' weights and biases,
  // everything else trainable.
  void freeze_encoder();
  void unfreeze();  // every parameter trainable
  const DynamicUNetConfig& config() const { return config_; }
  // Inference (models/inference.h): the encoder's BatchNorms folded into its convolutions; the bridge's and the
  // blocks' (after a ReLU) turned into ChannelAffines. Needs eval mode; the network is then for inference only.
  void fold_batch_norm();

 private:
  Variable trunk(const Variable& x);  // everything up to the heads: (N, 96w + 3, H, W)

  DynamicUNetConfig config_;
  std::shared_ptr<ResNet34> encoder_;
  std::shared_ptr<nn::Sequential> bridge_;
  std::vector<std::shared_ptr<UnetBlock>> blocks_;
  std::shared_ptr<PixelShuffleICNR> last_shuf_;
  std::shared_ptr<ResBlock> res_;
  std::shared_ptr<nn::Conv2d> head_;
  std::shared_ptr<nn::Conv2d> mask_head_;  // gated only
  std::shared_ptr<nn::SigmoidRange> sigmoid_range_;
};

}  // namespace fg::models
