// models/perceptual_loss.h: the three variants' formulas against a reference assembled here from the VGG's taps and
// the nn/losses.h pieces (all five layers computed, as PyTorch does), the breakdown, the frozen eval-mode VGG (also
// after train() and unfreeze()), gradients that reach pred and nothing else, the module's names, and the errors a
// user can cause. PyTorch's values are checked in tests/golden/test_golden_losses.cpp. VGG width 0.125, 32x32 inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "models/perceptual_loss.h"
#include "nn/layers.h"
#include "nn/losses.h"
#include "nn/optim.h"
#include "nn/recorder.h"
#include "tensor/error.h"
#include "tests/support/test_util.h"

namespace fg::models {
namespace {

constexpr double kWidth = 0.125;
const PerceptualVariant kVariants[] = {PerceptualVariant::MODEL1, PerceptualVariant::MODEL2, PerceptualVariant::MODEL3};

std::unique_ptr<PerceptualLoss> make_loss(PerceptualVariant variant, DType dtype = DType::F32) {
  Generator gen(17);
  auto loss = std::make_unique<PerceptualLoss>(gen, variant, kWidth);
  loss->to(dtype);
  // Non-trivial BatchNorm statistics (the init's 0 and 1 would hide a BatchNorm run in training mode).
  int64_t k = 0;
  for (auto& [name, m] : loss->vgg().named_modules()) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(m);
    if (!bn) continue;
    const int64_t c = bn->num_features();
    bn->running_mean().copy_(test::random_tensor({c}, 100 + uint64_t(k), dtype, -0.2, 0.2));
    bn->running_var().copy_(test::random_tensor({c}, 200 + uint64_t(k), dtype, 0.5, 2.0));
    ++k;
  }
  return loss;
}

// Image-like inputs: target, and pred = target + noise.
std::pair<Tensor, Tensor> make_inputs(DType dtype, Shape shape = {2, 3, 32, 32}) {
  const Tensor target = test::random_normal(shape, 5, dtype);
  const Tensor noise = test::random_normal(shape, 6, dtype);
  return {add(Variable(target), mul_scalar(Variable(noise), 0.4)).data(), target};
}

double sum_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}

// The loss as SPEC B writes it, every layer computed (weight-0 layers multiplied by 0, as fastai does).
Variable reference_total(PerceptualLoss& loss, const Variable& pred, const Variable& target) {
  const bool model3 = loss.variant() == PerceptualVariant::MODEL3;
  const auto& w = loss.layer_weights();
  const std::vector<Variable> fp = loss.vgg().forward_taps(pred, PerceptualLoss::tap_indices());
  const std::vector<Variable> ft = loss.vgg().forward_taps(target, PerceptualLoss::tap_indices());
  Variable total = l1_loss(pred, target);
  if (model3) total = add(total, nn::ssim_loss(pred, target, 5));
  for (size_t i = 0; i < 5; ++i) {
    const Variable content = model3 ? nn::ssim_loss(fp[i], ft[i], 5) : l1_loss(fp[i], ft[i]);
    total = add(total, mul_scalar(content, w[i]));
    total = add(total, mul_scalar(l1_loss(gram_matrix(fp[i]), gram_matrix(ft[i])), 5e3 * w[i] * w[i]));
  }
  return total;
}

TEST(PerceptualLoss, ParsesVariantNames) {
  EXPECT_EQ(parse_perceptual_variant("model1"), PerceptualVariant::MODEL1);
  EXPECT_EQ(parse_perceptual_variant("model2"), PerceptualVariant::MODEL2);
  EXPECT_EQ(parse_perceptual_variant("model3"), PerceptualVariant::MODEL3);
  for (PerceptualVariant v : kVariants) EXPECT_EQ(parse_perceptual_variant(perceptual_variant_name(v)), v);
  for (const std::string bad : {"model4", "Model1", "", "mse"}) {
    try {
      parse_perceptual_variant(bad);
      ADD_FAILURE() << "'" << bad << "' was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("'" + bad + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("model1"), std::string::npos) << msg;
      EXPECT_NE(msg.find("model3"), std::string::npos) << msg;
    }
  }
}

