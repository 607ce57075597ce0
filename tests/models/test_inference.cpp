// The inference mode (models/inference.h): folding the BatchNorms keeps what both networks compute (exactly up to
// f64 rounding, and within the network's own f32 rounding in f32) and leaves no BatchNorm; f16 weights halve the
// weights' memory and stay within a stated bound of the f32 output; the errors say what was wrong.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "autograd/ops.h"
#include "models/cross_channel.h"
#include "models/dynamic_unet.h"
#include "models/inference.h"
#include "models/resnet.h"
#include "models/tiny_unet.h"
#include "tests/support/test_util.h"

namespace fg::models {
namespace {

// Trained-looking BatchNorms: the statistics and affine a fresh network has (0, 1, 1, 0) would make folding
// nearly an identity. Some gammas are negative, as training can leave them.
void randomise_batch_norms(nn::Module& net, uint64_t seed) {
  for (auto& [name, m] : net.named_modules()) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(m);
    if (!bn) continue;
    const int64_t C = bn->num_features();
    bn->running_mean().copy_(test::random_tensor({C}, seed++, DType::F32, -0.5, 0.5));
    bn->running_var().copy_(test::random_tensor({C}, seed++, DType::F32, 0.3, 2.0));
    bn->weight().set_data(test::random_tensor({C}, seed++, DType::F32, -0.6, 1.5));
    bn->bias().set_data(test::random_tensor({C}, seed++, DType::F32, -0.3, 0.3));
  }
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(DType::F64).contiguous(), y = b.to(DType::F64).contiguous();
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i) worst = std::max(worst, std::fabs(x.data<double>()[i] - y.data<double>()[i]));
  return worst;
}

double max_abs(const Tensor& a) {
  const Tensor x = a.to(DType::F64).contiguous();
  double m = 0;
  for (int64_t i = 0; i < x.numel(); ++i) m = std::max(m, std::fabs(x.data<double>()[i]));
  return m;
}

Tensor run(nn::Module& net, const Tensor& x) {
  NoGradGuard no_grad;
  return net(Variable(x)).data();
}

struct Case {
  std::string name;
  std::function<std::shared_ptr<nn::Module>()> make;  // the same weights every call
  Shape input;
  int64_t folded, affine;  // what the rewrite must report
};

// A Dynamic U-Net at width 1/8 with its self-attention on (gamma non-zero, so it matters), and the full
// cross-channel network at width 1/16.
std::vector<Case> cases() {
  return {
      {"dynamic_unet",
       [] {
         Generator gen(21);
         DynamicUNetConfig c;
         c.width = 0.125;
         auto net = std::make_shared<DynamicUNet>(gen, c);
         net->block(1).attn()->gamma().set_data(Tensor::full({1}, 0.5));
         randomise_batch_norms(*net, 100);
         net->eval();
         return std::static_pointer_cast<nn::Module>(net);
       },
       {1, 3, 64, 64},
       36,  // the encoder's: conv1/bn1, 16 blocks x 2, 3 downsamples
       5},  // the bridge's and the four blocks' (after a ReLU)
      {"cross_channel",
       [] {
         Generator gen(22);
         auto net = std::make_shared<CrossChannelNet>(gen, CrossChannelVariant::FULL, 0.0625);
         randomise_batch_norms(*net, 200);
         net->eval();
         return std::static_pointer_cast<nn::Module>(net);
       },
       {1, 3, 32, 32},
       0,    // every BatchNorm follows a ReLU
       30},  // 10 blocks x 3 sub-networks
  };
}

TEST(InferenceMode, FoldingIsExactInF64AndLeavesNoBatchNorm) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    auto net = c.make();
    net->to(DType::F64);
    const Tensor x = test::random_tensor(c.input, 5, DType::F64, 0.0, 1.0);
    const Tensor ref = run(*net, x);
    ASSERT_GT(count_batch_norms(*net), 0);
    const InferenceReport r = prepare_for_inference(*net, {});
    EXPECT_EQ(r.folded, c.folded);
    EXPECT_EQ(r.affine, c.affine);
    EXPECT_EQ(count_batch_norms(*net), 0);
    for (const auto& e : net->state_dict()) EXPECT_EQ(e.first.find("running_"), std::string::npos) << e.first;
    // The same function in exact arithmetic: in f64 only rounding at ~1e-16 relative separates them; 1e-10 of the
    // output's scale leaves room for the depth of the networks and nothing for a wrong formula.
    const Tensor got = run(*net, x);
    EXPECT_LE(max_abs_diff(got, ref), 1e-10 * std::max(1.0, max_abs(ref)));
  }
}

