// The restoration model of task.h: networks from the registry, ImageNet normalisation for the Dynamic U-Net, the
// losses of SPEC A and B, and the small JSON form of ModelConfig that checkpoints carry.
#include "apps/task.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "apps/json.h"
#include "autograd/ops.h"
#include "models/cross_channel.h"
#include "models/dynamic_unet.h"
#include "models/registry.h"
#include "nn/checkpoint.h"
#include "nn/losses.h"
#include "tensor/safetensors.h"
#ifdef FG_WITH_CUDA
#include "tensor/cuda/context.h"
#endif

namespace fg::apps {

namespace {

// The gated dust network's mask loss (RestorationModel::loss; docs/training.md, "Finding the damage"): the mask is
// trained as a detector of visible damage, its target 1 where the dust's alpha exceeds kDamageVisible; a damaged
// pixel weighs kMaskPositiveWeight times an undamaged one in the BCE, and the BCE kMaskLossWeight times the image
// loss; the image head is also trained directly inside the damage (its MSE there, weight kFillWeight).
constexpr double kDamageVisible = 0.05;
constexpr double kMaskPositiveWeight = 3.0;
constexpr double kMaskLossWeight = 3.0;
constexpr double kFillWeight = 1.0;

#ifndef FG_MINIMAL  // only the losses use it
// (N, 1, H, W) alpha -> 1 where alpha > threshold, else 0 (f32, CPU).
Tensor binary_mask(const Tensor& alpha, double threshold) {
  const Tensor a = alpha.to(Device::cpu()).to(DType::F32).contiguous();
  Tensor out = Tensor::empty(a.shape());
  const float* in = a.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) o[i] = double(in[i]) > threshold ? 1.0f : 0.0f;
  return out;
}
#endif

// torchvision's ImageNet statistics (what the Dynamic U-Net's encoder and the VGG loss network expect).
constexpr double kMean[3] = {0.485, 0.456, 0.406};
constexpr double kStd[3] = {0.229, 0.224, 0.225};

#ifdef FG_MINIMAL
// An inference-only build leaves out the losses and the perceptual loss's VGG (cmake/FilmgradLibrary.cmake).
const char* const kNoTraining =
    "this filmgrad is an inference-only build (FG_MINIMAL): it restores with trained models but has no losses or "
    "training; use a full build to train";
#endif

const char* const kDustModels[] = {"dynamic_unet", "tiny_unet"};
const char* const kNegativeModels[] = {"cross_channel", "cross_channel_no_mask", "cross_channel_plain"};
const char* const kDustLosses[] = {"mse", "mae", "ssim", "model1", "model2", "model3"};

template <size_t N>
bool one_of(const std::string& s, const char* const (&list)[N]) {
  return std::find_if(std::begin(list), std::end(list), [&](const char* x) { return s == x; }) != std::end(list);
}

template <size_t N>
std::string join(const char* const (&list)[N]) {
  std::string out;
  for (const char* x : list) out += (out.empty() ? "" : ", ") + std::string(x);
  return out;
}

}  // namespace

// ---- ModelConfig ----

std::string ModelConfig::to_json() const {
  return "{\"task\":" + json_quote(task) + ",\"model\":" + json_quote(model) + ",\"width\":" + json_number(width) +
         ",\"loss\":" + json_quote(loss) + ",\"vgg_weights\":" + json_quote(vgg_weights) +
         ",\"encoder_weights\":" + json_quote(encoder_weights) + ",\"gated\":" + (gated ? "true" : "false") + "}";
}

