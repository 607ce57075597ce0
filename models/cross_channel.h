// Network 1 (SPEC.md section A): cross-channel prediction for old negatives, after Qi Li, "Old Negative Films
// Restoration by Cross Channel Prediction" (seeds/000_4a7ad19275b4b71c.txt). Input (N, 3, H, W) = (R, G, B_damaged);
// output the restored blue channel (N, 1, H, W). Three variants: the full network (mask net, cross-channel net,
// final net), the ablation without the mask net, and a plain U-Net.
//
// One sub-network (SubUNet) is a U-Net of ten convolution blocks, "blocks.0" .. "blocks.9", plus "out". With
// c(b) = max(1, round(b * width)) channels, every conv 3x3 with bias and followed by ReLU, and the input at H x W:
//
//   block      layers                                                    skip out       block output
//   blocks.0   conv1 in->64, conv2 64->64, conv3 64->64, bn, pool        s1  64 @ H     64  @ H/2
//   blocks.1   conv1 64->128, conv2, conv3, bn, pool                     s2 128 @ H/2   128 @ H/4
//   blocks.2   conv1 128->256, conv2, conv3, bn, pool                    s3 256 @ H/4   256 @ H/8
//   blocks.3   conv1 256->512, conv2, conv3, bn, pool                    s4 512 @ H/8   512 @ H/16
//   blocks.4   3 x conv 512->512 (dilation 2, padding 2), bn                            512 @ H/16
//   blocks.5   3 x conv 512->512 (dilation 2, padding 2), bn                            512 @ H/16
//   blocks.6   up, cat(., s4) 1024, conv1 1024->512, conv2, conv3 512->256, bn          256 @ H/8
//   blocks.7   up, cat(., s3)  512, conv1 512->256, conv2, conv3 256->128, bn           128 @ H/4
//   blocks.8   up, cat(., s2)  256, conv1 256->128, conv2, conv3 128->64, bn             64 @ H/2
//   blocks.9   up, cat(., s1)  128, conv1 128->64, conv2, conv3 64->32, bn               32 @ H
//   out        conv 1x1 32->1, no activation                                              1 @ H
//
// "pool" is MaxPool2d(2), "up" nearest-neighbour upsampling x2; neither has parameters. Every block is three
// Conv-ReLU layers followed by one BatchNorm2d "bn" (SPEC A), then the encoder's pool. Names inside a block:
// conv1, conv2, conv3, bn, pool (encoder) or up, conv1, conv2, conv3, bn (decoder).
//
// The choices the paper leaves open, and why:
// - Skips carry full-resolution features. Encoder block k's BatchNorm output s_k, taken before its pool, goes to
//   decoder block 11-k (the paper: "the first convolutional block in the encoder [is] connected to the last
//   convolutional block in the decoder, the second ... to the second last"). s_k has exactly the shape of the
//   upsampled decoder input it is concatenated with (SPEC: "the encoder output of the same shape"), and s1 gives
//   the last block the input's own resolution: without it the output would be a 3x3 conv of features upsampled
//   from H/2, which cannot reproduce single-pixel detail (the blue channel must be restored pixel by pixel).
// - Downsampling in blocks 1-4: a 2x2 max pool after the block's BatchNorm, as in the U-Net (Ronneberger et al.)
//   that the paper names as its basic component. A stride-2 third conv (Zhang et al.'s colorization net) would
//   leave no full-resolution feature map inside the block to take the skip from.
// - Upsampling in blocks 7-10: nearest x2 at the start of the block, then the convolutions. The engine has no
//   transposed convolution; nearest + conv is the standard replacement (no checkerboard artefacts, Odena et al.
//   2016), and it costs no parameters where a pixel-shuffle conv (c -> 2c) would.
// - Three Conv-ReLU layers in every block (the paper allows two or three). A sub-network then has 32,953,025
//   parameters at width 1 (in_channels 3; 32,952,449 for 2) and the full network 98,858,499: 3 % above the
//   paper's "about 96 M" (32 M each). Two layers in the outer blocks would give 32.5 M; one rule is simpler.
//   The decoder's conv1 maps the concatenation (2c) back to the block's input width c, conv3 halves it.
// - Outputs are unbounded: "out" is a plain 1x1 conv. For the mask net that output is the mask logits (the loss is
//   BCE with logits; the mask M' = sigmoid(logits)); for the blue channel, MSE on a linear output keeps gradients
//   alive at values near 0 and 1 (a sigmoid there saturates on bright skies and deep shadows). Callers clamp to
//   [0, 1] when writing images.
// - End to end: M' and B' feed the final net without detaching, so the final net's MSE also trains the mask and
//   cross-channel nets, alongside their own BCE / MSE terms.
// - Initialisation: PyTorch's defaults (nn::Conv2d, nn::BatchNorm2d), drawn from the Generator.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/layers.h"

namespace fg::models {

// One block of a SubUNet (see the table above). type_name "EncoderBlock", "DilatedBlock" or "DecoderBlock".
class SubUNetBlock : public nn::Module {
 public:
  enum class Kind { Down, Dilated, Up };
  // Down: conv1 in->out, conv2, conv3, bn, pool. Dilated: the same with dilation 2 and no pool. Up: up, then conv1
  // in->mid (in counts the skip's channels), conv2 mid->mid, conv3 mid->out, bn.
  SubUNetBlock(Generator& gen, Kind kind, int64_t in_channels, int64_t mid_channels, int64_t out_channels);
  // Down: (pooled output, skip = the BatchNorm output before the pool). Reports the pooled output to a recorder.
  std::pair<Variable, Variable> encode(const Variable& x);
  // Up: upsamples x, concatenates skip (which must then have x's upsampled shape) and convolves. Taken by value: a
  // caller that moves them in lets each be freed as soon as it is read.
  Variable decode(Variable x, Variable skip);
  // Down: encode(x).first; Dilated: the block; Up: an error (it needs the skip).
  Variable forward(const Variable& x) override;
  Kind kind() const { return kind_; }
  // Inference (models/inference.h): bn (which reads conv3's ReLU) becomes a ChannelAffine.
  void fold_batch_norm();