TEST(InferenceMode, FoldedF32OutputIsWithinTheNetworksOwnF32Rounding) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    auto net = c.make();
    auto exact = c.make();
    exact->to(DType::F64);
    const Tensor x = test::random_tensor(c.input, 6, DType::F32, 0.0, 1.0);
    const Tensor ref32 = run(*net, x);
    const Tensor ref64 = run(*exact, x.to(DType::F64));
    // How far f32 rounding alone takes the unfolded network from its exact (f64) output.
    const double rounding = max_abs_diff(ref32, ref64);
    ASSERT_GT(rounding, 0.0);
    prepare_for_inference(*net, {});
    const Tensor got = run(*net, x);
    // The folded network computes the same function with other roundings (the BatchNorm's scale applied to the
    // weights before the sums instead of after): its distance to the exact output is of the same size, so it is
    // within twice that of the unfolded output. 4x leaves room for a rounding that happens to fall the other way.
    EXPECT_LE(max_abs_diff(got, ref64), 4 * rounding);
    EXPECT_LE(max_abs_diff(got, ref32), 4 * rounding);
  }
}

TEST(InferenceMode, F16WeightsHalveTheWeightsAndStayCloseToF32) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    auto net = c.make();
    prepare_for_inference(*net, {});
    const Tensor x = test::random_tensor(c.input, 7, DType::F32, 0.0, 1.0);
    const Tensor ref = run(*net, x);
    InferenceOptions o;
    o.fold_batch_norm = false;  // already folded
    o.f16_weights = true;
    const InferenceReport r = prepare_for_inference(*net, o);
    EXPECT_GT(r.f16_layers, 0);
    // Every convolution's weight and bias is f16 except the spectrally normalised attention's (the Dynamic U-Net's
    // query, key, value), and the ChannelAffines' (C) scales stay f32: a fraction of a percent of the bytes.
    EXPECT_LE(double(r.bytes_after), 0.505 * double(r.bytes_before));
    EXPECT_GE(double(r.bytes_after), 0.5 * double(r.bytes_before));
    const Tensor got = run(*net, x);
    EXPECT_EQ(got.dtype(), DType::F32);
    const double err = max_abs_diff(got, ref);
    EXPECT_GT(err, 0.0);  // the f16 weights are really used
    // f16 keeps 11 significant bits: each weight moves by at most u = 2^-11 of itself, so each layer's sums move by
    // at most u of the sum of their terms' magnitudes. Along the longest chain (about 40 layers, the cross-channel
    // network's final net reading the other two) that adds up to at most ~40 u of the output's scale when the
    // layers' gains are about 1, as they are for these initialisations.
    EXPECT_LE(err, 40.0 * std::ldexp(1.0, -11) * std::max(1.0, max_abs(ref))) << "max |f16 - f32| " << err;
  }
}

TEST(InferenceMode, ErrorsSayWhatWasWrong) {
  Generator gen(23);
  DynamicUNetConfig config;
  config.width = 0.125;
  DynamicUNet net(gen, config);
  EXPECT_NE(test::error_of([&] { prepare_for_inference(net, {}); }).find("eval"), std::string::npos);
  net.eval();
  prepare_for_inference(net, {});
  EXPECT_NE(test::error_of([&] { prepare_for_inference(net, {}); }).find("already folded"), std::string::npos);

  // A weight beyond f16's range: nothing is converted.
  TinyUNet tiny(gen, 3, 3, 4);
  tiny.eval();
  auto* conv = dynamic_cast<nn::Conv2d*>(tiny.child("dec1").get());
  ASSERT_NE(conv, nullptr);
  conv->weight().set_data(Tensor::full(conv->weight().shape(), 1e5));
  InferenceOptions o;
  o.f16_weights = true;
  EXPECT_NE(test::error_of([&] { prepare_for_inference(tiny, o); }).find("beyond f16's range"), std::string::npos);
  for (const auto& p : tiny.named_parameters()) EXPECT_EQ(p.second.dtype(), DType::F32) << p.first;
}

TEST(InferenceMode, ResNet34ClassifierFoldsEveryBatchNorm) {
  Generator gen(25);
  ResNet34 net(gen, 0.125, 10);
  randomise_batch_norms(net, 400);
  net.eval();
  net.to(DType::F64);
  const Tensor x = test::random_tensor({2, 3, 32, 32}, 9, DType::F64, 0.0, 1.0);
  const Tensor ref = run(net, x);
  const InferenceReport r = prepare_for_inference(net, {});
  EXPECT_EQ(r.folded, 36);
  EXPECT_EQ(r.affine, 0);
  EXPECT_EQ(count_batch_norms(net), 0);
  EXPECT_LE(max_abs_diff(run(net, x), ref), 1e-10 * std::max(1.0, max_abs(ref)));
}

TEST(InferenceMode, TinyUNetFoldsToo) {
  Generator gen(24);
  TinyUNet tiny(gen, 3, 3, 4);
  randomise_batch_norms(tiny, 300);
  tiny.eval();
  tiny.to(DType::F64);
  const Tensor x = test::random_tensor({1, 3, 16, 16}, 8, DType::F64, 0.0, 1.0);
  const Tensor ref = run(tiny, x);
  const InferenceReport r = prepare_for_inference(tiny, {});
  EXPECT_EQ(r.affine, 4);
  EXPECT_EQ(count_batch_norms(tiny), 0);
  EXPECT_LE(max_abs_diff(run(tiny, x), ref), 1e-10 * std::max(1.0, max_abs(ref)));
}

}  // namespace
}  // namespace fg::models
