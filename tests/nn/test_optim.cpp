// Optimizers and gradient clipping: SGD, Adam and AdamW against hand-computed updates (one and three steps), the
// AdamW/Adam difference, skipping parameters without gradients, parameter groups, state save/restore and its
// errors, and clip_grad_norm_ / clip_grad_value_ values and scaling.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "nn/clip.h"
#include "nn/optim.h"
#include "tests/support/test_util.h"

namespace fg::nn {
namespace {

Variable param(const std::vector<double>& v, DType dt = DType::F64) {
  return Variable(Tensor::from_vector(v, {int64_t(v.size())}, dt), true);
}
void set_grad(const Variable& p, const std::vector<double>& g) {
  p.set_grad(Tensor::from_vector(g, {int64_t(g.size())}, p.dtype()));
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(SGD, PlainStep) {
  Variable p = param({1.0, -2.0});
  SGD opt({p}, {0.1, 0.0, 0.0});
  set_grad(p, {0.5, 0.25});
  opt.step();
  // p - lr g = (1 - 0.05, -2 - 0.025)
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.95, -2.025}, {2}, DType::F64), p.data(), 1e-15, 0.0);
  EXPECT_TRUE(opt.state_dict().count("0.step"));
  EXPECT_FALSE(opt.state_dict().count("0.momentum_buffer"));  // no buffer without momentum
}

TEST(SGD, MomentumAndWeightDecayThreeSteps) {
  Variable p = param({1.0, -2.0});
  SGD opt({p}, {0.1, 0.9, 0.01});
  // The gradient is (0.5, 0.25) each step; d = g + 0.01 p; buf = d, then 0.9 buf + d; p -= 0.1 buf.
  set_grad(p, {0.5, 0.25});
  opt.step();
  // d = (0.51, 0.23) = buf; p = (1 - 0.051, -2 - 0.023)
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.949, -2.023}, {2}, DType::F64), p.data(), 1e-14, 0.0);
  opt.step();
  // d = (0.5 + 0.00949, 0.25 - 0.02023) = (0.50949, 0.22977); buf = (0.459 + 0.50949, 0.207 + 0.22977)
  //   = (0.96849, 0.43677); p = (0.949 - 0.096849, -2.023 - 0.043677) = (0.852151, -2.066677)
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.852151, -2.066677}, {2}, DType::F64), p.data(), 1e-14, 0.0);
  opt.step();
  // d = (0.50852151, 0.22933323); buf = (0.871641 + 0.50852151, 0.393093 + 0.22933323)
  //   = (1.38016251, 0.62242623); p = (0.852151 - 0.138016251, -2.066677 - 0.062242623)
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.714134749, -2.128919623}, {2}, DType::F64), p.data(), 1e-14, 0.0);
  EXPECT_ALL_CLOSE(Tensor::from_vector({1.38016251, 0.62242623}, {2}, DType::F64),
                   opt.state_dict().at("0.momentum_buffer"), 1e-14, 0.0);
  EXPECT_EQ(opt.state_dict().at("0.step").item(), 3.0);
}

TEST(Adam, FirstStepMovesByLrTimesSign) {
  // Step 1: m = 0.1 g, v = 0.001 g^2; m / (1 - 0.9) = g, sqrt(v / (1 - 0.999)) = |g|: p -= lr g / (|g| + eps).
  Variable p = param({1.0, -2.0, 0.5});
  Adam opt({p}, {});
  set_grad(p, {0.5, -0.25, 4.0});
  opt.step();
  const double lr = 1e-3, eps = 1e-8;
  EXPECT_ALL_CLOSE(Tensor::from_vector({1.0 - lr * 0.5 / (0.5 + eps), -2.0 + lr * 0.25 / (0.25 + eps),
                                        0.5 - lr * 4.0 / (4.0 + eps)},
                                       {3}, DType::F64),
                   p.data(), 1e-15, 1e-12);
}