 private:
  Variable convs(Variable x);
  std::pair<Variable, Variable> encode_unrecorded(const Variable& x);

  Kind kind_;
  std::shared_ptr<nn::Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<nn::Module> bn_;  // BatchNorm2d, or ChannelAffine once folded
  std::shared_ptr<nn::MaxPool2d> pool_;
  std::shared_ptr<nn::UpsampleNearest> up_;
};

// One sub-network: a U-Net of ten convolution blocks (SPEC A). in_channels -> 1 channel, same H x W; H and W must
// be multiples of 16. type_name "SubUNet".
class SubUNet : public nn::Module {
 public:
  SubUNet(Generator& gen, int64_t in_channels, double width = 1.0);
  Variable forward(const Variable& x) override;
  int64_t in_channels() const { return in_channels_; }
  // The output channels of blocks.0 .. blocks.9 at this width (64, 128, 256, 512, 512, 512, 256, 128, 64, 32 at 1).
  const std::vector<int64_t>& block_channels() const { return channels_; }
  nn::Conv2d& output_conv() { return *out_; }  // "out": the 1x1 conv that makes the single output channel
  void fold_batch_norm();                      // every block's (models/inference.h)

 private:
  int64_t in_channels_;
  std::vector<int64_t> channels_;
  std::vector<std::shared_ptr<SubUNetBlock>> blocks_;
  std::shared_ptr<nn::Conv2d> out_;
};

enum class CrossChannelVariant { FULL, NO_MASK, PLAIN_UNET };

// The outputs of one forward, all (N, 1, H, W); undefined when a variant has no such output.
struct CrossChannelOutput {
  Variable mask_logits;  // FULL only; the mask M' = sigmoid(mask_logits)
  Variable b_cross;      // FULL and NO_MASK: B' from (R, G) alone
  Variable b_final;      // every variant: the restored blue channel B''
  Variable b_ungated;    // gated FULL only: the final net's B'' before the gate (b_final is then the gated one)
};

// The whole network. Children:
//   FULL:       "mask_net"  (R, G, B_damaged -> mask logits), "cross_net" (R, G -> B'),
//               "final_net" (M' = sigmoid(logits), B', B_damaged -> B'')
//   NO_MASK:    "cross_net" (R, G -> B'), "final_net" (B', B_damaged -> B'')
//   PLAIN_UNET: "unet" (R, G, B_damaged -> B)
// Gated (FULL only; not the paper's network): b_final = damage_gate(mask_logits, final net's B'', B_damaged)
// (models/gate.h), so the damaged blue channel is kept where the mask net predicts no damage. No parameter is added
// (the mask net already exists), so gated and ungated networks share their weights files; the mask net's output
// bias starts at kMaskPriorLogit instead of PyTorch's default, which changes the initial weights only when gated.
// type_name "CrossChannelNet".
class CrossChannelNet : public nn::Module {
 public:
  CrossChannelNet(Generator& gen, CrossChannelVariant variant = CrossChannelVariant::FULL, double width = 1.0,
                  bool gated = false);
  // x: (N, 3, H, W) = (R, G, B_damaged), H and W positive multiples of 16. In training mode the bottleneck's
  // BatchNorms need more than one value per channel: N * (H/16) * (W/16) > 1.
  CrossChannelOutput forward_all(const Variable& x);
  Variable forward(const Variable& x) override;  // the restored blue channel (N, 1, H, W)
  CrossChannelVariant variant() const { return variant_; }
  double width() const { return width_; }
  bool gated() const { return gated_; }
  // Inference (models/inference.h): every block's BatchNorm becomes a ChannelAffine (each follows a ReLU, so none
  // can be folded into a convolution). Needs eval mode; the network is then for inference only.
  void fold_batch_norm();

 private:
  CrossChannelOutput run(const Variable& x);

  CrossChannelVariant variant_;
  double width_;
  bool gated_;
  std::shared_ptr<SubUNet> mask_net_, cross_net_, final_net_, unet_;
};

// The terms of the combined loss (SPEC A); absent terms are undefined Variables.
struct CrossChannelLossTerms {
  Variable bce_mask;   // BCE(mask_logits, true mask), mean over elements (FULL)
  Variable mse_cross;  // MSE(b_cross, B) (FULL, NO_MASK)
  Variable mse_final;  // MSE(b_final, B) (every variant)
  Variable total;      // the sum of the defined terms
};
// true_mask: (N, 1, H, W) in [0, 1], needed only when out.mask_logits is defined (may be undefined otherwise).
// b_clean: (N, 1, H, W), the clean blue channel.
CrossChannelLossTerms cross_channel_loss_terms(const CrossChannelOutput& out, const Variable& true_mask,
                                               const Variable& b_clean);
// BCE(mask_logits, true mask) + MSE(b_cross, B) + MSE(b_final, B); the terms absent in a variant are left out.
Variable cross_channel_loss(const CrossChannelOutput& out, const Variable& true_mask, const Variable& b_clean);

// "full", "no_mask", "plain_unet" (fg::Error otherwise) and back.
CrossChannelVariant parse_cross_channel_variant(const std::string& name);
std::string cross_channel_variant_name(CrossChannelVariant variant);

}  // namespace fg::models
