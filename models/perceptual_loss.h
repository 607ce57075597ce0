// The perceptual (feature) loss of SPEC B "Losses": fastai/DeOldify's FeatureLoss on a frozen VGG16-BN `features`,
// in the three variants the dissertation trains (Models 1-3). It lives in models/, not nn/, because it owns a
// network (models::VGG16): nn/ stays below models/ (DESIGN.md's layering); the generic pieces it is built from
// (ssim_loss, gram_style_loss) are in nn/losses.h.
//
// With taps t_i = the outputs of features[5, 12, 22, 32, 42] (the ReLUs before each max-pool), layer weights w_i and
// distances as below:
//   loss = sum of the pixel terms
//        + sum_i w_i * content(t_i(pred), t_i(target))
//        + sum_i 5e3 * w_i^2 * l1(gram(t_i(pred)), gram(t_i(target)))       (gram: nn/losses.h)
//   MODEL1  w = [0, 0, 20, 70, 10] (DeOldify's);   pixel: l1;                content: l1
//   MODEL2  w = [2, 4, 5, 6, 6] (the dissertation's); pixel: l1;             content: l1
//   MODEL3  w = [2, 4, 5, 6, 6];                     pixel: l1 + ssim_loss5; content: ssim_loss5 (1 - SSIM, 5x5)
// where l1 is the mean absolute difference and ssim_loss5 = 1 - SSIM with a 5x5 Gaussian window (sigma 1.5).
//
// Choices where the sources leave room (dissertation section 3.2 eqs. 3.1-3.4, section 4.3, section 5.2.2; fastai v1
// lesson 7 / DeOldify FeatureLoss):
// - The pixel terms are unweighted (FeatureLoss adds base_loss(input, target) as is; the dissertation's optional
//   scaling weights alpha, beta, gamma, delta are all 1).
// - Layers of weight 0 contribute exactly 0 and are not computed: the VGG runs only as far as the deepest tap with
//   a non-zero weight (for Model 1 the taps 5 and 12 are passed through but not compared). PyTorch computes them
//   and multiplies by 0, which gives the same value and the same gradient for finite features.
// - The VGG sees pred and target as they are: the U-Net's input, output and target are already ImageNet-normalised
//   (SPEC B), which is what the VGG's ImageNet weights expect; no further normalisation is applied.
// - The target is a constant: its features are computed under NoGradGuard (FeatureLoss clones them) and it gets
//   no gradient from any term, even when it requires one.
// - PyTorch's FeatureLoss hooks the taps without detaching them, so gradients flow to pred through the VGG; the
//   VGG's own parameters are frozen (requires_grad false) and receive none.
// - The VGG stays in eval mode (running BatchNorm statistics, never updated): Module::train() is not virtual, so
//   a train() on this module or on an owner that holds it would reach the VGG; compute() therefore re-asserts eval
//   mode and the freeze on every call, and the rest of this module's tree has nothing that trains.
// - pred and target must have the VGG's dtype (f32 unless to() changed it); a mismatch is an error, not a silent
//   cast.
//
// Module tree: PerceptualLoss (type_name "PerceptualLoss") with one child "vgg" (models::VGG16 with batch norm), so
// its state dict is "vgg.features.0.weight", ...; load ImageNet weights with vgg().load_torchvision(state) using
// torchvision's vgg16_bn names ("features.0.weight", ...).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/vgg.h"
#include "nn/module.h"

namespace fg::models {

enum class PerceptualVariant { MODEL1, MODEL2, MODEL3 };

// "model1", "model2", "model3"; anything else throws fg::Error listing the three.
PerceptualVariant parse_perceptual_variant(const std::string& name);
std::string perceptual_variant_name(PerceptualVariant variant);

// One evaluation, with the breakdown a training log prints. The doubles are the terms as they enter the total
// (already weighted): pixel = {l1} for Models 1 and 2, {l1, ssim_loss5} for Model 3; content and style have one entry
// per tap (5), 0 for a layer of weight 0.
struct PerceptualTerms {
  Variable total;
  std::vector<double> pixel, content, style;
};

class PerceptualLoss : public nn::Module {
 public:
  // The VGG16-BN is initialised from gen (torchvision's init); load real weights into vgg() before training.
  // vgg_width multiplies the VGG's channel counts (1.0 = torchvision's network).
  PerceptualLoss(Generator& gen, PerceptualVariant variant, double vgg_width = 1.0);

  // pred, target: (N, 3, H, W), same shape and dtype, H and W at least 16 (the deepest tap is at 1/16 scale).
  // The total is differentiable with respect to pred.
  PerceptualTerms compute(const Variable& pred, const Variable& target);

  VGG16& vgg() { return *vgg_; }
  const VGG16& vgg() const { return *vgg_; }
  PerceptualVariant variant() const { return variant_; }
  const std::vector<double>& layer_weights() const { return layer_weights_; }
  static const std::vector<int64_t>& tap_indices();  // {5, 12, 22, 32, 42}
  static constexpr int64_t kSsimWindow = 5;

  std::string extra_repr() const override;

 private:
  PerceptualVariant variant_;
  std::vector<double> layer_weights_;
  std::shared_ptr<VGG16> vgg_;
};

}  // namespace fg::models
