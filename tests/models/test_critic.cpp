// The NoGAN critic (models/critic.h): its width-1 parameter count and state-dict names against the PyTorch twin
// tools/golden_backbones.py builds (stored in tests/golden/backbones.safetensors), the head's Sequential indices,
// spectral norm on every head conv, per-patch output shapes and the input-size check, dropout, freezing the body,
// loading torchvision weights into the body, and that a few Adam steps on BCE with logits separate real from fake.
// The numbers are compared with PyTorch in tests/golden/test_golden_backbones.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include "autograd/ops.h"
#include "models/critic.h"
#include "nn/optim.h"
#include "tests/support/model_util.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using test::state_map;
using test::state_lines;
using test::error_of;

using models::NoGanCritic;

constexpr double kTiny = 1.0 / 64;  // head 8 -> 16 -> 32 -> 64 -> 1 channels, self-attention on 16

TEST(NoGanCritic, FullWidthCountAndNamesMatchThePyTorchTwin) {
  Generator gen(1);
  NoGanCritic critic(gen, 1.0);
  const auto& meta = test::golden("backbones").metadata;
  const int64_t twin = std::stoll(meta.at("_critic_w1.num_parameters"));
  std::printf("[ counts   ] NoGanCritic at width 1: %lld parameters (PyTorch twin %lld; body %lld, head %lld)\n",
              (long long)critic.num_parameters(), (long long)twin, (long long)critic.body()->num_parameters(),
              (long long)critic.head()->num_parameters());
  EXPECT_EQ(critic.num_parameters(), twin);
  EXPECT_EQ(critic.num_parameters(), 198828865);
  EXPECT_EQ(critic.body()->num_parameters(), 21284672);
  // head: convs 512*1024*16 + 1024, 1024*2048*16 + 2048, 2048*4096*16 + 4096, 4096*16; attention 2*1024*128 +
  // 1024*1024 + 1 (gamma).
  EXPECT_EQ(critic.head()->num_parameters(), 8389632 + 33556480 + 134221824 + 65536 + 1310721);
  EXPECT_EQ(state_lines(critic), meta.at("_critic_w1.state_names"));
  EXPECT_EQ(critic.type_name(), "NoGanCritic");
}

TEST(NoGanCritic, HeadLayoutAndSpectralNorm) {
  Generator gen(2);
  NoGanCritic critic(gen, kTiny);
  const auto head = critic.head();
  ASSERT_EQ(head->size(), 8u);
  const char* types[] = {"Dropout2d", "Sequential", "Dropout2d",  "Sequential",
                         "Dropout2d", "Sequential", "Sequential", "Flatten"};
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ((*head)[i]->type_name(), types[i]) << i;
  EXPECT_NE((*head)[0]->repr().find("p=0.15"), std::string::npos) << (*head)[0]->repr();
  const auto block1 = head->at<nn::Sequential>(1);
  ASSERT_EQ(block1->size(), 3u);
  EXPECT_EQ((*block1)[1]->repr(), "LeakyReLU(negative_slope=0.2)");
  EXPECT_EQ((*block1)[2]->type_name(), "SelfAttention");
  for (size_t i : {1, 3, 5, 6}) {
    const auto conv = head->at<nn::Sequential>(i)->at<nn::Conv2d>(0);
    EXPECT_NE(conv->spectral_norm(), nullptr) << "head." << i << ".0";
    EXPECT_EQ(conv->kernel_size(), 4);
    EXPECT_EQ(conv->params().pad_h, i == 6 ? 0 : 1);
    EXPECT_EQ(conv->bias().defined(), i != 6);
  }
  const auto sd = state_map(critic.state_dict());
  EXPECT_EQ(sd.at("head.1.0.weight_orig").shape(), (Shape{16, 8, 4, 4}));
  EXPECT_EQ(sd.at("head.1.0.weight_u").shape(), (Shape{16}));
  EXPECT_EQ(sd.at("head.1.0.weight_v").shape(), (Shape{8 * 16}));
  EXPECT_EQ(sd.at("head.1.2.query.weight_orig").shape(), (Shape{2, 16, 1}));
  EXPECT_EQ(sd.at("head.5.0.weight_orig").shape(), (Shape{64, 32, 4, 4}));
  EXPECT_EQ(sd.at("head.6.0.weight_orig").shape(), (Shape{1, 64, 4, 4}));
  EXPECT_EQ(sd.count("head.6.0.bias"), 0u);
  EXPECT_EQ(sd.count("head.1.0.weight"), 0u);
  for (double v : sd.at("head.3.0.bias").to_vector()) EXPECT_EQ(v, 0.0);  // fastai's conv_layer zeroes biases
}

TEST(NoGanCritic, PerPatchLogitsAndInputSizeCheck) {
  Generator gen(3);
  NoGanCritic critic(gen, kTiny);
  critic.eval();
  EXPECT_EQ(critic(Variable(test::random_tensor({1, 3, 256, 256}, 4))).shape(), (Shape{1, 4}));  // 8x8 -> 2x2
  EXPECT_EQ(critic(Variable(test::random_tensor({2, 3, 193, 225}, 5))).shape(), (Shape{2, 2}));  // 7x8 -> 1x2
  EXPECT_EQ(NoGanCritic::patches(256, 256), 4);
  EXPECT_EQ(NoGanCritic::patches(193, 193), 1);
  EXPECT_EQ(NoGanCritic::patches(192, 512), 0);
  EXPECT_EQ(NoGanCritic::patches(512, 320), 40);  // 16 x 10 body output -> 10 x 4
  const std::string msg = error_of([&] { critic(Variable(Tensor::zeros({1, 3, 192, 256}))); });
  EXPECT_NE(msg.find("193"), std::string::npos) << msg;
  EXPECT_THROW(critic(Variable(Tensor::zeros({1, 1, 256, 256}))), Error);
}

