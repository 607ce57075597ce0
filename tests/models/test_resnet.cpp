// ResNet34 (models/resnet.h): parameter counts (SPEC B's hard checks), torchvision's state-dict names, order and
// shapes (from the list tools/golden_backbones.py stored from torchvision.models.resnet34()), stage shapes, the
// width multiplier, torchvision's initialisation, load_torchvision and its errors, freezing by prefix, and that
// every layer reports to the ActivationRecorder. The numbers themselves are compared with PyTorch in
// tests/golden/test_golden_backbones.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>

#include "autograd/ops.h"
#include "models/resnet.h"
#include "nn/recorder.h"
#include "tests/support/model_util.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using test::state_map;
using test::state_lines;
using test::error_of;

using models::ResNet34;

std::string without_prefix(const std::string& lines, const std::string& prefix) {
  std::istringstream is(lines);
  std::string out, line;
  for (bool first = true; std::getline(is, line);) {
    if (line.compare(0, prefix.size(), prefix) == 0) continue;
    out += (first ? "" : "\n") + line;
    first = false;
  }
  return out;
}

TEST(ResNet34, ParameterCountsAreTorchvisions) {
  Generator gen(1);
  ResNet34 with_fc(gen, 1.0, 1000);
  EXPECT_EQ(with_fc.num_parameters(), 21797672);
  ResNet34 body(gen, 1.0, 0);
  EXPECT_EQ(body.num_parameters(), 21284672);
  int64_t conv = 0, bn = 0;
  for (const auto& [name, p] : body.named_parameters()) (p.dim() == 4 ? conv : bn) += p.numel();
  EXPECT_EQ(conv, 21267648);
  EXPECT_EQ(bn, 17024);
  std::printf("[ counts   ] ResNet34 %lld with fc, %lld body (%lld conv weights, %lld BatchNorm)\n",
              (long long)with_fc.num_parameters(), (long long)body.num_parameters(), (long long)conv, (long long)bn);

  // The names, order and shapes of torchvision.models.resnet34().state_dict(), as the golden script stored them.
  const std::string torchvision = test::golden("backbones").metadata.at("_torchvision.resnet34");
  EXPECT_EQ(state_lines(with_fc), torchvision);
  EXPECT_EQ(state_lines(body), without_prefix(torchvision, "fc."));
  EXPECT_EQ(with_fc.type_name(), "ResNet");
}

TEST(ResNet34, StageShapesAt64Pixels) {
  Generator gen(2);
  ResNet34 net(gen, 1.0, 1000);
  net.eval();
  const Variable x(test::random_tensor({1, 3, 64, 64}, 3));
  const models::ResNetFeatures f = net.forward_features(x);
  EXPECT_EQ(f.s4.shape(), (Shape{1, 64, 32, 32}));
  EXPECT_EQ(f.s3.shape(), (Shape{1, 64, 16, 16}));
  EXPECT_EQ(f.s2.shape(), (Shape{1, 128, 8, 8}));
  EXPECT_EQ(f.s1.shape(), (Shape{1, 256, 4, 4}));
  EXPECT_EQ(f.out.shape(), (Shape{1, 512, 2, 2}));
  EXPECT_EQ(net(x).shape(), (Shape{1, 1000}));
  EXPECT_EQ(net.stage_channels(0), 64);
  EXPECT_EQ(net.stage_channels(1), 128);
  EXPECT_EQ(net.stage_channels(2), 256);
  EXPECT_EQ(net.stage_channels(3), 512);
  EXPECT_THROW(net.stage_channels(4), Error);
  EXPECT_THROW(net.stage_channels(-1), Error);
}

TEST(ResNet34, WidthScalesEveryChannelCount) {
  Generator gen(3);
  ResNet34 net(gen, 0.125, 0);
  EXPECT_EQ(net.stage_channels(0), 8);
  EXPECT_EQ(net.stage_channels(1), 16);
  EXPECT_EQ(net.stage_channels(2), 32);
  EXPECT_EQ(net.stage_channels(3), 64);
  EXPECT_EQ(net.width(), 0.125);
  EXPECT_EQ(net.num_classes(), 0);
}

