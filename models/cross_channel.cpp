// The cross-channel network of cross_channel.h (SPEC.md section A).
#include "models/cross_channel.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "autograd/ops.h"
#include "models/gate.h"
#include "models/inference.h"
#include "nn/init.h"

namespace fg::models {

namespace {

const char* kind_type_name(SubUNetBlock::Kind kind) {
  switch (kind) {
    case SubUNetBlock::Kind::Down:
      return "EncoderBlock";
    case SubUNetBlock::Kind::Dilated:
      return "DilatedBlock";
    case SubUNetBlock::Kind::Up:
      return "DecoderBlock";
  }
  return "SubUNetBlock";
}

// Base channel counts of blocks.0 .. blocks.9 at width 1.
constexpr int64_t kBaseChannels[10] = {64, 128, 256, 512, 512, 512, 256, 128, 64, 32};

void check_width(double width, const char* who) {
  FG_CHECK(std::isfinite(width) && width > 0.0 && width <= 64.0,
           who << ": width must be a multiplier of the channel counts in (0, 64] (1 = the paper's 64..512 "
                  "channels, 0.125 = 8..64), got "
               << width);
}

}  // namespace

// ---- SubUNetBlock ----

SubUNetBlock::SubUNetBlock(Generator& gen, Kind kind, int64_t in_channels, int64_t mid_channels, int64_t out_channels)
    : Module(kind_type_name(kind)), kind_(kind) {
  FG_CHECK(in_channels >= 1 && mid_channels >= 1 && out_channels >= 1,
           "SubUNetBlock: channel counts must be positive, got in " << in_channels << ", mid " << mid_channels
                                                                    << ", out " << out_channels);
  const int64_t d = kind == Kind::Dilated ? 2 : 1;  // 3x3 kernels: padding = dilation keeps H x W
  if (kind == Kind::Up) up_ = register_module("up", std::make_shared<nn::UpsampleNearest>(2));
  conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(gen, in_channels, mid_channels, 3, 1, d, d));
  conv2_ = register_module("conv2", std::make_shared<nn::Conv2d>(gen, mid_channels, mid_channels, 3, 1, d, d));
  conv3_ = register_module("conv3", std::make_shared<nn::Conv2d>(gen, mid_channels, out_channels, 3, 1, d, d));
  bn_ = register_module("bn", std::make_shared<nn::BatchNorm2d>(out_channels));
  if (kind == Kind::Down) pool_ = register_module("pool", std::make_shared<nn::MaxPool2d>(2));
}

Variable SubUNetBlock::convs(Variable x) {
  // One layer per statement and x dropped once read: at inference (no graph) each map is freed as soon as the
  // next exists. x is taken by value so that a caller who moves it in (decode's concatenation) frees it here.
  Variable h = (*conv1_)(x);
  x = Variable();
  h = relu(h);
  h = (*conv2_)(h);
  h = relu(h);
  h = (*conv3_)(h);
  h = relu(h);
  return (*bn_)(h);
}

void SubUNetBlock::fold_batch_norm() {
  bn_ = batch_norm_to_affine(*this, "bn");
}

std::pair<Variable, Variable> SubUNetBlock::encode_unrecorded(const Variable& x) {
  FG_CHECK(kind_ == Kind::Down, type_name() << ": encode() is for encoder blocks");
  Variable skip = convs(x);
  Variable pooled = (*pool_)(skip);
  return {pooled, skip};
}

std::pair<Variable, Variable> SubUNetBlock::encode(const Variable& x) {
  auto out = encode_unrecorded(x);
  record_output(out.first);
  return out;
}

Variable SubUNetBlock::decode(Variable x, Variable skip) {
  FG_CHECK(kind_ == Kind::Up, type_name() << ": decode() is for decoder blocks");
  Variable up = (*up_)(x);
  x = Variable();
  FG_CHECK(skip.dim() == 4 && skip.size(0) == up.size(0) && skip.size(2) == up.size(2) && skip.size(3) == up.size(3),
           "DecoderBlock: the skip " << shape_str(skip.shape()) << " must match the upsampled input "
                                     << shape_str(up.shape()) << " in N, H and W");
  Variable joined = concat({up, skip}, 1);
  up = Variable();
  skip = Variable();
  Variable y = convs(std::move(joined));
  record_output(y);
  return y;
}

Variable SubUNetBlock::forward(const Variable& x) {
  switch (kind_) {
    case Kind::Down:
      return encode_unrecorded(x).first;
    case Kind::Dilated:
      return convs(x);
    case Kind::Up:
      break;
  }
  FG_CHECK(false, "DecoderBlock: call decode(x, skip); a decoder block needs the encoder's skip as well");
  return Variable();
}