ModelConfig ModelConfig::from_json(const std::string& json) {
  Json root;
  try {
    root = parse_json(json);
  } catch (const Error& e) {
    throw Error(std::string("the model description (a checkpoint's \"config\") is not valid JSON: ") + e.what());
  }
  FG_CHECK(root.kind == Json::OBJECT, "the model description (a checkpoint's \"config\") is not a JSON object");
  ModelConfig c;
  // Unknown fields are ignored, so files written by a newer version still load.
  auto text = [&](const char* key, std::string& into, bool required) {
    const Json* v = root.find(key);
    if (v == nullptr) {
      FG_CHECK(!required, "the model description (a checkpoint's \"config\") has no \"" << key << "\"");
      return;
    }
    FG_CHECK(v->kind == Json::STRING, "the model description's \"" << key << "\" is not a string");
    into = v->text;
  };
  text("task", c.task, true);
  text("model", c.model, true);
  text("loss", c.loss, false);
  text("vgg_weights", c.vgg_weights, false);
  text("encoder_weights", c.encoder_weights, false);
  if (const Json* g = root.find("gated")) {  // absent in files written before the gate: ungated
    FG_CHECK(g->kind == Json::BOOL, "the model description's \"gated\" is not true or false");
    c.gated = g->boolean;
  }
  if (const Json* w = root.find("width")) {
    FG_CHECK(w->kind == Json::NUMBER, "the model description's \"width\" is not a number");
    c.width = std::strtod(w->text.c_str(), nullptr);
  }
  c.validate();
  return c;
}

void ModelConfig::validate() const {
  FG_CHECK(std::isfinite(width) && width > 0, "the width multiplier must be a positive number, got " << width);
  if (task == "dust") {
    FG_CHECK(one_of(model, kDustModels),
             "the model '" << model << "' does not do the dust task; use one of " << join(kDustModels));
    FG_CHECK(one_of(loss, kDustLosses),
             "unknown loss '" << loss << "' for the dust task; the losses are " << join(kDustLosses));
  } else if (task == "negative") {
    FG_CHECK(one_of(model, kNegativeModels),
             "the model '" << model << "' does not do the negative task; use one of " << join(kNegativeModels));
    FG_CHECK(loss == "cross_channel",
             "the negative task trains with its own combined loss (BCE on the mask + MSE(B') + MSE(B'')): the loss "
             "must be 'cross_channel', not '"
                 << loss << "'");
  } else {
    throw Error("unknown task '" + task + "'; the tasks are dust (RGB dust and scratches) and negative (the blue "
                "channel of old negatives)");
  }
  FG_CHECK(!gated || models::model_can_be_gated(model),
           "the model '" << model
                         << "' has no gated form (a damage mask beside the image); gated needs "
                            "dynamic_unet (dust) or cross_channel (negative)");
}

// ---- RestorationModel ----

struct RestorationModel::Impl {
  bool imagenet = false;
  Tensor mean, stddev;  // (1, 3, 1, 1) on the network's device, made when first needed
  models::CrossChannelNet* cross = nullptr;
  models::DynamicUNet* unet = nullptr;

  void ensure_stats(Device device) {
    if (mean.defined() && mean.device() == device) return;
    mean = Tensor::from_vector({kMean[0], kMean[1], kMean[2]}, {1, 3, 1, 1}).to(device);
    stddev = Tensor::from_vector({kStd[0], kStd[1], kStd[2]}, {1, 3, 1, 1}).to(device);
  }
  Variable normalize(const Variable& x) {
    ensure_stats(x.data().device());
    return div(sub(x, Variable(mean.to(x.dtype()))), Variable(stddev.to(x.dtype())));
  }
  Variable denormalize(const Variable& y) {
    ensure_stats(y.data().device());
    return add(mul(y, Variable(stddev.to(y.dtype()))), Variable(mean.to(y.dtype())));
  }
};

