// The damage gate of models/gate.h.
#include "models/gate.h"

#include "autograd/ops.h"
#include "tensor/error.h"

namespace fg::models {

Variable damage_gate(const Variable& mask_logits, const Variable& image, const Variable& input) {
  FG_CHECK(mask_logits.dim() == 4 && image.dim() == 4 && mask_logits.size(1) == 1 && image.shape() == input.shape() &&
               mask_logits.size(0) == image.size(0) && mask_logits.size(2) == image.size(2) &&
               mask_logits.size(3) == image.size(3),
           "damage_gate: expected mask logits (N, 1, H, W) and image and input (N, C, H, W) of one shape, got "
               << shape_str(mask_logits.shape()) << ", " << shape_str(image.shape()) << " and "
               << shape_str(input.shape()));
  // input + m (image - input) rather than m image + (1 - m) input: where m underflows to 0 the result is the input
  // exactly, and it costs one op fewer.
  return add(input, mul(sigmoid(mask_logits), sub(image, input)));
}

}  // namespace fg::models
