// Learning-rate schedules: one-cycle at its start, peak and end against the closed form, every step against a
// literal transcription of fastai v1's OneCycleScheduler callback loop, momentum cycling, edge cases and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "nn/optim.h"
#include "nn/schedule.h"
#include "tests/support/test_util.h"

namespace fg::nn {
namespace {

OneCycleOptions options(double lr_max, int64_t total, double pct_start) {
  OneCycleOptions o;
  o.lr_max = lr_max;
  o.total_steps = total;
  o.pct_start = pct_start;
  return o;
}

TEST(OneCycle, StartPeakAndEndMatchTheClosedForm) {
  const OneCycleSchedule s(options(0.01, 100, 0.3));  // a1 = 30 warm-up steps, a2 = 70 annealing steps
  const double low = 0.01 / 25.0, final = 0.01 / (25.0 * 1e4);
  EXPECT_EQ(s.warmup_steps(), 30);
  EXPECT_EQ(s.anneal_steps(), 70);
  EXPECT_DOUBLE_EQ(s.lr_start(), low);
  EXPECT_DOUBLE_EQ(s.lr_final(), final);
  EXPECT_NEAR(s.lr(0), low, 1e-17);                  // cos_anneal at pct 0, rounded as fastai rounds it
  EXPECT_NEAR(s.lr(30), 0.01, 1e-17);                // the peak at pct_start
  EXPECT_NEAR(s.lr(15), (low + 0.01) / 2, 1e-15);    // half way up the cosine
  EXPECT_NEAR(s.lr(65), (0.01 + final) / 2, 1e-15);  // half way down
  // The last step: final + (lr_max - final) / 2 * (cos(pi * 69 / 70) + 1).
  EXPECT_NEAR(s.lr(99), final + (0.01 - final) / 2 * (std::cos(M_PI * 69.0 / 70.0) + 1), 1e-18);
  EXPECT_LT(s.lr(99), 1e-5);
  EXPECT_NEAR(s.lr(100), final, 1e-18);  // one past the end reaches the final value and stays there
  EXPECT_NEAR(s.lr(500), final, 1e-18);
  for (int64_t i = 1; i <= 30; ++i) EXPECT_GT(s.lr(i), s.lr(i - 1)) << i;
  for (int64_t i = 31; i < 100; ++i) EXPECT_LT(s.lr(i), s.lr(i - 1)) << i;
}

TEST(OneCycle, MomentumCyclesInversely) {
  const OneCycleSchedule s(options(0.01, 100, 0.3));
  EXPECT_NEAR(*s.momentum(0), 0.95, 1e-15);
  EXPECT_NEAR(*s.momentum(30), 0.85, 1e-15);
  EXPECT_NEAR(*s.momentum(65), 0.90, 1e-15);
  EXPECT_NEAR(*s.momentum(99), 0.85 + 0.1 / 2 * (1 - std::cos(M_PI * 69.0 / 70.0)), 1e-15);
  OneCycleOptions no_moms = options(0.01, 100, 0.3);
  no_moms.moms.reset();
  EXPECT_FALSE(OneCycleSchedule(no_moms).momentum(10).has_value());
}

// fastai v1, transcribed: Scheduler.step() increments n and returns func(start, end, n / n_iter); the callback
// sets the start value before the first batch and steps after every batch, moving to the next phase when done.
std::vector<double> fastai_lrs(double lr_max, int64_t n, double pct_start, double div, double final_div) {
  struct Scheduler {
    double start, end;
    int64_t n_iter, n = 0;
    double step() {
      ++n;
      return annealing_cos(start, end, double(n) / double(n_iter));
    }
    bool is_done() const { return n >= n_iter; }
  };
  const int64_t a1 = int64_t(double(n) * pct_start), a2 = n - a1;
  std::vector<Scheduler> scheds = {{lr_max / div, lr_max, std::max<int64_t>(1, a1)},
                                   {lr_max, lr_max / final_div, std::max<int64_t>(1, a2)}};
  std::vector<double> lrs;
  double lr = scheds[0].start;
  size_t idx = 0;
  for (int64_t batch = 0; batch < n; ++batch) {
    lrs.push_back(lr);  // the batch trains with the current lr
    if (idx >= scheds.size()) break;
    lr = scheds[idx].step();
    if (scheds[idx].is_done()) ++idx;
  }
  return lrs;
}

TEST(OneCycle, EveryStepMatchesFastaiV1) {
  struct Case {
    double lr_max;
    int64_t total;
    double pct;
  };
  for (const Case c : {Case{1e-3, 100, 0.3}, Case{3e-4, 57, 0.8}, Case{1e-2, 10, 0.5}, Case{1e-3, 7, 0.1},
                       Case{1e-3, 3, 0.3}}) {
    SCOPED_TRACE("total " + std::to_string(c.total) + " pct " + std::to_string(c.pct));
    const OneCycleSchedule s(options(c.lr_max, c.total, c.pct));
    const std::vector<double> want = fastai_lrs(c.lr_max, c.total, c.pct, 25.0, 25.0 * 1e4);
    ASSERT_EQ(want.size(), size_t(c.total));
    for (int64_t i = 0; i < c.total; ++i) EXPECT_NEAR(s.lr(i), want[size_t(i)], 1e-15 * c.lr_max) << i;
  }
}

TEST(OneCycle, CustomDivisorsAndTinyRuns) {
  OneCycleOptions o = options(0.1, 10, 0.8);
  o.div_factor = 10;
  o.final_div = 100;
  const OneCycleSchedule s(o);
  EXPECT_NEAR(s.lr(0), 0.01, 1e-16);
  EXPECT_NEAR(s.lr(8), 0.1, 1e-16);
  EXPECT_NEAR(s.lr(9), (0.1 + 0.001) / 2, 1e-15);
  // One step in all: fastai still starts at lr_max / div_factor.
  EXPECT_NEAR(OneCycleSchedule(options(0.1, 1, 0.3)).lr(0), 0.1 / 25.0, 1e-17);
}

TEST(OneCycle, RejectsBadOptions) {
  EXPECT_THROW(OneCycleSchedule(options(0.0, 10, 0.3)), Error);
  EXPECT_THROW(OneCycleSchedule(options(0.1, 0, 0.3)), Error);
  EXPECT_THROW(OneCycleSchedule(options(0.1, 10, 1.5)), Error);
  EXPECT_THROW(OneCycleSchedule(options(0.1, 10, 0.3)).lr(-1), Error);
}

TEST(Schedule, ApplySetsLearningRateAndBeta1) {
  Variable p(Tensor::zeros({2}), true);
  Adam opt({p}, {});
  const OneCycleSchedule s(options(0.01, 100, 0.3));
  s.apply(opt, 30);
  EXPECT_NEAR(opt.lr(), 0.01, 1e-17);
  EXPECT_NEAR(opt.momentum(), 0.85, 1e-15);
  const ConstantSchedule c(5e-4);
  c.apply(opt, 7);
  EXPECT_DOUBLE_EQ(opt.lr(), 5e-4);
  EXPECT_NEAR(opt.momentum(), 0.85, 1e-15);  // a constant schedule leaves momentum alone
  EXPECT_FALSE(c.momentum(3).has_value());
}

}  // namespace
}  // namespace fg::nn
