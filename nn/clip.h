// Gradient clipping, as torch.nn.utils does it. Parameters without a gradient are ignored. Clipped gradients are
// replaced by new tensors (never scaled in place), so a gradient that aliases another tensor is left intact.
#pragma once
#include <limits>
#include <vector>

#include "autograd/variable.h"

namespace fg::nn {

// total = the norm_type-norm of all gradients taken together (norm_type 2, or infinity for the largest |g|);
// when total > max_norm every gradient is multiplied by max_norm / (total + 1e-6). Returns total (before
// clipping); 0 when no parameter has a gradient. A non-finite total leaves the gradients unchanged.
double clip_grad_norm_(const std::vector<Variable>& params, double max_norm, double norm_type = 2.0);
// Clamps every gradient element into [-clip_value, clip_value] (CPU, f32/f64).
void clip_grad_value_(const std::vector<Variable>& params, double clip_value);

}  // namespace fg::nn
