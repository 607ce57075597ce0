// The Dynamic U-Net: see models/dynamic_unet.h.
#include "models/dynamic_unet.h"

#include <cmath>
#include <string>
#include <utility>

#include "autograd/ops.h"
#include "models/gate.h"
#include "models/inference.h"
#include "nn/init.h"
#include "tensor/error.h"

namespace fg::models {

namespace {

// fastai v1's conv_layer with norm_type None: a conv with bias, padding ks / 2, kaiming_normal_ weight, zero bias.
std::shared_ptr<nn::Conv2d> fastai_conv(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t kernel) {
  auto conv = std::make_shared<nn::Conv2d>(gen, in_channels, out_channels, kernel, 1, kernel / 2);
  nn::init::kaiming_normal_(conv->weight().data(), gen);
  nn::init::zeros_(conv->bias().data());
  return conv;
}

// A container with children "0", "1", ... and no forward of its own (PyTorch's nn.ModuleList), so the blocks are
// named "blocks.<i>".
class ModuleList : public nn::Module {
 public:
  ModuleList() : nn::Module("ModuleList") {}
};

}  // namespace

// ---- PixelShuffleICNR ----

PixelShuffleICNR::PixelShuffleICNR(Generator& gen, int64_t in_channels, int64_t out_channels, bool blur)
    : nn::Module("PixelShuffle_ICNR"), out_channels_(out_channels) {
  FG_CHECK(in_channels >= 1 && out_channels >= 1,
           "PixelShuffleICNR: channel counts must be positive, got " << in_channels << " -> " << out_channels);
  conv_ = register_module("conv", std::make_shared<nn::Conv2d>(gen, in_channels, 4 * out_channels, 1));
  nn::init::icnr_(conv_->weight().data(), gen, 2);
  nn::init::zeros_(conv_->bias().data());
  relu_ = register_module("relu", std::make_shared<nn::ReLU>());
  shuf_ = register_module("shuf", std::make_shared<nn::PixelShuffle>(2));
  if (blur) {
    pad_ = register_module("pad", std::make_shared<nn::ReplicationPad2d>(1, 0, 1, 0));
    blur_ = register_module("blur", std::make_shared<nn::AvgPool2d>(2, 1));
  }
}

Variable PixelShuffleICNR::forward(const Variable& x) {
  // One layer per statement, so that at inference each map is freed as soon as the next exists (last_shuf's are
  // among the network's largest).
  Variable y = (*conv_)(x);
  y = (*relu_)(y);
  y = (*shuf_)(y);
  if (blur_) {
    y = (*pad_)(y);
    y = (*blur_)(y);
  }
  return y;
}

// ---- UnetBlock ----

UnetBlock::UnetBlock(Generator& gen, int64_t up_channels, int64_t skip_channels, bool halve, bool blur,
                     bool self_attention, bool spectral_norm)
    : nn::Module("UnetBlock"), up_channels_(up_channels), skip_channels_(skip_channels) {
  FG_CHECK(up_channels >= 2 && skip_channels >= 1, "UnetBlock: needs at least 2 up channels and 1 skip channel, got "
                                                       << up_channels << " and " << skip_channels);
  const int64_t ni = up_channels / 2 + skip_channels;
  out_channels_ = halve ? ni / 2 : ni;
  shuf_ = register_module("shuf", std::make_shared<PixelShuffleICNR>(gen, up_channels, up_channels / 2, blur));
  bn_ = register_module("bn", std::make_shared<nn::BatchNorm2d>(skip_channels));
  conv1_ = register_module("conv1", fastai_conv(gen, ni, out_channels_, 3));
  conv2_ = register_module("conv2", fastai_conv(gen, out_channels_, out_channels_, 3));
  if (self_attention)
    attn_ = register_module("attn", std::make_shared<nn::SelfAttention>(gen, out_channels_, spectral_norm));
}

Variable UnetBlock::forward(Variable up_in, Variable skip) {
  FG_CHECK(up_in.dim() == 4 && up_in.size(1) == up_channels_ && skip.dim() == 4 && skip.size(1) == skip_channels_ &&
               skip.size(0) == up_in.size(0),
           "UnetBlock(" << up_channels_ << ", " << skip_channels_ << "): expected up_in (N, " << up_channels_
                        << ", h, w) and skip (N, " << skip_channels_ << ", H, W), got " << shape_str(up_in.shape())
                        << " and " << shape_str(skip.shape()));
  Variable up = (*shuf_)(up_in);
  up_in = Variable();
  // Odd sizes upstream leave the upsampled map a pixel off the skip's size; fastai resizes it to match.
  if (up.size(2) != skip.size(2) || up.size(3) != skip.size(3)) up = upsample_nearest2d(up, skip.size(2), skip.size(3));
  // Each map is dropped once read, so that at inference (no graph) only the maps still needed are alive.
  skip = (*bn_)(skip);
  Variable x = concat({up, skip}, 1);
  up = Variable();
  skip = Variable();
  x = relu(x);
  x = (*conv1_)(x);
  x = relu(x);
  x = (*conv2_)(x);
  x = relu(x);
  if (attn_) x = (*attn_)(x);
  record_output(x);
  return x;
}

void UnetBlock::fold_batch_norm() {
  bn_ = batch_norm_to_affine(*this, "bn");
}

// ---- ResBlock ----

ResBlock::ResBlock(Generator& gen, int64_t channels) : nn::Module("ResBlock") {
  conv1_ = register_module("conv1", fastai_conv(gen, channels, channels, 3));
  conv2_ = register_module("conv2", fastai_conv(gen, channels, channels, 3));
}

Variable ResBlock::forward(const Variable& x) {
  // One layer per statement: the temporaries of a single expression would all stay alive until its end, which at
  // restore time (no graph keeps them) holds four full-resolution 99-channel maps beside x instead of two.
  Variable h = (*conv1_)(x);
  h = relu(h);
  h = (*conv2_)(h);
  h = relu(h);
  return add(x, h);
}

// ---- DynamicUNet ----

DynamicUNet::DynamicUNet(Generator& gen, const DynamicUNetConfig& config) : nn::Module("DynamicUnet"), config_(config) {
  FG_CHECK(std::isfinite(config.width) && config.width > 0.0,
           "DynamicUNet: width must be a positive multiplier of the channel counts (1 = the published network), got "
               << config.width);
  FG_CHECK(config.out_channels >= 1, "DynamicUNet: out_channels must be at least 1, got " << config.out_channels);
  FG_CHECK(std::isfinite(config.y_lo) && std::isfinite(config.y_hi) && config.y_lo < config.y_hi,
           "DynamicUNet: the output range needs y_lo < y_hi, got (" << config.y_lo << ", " << config.y_hi << ")");

  encoder_ = register_module("encoder", std::make_shared<ResNet34>(gen, config.width, 0));
  const int64_t c0 = encoder_->stage_channels(0), c1 = encoder_->stage_channels(1);
  const int64_t c2 = encoder_->stage_channels(2), c3 = encoder_->stage_channels(3);

  // Checked here, before anything is built, so the message can name the width that causes it.
  const int64_t attn_channels = (c3 / 2 + c2) / 2 + c1;
  FG_CHECK(!config.self_attention || attn_channels >= 8,
           "DynamicUNet: at width " << config.width << " blocks.1 has " << attn_channels
                                    << " channels, but self-attention needs at least 8 (its query and key have C/8); "
                                       "use a larger width or turn self_attention off");

  bridge_ = register_module("bridge", std::make_shared<nn::Sequential>());
  bridge_->push_back(std::make_shared<nn::BatchNorm2d>(c3));
  bridge_->push_back(std::make_shared<nn::ReLU>());
  bridge_->push_back(fastai_conv(gen, c3, 2 * c3, 3));
  bridge_->push_back(std::make_shared<nn::ReLU>());
  bridge_->push_back(fastai_conv(gen, 2 * c3, c3, 3));
  bridge_->push_back(std::make_shared<nn::ReLU>());

  auto blocks = register_module("blocks", std::make_shared<ModuleList>());
  const int64_t skips[4] = {c2, c1, c0, c0};  // S1, S2, S3, S4
  int64_t up = c3;
  for (int i = 0; i < 4; ++i) {
    auto block = std::make_shared<UnetBlock>(gen, up, skips[i], /*halve=*/i == 3, config.blur,
                                             /*self_attention=*/config.self_attention && i == 1, config.spectral_norm);
    blocks->register_module(std::to_string(i), block);
    blocks_.push_back(block);
    up = block->out_channels();
  }
  last_shuf_ = register_module("last_shuf", std::make_shared<PixelShuffleICNR>(gen, up, up, /*blur=*/false));
  const int64_t cross = up + 3;  // the network input is concatenated before the res block
  res_ = register_module("res", std::make_shared<ResBlock>(gen, cross));
  head_ = register_module("head", fastai_conv(gen, cross, config.out_channels, 1));
  sigmoid_range_ = register_module("sigmoid_range", std::make_shared<nn::SigmoidRange>(config.y_lo, config.y_hi));
  if (config.gated) {
    FG_CHECK(config.out_channels == 3,
             "DynamicUNet: the gated network blends its prediction with the RGB input, so "
             "out_channels must be 3, got "
                 << config.out_channels);
    // Built last, so the ungated layers draw the same weights from gen whether or not the network is gated.
    mask_head_ = register_module("mask_head", fastai_conv(gen, cross, 1, 1));
    nn::init::constant_(mask_head_->bias().data(), kMaskPriorLogit);
  }
}

UnetBlock& DynamicUNet::block(int64_t i) {
  FG_CHECK(i >= 0 && i < int64_t(blocks_.size()), "DynamicUNet: there is no block " << i << " (blocks 0 to 3)");
  return *blocks_[size_t(i)];
}

Variable DynamicUNet::forward(const Variable& x) {
  if (mask_head_) return forward_gated(x).output;
  return (*sigmoid_range_)((*head_)(trunk(x)));
}

GatedOutput DynamicUNet::forward_gated(const Variable& x) {
  FG_CHECK(mask_head_ != nullptr, "DynamicUNet: forward_gated needs a gated network (DynamicUNetConfig::gated)");
  const Variable features = trunk(x);
  GatedOutput out;
  out.image = (*sigmoid_range_)((*head_)(features));
  out.mask_logits = (*mask_head_)(features);
  out.output = damage_gate(out.mask_logits, out.image, x);
  return out;
}

Variable DynamicUNet::trunk(const Variable& x) {
  FG_CHECK(
      x.dim() == 4 && x.size(1) == 3 && x.size(2) > 0 && x.size(3) > 0 && x.size(2) % 32 == 0 && x.size(3) % 32 == 0,
      "DynamicUNet: input must be (N, 3, H, W) RGB with H and W positive multiples of 32 (the encoder halves "
      "the size five times), got "
          << shape_str(x.shape()) << "; pad or crop the image to a multiple of 32");
  // Each skip is moved into the block that reads it last, so it is freed there as soon as it is read.
  ResNetFeatures f = encoder_->forward_features(x);
  Variable y = (*bridge_)(f.out);
  f.out = Variable();
  y = (*blocks_[0])(std::move(y), std::move(f.s1));
  y = (*blocks_[1])(std::move(y), std::move(f.s2));
  y = (*blocks_[2])(std::move(y), std::move(f.s3));
  y = (*blocks_[3])(std::move(y), std::move(f.s4));
  y = (*last_shuf_)(y);
  y = concat({y, x}, 1);
  return (*res_)(y);
}

void DynamicUNet::fold_batch_norm() {
  FG_CHECK(!is_training(), "DynamicUNet: folding the BatchNorms needs eval mode; call eval()");
  encoder_->fold_batch_norm();
  batch_norm_to_affine(*bridge_, "0");
  for (auto& block : blocks_) block->fold_batch_norm();
}

void DynamicUNet::freeze_encoder() {
  unfreeze();
  encoder_->freeze("");
  for (auto& entry : encoder_->named_modules()) {
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(entry.second)) {
      if (bn->weight().defined()) bn->weight().set_requires_grad(true);
      if (bn->bias().defined()) bn->bias().set_requires_grad(true);
    }
  }
}

void DynamicUNet::unfreeze() {
  set_requires_grad("", true);
}

}  // namespace fg::models