TEST(ResNet34, WidthShapesAndOddSizes) {
  Generator gen(3);
  ResNet34 net(gen, 0.125, 0);
  net.eval();
  const auto sd = state_map(net.state_dict());
  EXPECT_EQ(sd.at("conv1.weight").shape(), (Shape{8, 3, 7, 7}));
  EXPECT_EQ(sd.at("layer2.0.downsample.0.weight").shape(), (Shape{16, 8, 1, 1}));
  EXPECT_EQ(sd.at("layer4.2.conv2.weight").shape(), (Shape{64, 64, 3, 3}));
  EXPECT_EQ(sd.count("layer1.0.downsample.0.weight"), 0u);  // layer1 keeps its input's shape
  EXPECT_EQ(sd.count("fc.weight"), 0u);
  // 45 x 38: every stride-2 stage rounds up (PyTorch's floor((h + 2p - k) / s) + 1).
  const models::ResNetFeatures f = net.forward_features(Variable(test::random_tensor({2, 3, 45, 38}, 4)));
  EXPECT_EQ(f.s4.shape(), (Shape{2, 8, 23, 19}));
  EXPECT_EQ(f.s3.shape(), (Shape{2, 8, 12, 10}));
  EXPECT_EQ(f.s2.shape(), (Shape{2, 16, 6, 5}));
  EXPECT_EQ(f.s1.shape(), (Shape{2, 32, 3, 3}));
  EXPECT_EQ(f.out.shape(), (Shape{2, 64, 2, 2}));
  // forward() of the body is layer4's output.
  EXPECT_TRUE(test::all_close(f.out.data(), net(Variable(test::random_tensor({2, 3, 45, 38}, 4))).data(), 0, 0));
}

TEST(ResNet34, ScaledChannelsRoundsHalvesUpAndKeepsOne) {
  EXPECT_EQ(models::scaled_channels(64, 0.125), 8);
  EXPECT_EQ(models::scaled_channels(64, 3.0 / 128), 2);  // 1.5 rounds up
  EXPECT_EQ(models::scaled_channels(64, 5.0 / 128), 3);  // 2.5 rounds up (not to even)
  EXPECT_EQ(models::scaled_channels(64, 0.001), 1);
  EXPECT_EQ(models::scaled_channels(512, 2.0), 1024);
  EXPECT_THROW(models::scaled_channels(64, 0.0), Error);
  EXPECT_THROW(models::scaled_channels(64, -0.5), Error);
  EXPECT_THROW(models::scaled_channels(64, std::nan("")), Error);
  Generator gen(1);
  EXPECT_NE(error_of([&] { ResNet34 bad(gen, 0.0); }).find("width"), std::string::npos);
  EXPECT_THROW(ResNet34(gen, 1.0, -1), Error);
}

TEST(ResNet34, TorchvisionInitialisation) {
  Generator gen(4);
  ResNet34 net(gen, 1.0, 1000);
  const auto sd = state_map(net.state_dict());
  auto stddev = [](const Tensor& t) {
    double s = 0, s2 = 0;
    const auto v = t.to_vector();
    for (double x : v) s += x, s2 += x * x;
    const double m = s / double(v.size());
    return std::sqrt(s2 / double(v.size()) - m * m);
  };
  // kaiming_normal_(fan_out, relu): std = sqrt(2 / (out * k * k)).
  EXPECT_NEAR(stddev(sd.at("layer3.1.conv2.weight")), std::sqrt(2.0 / (256 * 9)), 0.02 * std::sqrt(2.0 / (256 * 9)));
  EXPECT_NEAR(stddev(sd.at("conv1.weight")), std::sqrt(2.0 / (64 * 49)), 0.05 * std::sqrt(2.0 / (64 * 49)));
  EXPECT_NEAR(stddev(sd.at("layer4.0.downsample.0.weight")), std::sqrt(2.0 / 512), 0.02 * std::sqrt(2.0 / 512));
  for (double v : sd.at("layer2.3.bn1.weight").to_vector()) EXPECT_EQ(v, 1.0);
  for (double v : sd.at("layer2.3.bn1.bias").to_vector()) EXPECT_EQ(v, 0.0);
  // fc: PyTorch's Linear default, U(+-1/sqrt(512)).
  double fc_max = 0;
  for (double v : sd.at("fc.bias").to_vector()) fc_max = std::max(fc_max, std::abs(v));
  EXPECT_LE(fc_max, 1.0 / std::sqrt(512.0));
  EXPECT_GT(fc_max, 0.9 / std::sqrt(512.0));
}

