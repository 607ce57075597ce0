// The cross-channel network (models/cross_channel.h, SPEC.md section A): parameter counts at width 1 (the paper's
// ~32 M per sub-network and ~96 M in all, and the exact counts of the PyTorch twin in
// tools/golden_cross_channel.py), names, output shapes of every block, the wiring of the three sub-networks, the
// combined loss against a hand computation, input checks, and a short training run on a synthetic task.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "autograd/ops.h"
#include "models/cross_channel.h"
#include "nn/init.h"
#include "nn/optim.h"
#include "nn/recorder.h"
#include "tests/support/test_util.h"

namespace fg::models {
namespace {

// The exact counts that `/usr/bin/python3 tools/golden_cross_channel.py --count` prints for the PyTorch twin.
constexpr int64_t kSubNet3 = 32953025;  // a sub-network with 3 input channels
constexpr int64_t kSubNet2 = 32952449;  // with 2 input channels
constexpr int64_t kFull = 98858499;

bool within(int64_t count, double target, double tolerance) {
  return std::fabs(double(count) - target) <= tolerance * target;
}

std::map<std::string, Shape> recorded_shapes(const nn::Module& net, const std::function<void()>& run) {
  nn::ActivationRecorder rec(net);
  run();
  std::map<std::string, Shape> shapes;
  for (const auto& r : rec.records()) shapes[r.name] = r.output_shape;
  return shapes;
}

// The output shapes every sub-network's blocks must have at width 1 on a 64 x 64 input.
void expect_block_shapes(const std::map<std::string, Shape>& shapes, const std::string& prefix) {
  const int64_t c[10] = {64, 128, 256, 512, 512, 512, 256, 128, 64, 32};
  const int64_t s[10] = {32, 16, 8, 4, 4, 4, 8, 16, 32, 64};
  for (int i = 0; i < 10; ++i) {
    const std::string name = prefix + ".blocks." + std::to_string(i);
    ASSERT_TRUE(shapes.count(name)) << name;
    EXPECT_EQ(shapes.at(name), (Shape{1, c[i], s[i], s[i]})) << name;
  }
  EXPECT_EQ(shapes.at(prefix + ".out"), (Shape{1, 1, 64, 64}));
  EXPECT_EQ(shapes.at(prefix), (Shape{1, 1, 64, 64}));
}

TEST(CrossChannel, FullWidthOneCountsAndShapes) {
  Generator gen(1);
  CrossChannelNet net(gen, CrossChannelVariant::FULL, 1.0);
  EXPECT_EQ(net.type_name(), "CrossChannelNet");
  ASSERT_EQ(net.named_children().size(), 3u);
  EXPECT_EQ(net.named_children()[0].first, "mask_net");
  EXPECT_EQ(net.named_children()[1].first, "cross_net");
  EXPECT_EQ(net.named_children()[2].first, "final_net");
  const int64_t mask = net.child("mask_net")->num_parameters();
  const int64_t cross = net.child("cross_net")->num_parameters();
  const int64_t fin = net.child("final_net")->num_parameters();
  EXPECT_EQ(mask, kSubNet3);
  EXPECT_EQ(cross, kSubNet2);
  EXPECT_EQ(fin, kSubNet3);
  EXPECT_EQ(net.num_parameters(), kFull);
  for (int64_t n : {mask, cross, fin}) EXPECT_TRUE(within(n, 32e6, 0.15)) << n;
  EXPECT_TRUE(within(net.num_parameters(), 96e6, 0.15)) << net.num_parameters();

  // Names and shapes of a few state-dict entries.
  std::map<std::string, Shape> sd;
  for (const auto& [k, v] : net.state_dict()) sd[k] = v.shape();
  EXPECT_EQ(sd.at("mask_net.blocks.0.conv1.weight"), (Shape{64, 3, 3, 3}));
  EXPECT_EQ(sd.at("cross_net.blocks.0.conv1.weight"), (Shape{64, 2, 3, 3}));
  EXPECT_EQ(sd.at("final_net.blocks.0.conv1.weight"), (Shape{64, 3, 3, 3}));
  EXPECT_EQ(sd.at("mask_net.blocks.0.conv3.weight"), (Shape{64, 64, 3, 3}));
  EXPECT_EQ(sd.at("mask_net.blocks.3.bn.running_var"), (Shape{512}));
  EXPECT_EQ(sd.at("mask_net.blocks.4.conv2.weight"), (Shape{512, 512, 3, 3}));
  EXPECT_EQ(sd.at("mask_net.blocks.6.conv1.weight"), (Shape{512, 1024, 3, 3}));
  EXPECT_EQ(sd.at("mask_net.blocks.6.conv3.weight"), (Shape{256, 512, 3, 3}));
  EXPECT_EQ(sd.at("mask_net.blocks.9.conv1.weight"), (Shape{64, 128, 3, 3}));
  EXPECT_EQ(sd.at("mask_net.blocks.9.bn.num_batches_tracked"), (Shape{}));
  EXPECT_EQ(sd.at("final_net.out.weight"), (Shape{1, 32, 1, 1}));
  EXPECT_EQ(sd.at("final_net.out.bias"), (Shape{1}));
  EXPECT_EQ(sd.size(), 3u * (10 * 3 * 2 + 10 * 5 + 2));  // per sub-net: 30 convs (w, b), 10 BNs (5), out (w, b)

  // Forward only (no graph) on 1 x 3 x 64 x 64, eval mode; the recorder sees every block.
  net.eval();
  const Variable x(test::random_tensor({1, 3, 64, 64}, 5, DType::F32, 0.0, 1.0));
  CrossChannelOutput out;
  const auto shapes = recorded_shapes(net, [&] {
    NoGradGuard no_grad;
    out = net.forward_all(x);
  });
  for (const char* p : {"mask_net", "cross_net", "final_net"}) expect_block_shapes(shapes, p);
  EXPECT_EQ(shapes.at(""), (Shape{1, 1, 64, 64}));
  EXPECT_EQ(shapes.at("mask_net.blocks.6.up"), (Shape{1, 512, 8, 8}));
  EXPECT_EQ(out.mask_logits.shape(), (Shape{1, 1, 64, 64}));
  EXPECT_EQ(out.b_cross.shape(), (Shape{1, 1, 64, 64}));
  EXPECT_EQ(out.b_final.shape(), (Shape{1, 1, 64, 64}));
  for (double v : out.b_final.data().to_vector()) ASSERT_TRUE(std::isfinite(v));
}

TEST(CrossChannel, NoMaskWidthOneCountsAndShapes) {
  Generator gen(2);
  CrossChannelNet net(gen, CrossChannelVariant::NO_MASK);
  ASSERT_EQ(net.named_children().size(), 2u);
  EXPECT_EQ(net.named_children()[0].first, "cross_net");
  EXPECT_EQ(net.named_children()[1].first, "final_net");
  EXPECT_EQ(net.child("cross_net")->num_parameters(), kSubNet2);
  EXPECT_EQ(net.child("final_net")->num_parameters(), kSubNet2);  // final input (B', B_damaged)
  EXPECT_EQ(net.num_parameters(), 2 * kSubNet2);
  EXPECT_TRUE(within(net.num_parameters(), 64e6, 0.15));
  net.eval();
  CrossChannelOutput out;
  const auto shapes = recorded_shapes(net, [&] {
    NoGradGuard no_grad;
    out = net.forward_all(Variable(test::random_tensor({1, 3, 64, 64}, 6, DType::F32, 0.0, 1.0)));
  });
  for (const char* p : {"cross_net", "final_net"}) expect_block_shapes(shapes, p);
  EXPECT_FALSE(out.mask_logits.defined());
  EXPECT_EQ(out.b_cross.shape(), (Shape{1, 1, 64, 64}));
  EXPECT_EQ(out.b_final.shape(), (Shape{1, 1, 64, 64}));
}

TEST(CrossChannel, PlainUNetWidthOneCountsAndShapes) {
  Generator gen(3);
  CrossChannelNet net(gen, CrossChannelVariant::PLAIN_UNET);
  ASSERT_EQ(net.named_children().size(), 1u);
  EXPECT_EQ(net.named_children()[0].first, "unet");
  EXPECT_EQ(net.num_parameters(), kSubNet3);
  EXPECT_TRUE(within(net.num_parameters(), 32e6, 0.15));
  net.eval();
  Variable y;
  const auto shapes = recorded_shapes(net, [&] {
    NoGradGuard no_grad;
    y = net(Variable(test::random_tensor({1, 3, 64, 64}, 7, DType::F32, 0.0, 1.0)));
  });
  expect_block_shapes(shapes, "unet");
  EXPECT_EQ(y.shape(), (Shape{1, 1, 64, 64}));
}

TEST(CrossChannel, WidthScalesChannels) {
  Generator gen(4);
  SubUNet half(gen, 3, 0.5);
  EXPECT_EQ(half.block_channels(), (std::vector<int64_t>{32, 64, 128, 256, 256, 256, 128, 64, 32, 16}));
  SubUNet tiny(gen, 3, 1.0 / 64);
  EXPECT_EQ(tiny.block_channels(), (std::vector<int64_t>{1, 2, 4, 8, 8, 8, 4, 2, 1, 1}));
  EXPECT_THROW(SubUNet(gen, 3, 0.0), Error);
  EXPECT_THROW(SubUNet(gen, 3, -1.0), Error);
  EXPECT_THROW(CrossChannelNet(gen, CrossChannelVariant::FULL, std::nan("")), Error);
  EXPECT_THROW(SubUNet(gen, 0, 1.0), Error);
}

// Forward and backward at width 1/8 for each variant: shapes, which outputs exist, every parameter and the input
// get finite, non-zero gradients.
TEST(CrossChannel, SmallWidthForwardBackward) {
  for (auto variant : {CrossChannelVariant::FULL, CrossChannelVariant::NO_MASK, CrossChannelVariant::PLAIN_UNET}) {
    SCOPED_TRACE(cross_channel_variant_name(variant));
    Generator gen(10);
    CrossChannelNet net(gen, variant, 0.125);
    const Variable x(test::random_tensor({2, 3, 32, 48}, 11, DType::F32, 0.0, 1.0), true);
    const Variable mask(test::random_tensor({2, 1, 32, 48}, 12, DType::F32, 0.0, 1.0));
    const Variable b(test::random_tensor({2, 1, 32, 48}, 13, DType::F32, 0.0, 1.0));
    const CrossChannelOutput out = net.forward_all(x);
    EXPECT_EQ(out.mask_logits.defined(), variant == CrossChannelVariant::FULL);
    EXPECT_EQ(out.b_cross.defined(), variant != CrossChannelVariant::PLAIN_UNET);
    ASSERT_TRUE(out.b_final.defined());
    for (const Variable* v : {&out.mask_logits, &out.b_cross, &out.b_final}) {
      if (v->defined()) {
        EXPECT_EQ(v->shape(), (Shape{2, 1, 32, 48}));
      }
    }
    cross_channel_loss(out, mask, b).backward();
    for (const auto& [name, p] : net.named_parameters()) {
      ASSERT_TRUE(p.grad().defined()) << name;
      double norm = 0;
      for (double g : p.grad().to_vector()) {
        ASSERT_TRUE(std::isfinite(g)) << name;
        norm += g * g;
      }
      EXPECT_GT(norm, 0.0) << name;
    }
    ASSERT_TRUE(x.grad().defined());
    EXPECT_EQ(x.grad().shape(), x.shape());
    // R and G reach every variant's output; B_damaged too (through the mask and final nets).
    for (int64_t c = 0; c < 3; ++c) {
      double norm = 0;
      for (double g : x.grad().slice(1, c, c + 1).to_vector()) norm += g * g;
      EXPECT_GT(norm, 0.0) << "channel " << c;
    }
  }
}

// The final net sees (sigmoid(mask logits), B', B_damaged), and the mask is strictly inside (0, 1).
TEST(CrossChannel, FullWiringAndMaskRange) {
  Generator gen(20);
  CrossChannelNet net(gen, CrossChannelVariant::FULL, 0.125);
  net.eval();
  NoGradGuard no_grad;
  const Variable x(test::random_tensor({2, 3, 32, 32}, 21, DType::F32, 0.0, 1.0));
  const CrossChannelOutput out = net.forward_all(x);
  const Tensor m = sigmoid(out.mask_logits).data();
  for (double v : m.to_vector()) {
    ASSERT_GT(v, 0.0);
    ASSERT_LT(v, 1.0);
  }
  auto& mask_net = *net.child("mask_net");
  auto& cross_net = *net.child("cross_net");
  auto& final_net = *net.child("final_net");
  const Variable logits = mask_net(x);
  const Variable b_cross = cross_net(slice(x, 1, 0, 2));
  const Variable b_final = final_net(concat({sigmoid(logits), b_cross, slice(x, 1, 2, 3)}, 1));
  EXPECT_ALL_CLOSE(logits.data(), out.mask_logits.data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(b_cross.data(), out.b_cross.data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(b_final.data(), out.b_final.data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(b_final.data(), net(x).data(), 0.0, 0.0);

  CrossChannelNet no_mask(gen, CrossChannelVariant::NO_MASK, 0.125);
  no_mask.eval();
  const CrossChannelOutput o2 = no_mask.forward_all(x);
  const Variable b2 = (*no_mask.child("cross_net"))(slice(x, 1, 0, 2));
  EXPECT_ALL_CLOSE(b2.data(), o2.b_cross.data(), 0.0, 0.0);
  const Variable f2 = (*no_mask.child("final_net"))(concat({b2, slice(x, 1, 2, 3)}, 1));
  EXPECT_ALL_CLOSE(f2.data(), o2.b_final.data(), 0.0, 0.0);
}

double hand_mse(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector(), vb = b.to_vector();
  double s = 0;
  for (size_t i = 0; i < va.size(); ++i) s += (va[i] - vb[i]) * (va[i] - vb[i]);
  return s / double(va.size());
}

double hand_bce(const Tensor& logits, const Tensor& target) {
  const auto z = logits.to_vector(), t = target.to_vector();
  double s = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    const double p = 1.0 / (1.0 + std::exp(-z[i]));
    s += -(t[i] * std::log(p) + (1 - t[i]) * std::log(1 - p));
  }
  return s / double(z.size());
}

TEST(CrossChannel, LossTermsPerVariantMatchAHandComputation) {
  const Variable x(test::random_tensor({2, 3, 16, 32}, 31, DType::F64, 0.0, 1.0));
  const Variable mask(test::random_tensor({2, 1, 16, 32}, 32, DType::F64, 0.0, 1.0));
  const Variable b(test::random_tensor({2, 1, 16, 32}, 33, DType::F64, 0.0, 1.0));
  for (auto variant : {CrossChannelVariant::FULL, CrossChannelVariant::NO_MASK, CrossChannelVariant::PLAIN_UNET}) {
    SCOPED_TRACE(cross_channel_variant_name(variant));
    Generator gen(30);
    CrossChannelNet net(gen, variant, 0.125);
    net.to(DType::F64);
    const CrossChannelOutput out = net.forward_all(x);
    const CrossChannelLossTerms t = cross_channel_loss_terms(out, mask, b);
    EXPECT_EQ(t.bce_mask.defined(), variant == CrossChannelVariant::FULL);
    EXPECT_EQ(t.mse_cross.defined(), variant != CrossChannelVariant::PLAIN_UNET);
    ASSERT_TRUE(t.mse_final.defined());
    double expected = hand_mse(out.b_final.data(), b.data());
    EXPECT_NEAR(t.mse_final.item(), expected, 1e-12);
    if (t.mse_cross.defined()) {
      const double c = hand_mse(out.b_cross.data(), b.data());
      EXPECT_NEAR(t.mse_cross.item(), c, 1e-12);
      expected += c;
    }
    if (t.bce_mask.defined()) {
      const double c = hand_bce(out.mask_logits.data(), mask.data());
      EXPECT_NEAR(t.bce_mask.item(), c, 1e-12);
      expected += c;
    }
    EXPECT_NEAR(t.total.item(), expected, 1e-12);
    EXPECT_EQ(cross_channel_loss(out, mask, b).item(), t.total.item());
    // Variants without a mask net need no true mask.
    if (variant != CrossChannelVariant::FULL) {
      EXPECT_NEAR(cross_channel_loss(out, Variable(), b).item(), expected, 1e-12);
    }
  }
}

TEST(CrossChannel, LossRejectsMissingOrMisshapenTargets) {
  Generator gen(40);
  CrossChannelNet net(gen, CrossChannelVariant::FULL, 0.0625);
  const Variable x(test::random_tensor({2, 3, 16, 16}, 41, DType::F32, 0.0, 1.0));
  const CrossChannelOutput out = net.forward_all(x);
  const Variable good(Tensor::zeros({2, 1, 16, 16}));
  const Variable bad(Tensor::zeros({2, 1, 16, 8}));
  EXPECT_THROW(cross_channel_loss(out, Variable(), good), Error);  // FULL needs the true mask
  EXPECT_THROW(cross_channel_loss(out, bad, good), Error);
  EXPECT_THROW(cross_channel_loss(out, good, bad), Error);
  EXPECT_THROW(cross_channel_loss(out, good, Variable()), Error);
  EXPECT_THROW(cross_channel_loss(CrossChannelOutput{}, good, good), Error);
  try {
    cross_channel_loss(out, Variable(), good);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("true mask"), std::string::npos) << e.what();
  }
}

TEST(CrossChannel, BadInputSizesAreErrors) {
  Generator gen(50);
  CrossChannelNet net(gen, CrossChannelVariant::FULL, 0.0625);
  auto message = [&](const Shape& shape) -> std::string {
    try {
      net(Variable(Tensor::zeros(shape)));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  for (const Shape& s : {Shape{1, 3, 40, 32}, Shape{1, 3, 32, 24}, Shape{1, 3, 8, 8}, Shape{1, 3, 0, 16}}) {
    const std::string m = message(s);
    EXPECT_NE(m.find("multiples of 16"), std::string::npos) << shape_str(s) << ": " << m;
  }
  for (const Shape& s : {Shape{1, 2, 32, 32}, Shape{1, 4, 32, 32}, Shape{3, 32, 32}}) {
    const std::string m = message(s);
    EXPECT_NE(m.find("(N, 3, H, W)"), std::string::npos) << shape_str(s) << ": " << m;
  }
  SubUNet sub(gen, 2, 0.0625);
  EXPECT_THROW(sub(Variable(Tensor::zeros({1, 3, 32, 32}))), Error);
  EXPECT_THROW(sub(Variable(Tensor::zeros({1, 2, 32, 20}))), Error);
  EXPECT_NO_THROW(sub(Variable(Tensor::zeros({2, 2, 16, 32}))));
}

TEST(CrossChannel, ParseVariant) {
  EXPECT_EQ(parse_cross_channel_variant("full"), CrossChannelVariant::FULL);
  EXPECT_EQ(parse_cross_channel_variant("no_mask"), CrossChannelVariant::NO_MASK);
  EXPECT_EQ(parse_cross_channel_variant("plain_unet"), CrossChannelVariant::PLAIN_UNET);
  for (auto v : {CrossChannelVariant::FULL, CrossChannelVariant::NO_MASK, CrossChannelVariant::PLAIN_UNET}) {
    EXPECT_EQ(parse_cross_channel_variant(cross_channel_variant_name(v)), v);
  }
  EXPECT_THROW(parse_cross_channel_variant("Full"), Error);
  EXPECT_THROW(parse_cross_channel_variant("unet"), Error);
  try {
    parse_cross_channel_variant("mask");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("full, no_mask or plain_unet"), std::string::npos) << e.what();
  }
}

// ---- a short training run on a synthetic version of the paper's task ----

// Smooth random red and green (4x4 blocks of uniform noise, softened by a 3x3 mean); blue = a fixed linear mix of
// them. The damaged blue replaces it, under a blobby mask (40 % of the area), by mid grey (even samples) or
// salt-and-pepper noise (odd samples): SPEC A's O = M N + (1 - M) I.
struct Batch {
  Tensor x, mask, b;
};

Tensor smooth_noise(Generator& gen, int64_t n, int64_t h, int64_t w) {
  Tensor coarse = Tensor::empty({n, 1, h / 4, w / 4});
  nn::init::uniform_(coarse, gen);
  NoGradGuard no_grad;
  return avg_pool2d(upsample_nearest2d(Variable(coarse), h, w), 3, 1, 1, false).data().contiguous();
}

Batch make_batch(Generator& gen, int64_t n, int64_t h, int64_t w) {
  const Tensor r = smooth_noise(gen, n, h, w), g = smooth_noise(gen, n, h, w);
  Tensor coarse = Tensor::empty({n, 1, h / 8, w / 8}), noise = Tensor::empty({n, 1, h, w});
  nn::init::uniform_(coarse, gen);
  nn::init::uniform_(noise, gen);
  const Tensor up = upsample_nearest2d(Variable(coarse), h, w).data().contiguous();
  Tensor b = Tensor::empty({n, 1, h, w}), mask = Tensor::empty({n, 1, h, w}), bd = Tensor::empty({n, 1, h, w});
  const float *pr = r.data<float>(), *pg = g.data<float>(), *pu = up.data<float>(), *pn = noise.data<float>();
  float *pb = b.data<float>(), *pm = mask.data<float>(), *pd = bd.data<float>();
  for (int64_t i = 0; i < b.numel(); ++i) {
    pb[i] = 0.2f * pr[i] + 0.7f * pg[i] + 0.05f;
    pm[i] = pu[i] > 0.6f ? 1.0f : 0.0f;
    const int64_t sample = i / (h * w);
    const float content = sample % 2 == 0 ? 0.5f : (pn[i] < 0.5f ? 0.0f : 1.0f);
    pd[i] = pm[i] * content + (1 - pm[i]) * pb[i];
  }
  return {concat({Variable(r), Variable(g), Variable(bd)}, 1).data(), mask, b};
}

// 150 Adam steps (lr 3e-3, batch 4 of 32 x 32) of the full network at width 1/8. Seeds 60..63 of the network all
// end with the total loss below 0.3 (from 1.1 - 1.5), the final MSE below 0.009 (leaving the damage costs 0.06)
// and the mask BCE below 0.29 (chance: 0.67); the bounds leave a margin over that.
TEST(CrossChannel, ShortTrainingRunLowersTheLoss) {
  Generator gen(60);
  CrossChannelNet net(gen, CrossChannelVariant::FULL, 0.125);
  Generator data(61);
  const Batch val = make_batch(data, 4, 32, 32);
  // Judged with batch statistics (training mode, no graph): after so few small-batch steps BatchNorm's running
  // averages still lag the weights and would make the judgement noisy.
  auto terms = [&] {
    NoGradGuard no_grad;
    const auto t = cross_channel_loss_terms(net.forward_all(Variable(val.x)), Variable(val.mask), Variable(val.b));
    return std::array<double, 3>{t.bce_mask.item(), t.mse_final.item(), t.total.item()};
  };
  const double identity_mse = hand_mse(val.x.slice(1, 2, 3), val.b);  // leaving B_damaged as it is
  const auto before = terms();

  nn::AdamOptions opts;
  opts.lr = 3e-3;
  nn::Adam opt(net.parameters(), opts);
  for (int step = 0; step < 150; ++step) {
    const Batch batch = make_batch(data, 4, 32, 32);
    opt.zero_grad();
    const Variable loss =
        cross_channel_loss(net.forward_all(Variable(batch.x)), Variable(batch.mask), Variable(batch.b));
    loss.backward();
    opt.step();
  }
  const auto after = terms();
  const std::string trace = "before: bce " + std::to_string(before[0]) + " mse " + std::to_string(before[1]) +
                            " total " + std::to_string(before[2]) + "; after: bce " + std::to_string(after[0]) +
                            " mse " + std::to_string(after[1]) + " total " + std::to_string(after[2]) +
                            "; identity mse " + std::to_string(identity_mse);
  EXPECT_LT(after[2], 0.35 * before[2]) << trace;
  EXPECT_LT(after[1], 0.25 * identity_mse) << trace;  // B'' beats leaving B_damaged as it is, by far
  EXPECT_LT(after[0], 0.45) << trace;                 // the mask net finds the damage (chance: 0.67)
}

}  // namespace
}  // namespace fg::models
