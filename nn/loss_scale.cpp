// The dynamic loss scaler of loss_scale.h.
#include "nn/loss_scale.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "tensor/error.h"

namespace fg::nn {

namespace {

// %.17g reads back as the same double.
std::string exact_text(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

const std::string& field(const std::map<std::string, std::string>& state, const std::string& key) {
  const auto it = state.find(key);
  FG_CHECK(it != state.end(), "the loss scaler's state has no '" << key << "' (is this a filmgrad checkpoint?)");
  return it->second;
}

double parse_double(const std::string& key, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(text.c_str(), &end);
  FG_CHECK(!text.empty() && *end == '\0' && errno == 0 && std::isfinite(x) && x > 0,
           "the loss scaler's '" << key << "' must be a positive number, got '" << text << "'");
  return x;
}

int64_t parse_count(const std::string& key, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(text.c_str(), &end, 10);
  FG_CHECK(!text.empty() && *end == '\0' && errno == 0 && n >= 0,
           "the loss scaler's '" << key << "' must be a non-negative integer, got '" << text << "'");
  return int64_t(n);
}

}  // namespace

LossScaler::LossScaler(const LossScalerOptions& options) : options_(options), scale_(options.init_scale) {
  FG_CHECK(std::isfinite(options.init_scale) && options.init_scale > 0,
           "the initial loss scale must be a positive number, got " << options.init_scale);
  FG_CHECK(std::isfinite(options.growth_factor) && options.growth_factor > 1.0,
           "the loss scale's growth factor must be > 1, got " << options.growth_factor);
  FG_CHECK(options.backoff_factor > 0.0 && options.backoff_factor < 1.0,
           "the loss scale's backoff factor must be in (0, 1), got " << options.backoff_factor);
  FG_CHECK(options.growth_interval >= 1,
           "the loss scale's growth interval must be at least 1 step, got " << options.growth_interval);
}

Variable LossScaler::scale_loss(const Variable& loss) const {
  if (!enabled()) return loss;
  return mul_scalar(loss, scale_);
}

bool LossScaler::unscale(const std::vector<Variable>& params) const {
  NoGradGuard no_grad;
  const double inv_scale = 1.0 / scale();
  bool finite = true;
  for (const Variable& p : params) {
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (inv_scale != 1.0) {
      const Tensor unscaled = kernels::mul_scalar(g, inv_scale);
      p.set_grad(unscaled);
      // Checked after unscaling, as PyTorch does: a finite scaled gradient stays finite when divided.
      if (finite) finite = kernels::all_finite(unscaled);
    } else if (finite) {
      finite = kernels::all_finite(g);
    }
  }
  return finite;
}

void LossScaler::update(bool found_non_finite) {
  if (found_non_finite) ++skipped_;
  if (!enabled()) return;
  if (found_non_finite) {
    scale_ *= options_.backoff_factor;
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ == options_.growth_interval) {
    // An overflowing scale would turn every loss into Inf; PyTorch keeps the old one in that case too.
    const double grown = scale_ * options_.growth_factor;
    if (std::isfinite(grown)) scale_ = grown;
    growth_tracker_ = 0;
  }
}

bool LossScaler::step(Optimizer& optimizer, const std::vector<Variable>& params) {
  const bool finite = unscale(params);
  if (finite) optimizer.step();
  update(!finite);
  for (const Variable& p : params) p.zero_grad();
  return finite;
}

std::map<std::string, std::string> LossScaler::state() const {
  return {{"scale", exact_text(scale_)},
          {"growth_tracker", std::to_string(growth_tracker_)},
          {"skipped", std::to_string(skipped_)}};
}

void LossScaler::load_state(const std::map<std::string, std::string>& state) {
  const double scale = parse_double("scale", field(state, "scale"));
  const int64_t tracker = parse_count("growth_tracker", field(state, "growth_tracker"));
  const int64_t skipped = parse_count("skipped", field(state, "skipped"));
  FG_CHECK(tracker < options_.growth_interval, "the loss scaler's growth_tracker "
                                                   << tracker << " is not below its growth interval "
                                                   << options_.growth_interval);
  scale_ = scale;
  growth_tracker_ = tracker;
  skipped_ = skipped;
}

}  // namespace fg::nn
