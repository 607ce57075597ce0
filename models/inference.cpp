// The inference rewrite of models/inference.h.
#include "models/inference.h"

#include <vector>

#include "models/cross_channel.h"
#include "models/dynamic_unet.h"
#include "models/resnet.h"
#include "models/tiny_unet.h"
#include "tensor/error.h"

namespace fg::models {

namespace {

std::shared_ptr<nn::BatchNorm2d> batch_norm_child(nn::Module& parent, const std::string& name) {
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>(parent.child(name));
  FG_CHECK(bn != nullptr, parent.type_name() << ": the child '" << name << "' is a " << parent.child(name)->type_name()
                                             << ", not a BatchNorm2d (already folded?)");
  FG_CHECK(!bn->is_training(), parent.type_name() << ": folding '" << name
                                                  << "' needs eval mode (it uses the running statistics); call eval()");
  return bn;
}

}  // namespace

std::shared_ptr<nn::Module> fold_batch_norm_into(nn::Module& parent, const std::string& bn_name, nn::Conv2d& conv) {
  const std::shared_ptr<nn::BatchNorm2d> bn = batch_norm_child(parent, bn_name);
  conv.fold_batch_norm(*bn);
  auto identity = std::make_shared<nn::Identity>();
  identity->eval();
  parent.replace_module(bn_name, identity);
  return identity;
}

std::shared_ptr<nn::Module> batch_norm_to_affine(nn::Module& parent, const std::string& bn_name) {
  const std::shared_ptr<nn::BatchNorm2d> bn = batch_norm_child(parent, bn_name);
  auto affine = std::make_shared<nn::ChannelAffine>(*bn);
  affine->eval();
  parent.replace_module(bn_name, affine);
  return affine;
}

int64_t count_batch_norms(const nn::Module& network) {
  int64_t n = 0;
  for (const auto& m : network.named_modules()) n += dynamic_cast<const nn::BatchNorm2d*>(m.second) != nullptr;
  return n;
}

int64_t state_bytes(const nn::Module& network) {
  int64_t bytes = 0;
  for (const auto& e : network.state_dict()) bytes += int64_t(e.second.nbytes());
  return bytes;
}

InferenceReport prepare_for_inference(nn::Module& network, const InferenceOptions& options) {
  FG_CHECK(!network.is_training(),
           "the inference mode rewrites a network in eval mode (BatchNorm uses its running statistics); call eval()");
  InferenceReport report;
  report.bytes_before = state_bytes(network);
  if (options.fold_batch_norm) {
    int64_t affine_before = 0;
    for (const auto& m : network.named_modules())
      affine_before += dynamic_cast<const nn::ChannelAffine*>(m.second) != nullptr;
    const int64_t before = count_batch_norms(network);
    if (auto* unet = dynamic_cast<DynamicUNet*>(&network)) {
      unet->fold_batch_norm();
    } else if (auto* cross = dynamic_cast<CrossChannelNet*>(&network)) {
      cross->fold_batch_norm();
    } else if (auto* tiny = dynamic_cast<TinyUNet*>(&network)) {
      tiny->fold_batch_norm();
    } else if (auto* resnet = dynamic_cast<ResNet34*>(&network)) {
      resnet->fold_batch_norm();
    } else {
      FG_CHECK(before == 0, "the inference mode does not know where the BatchNorms of a "
                                << network.type_name() << " sit; load it without folding");
    }
    int64_t affine_after = 0;
    for (const auto& m : network.named_modules())
      affine_after += dynamic_cast<const nn::ChannelAffine*>(m.second) != nullptr;
    FG_ASSERT(count_batch_norms(network) == 0, network.type_name() << " kept a BatchNorm after folding");
    report.affine = affine_after - affine_before;
    report.folded = before - report.affine;
  }
  if (options.f16_weights) {
    // Every layer is checked before any is converted, so an error leaves the weights as they were.
    std::vector<nn::WeightLayer*> layers;
    for (auto& m : network.named_modules())
      if (auto* layer = dynamic_cast<nn::WeightLayer*>(m.second)) layers.push_back(layer);
    for (nn::WeightLayer* layer : layers) {
      for (const Variable& v : {layer->weight(), layer->bias()})
        if (v.defined()) FG_CHECK(v.data().device().is_cpu(), "f16 weights are for the CPU; load the model there");
      FG_CHECK(layer->fits_f16(),
               "a weight of this " << network.type_name() << " is beyond f16's range (65504); keep its weights in f32");
    }
    for (nn::WeightLayer* layer : layers) report.f16_layers += layer->store_f16() > 0;
  }
  report.bytes_after = state_bytes(network);
  return report;
}

}  // namespace fg::models
