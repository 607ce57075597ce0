// Master weights (nn/mixed_precision.h), tested on the CPU with the pair (compute f32, master f64), which runs
// the same code as (bf16/f16, f32) on CUDA: masters are exact copies, casts both ways are exact where the dtype
// holds the value, gradients arrive cast and unscaled, updates too small for the model's dtype accumulate in the
// masters, a non-finite gradient skips the step, and a training loop through masters and a loss scaler follows
// the same loop run entirely in f64.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "nn/layers.h"
#include "nn/loss_scale.h"
#include "nn/mixed_precision.h"
#include "nn/optim.h"
#include "tests/support/test_util.h"

namespace fg::nn {
namespace {

Variable leaf(const Tensor& t) {
  return Variable(t.clone(), /*requires_grad=*/true);
}

TEST(MixedPrecision, MastersAreExactWiderCopiesAndCastBackExactly) {
  const Variable a = leaf(test::random_tensor({5}, 1)), b = leaf(test::random_tensor({2, 3}, 2));
  MixedPrecision mp({a, b}, DType::F64);
  ASSERT_EQ(mp.master_params().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const Variable& m = mp.master_params()[i];
    EXPECT_EQ(m.dtype(), DType::F64);
    EXPECT_TRUE(m.is_leaf());
    EXPECT_FALSE(m.data().shares_storage_with(mp.model_params()[i].data()));
    EXPECT_ALL_CLOSE(mp.model_params()[i].data().to(DType::F64), m.data(), 0.0, 0.0);
  }
  // A master value the model's dtype cannot hold is rounded to nearest on the way down.
  Tensor m0 = mp.master_params()[0].data();
  m0.data<double>()[0] = 1.0 + std::ldexp(1.0, -30);
  m0.data<double>()[1] = 0.1;
  const float* model_a = a.data().data<float>();
  const float* before = model_a;
  mp.copy_masters_to_model();
  EXPECT_EQ(a.data().data<float>(), before);  // updated in place: the module keeps its tensors
  EXPECT_EQ(model_a[0], 1.0f);
  EXPECT_EQ(model_a[1], 0.1f);
  // And the way up is exact.
  mp.copy_model_to_masters();
  EXPECT_EQ(m0.data<double>()[0], 1.0);
  EXPECT_EQ(m0.data<double>()[1], double(0.1f));
}

TEST(MixedPrecision, MastersNarrowerThanTheModelAreRefused) {
  const Variable p = leaf(Tensor::zeros({2}, DType::F64));
  EXPECT_NE(test::error_of([&] { MixedPrecision mp({p}, DType::F32); }).find("at least as wide"), std::string::npos);
  const Variable h = leaf(Tensor::zeros({2}, DType::F16));
  EXPECT_NE(test::error_of([&] { MixedPrecision mp({h}, DType::BF16); }), "");
  EXPECT_EQ(test::error_of([&] { MixedPrecision mp({h}, DType::F32); }), "");
}

TEST(MixedPrecision, GradientsArriveCastAndUnscaled) {
  const Variable a = leaf(Tensor::zeros({3})), b = leaf(Tensor::zeros({2}));
  MixedPrecision mp({a, b}, DType::F64);
  const Tensor g = test::random_tensor({3}, 7);
  a.set_grad(kernels::mul_scalar(g, 1024.0));
  EXPECT_TRUE(mp.grads_to_masters(1.0 / 1024.0));
  EXPECT_ALL_CLOSE(g.to(DType::F64), mp.master_params()[0].grad(), 0.0, 0.0);
  EXPECT_FALSE(mp.master_params()[1].grad().defined());  // b had no gradient: the optimizer will skip it
  EXPECT_FALSE(a.grad().defined());                      // the model's gradient is dropped

  Tensor bad = Tensor::ones({2});
  bad.data<float>()[0] = std::numeric_limits<float>::infinity();
  b.set_grad(bad);
  EXPECT_FALSE(mp.grads_to_masters(1.0));
}

// SGD with lr 1 and a gradient of -2^-30 for 256 steps: each update is below f32's resolution at 1.0 (2^-23), so
// training the f32 weight directly never moves it, while the f64 master accumulates 256 * 2^-30 = 2^-22, which
// the f32 model then holds exactly.
TEST(MixedPrecision, UpdatesTooSmallForTheModelAccumulateInTheMasters) {
  const Variable direct = leaf(Tensor::ones({1}));
  SGDOptions so;
  so.lr = 1.0;
  SGD direct_opt({direct}, so);
  const Variable model = leaf(Tensor::ones({1}));
  MixedPrecision mp({model}, DType::F64);
  SGD master_opt(mp.master_params(), so);
  LossScalerOptions lo;
  lo.enabled = false;
  LossScaler scaler(lo);
  const Tensor tiny = Tensor::full({1}, -std::ldexp(1.0, -30));
  for (int i = 0; i < 256; ++i) {
    direct.set_grad(tiny.clone());
    direct_opt.step();
    model.set_grad(tiny.clone());
    ASSERT_TRUE(mp.step(master_opt, scaler));
  }
  EXPECT_EQ(direct.data().data<float>()[0], 1.0f);
  EXPECT_EQ(mp.master_params()[0].data().data<double>()[0], 1.0 + std::ldexp(1.0, -22));
  EXPECT_EQ(model.data().data<float>()[0], 1.0f + std::ldexp(1.0f, -22));
}

TEST(MixedPrecision, NonFiniteGradientSkipsTheStepAndBacksOff) {
  const Variable p = leaf(test::random_tensor({4}, 9));
  const Tensor before = p.data().clone();
  MixedPrecision mp({p}, DType::F64);
  AdamOptions ao;
  ao.lr = 0.1;
  Adam opt(mp.master_params(), ao);
  LossScaler scaler;
  Tensor g = Tensor::ones({4});
  g.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  p.set_grad(g);
  EXPECT_FALSE(mp.step(opt, scaler));
  EXPECT_ALL_CLOSE(before, p.data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(before.to(DType::F64), mp.master_params()[0].data(), 0.0, 0.0);
  EXPECT_TRUE(opt.state_dict().empty());
  EXPECT_EQ(scaler.scale(), 32768.0);
  EXPECT_FALSE(p.grad().defined());
  EXPECT_FALSE(mp.master_params()[0].grad().defined());
}

std::shared_ptr<Sequential> make_net(DType dtype) {
  Generator gen(11);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Conv2d>(gen, 2, 6, 3, 1, 1));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Conv2d>(gen, 6, 2, 3, 1, 1));
  net->to(dtype);
  return net;
}

// The same AdamW loop twice: all in f64 (the reference), and through f64 masters with an f32 model and a loss
// scaler. The master-weight run follows the f64 run to f32 rounding, and its model always holds exactly the f32
// rounding of its masters. (No BatchNorm here: the gradient of a bias that BatchNorm cancels is rounding noise,
// which Adam's normalisation turns into full-size steps that differ from run to run.)
TEST(MixedPrecision, TrainingThroughMastersFollowsTheWideReference) {
  auto wide = make_net(DType::F64);
  auto mixed = make_net(DType::F32);
  AdamWOptions ao;
  ao.lr = 3e-3;
  ao.weight_decay = 1e-3;
  AdamW wide_opt(wide->parameters(), ao);
  MixedPrecision mp(mixed->parameters(), DType::F64);
  AdamW mixed_opt(mp.master_params(), ao);
  LossScalerOptions so;
  so.growth_interval = 5;
  LossScaler scaler(so);
  for (int step = 0; step < 15; ++step) {
    const Tensor x = test::random_tensor({4, 2, 6, 6}, 300 + uint64_t(step));
    const Tensor y = test::random_tensor({4, 2, 6, 6}, 400 + uint64_t(step));
    wide_opt.zero_grad();
    const Variable lw = mse_loss(wide->forward(Variable(x.to(DType::F64))), Variable(y.to(DType::F64)));
    lw.backward();
    wide_opt.step();

    const Variable lm = mse_loss(mixed->forward(Variable(x)), Variable(y));
    scaler.scale_loss(lm).backward();
    ASSERT_TRUE(mp.step(mixed_opt, scaler));
    EXPECT_NEAR(lm.item(), lw.item(), 1e-5 * lw.item()) << "step " << step;
    for (size_t i = 0; i < mp.model_params().size(); ++i)
      ASSERT_TRUE(test::all_close(mp.master_params()[i].data().to(DType::F32), mp.model_params()[i].data(), 0.0, 0.0));
  }
  EXPECT_EQ(scaler.scale(), 65536.0 * 8.0);
  const auto w = wide->parameters();
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_ALL_CLOSE(w[i].data(), mp.master_params()[i].data(), 1e-5, 1e-4);
    // The masters moved away from the initial weights (the optimizer really stepped on them).
    EXPECT_GT(test::nmse(make_net(DType::F64)->parameters()[i].data(), mp.master_params()[i].data()), 0.0);
  }
}

}  // namespace
}  // namespace fg::nn