// ---- SubUNet ----

SubUNet::SubUNet(Generator& gen, int64_t in_channels, double width) : Module("SubUNet"), in_channels_(in_channels) {
  FG_CHECK(in_channels >= 1, "SubUNet: in_channels must be at least 1, got " << in_channels);
  check_width(width, "SubUNet");
  for (int64_t base : kBaseChannels) {
    channels_.push_back(std::max<int64_t>(1, int64_t(std::llround(double(base) * width))));
  }
  const auto& c = channels_;
  // "blocks" holds the ten blocks as children "0".."9", as a PyTorch nn.ModuleList does (state-dict names
  // "blocks.0.conv1.weight", ...). It has no forward of its own.
  auto list = register_module("blocks", std::make_shared<nn::Module>("ModuleList"));
  int64_t prev = in_channels;
  for (int i = 0; i < 10; ++i) {
    std::shared_ptr<SubUNetBlock> block;
    if (i < 4) {
      block = std::make_shared<SubUNetBlock>(gen, SubUNetBlock::Kind::Down, prev, c[size_t(i)], c[size_t(i)]);
    } else if (i < 6) {
      block = std::make_shared<SubUNetBlock>(gen, SubUNetBlock::Kind::Dilated, prev, c[size_t(i)], c[size_t(i)]);
    } else {
      const int64_t skip = c[size_t(9 - i)];  // blocks.6 <- s4 (blocks.3), ..., blocks.9 <- s1 (blocks.0)
      block = std::make_shared<SubUNetBlock>(gen, SubUNetBlock::Kind::Up, prev + skip, prev, c[size_t(i)]);
    }
    blocks_.push_back(list->register_module(std::to_string(i), block));
    prev = c[size_t(i)];
  }
  out_ = register_module("out", std::make_shared<nn::Conv2d>(gen, prev, 1, 1));
}

Variable SubUNet::forward(const Variable& x) {
  FG_CHECK(x.dim() == 4 && x.size(1) == in_channels_,
           "SubUNet: expected input (N, " << in_channels_ << ", H, W), got " << shape_str(x.shape()));
  FG_CHECK(x.size(2) >= 16 && x.size(3) >= 16 && x.size(2) % 16 == 0 && x.size(3) % 16 == 0,
           "SubUNet: H and W must be positive multiples of 16 (four blocks halve them), got "
               << shape_str(x.shape()) << "; pad or crop the image to a multiple of 16");
  std::vector<Variable> skips;  // s1 .. s4
  Variable h = x;
  for (size_t i = 0; i < 4; ++i) {
    auto [pooled, skip] = blocks_[i]->encode(h);
    skips.push_back(skip);
    h = pooled;
  }
  h = (*blocks_[4])(h);
  h = (*blocks_[5])(h);
  // Each skip is moved into the decoder block that reads it, which frees it once concatenated.
  for (size_t i = 6; i < 10; ++i) h = blocks_[i]->decode(std::move(h), std::move(skips[9 - i]));
  return (*out_)(h);
}

void SubUNet::fold_batch_norm() {
  for (auto& block : blocks_) block->fold_batch_norm();
}

// ---- CrossChannelNet ----

CrossChannelNet::CrossChannelNet(Generator& gen, CrossChannelVariant variant, double width, bool gated)
    : Module("CrossChannelNet"), variant_(variant), width_(width), gated_(gated) {
  check_width(width, "CrossChannelNet");
  FG_CHECK(!gated || variant == CrossChannelVariant::FULL,
           "CrossChannelNet: only the full network can be gated (the gate needs the mask net's prediction); the "
               << cross_channel_variant_name(variant) << " variant has no mask net");
  switch (variant) {
    case CrossChannelVariant::FULL:
      mask_net_ = register_module("mask_net", std::make_shared<SubUNet>(gen, 3, width));
      cross_net_ = register_module("cross_net", std::make_shared<SubUNet>(gen, 2, width));
      final_net_ = register_module("final_net", std::make_shared<SubUNet>(gen, 3, width));
      if (gated) nn::init::constant_(mask_net_->output_conv().bias().data(), kMaskPriorLogit);
      break;
    case CrossChannelVariant::NO_MASK:
      cross_net_ = register_module("cross_net", std::make_shared<SubUNet>(gen, 2, width));
      final_net_ = register_module("final_net", std::make_shared<SubUNet>(gen, 2, width));
      break;
    case CrossChannelVariant::PLAIN_UNET:
      unet_ = register_module("unet", std::make_shared<SubUNet>(gen, 3, width));
      break;
  }
}

