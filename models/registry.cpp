// The model registry of registry.h.
#include "models/registry.h"

#include <algorithm>
#include <cmath>

#include "models/critic.h"
#include "models/cross_channel.h"
#include "models/dynamic_unet.h"
#include "models/resnet.h"
#include "models/tiny_unet.h"
#include "models/vgg.h"
#include "nn/checkpoint.h"
#include "tensor/safetensors.h"

namespace fg::models {

namespace {

// The demo's TinyUNet has 8 base channels; width scales them.
constexpr double kTinyUNetChannels = 8.0;

}  // namespace

std::vector<ModelSpec> list_models() {
  // clang-format off
  return {
      {"dynamic_unet", "Dynamic U-Net on a ResNet34 encoder, removes dust and scratches (RGB -> RGB)",
       {1, 3, 256, 256}, true},
      {"cross_channel", "cross-channel network: mask net, cross-channel net, final net (R,G,B -> B)",
       {1, 3, 256, 256}, false},
      {"cross_channel_no_mask", "cross-channel network without the mask net (ablation)", {1, 3, 256, 256}, false},
      {"cross_channel_plain", "one plain U-Net of ten blocks (ablation)", {1, 3, 256, 256}, false},
      {"resnet34", "torchvision ResNet34 classifier (1000 classes)", {1, 3, 224, 224}, true},
#ifndef FG_MINIMAL  // the training-only networks: an inference-only build leaves them out
      {"vgg16", "torchvision VGG16 features (the perceptual-loss network)", {1, 3, 224, 224}, true},
      {"vgg16_bn", "torchvision VGG16-BN features (the perceptual-loss network)", {1, 3, 224, 224}, true},
      {"critic", "NoGAN critic: ResNet34 body and a self-attention head, per-patch logits", {1, 3, 256, 256}, true},
#endif
      {"tiny_unet", "the small U-Net 'filmgrad demo' trains (RGB -> RGB)", {1, 3, 64, 64}, false},
  };
  // clang-format on
}

const ModelSpec* find_model(const std::string& name) {
  static const std::vector<ModelSpec> models = list_models();
  for (const ModelSpec& m : models)
    if (m.name == name) return &m;
  return nullptr;
}

std::string known_model_names() {
  std::string s;
  for (const ModelSpec& m : list_models()) s += (s.empty() ? "" : ", ") + m.name;
  return s;
}

bool model_can_be_gated(const std::string& name) {
  return name == "dynamic_unet" || name == "cross_channel";
}

std::shared_ptr<nn::Module> create_model(const std::string& name, Generator& gen, double width, bool gated) {
  FG_CHECK(find_model(name) != nullptr, "unknown model '" << name << "'; the models are: " << known_model_names());
  FG_CHECK(std::isfinite(width) && width > 0, "the width multiplier must be a positive number, got " << width);
  FG_CHECK(!gated || model_can_be_gated(name),
           "the model '" << name << "' has no gated form; gated needs dynamic_unet or cross_channel (a damage mask "
                         << "beside the image)");
  if (name == "dynamic_unet") {
    DynamicUNetConfig config;
    config.width = width;
    config.gated = gated;
    return std::make_shared<DynamicUNet>(gen, config);
  }
  if (name == "cross_channel") return std::make_shared<CrossChannelNet>(gen, CrossChannelVariant::FULL, width, gated);
  if (name == "cross_channel_no_mask")
    return std::make_shared<CrossChannelNet>(gen, CrossChannelVariant::NO_MASK, width);
  if (name == "cross_channel_plain")
    return std::make_shared<CrossChannelNet>(gen, CrossChannelVariant::PLAIN_UNET, width);
  if (name == "resnet34") return std::make_shared<ResNet34>(gen, width);
#ifndef FG_MINIMAL
  if (name == "vgg16") return std::make_shared<VGG16>(gen, /*batch_norm=*/false, width);
  if (name == "vgg16_bn") return std::make_shared<VGG16>(gen, /*batch_norm=*/true, width);
  if (name == "critic") return std::make_shared<NoGanCritic>(gen, width);
#endif
  FG_ASSERT(name == "tiny_unet", "a listed model without a constructor: " << name);
  const int64_t channels = std::max<int64_t>(1, std::llround(kTinyUNetChannels * width));
  return std::make_shared<TinyUNet>(gen, 3, 3, channels);
}

std::vector<std::pair<std::string, Variable>> run_model(nn::Module& model, const Variable& input) {
  if (auto* net = dynamic_cast<CrossChannelNet*>(&model)) {
    const CrossChannelOutput out = net->forward_all(input);
    std::vector<std::pair<std::string, Variable>> outputs{{"output", out.b_final}};
    if (out.mask_logits.defined()) outputs.emplace_back("mask_logits", out.mask_logits);
    if (out.b_cross.defined()) outputs.emplace_back("b_cross", out.b_cross);
    if (out.b_ungated.defined()) outputs.emplace_back("b_ungated", out.b_ungated);
    return outputs;
  }
  if (auto* net = dynamic_cast<DynamicUNet*>(&model); net != nullptr && net->config().gated) {
    const GatedOutput out = net->forward_gated(input);
    return {{"output", out.output}, {"mask_logits", out.mask_logits}, {"image", out.image}};
  }
  return {{"output", model(input)}};
}

void load_model_weights(nn::Module& model, const std::string& path) {
  const SafeTensors st = load_safetensors(path);
  const auto format = st.metadata.find("format");
  const bool checkpoint = format != st.metadata.end() && format->second == nn::kCheckpointFormat;
  if (!checkpoint) {
    // torchvision's own state dicts (with or without num_batches_tracked, with the classifier) load as they are.
    if (auto* resnet = dynamic_cast<ResNet34*>(&model)) return resnet->load_torchvision(st.tensors);
#ifndef FG_MINIMAL
    if (auto* vgg = dynamic_cast<VGG16*>(&model)) return vgg->load_torchvision(st.tensors);
#endif
  }
  nn::load_weights(path, model, /*strict=*/true);
}

std::string freeze_as_trained(nn::Module& model) {
  if (auto* net = dynamic_cast<DynamicUNet*>(&model)) {
    net->freeze_encoder();
    return "encoder frozen except its BatchNorms (freeze_encoder(), as fastai trains it at first)";
  }
  return "";
}

}  // namespace fg::models
