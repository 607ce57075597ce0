// The perceptual (feature) loss: see models/perceptual_loss.h.
#include "models/perceptual_loss.h"

#include <sstream>

#include "autograd/ops.h"
#include "nn/losses.h"
#include "tensor/error.h"

namespace fg::models {

namespace {

std::vector<double> weights_of(PerceptualVariant variant) {
  switch (variant) {
    case PerceptualVariant::MODEL1:
      return {0.0, 0.0, 20.0, 70.0, 10.0};
    case PerceptualVariant::MODEL2:
    case PerceptualVariant::MODEL3:
      return {2.0, 4.0, 5.0, 6.0, 6.0};
  }
  FG_ASSERT(false, "unknown PerceptualVariant " << int(variant));
}

}  // namespace

PerceptualVariant parse_perceptual_variant(const std::string& name) {
  if (name == "model1") return PerceptualVariant::MODEL1;
  if (name == "model2") return PerceptualVariant::MODEL2;
  if (name == "model3") return PerceptualVariant::MODEL3;
  throw Error("unknown perceptual loss variant '" + name +
              "'; choose model1 (DeOldify's weights, MAE), model2 (weights 2,4,5,6,6, MAE) or model3 (model2 with "
              "SSIM content and pixel terms)");
}

std::string perceptual_variant_name(PerceptualVariant variant) {
  switch (variant) {
    case PerceptualVariant::MODEL1:
      return "model1";
    case PerceptualVariant::MODEL2:
      return "model2";
    case PerceptualVariant::MODEL3:
      return "model3";
  }
  FG_ASSERT(false, "unknown PerceptualVariant " << int(variant));
}

const std::vector<int64_t>& PerceptualLoss::tap_indices() {
  static const std::vector<int64_t> taps = {5, 12, 22, 32, 42};
  return taps;
}

PerceptualLoss::PerceptualLoss(Generator& gen, PerceptualVariant variant, double vgg_width)
    : Module("PerceptualLoss"), variant_(variant), layer_weights_(weights_of(variant)) {
  vgg_ = register_module("vgg", std::make_shared<VGG16>(gen, /*batch_norm=*/true, vgg_width));
  vgg_->freeze();
  vgg_->eval();
}

PerceptualTerms PerceptualLoss::compute(const Variable& pred, const Variable& target) {
  FG_CHECK(pred.defined() && target.defined(), "PerceptualLoss: pred and target must both be defined");
  FG_CHECK(pred.dim() == 4 && pred.size(1) == 3 && pred.shape() == target.shape(),
           "PerceptualLoss: pred and target must be RGB batches (N, 3, H, W) of the same shape, got "
               << shape_str(pred.shape()) << " and " << shape_str(target.shape()));
  FG_CHECK(pred.size(2) >= 16 && pred.size(3) >= 16,
           "PerceptualLoss: images must be at least 16x16 (the deepest VGG tap is at 1/16 scale), got "
               << pred.size(2) << "x" << pred.size(3));
  const DType vgg_dtype = vgg_->features()->at<nn::Conv2d>(0)->weight().dtype();
  FG_CHECK(pred.dtype() == vgg_dtype && target.dtype() == vgg_dtype,
           "PerceptualLoss: pred (" << dtype_name(pred.dtype()) << ") and target (" << dtype_name(target.dtype())
                                    << ") must have the VGG's dtype (" << dtype_name(vgg_dtype)
                                    << "); convert the inputs or the loss with to()");

  // Module::train() is not virtual, so a train() that reached the VGG through this module cannot be refused:
  // put the VGG back into eval mode (running BatchNorm statistics) and frozen before every use.
  vgg_->eval();
  vgg_->freeze();

  // Only the taps with a non-zero weight are computed (see the header).
  std::vector<int64_t> taps;
  std::vector<size_t> slots;
  for (size_t i = 0; i < layer_weights_.size(); ++i) {
    if (layer_weights_[i] == 0.0) continue;
    taps.push_back(tap_indices()[i]);
    slots.push_back(i);
  }
  // The target is a constant: it gets no gradient, whatever its requires_grad says.
  const Variable target_value = target.detach();
  std::vector<Variable> target_features;
  {
    NoGradGuard no_grad;
    target_features = vgg_->forward_taps(target_value, taps);
  }
  const std::vector<Variable> pred_features = vgg_->forward_taps(pred, taps);

  PerceptualTerms terms;
  terms.content.assign(layer_weights_.size(), 0.0);
  terms.style.assign(layer_weights_.size(), 0.0);
  std::vector<Variable> parts;
  auto add_term = [&](const Variable& term, double& slot) {
    slot = term.item();
    parts.push_back(term);
  };

  const bool ssim_terms = variant_ == PerceptualVariant::MODEL3;
  terms.pixel.assign(ssim_terms ? 2 : 1, 0.0);
  add_term(l1_loss(pred, target_value), terms.pixel[0]);
  if (ssim_terms) add_term(nn::ssim_loss(pred, target_value, kSsimWindow), terms.pixel[1]);

  for (size_t k = 0; k < taps.size(); ++k) {
    const size_t i = slots[k];
    const double w = layer_weights_[i];
    const Variable distance = ssim_terms ? nn::ssim_loss(pred_features[k], target_features[k], kSsimWindow)
                                         : l1_loss(pred_features[k], target_features[k]);
    add_term(mul_scalar(distance, w), terms.content[i]);
  }
  for (size_t k = 0; k < taps.size(); ++k) {
    const size_t i = slots[k];
    add_term(nn::gram_style_loss(pred_features[k], target_features[k], layer_weights_[i]), terms.style[i]);
  }

  Variable total = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) total = add(total, parts[i]);
  terms.total = total;
  record_output(total);
  return terms;
}

std::string PerceptualLoss::extra_repr() const {
  std::ostringstream os;
  os << "variant=" << perceptual_variant_name(variant_) << ", taps=[5, 12, 22, 32, 42], layer_weights=[";
  for (size_t i = 0; i < layer_weights_.size(); ++i) os << (i ? ", " : "") << layer_weights_[i];
  os << "]";
  return os.str();
}

}  // namespace fg::models