void CrossChannelNet::fold_batch_norm() {
  FG_CHECK(!is_training(), "CrossChannelNet: folding the BatchNorms needs eval mode; call eval()");
  for (SubUNet* net : {mask_net_.get(), cross_net_.get(), final_net_.get(), unet_.get()})
    if (net) net->fold_batch_norm();
}

CrossChannelOutput CrossChannelNet::run(const Variable& x) {
  FG_CHECK(x.dim() == 4 && x.size(1) == 3,
           "CrossChannelNet: expected input (N, 3, H, W) = (R, G, B_damaged), got " << shape_str(x.shape()));
  FG_CHECK(x.size(0) >= 1 && x.size(2) >= 16 && x.size(3) >= 16 && x.size(2) % 16 == 0 && x.size(3) % 16 == 0,
           "CrossChannelNet: H and W must be positive multiples of 16 (each sub-network halves them four times), "
           "got "
               << shape_str(x.shape()) << "; pad or crop the image to a multiple of 16 (restore tiles do this)");
  CrossChannelOutput out;
  if (variant_ == CrossChannelVariant::PLAIN_UNET) {
    out.b_final = (*unet_)(x);
    return out;
  }
  const Variable rg = slice(x, 1, 0, 2);
  const Variable b_damaged = slice(x, 1, 2, 3);
  out.b_cross = (*cross_net_)(rg);
  if (variant_ == CrossChannelVariant::FULL) {
    out.mask_logits = (*mask_net_)(x);
    out.b_final = (*final_net_)(concat({sigmoid(out.mask_logits), out.b_cross, b_damaged}, 1));
    if (gated_) {
      out.b_ungated = out.b_final;
      out.b_final = damage_gate(out.mask_logits, out.b_ungated, b_damaged);
    }
  } else {
    out.b_final = (*final_net_)(concat({out.b_cross, b_damaged}, 1));
  }
  return out;
}

CrossChannelOutput CrossChannelNet::forward_all(const Variable& x) {
  CrossChannelOutput out = run(x);
  record_output(out.b_final);
  return out;
}

Variable CrossChannelNet::forward(const Variable& x) {
  return run(x).b_final;
}

// ---- loss ----

namespace {

void check_target(const Variable& target, const Variable& pred, const char* what) {
  FG_CHECK(target.defined(), "cross_channel_loss: " << what << " is needed for this variant but was not given");
  FG_CHECK(target.shape() == pred.shape(), "cross_channel_loss: " << what << " must have the outputs' shape "
                                                                  << shape_str(pred.shape()) << ", got "
                                                                  << shape_str(target.shape()));
}

}  // namespace

CrossChannelLossTerms cross_channel_loss_terms(const CrossChannelOutput& out, const Variable& true_mask,
                                               const Variable& b_clean) {
  FG_CHECK(out.b_final.defined(), "cross_channel_loss: the output has no b_final; pass what forward_all returned");
  check_target(b_clean, out.b_final, "the clean blue channel");
  CrossChannelLossTerms t;
  if (out.mask_logits.defined()) {
    check_target(true_mask, out.mask_logits, "the true mask");
    t.bce_mask = bce_with_logits(out.mask_logits, true_mask);
    t.total = t.bce_mask;
  }
  if (out.b_cross.defined()) {
    t.mse_cross = mse_loss(out.b_cross, b_clean);
    t.total = t.total.defined() ? add(t.total, t.mse_cross) : t.mse_cross;
  }
  t.mse_final = mse_loss(out.b_final, b_clean);
  t.total = t.total.defined() ? add(t.total, t.mse_final) : t.mse_final;
  return t;
}

Variable cross_channel_loss(const CrossChannelOutput& out, const Variable& true_mask, const Variable& b_clean) {
  return cross_channel_loss_terms(out, true_mask, b_clean).total;
}

CrossChannelVariant parse_cross_channel_variant(const std::string& name) {
  if (name == "full") return CrossChannelVariant::FULL;
  if (name == "no_mask") return CrossChannelVariant::NO_MASK;
  if (name == "plain_unet") return CrossChannelVariant::PLAIN_UNET;
  FG_CHECK(false, "unknown cross-channel variant '" << name << "'; use full, no_mask or plain_unet");
  return CrossChannelVariant::FULL;
}

std::string cross_channel_variant_name(CrossChannelVariant variant) {
  switch (variant) {
    case CrossChannelVariant::FULL:
      return "full";
    case CrossChannelVariant::NO_MASK:
      return "no_mask";
    case CrossChannelVariant::PLAIN_UNET:
      return "plain_unet";
  }
  return "full";
}

}  // namespace fg::models
