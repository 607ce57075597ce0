// What `filmgrad train`, `eval` and `restore` share: a restoration model built from its description (stored in
// every checkpoint's "config"), and how it turns images in [0, 1] into predictions and losses.
//
//   task "dust"      (SPEC B) model dynamic_unet or tiny_unet; input the damaged RGB, output the restored RGB.
//                    dynamic_unet works in ImageNet-normalised space (input and target normalised with
//                    torchvision's mean and std, the output de-normalised back); tiny_unet in [0, 1].
//                    losses: mse (the baseline), mae, ssim (1 - SSIM, 11x11), model1, model2, model3
//                    (models/perceptual_loss.h; these need a VGG16-BN: vgg_weights, or "random" for tests).
//   task "negative"  (SPEC A) model cross_channel, cross_channel_no_mask or cross_channel_plain; input
//                    (R, G, B_damaged), output the restored blue channel; loss "cross_channel" (BCE on the mask
//                    + MSE(B') + MSE(B''), the terms each variant has).
//   gated            (dynamic_unet, cross_channel) the network also predicts a damage mask m and its output is
//                    m * image + (1 - m) * input (models/gate.h): the input is kept where no damage is predicted.
//                    The loss adds "bce_mask", BCE with logits against the true damage mask (the dust alpha;
//                    the negatives' M), to the image loss computed on the gated output (the cross-channel loss
//                    already has the BCE term; its MSE(B'') is then on the gated B'').
//
// Predictions are returned in image space ([0, 1] for a good model; not clamped: callers clamp when writing).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "autograd/variable.h"
#include "data/dataset.h"
#include "models/perceptual_loss.h"
#include "nn/module.h"
#include "tensor/philox.h"

namespace fg::apps {

struct ModelConfig {
  std::string task = "dust";
  std::string model = "dynamic_unet";
  double width = 1.0;
  std::string loss = "mse";
  std::string vgg_weights;      // perceptual losses: a torchvision vgg16_bn state dict (safetensors) or "random"
  std::string encoder_weights;  // dynamic_unet: a torchvision resnet34 state dict to start from ("" = scratch)
  bool gated = false;           // dynamic_unet, cross_channel: the damage-mask head and gate (above)

  // One line of JSON with every field (what a checkpoint's metadata "config" holds); from_json reads it back and
  // checks it (fg::Error naming the bad field). Unknown fields are ignored (newer files still load).
  std::string to_json() const;
  static ModelConfig from_json(const std::string& json);
  // Checks that task, model and loss fit together (fg::Error saying which combinations exist).
  void validate() const;
};

struct LossValue {
  Variable total;                       // what backward() is called on
  std::map<std::string, double> terms;  // named terms for logs ("mse", "bce_mask", "content", ...), incl. "total"
  Variable prediction;                  // dust: the prediction in image space, differentiable (NoGAN's critic
                                        // scores it, apps/nogan.h); undefined for the negative task
};

class RestorationModel {
 public:
  // Builds the network (weights from gen, then encoder_weights when given) and, for the perceptual losses and when
  // build_loss is on, the VGG (frozen, eval). Throws fg::Error for a bad config or unreadable weights. Without the
  // loss network (inference: eval, restore) loss() of a perceptual loss throws.
  RestorationModel(const ModelConfig& config, Generator& gen, bool build_loss = true);
  ~RestorationModel();

  const ModelConfig& config() const { return config_; }
  data::Task task() const;
  nn::Module& module() { return *module_; }  // the trained network (what checkpoints hold)
  std::shared_ptr<nn::Module> module_ptr() { return module_; }
  // Moves the network and the loss network to `device` (gradients are dropped).
  void to(Device device);
  int64_t size_multiple() const;  // H and W of inputs must be multiples of this (32, 16 or 4)
  int64_t out_channels() const;   // 3 (dust) or 1 (negative)

  // Freezes what the model starts training with frozen (the Dynamic U-Net's encoder except its BatchNorms), or
  // unfreezes everything. A no-op for models without an encoder.
  void set_encoder_frozen(bool frozen);
  bool has_encoder() const;

  // input: (N, 3, H, W) in [0, 1] -> the prediction in image space: (N, 3, H, W) dust, (N, 1, H, W) negative.
  Variable predict(const Variable& input);
  // The predicted damage mask (N, 1, H, W) in [0, 1]: sigmoid of the mask logits for gated networks and the full
  // cross-channel network; otherwise |prediction - input| (largest over channels; negative: the blue channel),
  // scaled by 4 and clamped.
  Tensor predict_mask(const Tensor& input);
  // The change mask of a prediction: |prediction - input| (largest over the channels; a 1-channel prediction is
  // compared with the blue channel), x4, clamped to 1. input (N, 3, H, W), prediction (N, 3 or 1, H, W), any
  // device -> (N, 1, H, W) f32 CPU.
  static Tensor change_mask(const Tensor& input, const Tensor& prediction);
  // The prediction and the mask at once (no gradients): one forward for the models that predict a mask, the
  // prediction and its change_mask otherwise. prediction as predict() returns it (on the network's device),
  // mask (N, 1, H, W) f32 CPU as predict_mask.
  struct PredictionAndMask {
    Tensor prediction, mask;
  };
  PredictionAndMask predict_and_mask(const Tensor& input);
  // Whether predict_mask is a mask the network predicts (gated, full cross-channel) rather than its change.
  bool predicts_mask() const;

  // Forward and loss of a batch (data/dataset.h); in the network's current train/eval mode.
  LossValue loss(const data::Batch& batch);

 private:
  void check_input(const Shape& shape) const;  // (N, 3, H, W), H and W multiples of size_multiple()

  ModelConfig config_;
  std::shared_ptr<nn::Module> module_;
  std::shared_ptr<models::PerceptualLoss> perceptual_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Builds the model a checkpoint describes and loads its weights (nn/checkpoint.h), for inference: no loss network,
// and the encoder_weights / vgg_weights files named in its config are not read again. Throws fg::Error naming the
// file when it is not a filmgrad checkpoint or its config does not build. `step`: the checkpoint's step.
std::unique_ptr<RestorationModel> load_restoration_model(const std::string& checkpoint_path, int64_t* step = nullptr);

// The device a --device option names, checked against this machine and this build (one line saying what to use
// instead otherwise): what train and the NoGAN preset run on.
Device usable_device(const std::string& option);

}  // namespace fg::apps
