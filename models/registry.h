// The model registry: every network filmgrad can build, by name, for the command-line program (`filmgrad
// inspect`, `filmgrad forward`) and for anything else that picks a model from a string.
//
//   dynamic_unet           the Dynamic U-Net on a ResNet34 encoder (SPEC B; models/dynamic_unet.h)
//   cross_channel          the cross-channel network with its mask net (SPEC A; models/cross_channel.h)
//   cross_channel_no_mask  the ablation without the mask net
//   cross_channel_plain    the ablation that is one plain U-Net
//   resnet34               torchvision's ResNet34 classifier (models/resnet.h)
//   vgg16, vgg16_bn        torchvision's VGG16 / VGG16-BN features (models/vgg.h)
//   critic                 the NoGAN critic (SPEC B, appendix E; models/critic.h)
//   tiny_unet              the small U-Net `filmgrad demo` trains (models/tiny_unet.h)
//
// Promises: names are stable (weight files and scripts refer to them); create_model() with the same name, width
// and generator state builds the same weights; an unknown name throws fg::Error listing the known ones.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "tensor/philox.h"

namespace fg::models {

struct ModelSpec {
  std::string name;
  std::string description;
  Shape default_input;  // (1, 3, H, W): what `filmgrad inspect` runs when no size is given
  // The model expects ImageNet-normalised RGB ((x - mean) / std with torchvision's mean and std), as torchvision's
  // classifiers and the Dynamic U-Net (SPEC B) do; false: plain values in [0, 1].
  bool imagenet_input = false;
};

std::vector<ModelSpec> list_models();
// The spec of `name`, or nullptr when there is no such model.
const ModelSpec* find_model(const std::string& name);
// "dynamic_unet, cross_channel, ..." for messages.
std::string known_model_names();

// Builds `name` with its weights initialised from `gen`. `width` multiplies every channel count (1.0 is the
// published network; smaller widths train on a CPU). `gated`: the damage-gated form (models/gate.h) of
// dynamic_unet or cross_channel. Throws fg::Error for an unknown name, a bad width, or gated for another model.
std::shared_ptr<nn::Module> create_model(const std::string& name, Generator& gen, double width = 1.0,
                                         bool gated = false);
// Whether create_model can build `name` gated.
bool model_can_be_gated(const std::string& name);

// One forward of a model built by create_model, as named outputs: "output" first (what the model predicts), then
// any side outputs (the cross-channel network's mask and its cross-channel estimate; a gated network's
// "mask_logits" and its ungated "image" / "b_ungated"). Runs in the model's current
// mode; call model.eval() first for inference. Modules with several outputs record each of them themselves.
std::vector<std::pair<std::string, Variable>> run_model(nn::Module& model, const Variable& input);

// Loads a weights file into a model built by create_model: a filmgrad checkpoint (nn/checkpoint.h) or a
// safetensors state dict under PyTorch's names. For resnet34, vgg16 and vgg16_bn a torchvision state dict loads
// as torchvision publishes it (the classifier of VGG skipped, a missing num_batches_tracked set to 0, f16/f64
// converted). Strict: anything missing, unexpected or misshapen throws one fg::Error listing it, and nothing
// changes.
void load_model_weights(nn::Module& model, const std::string& path);

// Freezes what the model's training starts with frozen (the Dynamic U-Net's encoder except its BatchNorms, as
// fastai trains it) and returns a sentence saying so, or "" when the model trains with nothing frozen.
std::string freeze_as_trained(nn::Module& model);

}  // namespace fg::models