TEST(ResNet34, LoadTorchvisionRoundTrip) {
  Generator gen_a(5), gen_b(6);
  ResNet34 a(gen_a, 0.125, 10), b(gen_b, 0.125, 10);
  a.train();
  a.forward(Variable(test::random_tensor({2, 3, 32, 32}, 7)));  // running statistics and counters move
  a.eval();
  b.eval();
  b.load_torchvision(state_map(a.state_dict()));
  for (const auto& [name, t] : a.state_dict()) {
    EXPECT_TRUE(test::all_close(t, state_map(b.state_dict()).at(name), 0, 0)) << name;
  }
  const Variable x(test::random_tensor({1, 3, 32, 32}, 8));
  EXPECT_TRUE(test::all_close(a(x).data(), b(x).data(), 0, 0));

  // The body loads a classifier's state dict: fc.* is skipped.
  Generator gen_c(9);
  ResNet34 body(gen_c, 0.125, 0);
  body.eval();
  body.load_torchvision(state_map(a.state_dict()));
  EXPECT_TRUE(test::all_close(a.forward_features(x).s2.data(), body.forward_features(x).s2.data(), 0, 0));

  // torchvision's published weights lack num_batches_tracked (set to 0, as PyTorch does), and are f32 where the
  // model may be f64.
  auto old_style = state_map(a.state_dict());
  for (auto it = old_style.begin(); it != old_style.end();) {
    if (it->first.find("num_batches_tracked") != std::string::npos)
      it = old_style.erase(it);
    else
      ++it;
  }
  Generator gen_d(10);
  ResNet34 f64(gen_d, 0.125, 10);
  f64.to(DType::F64);
  f64.load_torchvision(old_style);
  EXPECT_EQ(state_map(f64.state_dict()).at("layer1.0.bn1.num_batches_tracked").item(), 0.0);
  EXPECT_EQ(state_map(f64.state_dict()).at("layer1.0.bn1.weight").dtype(), DType::F64);
  EXPECT_TRUE(
      test::all_close(a.state_dict()[0].second, state_map(f64.state_dict()).at("conv1.weight").to(DType::F32), 0, 0));
}