TEST(Adam, ThreeStepsWithL2WeightDecayByHand) {
  const double lr = 0.1, b1 = 0.8, b2 = 0.9, eps = 1e-3, wd = 0.2;
  Variable p = param({1.0});
  AdamOptions o;
  o.lr = lr;
  o.beta1 = b1;
  o.beta2 = b2;
  o.eps = eps;
  o.weight_decay = wd;
  Adam opt({p}, o);
  const double g[3] = {0.5, -1.0, 2.0};
  double x = 1.0, m = 0.0, v = 0.0;
  for (int t = 1; t <= 3; ++t) {
    set_grad(p, {g[t - 1]});
    opt.step();
    // torch.optim.Adam: d = g + wd x; m = b1 m + (1 - b1) d; v = b2 v + (1 - b2) d^2;
    // x -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    const double d = g[t - 1] + wd * x;
    m = b1 * m + (1 - b1) * d;
    v = b2 * v + (1 - b2) * d * d;
    x -= lr / (1 - std::pow(b1, t)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(b2, t)) + eps);
    EXPECT_NEAR(p.data().item(), x, 1e-14) << "step " << t;
  }
  // Step 1 spelled out: d = 0.7, m = 0.14, v = 0.049, x = 1 - 0.1 / 0.2 * 0.14 / (0.7 + 0.001) = 0.9001426534...
  EXPECT_NEAR(1.0 - 0.5 * 0.14 / 0.701, 0.90014265335235, 1e-13);
  EXPECT_NEAR(opt.state_dict().at("0.exp_avg").item(), m, 1e-15);
  EXPECT_NEAR(opt.state_dict().at("0.exp_avg_sq").item(), v, 1e-15);
}

TEST(Adam, FloatParametersAgreeWithDouble) {
  Variable pf = param({0.3, -0.7, 1.1}, DType::F32);
  Variable pd = param({0.3, -0.7, 1.1}, DType::F64);
  Adam of({pf}, {}), od({pd}, {});
  for (int t = 0; t < 3; ++t) {
    set_grad(pf, {0.1 * t - 0.05, 0.3, -0.2});
    set_grad(pd, {0.1 * t - 0.05, 0.3, -0.2});
    of.step();
    od.step();
  }
  EXPECT_ALL_CLOSE(pd.data(), pf.data().to(DType::F64), 1e-6, 1e-6);
}

TEST(AdamW, DecoupledDecayDiffersFromAdamByLrWdP) {
  // One step from p0 with wd 0.1, lr 0.1: Adam's first step is lr * sign(g + wd p) (here the same signs as g),
  // AdamW's is p0 (1 - lr wd) - lr * sign(g). The difference is -lr wd p0.
  const std::vector<double> p0 = {1.0, -2.0}, g = {0.5, 0.25};
  Variable pa = param(p0), pw = param(p0);
  AdamOptions ao;
  ao.lr = 0.1;
  ao.weight_decay = 0.1;
  AdamWOptions wo;
  wo.lr = 0.1;
  wo.weight_decay = 0.1;
  Adam adam({pa}, ao);
  AdamW adamw({pw}, wo);
  EXPECT_STREQ(adamw.name(), "AdamW");
  set_grad(pa, g);
  set_grad(pw, g);
  adam.step();
  adamw.step();
  const double eps = 1e-8;
  // Adam: d = g + 0.1 p0 = (0.6, 0.05): p = p0 - 0.1 * d / (|d| + eps)
  EXPECT_ALL_CLOSE(Tensor::from_vector({1.0 - 0.1 * 0.6 / (0.6 + eps), -2.0 - 0.1 * 0.05 / (0.05 + eps)}, {2},
                                       DType::F64),
                   pa.data(), 1e-15, 1e-12);
  // AdamW: p = 0.99 p0 - 0.1 * g / (|g| + eps)
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.99 - 0.1 * 0.5 / (0.5 + eps), -1.98 - 0.1 * 0.25 / (0.25 + eps)}, {2},
                                       DType::F64),
                   pw.data(), 1e-15, 1e-12);
  // Up to the eps terms (lr * eps / |d| <= 2e-8 here), the difference is -lr wd p0.
  for (int64_t i = 0; i < 2; ++i)
    EXPECT_NEAR(pw.data().at({i}) - pa.data().at({i}), -0.1 * 0.1 * p0[size_t(i)], 1e-7);
  EXPECT_EQ(AdamWOptions().weight_decay, 1e-2);  // torch.optim.AdamW's default
}

