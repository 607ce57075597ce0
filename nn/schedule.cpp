// Learning-rate schedules: see nn/schedule.h.
#include "nn/schedule.h"

#include <algorithm>
#include <cmath>

#include "tensor/error.h"

namespace fg::nn {

double annealing_cos(double start, double end, double pct) {
  const double cos_out = std::cos(M_PI * pct) + 1.0;
  return end + (start - end) / 2.0 * cos_out;
}

void Schedule::apply(Optimizer& optimizer, int64_t step) const {
  optimizer.set_lr(lr(step));
  if (auto m = momentum(step)) optimizer.set_momentum(*m);
}

OneCycleSchedule::OneCycleSchedule(const OneCycleOptions& o)
    : lr_max_(o.lr_max),
      div_factor_(o.div_factor),
      final_div_(o.final_div ? *o.final_div : o.div_factor * 1e4),
      total_(o.total_steps),
      moms_(o.moms) {
  FG_CHECK(o.lr_max > 0.0, "one-cycle: lr_max must be positive, got " << o.lr_max);
  FG_CHECK(o.total_steps >= 1, "one-cycle: total_steps must be at least 1, got " << o.total_steps);
  FG_CHECK(o.pct_start >= 0.0 && o.pct_start <= 1.0, "one-cycle: pct_start must be in [0, 1], got " << o.pct_start);
  FG_CHECK(div_factor_ > 0.0 && final_div_ > 0.0,
           "one-cycle: div_factor and final_div must be positive, got " << div_factor_ << " and " << final_div_);
  // fastai: a1 = int(n * pct_start), a2 = n - a1, and a Scheduler never runs fewer than one iteration.
  const int64_t a1 = int64_t(double(total_) * o.pct_start);
  warmup_ = std::max<int64_t>(1, a1);
  anneal_ = std::max<int64_t>(1, total_ - a1);
}

std::pair<int, double> OneCycleSchedule::phase(int64_t step) const {
  FG_CHECK(step >= 0, "one-cycle: step must be >= 0, got " << step);
  if (step <= warmup_) return {0, double(step) / double(warmup_)};
  return {1, std::min(1.0, double(step - warmup_) / double(anneal_))};
}

double OneCycleSchedule::lr(int64_t step) const {
  const auto [ph, pct] = phase(step);
  if (ph == 0) return annealing_cos(lr_start(), lr_max_, pct);
  return annealing_cos(lr_max_, lr_final(), pct);
}

std::optional<double> OneCycleSchedule::momentum(int64_t step) const {
  if (!moms_) return std::nullopt;
  const auto [ph, pct] = phase(step);
  if (ph == 0) return annealing_cos(moms_->first, moms_->second, pct);
  return annealing_cos(moms_->second, moms_->first, pct);
}

}  // namespace fg::nn
