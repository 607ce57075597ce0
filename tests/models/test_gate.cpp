// The damage gate (models/gate.h) and the gated networks built on it: the gate's forward against its formula, its
// gradients by hand and by finite differences, exact pass-through where the mask is 0, and the gated forms of the
// Dynamic U-Net and the cross-channel network (their extra head, their outputs made of the gate, the ungated
// weights unchanged by gating, the errors a user can cause).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "autograd/ops.h"
#include "models/cross_channel.h"
#include "models/dynamic_unet.h"
#include "models/gate.h"
#include "models/registry.h"
#include "tensor/error.h"
#include "tests/support/model_util.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using models::damage_gate;

TEST(DamageGate, ForwardIsTheBlendOfImageAndInput) {
  const Tensor logits = test::random_normal({2, 1, 5, 7}, 1);
  const Tensor image = test::random_tensor({2, 3, 5, 7}, 2);
  const Tensor input = test::random_tensor({2, 3, 5, 7}, 3);
  const Tensor out = damage_gate(Variable(logits), Variable(image), Variable(input)).data();
  ASSERT_EQ(out.shape(), (Shape{2, 3, 5, 7}));
  const auto z = logits.to_vector(), a = image.to_vector(), b = input.to_vector(), o = out.to_vector();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 35; ++i) {
        const size_t k = size_t((n * 3 + c) * 35 + i);
        const double m = 1.0 / (1.0 + std::exp(-z[size_t(n * 35 + i)]));
        // f32 sigmoid, subtraction, product and sum of values below 2 in magnitude: a few ulps of 2.
        EXPECT_NEAR(o[k], m * a[k] + (1 - m) * b[k], 2e-6) << "at " << k;
      }
}

TEST(DamageGate, ZeroMaskPassesTheInputThroughExactly) {
  // sigmoid(-200) underflows to 0 in f32, so out = input + 0 * (image - input) is the input bit for bit, whatever
  // the image is; at +200 the mask is 1 and the output is the image (to one rounding of input + (image - input)).
  const Tensor image = test::random_tensor({1, 3, 4, 4}, 4, DType::F32, -3.0, 3.0);
  const Tensor input = test::random_tensor({1, 3, 4, 4}, 5, DType::F32, 0.0, 1.0);
  const Tensor off = damage_gate(Variable(Tensor::full({1, 1, 4, 4}, -200.0)), Variable(image), Variable(input)).data();
  EXPECT_ALL_CLOSE(input, off, 0.0, 0.0);
  const Tensor on = damage_gate(Variable(Tensor::full({1, 1, 4, 4}, 200.0)), Variable(image), Variable(input)).data();
  EXPECT_ALL_CLOSE(image, on, 1e-6, 0.0);
}

TEST(DamageGate, GradientsByHandAndByFiniteDifferences) {
  const Tensor logits = test::random_normal({1, 1, 3, 4}, 6);
  const Tensor image = test::random_tensor({1, 2, 3, 4}, 7);
  const Tensor input = test::random_tensor({1, 2, 3, 4}, 8);
  Variable z(logits, true), a(image, true), b(input, true);
  sum(damage_gate(z, a, b)).backward();
  // d/d image = m, d/d input = 1 - m (per channel), d/d logit = m (1 - m) sum_c (image - input).
  const auto zv = logits.to_vector(), av = image.to_vector(), bv = input.to_vector();
  const auto ga = a.grad().to_vector(), gb = b.grad().to_vector(), gz = z.grad().to_vector();
  for (size_t i = 0; i < 12; ++i) {
    const double m = 1.0 / (1.0 + std::exp(-zv[i]));
    double dz = 0;
    for (size_t c = 0; c < 2; ++c) {
      EXPECT_NEAR(ga[c * 12 + i], m, 1e-6);
      EXPECT_NEAR(gb[c * 12 + i], 1 - m, 1e-6);
      dz += m * (1 - m) * (av[c * 12 + i] - bv[c * 12 + i]);
    }
    EXPECT_NEAR(gz[i], dz, 1e-6);
  }
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return damage_gate(v[0], v[1], v[2]); }, {logits, image, input});
}

TEST(DamageGate, MisshapenInputsAreErrors) {
  const Variable img(Tensor::zeros({1, 3, 4, 4}));
  EXPECT_NE(test::error_of([&] {
              damage_gate(Variable(Tensor::zeros({1, 3, 4, 4})), img, img);
            }).find("(N, 1, H, W)"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              damage_gate(Variable(Tensor::zeros({1, 1, 4, 5})), img, img);
            }).find("damage_gate"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              damage_gate(Variable(Tensor::zeros({1, 1, 4, 4})), img, Variable(Tensor::zeros({1, 1, 4, 4})));
            }).find("damage_gate"),
            std::string::npos);
}