TEST(ResNet34, LoadTorchvisionErrorsNameTheProblemAndChangeNothing) {
  Generator gen(11);
  ResNet34 net(gen, 0.125, 0);
  const Tensor before = state_map(net.state_dict()).at("layer1.0.conv1.weight").clone();
  Generator gen2(12);
  ResNet34 other(gen2, 0.125, 0);

  auto missing = state_map(other.state_dict());
  missing.erase("layer2.1.conv1.weight");
  std::string msg = error_of([&] { net.load_torchvision(missing); });
  EXPECT_NE(msg.find("ResNet34::load_torchvision"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer2.1.conv1.weight"), std::string::npos) << msg;

  auto wrong_shape = state_map(other.state_dict());
  wrong_shape["layer3.0.bn1.weight"] = Tensor::ones({7});
  msg = error_of([&] { net.load_torchvision(wrong_shape); });
  EXPECT_NE(msg.find("shape"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer3.0.bn1.weight"), std::string::npos) << msg;

  auto unexpected = state_map(other.state_dict());
  unexpected["layer5.0.conv1.weight"] = Tensor::ones({1});
  msg = error_of([&] { net.load_torchvision(unexpected); });
  EXPECT_NE(msg.find("unexpected"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer5.0.conv1.weight"), std::string::npos) << msg;

  // A wider network's weights (torchvision's own, into a width-0.125 model) are all shape mismatches.
  Generator gen3(13);
  ResNet34 wide(gen3, 0.25, 0);
  msg = error_of([&] { net.load_torchvision(state_map(wide.state_dict())); });
  EXPECT_NE(msg.find("shape mismatches"), std::string::npos) << msg;

  // A classifier needs fc.*.
  Generator gen4(14);
  ResNet34 classifier(gen4, 0.125, 10);
  msg = error_of([&] { classifier.load_torchvision(state_map(other.state_dict())); });
  EXPECT_NE(msg.find("fc.weight"), std::string::npos) << msg;

  EXPECT_TRUE(test::all_close(before, state_map(net.state_dict()).at("layer1.0.conv1.weight"), 0, 0));
}

TEST(ResNet34, FreezeAndUnfreezeByPrefix) {
  Generator gen(15);
  ResNet34 net(gen, 0.125, 10);
  auto numel_under = [&](const std::string& prefix) {
    int64_t n = 0;
    for (const auto& [name, p] : net.named_parameters())
      if (name.compare(0, prefix.size(), prefix) == 0) n += p.numel();
    return n;
  };
  const int64_t total = net.num_parameters();
  EXPECT_EQ(net.freeze("layer1"), 18);  // 3 blocks x (conv1, bn1 weight/bias, conv2, bn2 weight/bias)
  EXPECT_EQ(net.freeze("layer4"), 21);  // plus downsample.0.weight, downsample.1.weight/bias in block 0
  EXPECT_EQ(net.freeze("fc"), 2);
  EXPECT_EQ(net.freeze("bn1"), 2);           // the stem's BatchNorm only, not layerN.M.bn1
  EXPECT_THROW(net.freeze("layer"), Error);  // a prefix matches whole name components
  EXPECT_EQ(numel_under("layer1."), 3 * (2 * 8 * 8 * 9 + 4 * 8));
  EXPECT_EQ(net.num_parameters(true),
            total - numel_under("layer1.") - numel_under("layer4.") - numel_under("fc.") - numel_under("bn1."));
  EXPECT_EQ(net.unfreeze("layer4.0.downsample"), 3);
  EXPECT_EQ(net.unfreeze(""), int64_t(net.named_parameters().size()));
  EXPECT_EQ(net.num_parameters(true), total);

  // Frozen parameters get no gradient; the rest do.
  net.freeze("layer1");
  net.train();
  const Variable y = net(Variable(test::random_tensor({2, 3, 32, 32}, 16)));
  sum(mul(y, y)).backward();
  for (const auto& [name, p] : net.named_parameters()) {
    if (name.compare(0, 7, "layer1.") == 0) {
      EXPECT_FALSE(p.grad().defined()) << name;
    } else {
      EXPECT_TRUE(p.grad().defined()) << name;
    }
  }
}

TEST(ResNet34, EveryLayerReportsToTheRecorder) {
  Generator gen(17);
  ResNet34 net(gen, 0.125, 0);
  net.eval();
  const Variable x(test::random_tensor({1, 3, 32, 32}, 18));
  std::vector<nn::LayerRecord> recs;
  {
    nn::ActivationRecorder rec(net);
    net.forward_features(x);
    recs = rec.records();
  }
  std::map<std::string, Shape> shapes;
  for (const auto& r : recs) shapes[r.name] = r.output_shape;
  EXPECT_EQ(shapes.at("relu"), (Shape{1, 8, 16, 16}));  // the stem's relu: s4
  EXPECT_EQ(shapes.at("layer2.0.downsample.1"), (Shape{1, 16, 4, 4}));
  EXPECT_EQ(shapes.at("layer3.5"), (Shape{1, 32, 2, 2}));
  EXPECT_EQ(shapes.at("layer4"), (Shape{1, 64, 1, 1}));
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs.back().name, "");  // forward_features reports the body's output as the module's
  EXPECT_EQ(recs.back().type_name, "ResNet");
  int blocks = 0;
  for (const auto& r : recs) blocks += r.type_name == "BasicBlock";
  EXPECT_EQ(blocks, 16);
}

}  // namespace
}  // namespace fg
