// The inference mode for deployment (issue 13): a restoration network rewritten once after loading so that a
// no-grad forward computes less and holds less. Nothing here changes what the network computes beyond f32 rounding
// (f16 weights aside, which round every weight to 11 significant bits).
//
// - BatchNorm folded: a BatchNorm2d that reads a convolution's output directly becomes part of that convolution's
//   weight and bias (nn::Conv2d::fold_batch_norm) and its place holds an Identity. That is every BatchNorm of the
//   Dynamic U-Net's ResNet34 encoder (36 of the network's 41). The others read a ReLU's output (the Dynamic U-Net's
//   bridge and skip BatchNorms; all of the cross-channel network's, whose blocks are conv-ReLU x3 then BN, SPEC A;
//   TinyUNet's), where no preceding weight can absorb them: relu(z) * s is relu(z * s) only for s > 0, and folding
//   into the following convolution is wrong at its zero-padded border (the padding would have to be -shift/scale)
//   and through a max pool when s < 0. Those become nn::ChannelAffine: the same eval-mode map with its statistics
//   and affine pre-combined (x * scale + shift), without running statistics. After the rewrite no BatchNorm2d is
//   left. The network is then for inference only: it must not be trained or saved as a checkpoint of the original
//   architecture (its state dict has different names).
// - f16 weights: every convolution and linear weight and bias not under spectral norm is stored in f16 and cast to
//   the input's dtype when its layer runs (nn::WeightLayer::store_f16), so one layer's f32 copy exists at a time.
//   CPU only: the CUDA path keeps f32.
// - Activations are released as soon as their last reader is done in the networks' forwards themselves (one
//   statement per layer, skips dropped once read); that needs no rewrite and holds in every mode.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "nn/layers.h"

namespace fg::models {

struct InferenceOptions {
  bool fold_batch_norm = true;  // fold or pre-combine every BatchNorm (the network must be in eval mode)
  bool f16_weights = false;     // store weights in f16 (CPU)
};

struct InferenceReport {
  int64_t folded = 0;        // BatchNorms folded into a convolution
  int64_t affine = 0;        // BatchNorms turned into a ChannelAffine
  int64_t f16_layers = 0;    // layers whose weights are now f16
  int64_t bytes_before = 0;  // parameters and buffers, in bytes
  int64_t bytes_after = 0;
};

// Rewrites a network of models/registry.h (DynamicUNet, CrossChannelNet, TinyUNet, ResNet34) in place, as above. Throws
// fg::Error for a network in training mode, a network of another type that holds BatchNorms, or weights out of
// f16's range (then nothing is converted to f16, but a fold already done stays).
InferenceReport prepare_for_inference(nn::Module& network, const InferenceOptions& options);

// The helpers the networks' fold_batch_norm() methods use. `parent`'s child `bn_name` must be a BatchNorm2d
// (fg::Error otherwise); it is folded into `conv` and replaced by an Identity, or replaced by its ChannelAffine.
// Each returns the new child.
std::shared_ptr<nn::Module> fold_batch_norm_into(nn::Module& parent, const std::string& bn_name, nn::Conv2d& conv);
std::shared_ptr<nn::Module> batch_norm_to_affine(nn::Module& parent, const std::string& bn_name);

// BatchNorm2d modules in the tree.
int64_t count_batch_norms(const nn::Module& network);
// Bytes of every parameter and buffer (what the weights cost in memory).
int64_t state_bytes(const nn::Module& network);

}  // namespace fg::models
