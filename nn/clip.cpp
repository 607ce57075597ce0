// Gradient clipping: see nn/clip.h.
#include "nn/clip.h"

#include <algorithm>
#include <cmath>

#include "kernels/elementwise.h"
#include "tensor/error.h"

namespace fg::nn {

double clip_grad_norm_(const std::vector<Variable>& params, double max_norm, double norm_type) {
  const bool inf_norm = std::isinf(norm_type) && norm_type > 0;
  FG_CHECK(inf_norm || norm_type == 2.0,
           "clip_grad_norm_: norm_type " << norm_type << " is not supported; use 2 or infinity");
  FG_CHECK(max_norm >= 0.0, "clip_grad_norm_: max_norm must be >= 0, got " << max_norm);
  double total = 0.0;
  bool any = false;
  for (const auto& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    any = true;
    if (inf_norm) {
      total = std::max(total, kernels::max_abs(p.grad()));
    } else {
      total += kernels::sum_squares(p.grad());
    }
  }
  if (!any) return 0.0;
  if (!inf_norm) total = std::sqrt(total);
  const double coef = max_norm / (total + 1e-6);
  // PyTorch multiplies by min(coef, 1); a factor of exactly 1 changes nothing, so it is skipped.
  if (coef < 1.0 && std::isfinite(total)) {
    for (const auto& p : params) {
      if (!p.defined() || !p.grad().defined()) continue;
      p.set_grad(kernels::mul_scalar(p.grad(), coef));
    }
  }
  return total;
}

void clip_grad_value_(const std::vector<Variable>& params, double clip_value) {
  FG_CHECK(clip_value >= 0.0, "clip_grad_value_: clip_value must be >= 0, got " << clip_value);
  for (const auto& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    const Tensor g = p.grad();
    FG_CHECK(g.device().is_cpu(), "clip_grad_value_: gradients on " << g.device().str()
                                                                   << " cannot be clipped by value yet (no CUDA kernel "
                                                                      "for it); use clip_grad_norm_");
    Tensor out = g.contiguous().clone();
    const int64_t n = out.numel();
    FG_DISPATCH_FLOATING(out.dtype(), "clip_grad_value_", [&] {
      scalar_t* d = out.data<scalar_t>();
      const scalar_t hi = scalar_t(clip_value), lo = scalar_t(-clip_value);
      for (int64_t i = 0; i < n; ++i) d[i] = std::min(std::max(d[i], lo), hi);
    });
    p.set_grad(out);
  }
}

}  // namespace fg::nn