TEST(PerceptualLoss, ModuleLayout) {
  auto loss = make_loss(PerceptualVariant::MODEL3);
  EXPECT_EQ(loss->type_name(), "PerceptualLoss");
  ASSERT_EQ(loss->named_children().size(), 1u);
  EXPECT_EQ(loss->named_children()[0].first, "vgg");
  EXPECT_TRUE(loss->vgg().batch_norm());
  EXPECT_EQ(loss->vgg().width(), kWidth);
  const nn::StateDict sd = loss->state_dict();
  ASSERT_FALSE(sd.empty());
  EXPECT_EQ(sd.front().first, "vgg.features.0.weight");
  EXPECT_EQ(sd.back().first, "vgg.features.41.num_batches_tracked");
  EXPECT_GT(loss->num_parameters(), 0);
  EXPECT_EQ(loss->num_parameters(/*trainable_only=*/true), 0);
  EXPECT_FALSE(loss->vgg().is_training());
  EXPECT_EQ(PerceptualLoss::tap_indices(), (std::vector<int64_t>{5, 12, 22, 32, 42}));
  for (int64_t t : PerceptualLoss::tap_indices()) {
    EXPECT_EQ((*loss->vgg().features())[size_t(t)]->type_name(), "ReLU") << t;
    EXPECT_EQ((*loss->vgg().features())[size_t(t) + 1]->type_name(), "MaxPool2d") << t;
  }
  EXPECT_EQ(make_loss(PerceptualVariant::MODEL1)->layer_weights(), (std::vector<double>{0, 0, 20, 70, 10}));
  EXPECT_EQ(make_loss(PerceptualVariant::MODEL2)->layer_weights(), (std::vector<double>{2, 4, 5, 6, 6}));
  EXPECT_EQ(loss->layer_weights(), (std::vector<double>{2, 4, 5, 6, 6}));
  EXPECT_NE(loss->repr().find("variant=model3"), std::string::npos) << loss->repr();
}

TEST(PerceptualLoss, MatchesTheFormulaWithGradients) {
  for (PerceptualVariant v : kVariants) {
    SCOPED_TRACE(perceptual_variant_name(v));
    auto loss = make_loss(v, DType::F64);
    const auto [p, t] = make_inputs(DType::F64);
    const Variable pred(p, true), pred_ref(p.clone(), true), target(t);
    const PerceptualTerms terms = loss->compute(pred, target);
    const Variable ref = reference_total(*loss, pred_ref, target);
    EXPECT_NEAR(terms.total.item(), ref.item(), 1e-10 * std::fabs(ref.item()));
    terms.total.backward();
    ref.backward();
    // Model 1 skips its weight-0 layers: the gradient must still equal the one that multiplies them by 0.
    EXPECT_ALL_CLOSE(pred_ref.grad(), pred.grad(), 1e-12, 1e-9);
    EXPECT_GT(test::nmse(Tensor::zeros(pred.shape(), DType::F64), pred.grad()), 0.0);
  }
}

TEST(PerceptualLoss, BreakdownAddsUpToTheTotal) {
  const auto [p, t] = make_inputs(DType::F32);
  for (PerceptualVariant v : kVariants) {
    SCOPED_TRACE(perceptual_variant_name(v));
    auto loss = make_loss(v);
    const PerceptualTerms terms = loss->compute(Variable(p), Variable(t));
    ASSERT_EQ(terms.content.size(), 5u);
    ASSERT_EQ(terms.style.size(), 5u);
    ASSERT_EQ(terms.pixel.size(), v == PerceptualVariant::MODEL3 ? 2u : 1u);
    const double sum = sum_of(terms.pixel) + sum_of(terms.content) + sum_of(terms.style);
    EXPECT_NEAR(terms.total.item(), sum, 1e-5 * sum);
    // pixel[0] is the MAE in every variant.
    EXPECT_NEAR(terms.pixel[0], l1_loss(Variable(p), Variable(t)).item(), 1e-6);
    if (v == PerceptualVariant::MODEL3) {
      EXPECT_NEAR(terms.pixel[1], nn::ssim_loss(Variable(p), Variable(t), 5).item(), 1e-6);
    }
    for (size_t i = 0; i < 5; ++i) {
      if (loss->layer_weights()[i] == 0.0) {
        EXPECT_EQ(terms.content[i], 0.0) << i;
        EXPECT_EQ(terms.style[i], 0.0) << i;
      } else {
        EXPECT_GT(terms.content[i], 0.0) << i;
        EXPECT_GT(terms.style[i], 0.0) << i;
      }
    }
  }
}

TEST(PerceptualLoss, ZeroForIdenticalImages) {
  const auto [p, t] = make_inputs(DType::F32);
  for (PerceptualVariant v : kVariants) {
    SCOPED_TRACE(perceptual_variant_name(v));
    EXPECT_NEAR(make_loss(v)->compute(Variable(t), Variable(t)).total.item(), 0.0, 1e-5);
  }
}