TEST(Optimizer, SkipsParametersWithoutGradient) {
  Variable a = param({1.0}), b = param({2.0});
  Adam opt({a, b}, {});
  set_grad(a, {1.0});
  opt.step();
  EXPECT_NE(a.data().item(), 1.0);
  EXPECT_EQ(b.data().item(), 2.0);
  const auto sd = opt.state_dict();
  EXPECT_TRUE(sd.count("0.exp_avg"));
  EXPECT_FALSE(sd.count("1.exp_avg"));
  EXPECT_FALSE(sd.count("1.step"));
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Optimizer, UpdatesInPlaceAndWorksWithBackward) {
  Variable w = param({0.0, 0.0});
  const Tensor storage_before = w.data();
  SGD opt({w}, {0.5});
  const Variable target(Tensor::from_vector({1.0, -1.0}, {2}, DType::F64));
  for (int i = 0; i < 30; ++i) {
    opt.zero_grad();
    mse_loss(w, target).backward();  // grad = (w - t)
    opt.step();
  }
  EXPECT_ALL_CLOSE(target.data(), w.data(), 1e-6, 0.0);
  EXPECT_TRUE(w.data().shares_storage_with(storage_before));
}

TEST(Optimizer, ParamGroupsAndLearningRates) {
  Variable a = param({1.0}), b = param({1.0});
  SGD opt({a}, {0.1});
  opt.add_param_group({b}, 0.5);
  EXPECT_EQ(opt.param_groups().size(), 2u);
  EXPECT_EQ(opt.num_params(), 2);
  set_grad(a, {1.0});
  set_grad(b, {1.0});
  opt.step();
  EXPECT_NEAR(a.data().item(), 0.9, 1e-15);
  EXPECT_NEAR(b.data().item(), 0.5, 1e-15);
  opt.set_lr(0.01);
  EXPECT_EQ(opt.lr(0), 0.01);
  EXPECT_EQ(opt.lr(1), 0.01);
  opt.step();
  EXPECT_NEAR(a.data().item(), 0.89, 1e-15);
  EXPECT_THROW(opt.lr(2), Error);
  EXPECT_THROW(opt.add_param_group({a}), Error);  // already in group 0
  EXPECT_THROW(opt.set_lr(-1.0), Error);
}

TEST(Optimizer, RejectsNonLeavesAndBadHyperparameters) {
  Variable a = param({1.0});
  const Variable not_leaf = mul_scalar(a, 2.0);
  EXPECT_THROW(SGD({not_leaf}, {}), Error);
  EXPECT_THROW(SGD({a, a}, {}), Error);
  AdamOptions bad;
  bad.beta1 = 1.0;
  EXPECT_THROW(Adam({a}, bad), Error);
  SGDOptions neg;
  neg.lr = -0.1;
  EXPECT_THROW(SGD({a}, neg), Error);
}

TEST(Optimizer, StateDictSaveAndRestoreResumesExactly) {
  Variable a1 = param({0.3, -0.2}), b1 = param({1.5});
  AdamW first({a1, b1}, {});
  for (int t = 0; t < 2; ++t) {
    set_grad(a1, {0.1, -0.4 + t});
    set_grad(b1, {0.2 * t + 0.1});
    first.step();
  }
  const auto saved = first.state_dict();
  std::vector<std::string> keys;
  for (const auto& e : saved) keys.push_back(e.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"0.exp_avg", "0.exp_avg_sq", "0.step", "1.exp_avg", "1.exp_avg_sq",
                                            "1.step"}));
  EXPECT_EQ(saved.at("1.step").dtype(), DType::I64);

  // A second optimizer over copies of the parameters, restored from the saved state, continues identically.
  Variable a2(a1.data().clone(), true), b2(b1.data().clone(), true);
  AdamW second({a2, b2}, {});
  second.load_state_dict(saved);
  for (int t = 0; t < 2; ++t) {
    set_grad(a1, {0.3, 0.05 * t});
    set_grad(a2, {0.3, 0.05 * t});
    set_grad(b1, {-0.1});
    set_grad(b2, {-0.1});
    first.step();
    second.step();
  }
  EXPECT_ALL_CLOSE(a1.data(), a2.data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(b1.data(), b2.data(), 0.0, 0.0);
  EXPECT_EQ(second.state_dict().at("0.step").item(), 4.0);
  // The restored state is a copy, not an alias of the saved tensors.
  EXPECT_FALSE(second.state_dict().at("0.exp_avg").shares_storage_with(saved.at("0.exp_avg")));
}