RestorationModel::RestorationModel(const ModelConfig& config, Generator& gen, bool build_loss)
    : config_(config), impl_(std::make_unique<Impl>()) {
  config_.validate();
  module_ = models::create_model(config_.model, gen, config_.width, config_.gated);
  impl_->cross = dynamic_cast<models::CrossChannelNet*>(module_.get());
  impl_->unet = dynamic_cast<models::DynamicUNet*>(module_.get());
  const models::ModelSpec* spec = models::find_model(config_.model);
  impl_->imagenet = spec != nullptr && spec->imagenet_input;
  if (!config_.encoder_weights.empty()) {
    FG_CHECK(impl_->unet != nullptr, "--encoder-weights needs the dynamic_unet model (it loads a torchvision ResNet34 "
                                     "into the encoder), not '"
                                         << config_.model << "'");
    impl_->unet->encoder().load_torchvision(load_safetensors(config_.encoder_weights).tensors);
  }
  if (build_loss && (config_.loss == "model1" || config_.loss == "model2" || config_.loss == "model3")) {
#ifdef FG_MINIMAL
    throw Error(kNoTraining);
#else
    FG_CHECK(!config_.vgg_weights.empty(),
             "the loss '" << config_.loss
                          << "' compares VGG16-BN features: pass --vgg-weights FILE (torchvision's vgg16_bn state "
                             "dict converted to safetensors), or --vgg-weights random for an untrained VGG (tests)");
    // The loss network's random initialisation has its own stream, so choosing a loss does not change the
    // network's weights.
    Generator vgg_gen(0x766767);
    perceptual_ = std::make_shared<models::PerceptualLoss>(vgg_gen, models::parse_perceptual_variant(config_.loss));
    if (config_.vgg_weights != "random")
      perceptual_->vgg().load_torchvision(load_safetensors(config_.vgg_weights).tensors);
#endif
  }
}

RestorationModel::~RestorationModel() = default;

data::Task RestorationModel::task() const { return data::parse_task(config_.task); }

void RestorationModel::to(Device device) {
  module_->to(device);
  if (perceptual_) perceptual_->to(device);
  impl_->mean = Tensor();
  impl_->stddev = Tensor();
}

int64_t RestorationModel::size_multiple() const {
  if (impl_->unet) return 32;
  if (impl_->cross) return 16;
  return 4;  // TinyUNet: two 2x2 pools
}

int64_t RestorationModel::out_channels() const { return config_.task == "negative" ? 1 : 3; }

bool RestorationModel::has_encoder() const { return impl_->unet != nullptr; }

void RestorationModel::set_encoder_frozen(bool frozen) {
  if (!impl_->unet) return;
  if (frozen) {
    impl_->unet->freeze_encoder();
  } else {
    impl_->unet->unfreeze();
  }
}

void RestorationModel::check_input(const Shape& shape) const {
  FG_CHECK(shape.size() == 4 && shape[1] == 3,
           "the restoration networks take (N, 3, H, W) images, got " << shape_str(shape));
  const int64_t m = size_multiple();
  FG_CHECK(shape[2] % m == 0 && shape[3] % m == 0,
           config_.model << " needs H and W to be multiples of " << m << ", got " << shape[2] << " x " << shape[3]);
}

Variable RestorationModel::predict(const Variable& input) {
  check_input(input.shape());
  if (impl_->cross) return impl_->cross->forward_all(input).b_final;
  if (impl_->imagenet) return impl_->denormalize((*module_)(impl_->normalize(input)));
  return (*module_)(input);
}

bool RestorationModel::predicts_mask() const {
  return config_.gated || (impl_->cross && impl_->cross->variant() == models::CrossChannelVariant::FULL);
}

Tensor RestorationModel::predict_mask(const Tensor& input) {
  NoGradGuard no_grad;
  const Variable x(input);
  if (impl_->cross && impl_->cross->variant() == models::CrossChannelVariant::FULL)
    return sigmoid(impl_->cross->forward_all(x).mask_logits).data().to(Device::cpu()).to(DType::F32).contiguous();
  if (impl_->unet && config_.gated) {
    // The mask does not depend on the normalisation's affine map, but the network's input must be normalised.
    const Variable logits = impl_->unet->forward_gated(impl_->normalize(x)).mask_logits;
    return sigmoid(logits).data().to(Device::cpu()).to(DType::F32).contiguous();
  }
  return change_mask(input, predict(x).data());
}

RestorationModel::PredictionAndMask RestorationModel::predict_and_mask(const Tensor& input) {
  NoGradGuard no_grad;
  const Variable x(input);
  PredictionAndMask out;
  if (impl_->cross && impl_->cross->variant() == models::CrossChannelVariant::FULL) {
    check_input(input.shape());
    const models::CrossChannelOutput o = impl_->cross->forward_all(x);
    out.prediction = o.b_final.data();
    out.mask = sigmoid(o.mask_logits).data().to(Device::cpu()).to(DType::F32).contiguous();
  } else if (impl_->unet && config_.gated) {
    check_input(input.shape());
    const models::GatedOutput o = impl_->unet->forward_gated(impl_->normalize(x));
    out.prediction = impl_->denormalize(o.output).data();
    out.mask = sigmoid(o.mask_logits).data().to(Device::cpu()).to(DType::F32).contiguous();
  } else {
    out.prediction = predict(x).data();
    out.mask = change_mask(input, out.prediction);
  }
  return out;
}

