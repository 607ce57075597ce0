// The damage gate shared by the gated restoration networks (DynamicUNetConfig::gated, CrossChannelNet's gated
// form): the network predicts an image and a damage-mask logit per pixel, and its output keeps the input wherever
// it predicts no damage:
//   out = m * image + (1 - m) * input,   m = sigmoid(mask_logits),
// computed as input + m * (image - input), so out - input = m * (image - input): the change a gated network makes
// to a pixel is bounded by m times the largest difference its image head can produce. Where the mask net is sure a
// pixel is clean (m near 0) the input passes through, whatever the image head does there; a clean region can only
// be made worse by the mask net calling it damaged, which the mask loss (BCE against the true damage mask) trains
// away.
#pragma once
#include "autograd/variable.h"

namespace fg::models {

// mask_logits: (N, 1, H, W); image and input: (N, C, H, W) (the mask is broadcast over the channels).
// Differentiable in all three.
Variable damage_gate(const Variable& mask_logits, const Variable& image, const Variable& input);

// The logit the mask heads' bias starts at: sigmoid(-4.6) = 0.01, about the share of pixels the synthetic damage
// covers, so an untrained gated network passes its input through almost unchanged (the "prior probability"
// initialisation of RetinaNet's classifier, Lin et al. 2017), rather than starting half-way to a random image.
inline constexpr double kMaskPriorLogit = -4.6;

}  // namespace fg::models
