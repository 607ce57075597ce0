// The dynamic loss scaler (nn/loss_scale.h): growth after growth_interval good steps, backoff and a skipped step
// on an injected Inf or NaN, the saved state read back exactly, bad options refused, and a small training loop with
// scaling that gives bit for bit the losses and weights of the same loop without it (powers of two are exact).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "nn/layers.h"
#include "nn/loss_scale.h"
#include "nn/optim.h"
#include "tests/support/test_util.h"

namespace fg::nn {
namespace {

Variable leaf(const Tensor& t) {
  return Variable(t.clone(), /*requires_grad=*/true);
}

TEST(LossScale, StartsAtTwoToTheSixteenAndScalesTheLoss) {
  LossScaler scaler;
  EXPECT_EQ(scaler.scale(), 65536.0);
  const Variable loss(Tensor::scalar(0.25));
  EXPECT_EQ(scaler.scale_loss(loss).item(), 0.25 * 65536.0);
  LossScalerOptions off;
  off.enabled = false;
  LossScaler disabled(off);
  EXPECT_EQ(disabled.scale(), 1.0);
  EXPECT_EQ(disabled.scale_loss(loss).item(), 0.25);
}

TEST(LossScale, GrowsAfterTheIntervalOfGoodStepsAndBacksOffOnOverflow) {
  LossScalerOptions o;
  o.init_scale = 8.0;
  o.growth_interval = 3;
  LossScaler scaler(o);
  scaler.update(false);
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 8.0);
  EXPECT_EQ(scaler.growth_tracker(), 2);
  scaler.update(false);  // the third good step in a row
  EXPECT_EQ(scaler.scale(), 16.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  scaler.update(false);
  scaler.update(true);  // an overflow halves the scale and restarts the count
  EXPECT_EQ(scaler.scale(), 8.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  EXPECT_EQ(scaler.skipped_steps(), 1);
  scaler.update(false);
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 8.0);  // two good steps after the backoff are not yet three
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 16.0);
}

TEST(LossScale, DefaultGrowthIntervalIs2000) {
  LossScaler scaler;
  for (int i = 0; i < 1999; ++i) scaler.update(false);
  EXPECT_EQ(scaler.scale(), 65536.0);
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 131072.0);
}

TEST(LossScale, UnscaleDividesEveryGradientAndReportsFiniteness) {
  LossScaler scaler;
  const Variable a = leaf(Tensor::zeros({3})), b = leaf(Tensor::zeros({2, 2})), c = leaf(Tensor::zeros({2}));
  const Tensor ga = test::random_tensor({3}, 1), gb = test::random_tensor({2, 2}, 2);
  a.set_grad(kernels::mul_scalar(ga, 65536.0));
  b.set_grad(kernels::mul_scalar(gb, 65536.0));
  EXPECT_TRUE(scaler.unscale({a, b, c}));    // c has no gradient and is ignored
  EXPECT_ALL_CLOSE(ga, a.grad(), 0.0, 0.0);  // exact: the scale is a power of two
  EXPECT_ALL_CLOSE(gb, b.grad(), 0.0, 0.0);
  EXPECT_FALSE(c.grad().defined());

  Tensor bad = Tensor::ones({2});
  bad.data<float>()[1] = std::numeric_limits<float>::quiet_NaN();
  c.set_grad(bad);
  EXPECT_FALSE(scaler.unscale({a, b, c}));
}

// One injected Inf: the optimizer must not move, its state must not advance, the scale must halve.
TEST(LossScale, StepIsSkippedWhenAGradientIsNotFinite) {
  const Variable w = leaf(test::random_tensor({4}, 3));
  const Tensor before = w.data().clone();
  AdamOptions ao;
  ao.lr = 0.1;
  Adam opt({w}, ao);
  LossScaler scaler;
  Tensor g = Tensor::full({4}, 65536.0);
  g.data<float>()[2] = std::numeric_limits<float>::infinity();
  w.set_grad(g);
  EXPECT_FALSE(scaler.step(opt, {w}));
  EXPECT_ALL_CLOSE(before, w.data(), 0.0, 0.0);
  EXPECT_TRUE(opt.state_dict().empty());  // Adam never took a step
  EXPECT_EQ(scaler.scale(), 32768.0);
  EXPECT_EQ(scaler.skipped_steps(), 1);
  EXPECT_FALSE(w.grad().defined());

  w.set_grad(Tensor::full({4}, 32768.0));  // a gradient of 1 once unscaled
  EXPECT_TRUE(scaler.step(opt, {w}));
  EXPECT_EQ(opt.state_dict().at("0.step").item(), 1.0);
  for (int64_t i = 0; i < 4; ++i) EXPECT_NEAR(w.data().at({i}), before.at({i}) - 0.1, 1e-6);
  EXPECT_EQ(scaler.scale(), 32768.0);
  EXPECT_EQ(scaler.growth_tracker(), 1);
}

