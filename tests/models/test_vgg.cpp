// VGG16 / VGG16-BN features (models/vgg.h): parameter counts, torchvision's Sequential indices, state-dict names,
// order and shapes (from the lists tools/golden_backbones.py stored from torchvision.models.vgg16() / vgg16_bn()),
// the perceptual-loss taps, forward_taps' contract, torchvision's initialisation, load_torchvision and its errors,
// and freezing by prefix. The numbers are compared with PyTorch in tests/golden/test_golden_backbones.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include "autograd/ops.h"
#include "models/vgg.h"
#include "nn/recorder.h"
#include "tests/support/model_util.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using test::state_map;
using test::state_lines;
using test::error_of;

using models::VGG16;

// torchvision's list without the classifier (filmgrad builds the features only).
std::string torchvision_features(const std::string& arch) {
  std::istringstream is(test::golden("backbones").metadata.at("_torchvision." + arch));
  std::string out, line;
  for (bool first = true; std::getline(is, line);) {
    if (line.compare(0, 9, "features.") != 0) continue;
    out += (first ? "" : "\n") + line;
    first = false;
  }
  return out;
}

TEST(VGG16, ParameterCountsNamesAndIndicesAreTorchvisions) {
  Generator gen(1);
  VGG16 plain(gen, false);
  VGG16 bn(gen, true);
  EXPECT_EQ(plain.num_parameters(), 14714688);
  EXPECT_EQ(bn.num_parameters(), 14723136);
  std::printf("[ counts   ] VGG16 features %lld, VGG16-BN features %lld\n", (long long)plain.num_parameters(),
              (long long)bn.num_parameters());
  EXPECT_EQ(state_lines(plain), torchvision_features("vgg16"));
  EXPECT_EQ(state_lines(bn), torchvision_features("vgg16_bn"));
  EXPECT_EQ(plain.type_name(), "VGG");
  ASSERT_EQ(plain.named_children().size(), 1u);
  EXPECT_EQ(plain.named_children()[0].first, "features");

  ASSERT_EQ(bn.features()->size(), 44u);
  ASSERT_EQ(plain.features()->size(), 31u);
  // The perceptual loss's taps: the ReLUs before each max-pool.
  const int64_t taps[] = {5, 12, 22, 32, 42};
  const int64_t channels[] = {64, 128, 256, 512, 512};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ((*bn.features())[size_t(taps[i])]->type_name(), "ReLU") << taps[i];
    EXPECT_EQ((*bn.features())[size_t(taps[i] + 1)]->type_name(), "MaxPool2d") << taps[i] + 1;
    EXPECT_EQ(bn.channels_at(taps[i]), channels[i]) << taps[i];
  }
  for (int64_t i : {0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40}) {
    EXPECT_EQ((*bn.features())[size_t(i)]->type_name(), "Conv2d") << i;
    EXPECT_EQ((*bn.features())[size_t(i + 1)]->type_name(), "BatchNorm2d") << i + 1;
  }
  for (int64_t i : {4, 9, 16, 23, 30}) EXPECT_EQ((*plain.features())[size_t(i)]->type_name(), "MaxPool2d") << i;
  for (int64_t i : {3, 8, 15, 22, 29}) EXPECT_EQ((*plain.features())[size_t(i)]->type_name(), "ReLU") << i;
  EXPECT_THROW(bn.channels_at(44), Error);
}

TEST(VGG16, TapShapesAtFullWidth) {
  Generator gen(2);
  VGG16 net(gen, true);
  net.eval();
  const Variable x(test::random_tensor({1, 3, 32, 32}, 3));
  const std::vector<Variable> t = net.forward_taps(x, {5, 12, 22, 32, 42});
  ASSERT_EQ(t.size(), 5u);
  EXPECT_EQ(t[0].shape(), (Shape{1, 64, 32, 32}));
  EXPECT_EQ(t[1].shape(), (Shape{1, 128, 16, 16}));
  EXPECT_EQ(t[2].shape(), (Shape{1, 256, 8, 8}));
  EXPECT_EQ(t[3].shape(), (Shape{1, 512, 4, 4}));
  EXPECT_EQ(t[4].shape(), (Shape{1, 512, 2, 2}));
  EXPECT_EQ(net(x).shape(), (Shape{1, 512, 1, 1}));
}

TEST(VGG16, WidthScalesChannels) {
  Generator gen(3);
  VGG16 net(gen, true, 0.125);
  const auto sd = state_map(net.state_dict());
  EXPECT_EQ(sd.at("features.0.weight").shape(), (Shape{8, 3, 3, 3}));
  EXPECT_EQ(sd.at("features.1.running_var").shape(), (Shape{8}));
  EXPECT_EQ(sd.at("features.40.weight").shape(), (Shape{64, 64, 3, 3}));
  EXPECT_EQ(net.channels_at(22), 32);
  net.eval();
  // Max-pools floor: 36 -> 18 -> 9 -> 4 -> 2 -> 1 and 40 -> 20 -> 10 -> 5 -> 2 -> 1.
  const std::vector<Variable> t = net.forward_taps(Variable(test::random_tensor({2, 3, 36, 40}, 4)), {12, 43});
  EXPECT_EQ(t[0].shape(), (Shape{2, 16, 18, 20}));
  EXPECT_EQ(t[1].shape(), (Shape{2, 64, 1, 1}));
}