Tensor RestorationModel::change_mask(const Tensor& input, const Tensor& prediction) {
  const Tensor pred = prediction.to(Device::cpu()).to(DType::F32).contiguous();
  const Tensor in = input.to(Device::cpu()).to(DType::F32).contiguous();
  FG_CHECK(in.dim() == 4 && in.size(1) == 3 && pred.dim() == 4 && pred.size(0) == in.size(0) &&
               (pred.size(1) == 3 || pred.size(1) == 1) && pred.size(2) == in.size(2) && pred.size(3) == in.size(3),
           "change_mask: expected input (N, 3, H, W) and a prediction (N, 3 or 1, H, W), got "
               << shape_str(in.shape()) << " and " << shape_str(pred.shape()));
  const int64_t N = in.size(0), H = in.size(2), W = in.size(3), plane = H * W;
  const int64_t pc = pred.size(1);
  Tensor mask = Tensor::empty({N, 1, H, W});
  const float* p = pred.data<float>();
  const float* x_in = in.data<float>();
  float* out = mask.data<float>();
  // The change the network made, largest over the channels it predicts; x4 so that faint corrections show.
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < plane; ++i) {
      float diff = 0.0f;
      for (int64_t c = 0; c < pc; ++c) {
        const int64_t in_c = pc == 1 ? 2 : c;  // negative: the blue channel is what was restored
        diff = std::max(diff, std::fabs(p[(n * pc + c) * plane + i] - x_in[(n * 3 + in_c) * plane + i]));
      }
      out[n * plane + i] = std::min(1.0f, 4.0f * diff);
    }
  return mask;
}

