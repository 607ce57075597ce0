// Dynamic loss scaling for mixed-precision training, with the rules of torch.cuda.amp.GradScaler (PyTorch 1.13):
//
//   the loss is multiplied by `scale` before backward, so small gradients survive f16's narrow range;
//   the gradients are multiplied by 1 / scale before the optimizer sees them ("unscale");
//   when any unscaled gradient is Inf or NaN the optimizer step is skipped and scale *= backoff_factor (0.5),
//   and the count of good steps restarts; otherwise the count grows, and after growth_interval (2000) good steps
//   in a row scale *= growth_factor (2) and the count restarts.
//
// The scale starts at 2^16. Because every factor is a power of two, scaling and unscaling are exact in binary
// floating point (away from overflow and underflow), so a step with scaling gives the same parameters as a step
// without it whenever no gradient overflows: tests/nn/test_loss_scale.cpp checks that bit for bit.
//
// The state (scale and the count of good steps) is saved in checkpoints as text (state() / load_state()), so a
// resumed run continues with the same scale. A disabled scaler has scale 1, never changes it, and only reports
// whether the gradients are finite.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "nn/optim.h"

namespace fg::nn {

struct LossScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;
};

class LossScaler {
 public:
  // Checks the options (init_scale > 0, growth_factor > 1, backoff_factor in (0, 1), growth_interval >= 1):
  // fg::Error otherwise.
  explicit LossScaler(const LossScalerOptions& options = {});

  bool enabled() const { return options_.enabled; }
  double scale() const { return enabled() ? scale_ : 1.0; }
  int64_t growth_tracker() const { return growth_tracker_; }  // good steps since the scale last changed
  int64_t skipped_steps() const { return skipped_; }          // steps skipped for non-finite gradients, in all

  // loss * scale (the loss itself when disabled): call backward() on this.
  Variable scale_loss(const Variable& loss) const;

  // Replaces every gradient of `params` (those that have one) by gradient / scale and returns true when all of
  // them are finite. Parameters without a gradient are ignored.
  bool unscale(const std::vector<Variable>& params) const;

  // Records the outcome of one step: backs off after a non-finite one, grows after growth_interval good ones.
  void update(bool found_non_finite);

  // unscale(params), optimizer.step() when every gradient is finite, update(): the whole GradScaler step. The
  // gradients are dropped afterwards either way. Returns true when the optimizer stepped.
  bool step(Optimizer& optimizer, const std::vector<Variable>& params);

  // "scale", "growth_tracker", "skipped" as decimal text that reads back exactly (checkpoint metadata).
  std::map<std::string, std::string> state() const;
  // Reads what state() wrote; fg::Error naming the field when one is missing or malformed.
  void load_state(const std::map<std::string, std::string>& state);

 private:
  LossScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace fg::nn