TEST(VGG16, ForwardTapsRunsOnlyAsFarAsTheLastIndexAndChecksIndices) {
  Generator gen(4);
  VGG16 net(gen, true, 0.125);
  net.eval();
  const Variable x(test::random_tensor({1, 3, 32, 32}, 5));
  std::vector<nn::LayerRecord> recs;
  std::vector<Variable> taps;
  {
    nn::ActivationRecorder rec(net);
    taps = net.forward_taps(x, {2, 12});
    recs = rec.records();
  }
  ASSERT_EQ(recs.size(), 13u);  // features.0 .. features.12, nothing after
  EXPECT_EQ(recs.back().name, "features.12");
  // The taps are the modules' outputs: equal to running the whole stack and reading the same records.
  std::vector<nn::LayerRecord> full;
  {
    nn::ActivationRecorder rec(net, /*keep_outputs=*/true);
    net(x);
    full = rec.records();
  }
  ASSERT_EQ(full.size(), 46u);  // the 44 layers in order, then "features", then the root
  EXPECT_TRUE(test::all_close(full[2].output, taps[0].data(), 0, 0));
  EXPECT_TRUE(test::all_close(full[12].output, taps[1].data(), 0, 0));

  EXPECT_TRUE(net.forward_taps(x, {}).empty());
  EXPECT_THROW(net.forward_taps(x, {12, 5}), Error);
  EXPECT_THROW(net.forward_taps(x, {5, 5}), Error);
  EXPECT_THROW(net.forward_taps(x, {44}), Error);
  EXPECT_THROW(net.forward_taps(x, {-1}), Error);
  EXPECT_THROW(net.forward_taps(Variable(Tensor::zeros({1, 1, 32, 32})), {5}), Error);
}

TEST(VGG16, TorchvisionInitialisation) {
  Generator gen(5);
  VGG16 net(gen, false);
  const auto sd = state_map(net.state_dict());
  const auto w = sd.at("features.10.weight").to_vector();  // 128 -> 256
  double s2 = 0;
  for (double v : w) s2 += v * v;
  const double expected = std::sqrt(2.0 / (256 * 9));  // kaiming_normal_(fan_out, relu)
  EXPECT_NEAR(std::sqrt(s2 / double(w.size())), expected, 0.02 * expected);
  for (double v : sd.at("features.10.bias").to_vector()) EXPECT_EQ(v, 0.0);
}

TEST(VGG16, LoadTorchvisionSkipsTheClassifierAndReportsErrors) {
  Generator gen_a(6), gen_b(7);
  VGG16 a(gen_a, true, 0.125), b(gen_b, true, 0.125);
  auto state = state_map(a.state_dict());
  state["classifier.0.weight"] = Tensor::ones({4, 2});  // torchvision's classifier: skipped
  state["classifier.6.bias"] = Tensor::ones({3});
  b.load_torchvision(state);
  a.eval();
  b.eval();
  const Variable x(test::random_tensor({1, 3, 32, 32}, 8));
  EXPECT_TRUE(test::all_close(a(x).data(), b(x).data(), 0, 0));

  auto missing = state_map(a.state_dict());
  missing.erase("features.24.bias");
  std::string msg = error_of([&] { b.load_torchvision(missing); });
  EXPECT_NE(msg.find("VGG16-BN::load_torchvision"), std::string::npos) << msg;
  EXPECT_NE(msg.find("features.24.bias"), std::string::npos) << msg;

  auto wrong = state_map(a.state_dict());
  wrong["features.25.running_mean"] = Tensor::zeros({3});
  msg = error_of([&] { b.load_torchvision(wrong); });
  EXPECT_NE(msg.find("shape"), std::string::npos) << msg;
  EXPECT_NE(msg.find("features.25.running_mean"), std::string::npos) << msg;

  // VGG16-BN weights do not fit VGG16 (the indices differ).
  Generator gen_c(9);
  VGG16 plain(gen_c, false, 0.125);
  EXPECT_THROW(plain.load_torchvision(state_map(a.state_dict())), Error);
}

TEST(VGG16, FreezeByPrefix) {
  Generator gen(10);
  VGG16 net(gen, true, 0.125);
  EXPECT_EQ(net.freeze("features"), 13 * 4);  // conv weight, bias, BatchNorm weight, bias
  EXPECT_EQ(net.num_parameters(true), 0);
  EXPECT_EQ(net.unfreeze("features.1"), 2);  // features.1.weight/bias, not features.10-19
  EXPECT_EQ(net.num_parameters(true), 2 * 8);
  EXPECT_THROW(net.freeze("feature"), Error);
}

}  // namespace
}  // namespace fg