TEST(PerceptualLoss, VggStaysFrozenAndInEvalMode) {
  auto loss = make_loss(PerceptualVariant::MODEL2);
  const nn::StateDict before = loss->state_dict();
  std::vector<Tensor> copies;
  for (const auto& [k, v] : before) copies.push_back(v.clone());

  // An owner's train() and unfreeze() reach the VGG; compute() puts it back.
  loss->train();
  loss->unfreeze();
  EXPECT_TRUE(loss->vgg().is_training());
  const auto [p, t] = make_inputs(DType::F32);
  const Variable pred(p, true), target(t, true);
  const PerceptualTerms terms = loss->compute(pred, target);
  EXPECT_FALSE(loss->vgg().is_training());
  EXPECT_EQ(loss->num_parameters(true), 0);
  terms.total.backward();

  // Gradients reach pred and nothing else.
  ASSERT_TRUE(pred.grad().defined());
  EXPECT_GT(test::nmse(Tensor::zeros(p.shape()), pred.grad()), 0.0);
  EXPECT_FALSE(target.grad().defined());
  for (const auto& [name, param] : loss->named_parameters()) EXPECT_FALSE(param.grad().defined()) << name;

  // Eval mode: no BatchNorm statistic moved, nothing else changed.
  const nn::StateDict after = loss->state_dict();
  for (size_t i = 0; i < after.size(); ++i)
    EXPECT_EQ(after[i].second.to_vector(), copies[i].to_vector()) << after[i].first;
}

TEST(PerceptualLoss, RecordsTheVggLayersAndItsOutput) {
  auto loss = make_loss(PerceptualVariant::MODEL1);
  const auto [p, t] = make_inputs(DType::F32);
  nn::ActivationRecorder recorder(*loss);
  loss->compute(Variable(p), Variable(t));
  bool saw_last_tap = false, saw_root = false, saw_past_last_tap = false;
  for (const auto& r : recorder.records()) {
    saw_last_tap |= r.name == "vgg.features.42";
    saw_past_last_tap |= r.name == "vgg.features.43";
    if (r.name.empty()) {
      saw_root = true;
      EXPECT_EQ(r.type_name, "PerceptualLoss");
      EXPECT_EQ(r.output_shape, Shape{});
    }
  }
  EXPECT_TRUE(saw_last_tap);
  EXPECT_TRUE(saw_root);
  EXPECT_FALSE(saw_past_last_tap);  // the stack runs only as far as the deepest tap
}

TEST(PerceptualLoss, GradientsTrainAnImageTowardsTheTarget) {
  // Fitting a free image to the target by Adam on the loss alone: the gradients are usable, and the loss falls.
  for (PerceptualVariant v : {PerceptualVariant::MODEL1, PerceptualVariant::MODEL3}) {
    SCOPED_TRACE(perceptual_variant_name(v));
    auto loss = make_loss(v);
    const auto [p, t] = make_inputs(DType::F32, {1, 3, 32, 32});
    const Variable image(p.clone(), true);
    nn::AdamOptions o;
    o.lr = 0.05;
    nn::Adam opt({image}, o);
    const double first = loss->compute(image, Variable(t)).total.item();
    double last = first;
    for (int step = 0; step < 15; ++step) {
      opt.zero_grad();
      const Variable total = loss->compute(image, Variable(t)).total;
      last = total.item();
      total.backward();
      opt.step();
    }
    EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
  }
}

TEST(PerceptualLoss, UserErrors) {
  auto loss = make_loss(PerceptualVariant::MODEL2);
  auto expect_error = [&](const Tensor& pred, const Tensor& target, const std::string& needle) {
    try {
      loss->compute(Variable(pred), Variable(target));
      ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(Tensor::zeros({1, 3, 32, 32}), Tensor::zeros({1, 3, 32, 16}), "(1, 3, 32, 16)");
  expect_error(Tensor::zeros({1, 1, 32, 32}), Tensor::zeros({1, 1, 32, 32}), "(N, 3, H, W)");
  expect_error(Tensor::zeros({1, 3, 8, 32}), Tensor::zeros({1, 3, 8, 32}), "16x16");
  expect_error(Tensor::zeros({1, 3, 32, 32}, DType::F64), Tensor::zeros({1, 3, 32, 32}, DType::F64), "f32");
  Generator gen(1);
  EXPECT_THROW(PerceptualLoss(gen, PerceptualVariant::MODEL1, 0.0), Error);
}

}  // namespace
}  // namespace fg::models