TEST(Optimizer, LoadStateDictErrorsNameEachProblem) {
  Variable a = param({0.3, -0.2});
  Adam opt({a}, {});
  set_grad(a, {0.1, 0.1});
  opt.step();
  auto good = opt.state_dict();
  auto expect_error = [&](std::map<std::string, Tensor> sd, const std::string& part) {
    try {
      opt.load_state_dict(sd);
      ADD_FAILURE() << "expected an error containing: " << part;
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), part)) << e.what();
    }
  };
  auto wrong_shape = good;
  wrong_shape["0.exp_avg"] = Tensor::zeros({3}, DType::F64);
  expect_error(wrong_shape, "'0.exp_avg' is f64(3) cpu, its parameter is f64(2) cpu");
  auto wrong_dtype = good;
  wrong_dtype["0.exp_avg_sq"] = Tensor::zeros({2}, DType::F32);
  expect_error(wrong_dtype, "'0.exp_avg_sq' is f32(2)");
  auto missing = good;
  missing.erase("0.exp_avg_sq");
  expect_error(missing, "missing key '0.exp_avg_sq'");
  auto unknown = good;
  unknown["0.momentum_buffer"] = Tensor::zeros({2}, DType::F64);
  expect_error(unknown, "unexpected key '0.momentum_buffer'");
  auto out_of_range = good;
  out_of_range["3.step"] = Tensor::scalar(1, DType::I64);
  expect_error(out_of_range, "unexpected key '3.step'");
  // A failed load leaves the state as it was.
  EXPECT_EQ(opt.state_dict().at("0.step").item(), 1.0);
  opt.load_state_dict({});  // an empty state resets
  EXPECT_TRUE(opt.state_dict().empty());
}

TEST(Clip, GradNormValueAndScaling) {
  Variable a = param({0.0, 0.0}), b = param({0.0}), c = param({0.0});
  set_grad(a, {3.0, 4.0});
  set_grad(b, {12.0});
  const Tensor old_grad = a.grad();
  // total = sqrt(9 + 16 + 144) = 13; c has no gradient and is ignored.
  const double total = clip_grad_norm_({a, b, c}, 6.5);
  EXPECT_NEAR(total, 13.0, 1e-12);
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_ALL_CLOSE(Tensor::from_vector({3.0 * coef, 4.0 * coef}, {2}, DType::F64), a.grad(), 1e-15, 1e-14);
  EXPECT_NEAR(b.grad().item(), 12.0 * coef, 1e-12);
  EXPECT_FALSE(c.grad().defined());
  EXPECT_EQ(old_grad.at({0}), 3.0);  // a new tensor, not scaled in place
  // The clipped norm is max_norm (to 1e-6 relative).
  EXPECT_NEAR(clip_grad_norm_({a, b}, 100.0), 6.5, 1e-6);
  // Under the limit: unchanged.
  EXPECT_NEAR(a.grad().at({1}), 4.0 * coef, 1e-12);
}

TEST(Clip, InfinityNormAndValueClipping) {
  Variable a = param({0.0, 0.0}), b = param({0.0});
  set_grad(a, {3.0, -4.0});
  set_grad(b, {1.0});
  EXPECT_EQ(clip_grad_norm_({a, b}, 2.0, std::numeric_limits<double>::infinity()), 4.0);
  EXPECT_NEAR(a.grad().at({1}), -4.0 * 2.0 / (4.0 + 1e-6), 1e-12);
  set_grad(a, {3.0, -4.0});
  set_grad(b, {0.25});
  clip_grad_value_({a, b}, 0.5);
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{0.5, -0.5}));
  EXPECT_EQ(b.grad().item(), 0.25);
  EXPECT_THROW(clip_grad_norm_({a}, 1.0, 1.0), Error);
  EXPECT_EQ(clip_grad_norm_({param({1.0})}, 1.0), 0.0);  // no gradients at all
}

}  // namespace
}  // namespace fg::nn
