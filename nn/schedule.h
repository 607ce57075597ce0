// Learning-rate (and momentum) schedules: lr(step) for the step-th optimizer step, step in [0, total).
//
// OneCycleSchedule is fastai v1's OneCycleScheduler. With a1 = max(1, int(total * pct_start)) warm-up steps and
// a2 = max(1, total - int(total * pct_start)) annealing steps, low = lr_max / div_factor and
// final = lr_max / final_div (final_div defaults to div_factor * 1e4, fastai's default):
//   lr(s)  = cos_anneal(low, lr_max, s / a1)             for s <= a1
//          = cos_anneal(lr_max, final, (s - a1) / a2)    after (clamped at the end)
//   mom(s) = the same shape from moms.first to moms.second and back
// where cos_anneal(start, end, pct) = end + (start - end) / 2 * (cos(pi pct) + 1). Like fastai, step 0 uses the
// start value and the last step stops one increment short of `final` (fastai steps the scheduler after each batch).
#pragma once
#include <cstdint>
#include <optional>
#include <utility>

#include "nn/optim.h"

namespace fg::nn {

double annealing_cos(double start, double end, double pct);

class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual double lr(int64_t step) const = 0;
  // The momentum (SGD momentum, Adam beta1) for the step, when the schedule cycles it.
  virtual std::optional<double> momentum(int64_t) const { return std::nullopt; }
  // Sets the optimizer's learning rate (and momentum, when cycled) for `step`.
  void apply(Optimizer& optimizer, int64_t step) const;
};

class ConstantSchedule : public Schedule {
 public:
  explicit ConstantSchedule(double lr) : lr_(lr) {}
  double lr(int64_t) const override { return lr_; }

 private:
  double lr_;
};

struct OneCycleOptions {
  double lr_max = 1e-3;
  int64_t total_steps = 1;
  double pct_start = 0.3;
  double div_factor = 25.0;
  std::optional<double> final_div;  // unset: div_factor * 1e4
  std::optional<std::pair<double, double>> moms = std::make_pair(0.95, 0.85);  // unset: momentum not cycled
};

class OneCycleSchedule : public Schedule {
 public:
  explicit OneCycleSchedule(const OneCycleOptions& options);
  double lr(int64_t step) const override;
  std::optional<double> momentum(int64_t step) const override;
  int64_t warmup_steps() const { return warmup_; }
  int64_t anneal_steps() const { return anneal_; }
  double lr_start() const { return lr_max_ / div_factor_; }
  double lr_final() const { return lr_max_ / final_div_; }

 private:
  // Where `step` falls: phase 0 (warm-up) or 1 and the fraction of that phase done.
  std::pair<int, double> phase(int64_t step) const;
  double lr_max_, div_factor_, final_div_;
  int64_t total_, warmup_, anneal_;
  std::optional<std::pair<double, double>> moms_;
};

}  // namespace fg::nn