TEST(LossScale, StateRoundTripsExactly) {
  LossScalerOptions o;
  o.init_scale = 3.0 / 7.0;  // not a power of two: the text must still read back bit for bit
  o.growth_interval = 5;
  LossScaler a(o);
  a.update(false);
  a.update(true);
  a.update(false);
  a.update(false);
  LossScaler b(o);
  b.load_state(a.state());
  EXPECT_EQ(b.scale(), a.scale());
  EXPECT_EQ(b.growth_tracker(), 2);
  EXPECT_EQ(b.skipped_steps(), 1);

  auto broken = a.state();
  broken["scale"] = "-1";
  EXPECT_NE(test::error_of([&] { b.load_state(broken); }).find("scale"), std::string::npos);
  broken = a.state();
  broken.erase("growth_tracker");
  EXPECT_NE(test::error_of([&] { b.load_state(broken); }).find("growth_tracker"), std::string::npos);
}

TEST(LossScale, BadOptionsAreRefused) {
  LossScalerOptions o;
  o.backoff_factor = 1.5;
  EXPECT_NE(test::error_of([&] { LossScaler s(o); }), "");
  o = {};
  o.growth_factor = 1.0;
  EXPECT_NE(test::error_of([&] { LossScaler s(o); }), "");
  o = {};
  o.init_scale = 0.0;
  EXPECT_NE(test::error_of([&] { LossScaler s(o); }), "");
  o = {};
  o.growth_interval = 0;
  EXPECT_NE(test::error_of([&] { LossScaler s(o); }), "");
}

// The same small conv net trained twice from the same weights on the same batches, once plainly and once through
// the scaler (whose scale also grows along the way): every loss and every final weight agree exactly.
TEST(LossScale, ScaledTrainingMatchesUnscaledBitForBit) {
  auto make_net = [] {
    Generator gen(5);
    auto net = std::make_shared<Sequential>();
    net->push_back(std::make_shared<Conv2d>(gen, 2, 6, 3, 1, 1));
    net->push_back(std::make_shared<BatchNorm2d>(6));
    net->push_back(std::make_shared<ReLU>());
    net->push_back(std::make_shared<Conv2d>(gen, 6, 2, 3, 1, 1));
    return net;
  };
  auto plain = make_net();
  auto scaled = make_net();
  AdamWOptions ao;
  ao.lr = 3e-3;
  AdamW opt_plain(plain->parameters(), ao);
  AdamW opt_scaled(scaled->parameters(), ao);
  LossScalerOptions so;
  so.growth_interval = 4;  // the scale changes during the run: 2^16, then 2^17, 2^18, ...
  LossScaler scaler(so);
  for (int step = 0; step < 12; ++step) {
    const Tensor x = test::random_tensor({4, 2, 6, 6}, 100 + uint64_t(step));
    const Tensor y = test::random_tensor({4, 2, 6, 6}, 200 + uint64_t(step));
    opt_plain.zero_grad();
    const Variable lp = mse_loss(plain->forward(Variable(x)), Variable(y));
    lp.backward();
    opt_plain.step();

    const Variable ls = mse_loss(scaled->forward(Variable(x)), Variable(y));
    scaler.scale_loss(ls).backward();
    ASSERT_TRUE(scaler.step(opt_scaled, scaled->parameters()));
    ASSERT_EQ(lp.item(), ls.item()) << "step " << step;
  }
  EXPECT_EQ(scaler.scale(), 65536.0 * 8.0);
  const auto a = plain->state_dict(), b = scaled->state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_ALL_CLOSE(a[i].second, b[i].second, 0.0, 0.0) << a[i].first;
}

}  // namespace
}  // namespace fg::nn