TEST(NoGanCritic, ConstructorChecks) {
  Generator gen(4);
  const std::string msg = error_of([&] { NoGanCritic c(gen, 1.0 / 256); });
  EXPECT_NE(msg.find("self-attention"), std::string::npos) << msg;
  EXPECT_THROW(NoGanCritic(gen, kTiny, 1.0), Error);
  EXPECT_THROW(NoGanCritic(gen, kTiny, -0.1), Error);
  EXPECT_THROW(NoGanCritic(gen, 0.0), Error);
}

TEST(NoGanCritic, DropoutOnlyInTrainingAndSpectralNormIteratesOnlyInTraining) {
  Generator gen_a(5), gen_b(5);
  NoGanCritic with_dropout(gen_a, kTiny, 0.15), without(gen_b, kTiny, 0.0);  // same seed: same weights
  const Variable x(test::random_tensor({2, 3, 193, 193}, 6));
  with_dropout.eval();
  without.eval();
  const Tensor u_before = state_map(with_dropout.state_dict()).at("head.3.0.weight_u");
  EXPECT_TRUE(test::all_close(with_dropout(x).data(), without(x).data(), 0, 0));  // eval: dropout is the identity
  EXPECT_TRUE(test::all_close(u_before, state_map(with_dropout.state_dict()).at("head.3.0.weight_u"), 0, 0));

  with_dropout.train();
  without.train();
  const Tensor a = with_dropout(x).data(), b = without(x).data();
  EXPECT_GT(test::nmse(b, a), 1e-8);  // some of the 2 x (8 + 16 + 32) channels were dropped
  EXPECT_FALSE(test::all_close(u_before, state_map(with_dropout.state_dict()).at("head.3.0.weight_u"), 1e-12, 0));
}

TEST(NoGanCritic, FreezeTheBodyAsTheFirstThirtyEpochsDo) {
  Generator gen(7);
  NoGanCritic critic(gen, kTiny);
  const int64_t head = critic.head()->num_parameters();
  const int64_t body_tensors = int64_t(critic.body()->named_parameters().size());
  EXPECT_EQ(critic.freeze("body"), body_tensors);
  EXPECT_EQ(critic.num_parameters(true), head);
  EXPECT_EQ(critic.freeze("head.1.2"), 4);  // gamma, query/key/value weight_orig
  EXPECT_EQ(critic.unfreeze(""), int64_t(critic.named_parameters().size()));
  EXPECT_EQ(critic.num_parameters(true), critic.num_parameters());
  EXPECT_THROW(critic.freeze("bodies"), Error);
}

TEST(NoGanCritic, BodyLoadsTorchvisionResNet34Weights) {
  Generator gen_a(8), gen_b(9);
  models::ResNet34 resnet(gen_a, kTiny, 1000);
  NoGanCritic critic(gen_b, kTiny);
  critic.body()->load_torchvision(state_map(resnet.state_dict()));  // fc.* skipped
  const auto got = state_map(critic.state_dict());
  for (const auto& [name, t] : resnet.state_dict()) {
    if (name.compare(0, 3, "fc.") == 0) continue;
    EXPECT_TRUE(test::all_close(t, got.at("body." + name), 0, 0)) << name;
  }
}

// Real images are smooth, fakes are noise: a few Adam steps on BCE with logits (real 1, fake 0) make the critic
// tell them apart, through the whole graph (body, spectral norm, self-attention, flatten).
TEST(NoGanCritic, LearnsToSeparateRealFromFake) {
  Generator gen(10);
  NoGanCritic critic(gen, kTiny);
  critic.train();
  Tensor real = Tensor::empty({2, 3, 193, 193});
  {
    float* p = real.data<float>();
    for (int64_t i = 0; i < real.numel(); ++i) p[i] = float(0.5 * std::sin(double(i % 193) * 0.05));
  }
  const Tensor fake = test::random_tensor({2, 3, 193, 193}, 11);
  const Variable x(Tensor::zeros({4, 3, 193, 193}));
  x.data().slice(0, 0, 2).copy_(real);
  x.data().slice(0, 2, 4).copy_(fake);
  Tensor target = Tensor::zeros({4, 1});
  target.data<float>()[0] = target.data<float>()[1] = 1.0f;
  nn::AdamOptions options;
  options.lr = 1e-3;
  nn::Adam adam(critic.parameters(), options);
  double first = 0, last = 0;
  for (int step = 0; step < 8; ++step) {
    const Variable logits = critic(x);
    const Variable loss = bce_with_logits(logits, Variable(target));
    if (step == 0) first = loss.item();
    last = loss.item();
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  std::printf("[ critic   ] BCE %.4f -> %.4f in 8 Adam steps\n", first, last);
  EXPECT_LT(last, 0.5 * first);
}

}  // namespace
}  // namespace fg