#ifdef FG_MINIMAL
LossValue RestorationModel::loss(const data::Batch&) {
  throw Error(kNoTraining);
}
#else
LossValue RestorationModel::loss(const data::Batch& batch) {
  FG_CHECK(batch.input.defined() && batch.target.defined(), "a training batch needs input and target");
  const Device device = module_->parameters().empty() ? Device::cpu() : module_->parameters()[0].data().device();
  const Variable input(batch.input.to(device));
  const Variable target(batch.target.to(device));
  LossValue out;
  if (impl_->cross) {
    const models::CrossChannelOutput o = impl_->cross->forward_all(input);
    const Variable mask = batch.mask.defined() ? Variable(batch.mask.to(device)) : Variable();
    const models::CrossChannelLossTerms t = models::cross_channel_loss_terms(o, mask, target);
    if (t.bce_mask.defined()) out.terms["bce_mask"] = t.bce_mask.item();
    if (t.mse_cross.defined()) out.terms["mse_cross"] = t.mse_cross.item();
    out.terms["mse_final"] = t.mse_final.item();
    out.total = t.total;
    out.terms["total"] = out.total.item();
    return out;
  }
  // Dust: the loss is computed where the network works (ImageNet-normalised space for the Dynamic U-Net, as the
  // dissertation trains it), so the perceptual loss's VGG sees what its ImageNet weights expect.
  const Variable x = impl_->imagenet ? impl_->normalize(input) : input;
  const Variable y = impl_->imagenet ? impl_->normalize(target) : target;
  Variable pred, mask_logits, image;
  if (config_.gated) {
    FG_CHECK(impl_->unet != nullptr, "a gated dust model must be a dynamic_unet");
    FG_CHECK(batch.mask.defined(), "a gated model trains its mask against the true damage mask; the batch has none");
    const models::GatedOutput o = impl_->unet->forward_gated(x);
    pred = o.output;
    mask_logits = o.mask_logits;
    image = o.image;
  } else {
    pred = (*module_)(x);
  }
  const std::string& loss = config_.loss;
  if (loss == "mse") {
    out.total = mse_loss(pred, y);
  } else if (loss == "mae") {
    out.total = l1_loss(pred, y);
  } else if (loss == "ssim") {
    out.total = nn::ssim_loss(pred, y, 11);
  } else {
    FG_CHECK(perceptual_ != nullptr,
             "this model was loaded for inference; the loss network of '" << loss << "' is not built");
    const models::PerceptualTerms t = perceptual_->compute(pred, y);
    double pixel = 0, content = 0, style = 0;
    for (double v : t.pixel) pixel += v;
    for (double v : t.content) content += v;
    for (double v : t.style) style += v;
    out.terms["pixel"] = pixel;
    out.terms["content"] = content;
    out.terms["style"] = style;
    out.total = t.total;
  }
  out.terms[loss] = out.total.item();
  out.prediction = impl_->imagenet ? impl_->denormalize(pred) : pred;
  if (mask_logits.defined()) {
    // Against the soft alpha itself (most damaged pixels have a small alpha) the head learned to stay near 0
    // everywhere and found 3 % of the damaged pixels of unseen photographs.
    const Variable tm(binary_mask(batch.mask, kDamageVisible).to(device).to(mask_logits.dtype()));
    Variable bce = bce_with_logits(mask_logits, tm);
    // Damage covers a few per cent of the pixels: the extra weight of its pixels is (w - 1) mean(t softplus(-z)),
    // computed with the logits of undamaged pixels moved to +30, where softplus(-z) vanishes.
    const Variable ones(Tensor::ones(tm.shape(), tm.data().dtype(), tm.data().device()));
    const Variable z_damaged = add(mul(mask_logits, tm), mul_scalar(sub(ones, tm), 30.0));
    bce = add(bce, mul_scalar(bce_with_logits(z_damaged, ones), kMaskPositiveWeight - 1.0));
    bce = mul_scalar(bce, kMaskLossWeight);
    out.terms["bce_mask"] = bce.item();
    out.total = add(out.total, bce);
    // The gated output's loss reaches the image head only through the mask (about 0.01 at the start), so it is
    // also trained where the damage is, directly.
    const Variable d = sub(image, y);
    const double damaged = std::max(1.0, double(image.size(1)) * sum(tm).item());
    const Variable fill = mul_scalar(sum(mul(tm, mul(d, d))), kFillWeight / damaged);
    out.terms["fill"] = fill.item();
    out.total = add(out.total, fill);
  }
  out.terms["total"] = out.total.item();
  return out;
}
#endif

std::unique_ptr<RestorationModel> load_restoration_model(const std::string& checkpoint_path, int64_t* step) {
  const nn::CheckpointInfo info = nn::read_checkpoint_info(checkpoint_path);
  FG_CHECK(!info.config.empty(), "'" << checkpoint_path
                                     << "' is a filmgrad checkpoint without a model description (\"config\"); it "
                                        "was not written by filmgrad train, so restore and eval cannot rebuild it");
  ModelConfig config;
  try {
    config = ModelConfig::from_json(info.config);
  } catch (const Error& e) {
    throw Error("'" + checkpoint_path + "': " + e.what());
  }
  // Inference needs neither the files the training started from nor the loss network.
  config.encoder_weights.clear();
  config.vgg_weights.clear();
  Generator gen(0);
  auto model = std::make_unique<RestorationModel>(config, gen, /*build_loss=*/false);
  nn::load_checkpoint(checkpoint_path, model->module(), nullptr, info.model);
  model->module().eval();
  if (step) *step = info.step;
  return model;
}

Device usable_device(const std::string& option) {
  const Device device = parse_device(option);
  if (device.is_cuda()) {
#ifdef FG_WITH_CUDA
    const int n = cuda::device_count();
    FG_CHECK(device.index < n, "--device " << option << ": this machine has " << n << " CUDA device"
                                           << (n == 1 ? "" : "s") << "; use --device cpu or a smaller index");
#else
    throw Error("--device " + option + ": this filmgrad was built without CUDA; use --device cpu");
#endif
  }
  return device;
}

}  // namespace fg::apps