TEST(GatedDynamicUNet, AddsOnlyTheMaskHeadAndGatesTheOutput) {
  models::DynamicUNetConfig cfg;
  cfg.width = 0.125;
  Generator g1(11), g2(11);
  models::DynamicUNet plain(g1, cfg);
  cfg.gated = true;
  models::DynamicUNet gated(g2, cfg);
  // The mask head is built last, so every other weight is the ungated network's.
  std::map<std::string, Tensor> a = test::state_map(plain.state_dict()), b = test::state_map(gated.state_dict());
  ASSERT_EQ(b.size(), a.size() + 2);
  ASSERT_EQ(b.at("mask_head.weight").shape(), (Shape{1, 12 + 3, 1, 1}));  // 96w + 3 at w = 1/8
  EXPECT_ALL_CLOSE(Tensor::full({1}, models::kMaskPriorLogit), b.at("mask_head.bias"), 0.0, 0.0);
  for (const auto& [name, t] : a) EXPECT_ALL_CLOSE(t, b.at(name), 0.0, 0.0);

  plain.eval();
  gated.eval();
  NoGradGuard no_grad;
  const Variable x(test::random_normal({1, 3, 64, 64}, 12));
  const models::GatedOutput o = gated.forward_gated(x);
  ASSERT_EQ(o.mask_logits.shape(), (Shape{1, 1, 64, 64}));
  EXPECT_ALL_CLOSE(plain(x).data(), o.image.data(), 0.0, 0.0);  // the image head is the ungated network
  EXPECT_ALL_CLOSE(damage_gate(o.mask_logits, o.image, x).data(), o.output.data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(o.output.data(), gated(x).data(), 0.0, 0.0);
  const auto outputs = models::run_model(gated, x);
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_EQ(outputs[1].first, "mask_logits");
}

TEST(GatedDynamicUNet, MaskHeadTrainsAndBadConfigsAreErrors) {
  models::DynamicUNetConfig cfg;
  cfg.width = 0.125;
  cfg.gated = true;
  Generator gen(13);
  models::DynamicUNet net(gen, cfg);
  net.train();
  const models::GatedOutput o = net.forward_gated(Variable(test::random_normal({2, 3, 32, 32}, 14)));
  add(mse_loss(o.output, Variable(test::random_normal({2, 3, 32, 32}, 15))),
      bce_with_logits(o.mask_logits, Variable(test::random_tensor({2, 1, 32, 32}, 16, DType::F32, 0.0, 1.0))))
      .backward();
  std::map<std::string, Variable> params;
  for (const auto& [name, p] : net.named_parameters()) params[name] = p;
  for (const char* name : {"mask_head.weight", "mask_head.bias", "head.weight"}) {
    const Variable p = params.at(name);
    ASSERT_TRUE(p.grad().defined()) << name;
    double s = 0;
    for (double v : p.grad().to_vector()) s += std::fabs(v);
    EXPECT_GT(s, 0.0) << name;
  }
  cfg.out_channels = 1;
  Generator g2(1);
  EXPECT_NE(test::error_of([&] { models::DynamicUNet bad(g2, cfg); }).find("out_channels must be 3"),
            std::string::npos);
  models::DynamicUNetConfig plain;
  plain.width = 0.125;
  models::DynamicUNet ungated(g2, plain);
  EXPECT_NE(test::error_of([&] {
              ungated.forward_gated(Variable(Tensor::zeros({1, 3, 32, 32})));
            }).find("gated"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { models::create_model("tiny_unet", g2, 1.0, true); }).find("no gated form"),
            std::string::npos);
}

TEST(GatedCrossChannel, GatesTheBlueChannelWithTheMaskNet) {
  Generator g1(21), g2(21);
  models::CrossChannelNet plain(g1, models::CrossChannelVariant::FULL, 0.125);
  models::CrossChannelNet gated(g2, models::CrossChannelVariant::FULL, 0.125, /*gated=*/true);
  EXPECT_TRUE(gated.gated());
  const auto a = test::state_map(plain.state_dict()), b = test::state_map(gated.state_dict());
  ASSERT_EQ(a.size(), b.size());  // no new parameter: gated and ungated share weight files
  EXPECT_ALL_CLOSE(Tensor::full({1}, models::kMaskPriorLogit), b.at("mask_net.out.bias"), 0.0, 0.0);
  gated.eval();
  NoGradGuard no_grad;
  const Variable x(test::random_tensor({2, 3, 32, 32}, 22, DType::F32, 0.0, 1.0));
  const models::CrossChannelOutput o = gated.forward_all(x);
  ASSERT_TRUE(o.b_ungated.defined());
  EXPECT_ALL_CLOSE(damage_gate(o.mask_logits, o.b_ungated, slice(x, 1, 2, 3)).data(), o.b_final.data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(o.b_final.data(), gated(x).data(), 0.0, 0.0);
  // The prior bias makes an untrained gated network keep most of the damaged blue channel.
  double largest = 0;
  for (double v : sigmoid(o.mask_logits).data().to_vector()) largest = std::max(largest, v);
  EXPECT_LT(largest, 0.5);

  Generator g3(1);
  EXPECT_NE(test::error_of([&] {
              models::CrossChannelNet bad(g3, models::CrossChannelVariant::NO_MASK, 0.125, true);
            }).find("only the full network can be gated"),
            std::string::npos);
}

}  // namespace
}  // namespace fg
