// The Dynamic U-Net (models/dynamic_unet.h): SPEC B's parameter counts at width 1 (total, encoder, encoder
// BatchNorms, trainable with the encoder frozen), state-dict names and shapes, the output shape and range at
// width 1, forward and backward at width 0.125, the ICNR property of every pixel-shuffle conv, freeze/unfreeze,
// loading a torchvision-named state dict into the encoder, the UnetBlock's nearest resize, the per-layer outputs
// the ActivationRecorder sees, and the errors a user can cause. (PyTorch agreement: tests/golden/.)
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "autograd/ops.h"
#include "models/dynamic_unet.h"
#include "nn/recorder.h"
#include "tensor/error.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using models::DynamicUNet;
using models::DynamicUNetConfig;

int64_t batchnorm_parameters(nn::Module& module) {
  int64_t n = 0;
  for (auto& entry : module.named_modules()) {
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(entry.second)) {
      if (bn->weight().defined()) n += bn->weight().numel();
      if (bn->bias().defined()) n += bn->bias().numel();
    }
  }
  return n;
}

std::map<std::string, Shape> state_shapes(const nn::Module& m) {
  std::map<std::string, Shape> out;
  for (const auto& [name, t] : m.state_dict()) out[name] = t.shape();
  return out;
}

// Runs f, expects an fg::Error whose message contains `needle`.
template <typename F>
void expect_error_containing(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an fg::Error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Every element of t lies strictly inside (lo, hi) and is finite.
::testing::AssertionResult strictly_inside(const Tensor& t, double lo, double hi) {
  for (double v : t.to_vector()) {
    if (!(std::isfinite(v) && v > lo && v < hi))
      return ::testing::AssertionFailure() << "value " << v << " outside (" << lo << ", " << hi << ")";
  }
  return ::testing::AssertionSuccess();
}

// The full-width network is built once (41 M parameters) and shared by the width-1 tests.
class DynamicUNetFullWidth : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Generator gen(7);
    net_ = new DynamicUNet(gen);
  }
  static void TearDownTestSuite() {
    delete net_;
    net_ = nullptr;
  }
  static DynamicUNet* net_;
};
DynamicUNet* DynamicUNetFullWidth::net_ = nullptr;

TEST_F(DynamicUNetFullWidth, ParameterCountsMatchSpec) {
  DynamicUNet& net = *net_;
  net.unfreeze();
  EXPECT_EQ(net.num_parameters(), 41405589);  // SPEC B (fastai prints 41,405,588: it omits gamma)
  EXPECT_EQ(net.num_parameters(/*trainable_only=*/true), 41405589);
  EXPECT_EQ(net.encoder().num_parameters(), 21284672);
  EXPECT_EQ(batchnorm_parameters(net.encoder()), 17024);
  EXPECT_EQ(net.block(1).attn()->gamma().numel(), 1);
  EXPECT_EQ(net.type_name(), "DynamicUnet");
  EXPECT_EQ(net.block(0).type_name(), "UnetBlock");

  net.freeze_encoder();
  EXPECT_EQ(net.num_parameters(true), 20137941);
  EXPECT_EQ(net.encoder().num_parameters(true), 17024);  // only the encoder's BatchNorms train
  net.unfreeze();
  EXPECT_EQ(net.num_parameters(true), 41405589);
  // freeze_encoder sets the whole state, whatever was frozen before.
  net.freeze("");
  net.freeze_encoder();
  EXPECT_EQ(net.num_parameters(true), 20137941);
  net.unfreeze();
}

TEST_F(DynamicUNetFullWidth, StateDictNamesAndShapes) {
  const auto shapes = state_shapes(*net_);
  const std::map<std::string, Shape> expected = {
      {"encoder.conv1.weight", {64, 3, 7, 7}},
      {"encoder.layer2.0.downsample.0.weight", {128, 64, 1, 1}},
      {"encoder.layer4.2.bn2.num_batches_tracked", {}},
      {"bridge.0.running_var", {512}},
      {"bridge.2.weight", {1024, 512, 3, 3}},
      {"bridge.2.bias", {1024}},
      {"bridge.4.weight", {512, 1024, 3, 3}},
      {"bridge.4.bias", {512}},
      {"blocks.0.shuf.conv.weight", {1024, 512, 1, 1}},
      {"blocks.0.shuf.conv.bias", {1024}},
      {"blocks.0.bn.weight", {256}},
      {"blocks.0.conv1.weight", {512, 512, 3, 3}},
      {"blocks.1.conv2.bias", {384}},
      {"blocks.1.attn.gamma", {1}},
      {"blocks.1.attn.query.weight_orig", {48, 384, 1}},
      {"blocks.1.attn.query.weight_u", {48}},
      {"blocks.1.attn.key.weight_v", {384}},
      {"blocks.1.attn.value.weight_orig", {384, 384, 1}},
      {"blocks.2.shuf.conv.weight", {768, 384, 1, 1}},
      {"blocks.2.bn.running_mean", {64}},
      {"blocks.3.conv1.weight", {96, 192, 3, 3}},
      {"blocks.3.conv2.weight", {96, 96, 3, 3}},
      {"last_shuf.conv.weight", {384, 96, 1, 1}},
      {"res.conv1.weight", {99, 99, 3, 3}},
      {"res.conv2.bias", {99}},
      {"head.weight", {3, 99, 1, 1}},
      {"head.bias", {3}},
  };
  for (const auto& [name, shape] : expected) {
    auto it = shapes.find(name);
    ASSERT_NE(it, shapes.end()) << "missing " << name;
    EXPECT_EQ(it->second, shape) << name;
  }
  // Self-attention only in block 1; the encoder is the body only; no stray top-level entries.
  for (const auto& [name, shape] : shapes) {
    if (name.find("attn") != std::string::npos) {
      EXPECT_EQ(name.rfind("blocks.1.attn.", 0), 0u) << name;
    }
    EXPECT_NE(name.rfind("encoder.fc", 0), 0u) << name;
    const std::string top = name.substr(0, name.find('.'));
    EXPECT_TRUE(std::set<std::string>({"encoder", "bridge", "blocks", "last_shuf", "res", "head"}).count(top)) << name;
  }
}

TEST_F(DynamicUNetFullWidth, OutputShapeAndRangeAt64px) {
  // Training mode, as a fresh network is used: its BatchNorms normalise with batch statistics. (In eval mode an
  // untrained ResNet34's running statistics are the identity, activations grow through its 34 layers, and the
  // head's logits are large enough that sigmoid rounds to exactly 0 or 1 in f32, i.e. outputs of exactly -3 or 3.)
  DynamicUNet& net = *net_;
  net.train();
  NoGradGuard no_grad;
  const Variable x(test::random_normal({1, 3, 64, 64}, 11));
  const Variable y = net(x);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 64, 64}));
  EXPECT_TRUE(strictly_inside(y.data(), -3.0, 3.0));
}

TEST(DynamicUNet, ForwardBackwardAtWidthEighth) {
  Generator gen(3);
  DynamicUNetConfig cfg;
  cfg.width = 0.125;
  DynamicUNet net(gen, cfg);
  EXPECT_EQ(net.encoder().stage_channels(0), 8);
  EXPECT_EQ(net.encoder().stage_channels(3), 64);
  // Self-attention starts with gamma 0, which would leave query and key without gradient.
  net.block(1).attn()->gamma().set_data(Tensor::full({1}, 0.5));
  net.train();
  Variable x(test::random_normal({2, 3, 64, 64}, 12), /*requires_grad=*/true);
  const Variable y = net(x);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 64, 64}));
  EXPECT_TRUE(strictly_inside(y.data(), -3.0, 3.0));
  const Variable loss = mse_loss(y, Variable(test::random_normal({2, 3, 64, 64}, 13)));
  ASSERT_TRUE(std::isfinite(loss.item()));
  loss.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(strictly_inside(x.grad(), -1e6, 1e6));
  for (const auto& [name, p] : net.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    double sum_abs = 0.0;
    for (double v : p.grad().to_vector()) {
      ASSERT_TRUE(std::isfinite(v)) << name;
      sum_abs += std::fabs(v);
    }
    EXPECT_GT(sum_abs, 0.0) << name << " has an all-zero gradient";
  }
}

TEST(DynamicUNet, PixelShuffleConvsAreICNR) {
  Generator gen(4);
  DynamicUNetConfig cfg;
  cfg.width = 0.125;
  DynamicUNet net(gen, cfg);
  std::vector<models::PixelShuffleICNR*> shufs;
  for (int i = 0; i < 4; ++i) shufs.push_back(&net.block(i).shuf());
  shufs.push_back(&net.last_shuf());
  for (size_t k = 0; k < shufs.size(); ++k) {
    models::PixelShuffleICNR& shuf = *shufs[k];
    EXPECT_EQ(shuf.blur(), k < 4) << "shuf " << k;
    const Tensor w = shuf.conv().weight().data();  // (4 n, c, 1, 1)
    for (int64_t o = 0; o < w.size(0); ++o) {
      EXPECT_TRUE(test::all_close(w.select(0, o - o % 4), w.select(0, o), 0.0, 0.0)) << "shuf " << k << " row " << o;
    }
    EXPECT_TRUE(test::all_close(Tensor::zeros({w.size(0)}), shuf.conv().bias().data(), 0.0, 0.0));

    // All 4 sub-pixel outputs of a group are equal: on a spatially constant input every output channel is
    // constant (blur of a constant image is constant), and without blur each 2x2 block of the output is constant
    // for any input.
    const int64_t c = w.size(1);
    Tensor per_channel = test::random_normal({1, c, 1, 1}, 20 + k);
    const Variable constant_in(per_channel.expand({1, c, 5, 6}).contiguous());
    const Tensor out = shuf(constant_in).data();
    ASSERT_EQ(out.shape(), (Shape{1, shuf.out_channels(), 10, 12}));
    for (int64_t ch = 0; ch < out.size(1); ++ch) {
      const Tensor plane = out.select(0, 0).select(0, ch);
      // Not exact: the 1x1 conv's GEMM may sum a tile's columns in another order than its tail's (OpenBLAS's
      // AVX-512 kernels), a few ulps of the sum's terms (of order 1) apart.
      EXPECT_TRUE(test::all_close(Tensor::full(plane.shape(), plane.at({0, 0})), plane, 1e-6, 1e-6))
          << "shuf " << k << " channel " << ch;
    }
    if (!shuf.blur()) {
      const Tensor o = shuf(Variable(test::random_normal({1, c, 3, 4}, 30 + k))).data();
      for (int64_t ch = 0; ch < o.size(1); ++ch)
        for (int64_t h = 0; h < o.size(2); ++h)
          for (int64_t x = 0; x < o.size(3); ++x)
            ASSERT_EQ(o.at({0, ch, h, x}), o.at({0, ch, h - h % 2, x - x % 2})) << ch << " " << h << " " << x;
    }
  }
}

TEST(DynamicUNet, FreezeEncoderKeepsOnlyBatchNormsTrainable) {
  Generator gen(5);
  DynamicUNetConfig cfg;
  cfg.width = 0.125;
  DynamicUNet net(gen, cfg);
  net.freeze_encoder();
  int64_t decoder_total = 0;
  for (const auto& [name, p] : net.named_parameters()) {
    const bool in_encoder = name.rfind("encoder.", 0) == 0;
    const bool is_bn = name.find(".bn") != std::string::npos || name.find("downsample.1.") != std::string::npos;
    if (!in_encoder) decoder_total += p.numel();
    EXPECT_EQ(p.requires_grad(), !in_encoder || is_bn) << name;
  }
  EXPECT_EQ(net.num_parameters(true), decoder_total + batchnorm_parameters(net.encoder()));
  // A frozen encoder gets no gradients; the decoder and the encoder's BatchNorms do. (Eval mode: a 32 px input
  // leaves one value per channel for layer4's BatchNorms, too few for batch statistics.)
  net.eval();
  const Variable y = net(Variable(test::random_normal({1, 3, 32, 32}, 14)));
  sum(y).backward();
  EXPECT_FALSE(net.encoder().child("conv1")->parameter("weight").grad().defined());
  EXPECT_TRUE(net.encoder().child("bn1")->parameter("weight").grad().defined());
  EXPECT_TRUE(net.parameters(true).back().grad().defined());
  net.unfreeze();
  EXPECT_EQ(net.num_parameters(true), net.num_parameters());
}

TEST(DynamicUNet, LoadsTorchvisionNamedStateIntoEncoder) {
  // A torchvision resnet34 state dict (classifier included) under its own names, as a converted .pth gives.
  Generator gen_src(8), gen_dst(9);
  models::ResNet34 source(gen_src, 0.125, 1000);
  std::map<std::string, Tensor> torchvision_state;
  for (const auto& [name, t] : source.state_dict()) torchvision_state[name] = t.clone();
  ASSERT_TRUE(torchvision_state.count("fc.weight"));
  ASSERT_TRUE(torchvision_state.count("layer3.5.bn2.running_var"));

  DynamicUNetConfig cfg;
  cfg.width = 0.125;
  DynamicUNet net(gen_dst, cfg);
  net.encoder().load_torchvision(torchvision_state);
  const auto net_state = net.state_dict();
  int64_t compared = 0;
  for (const auto& [name, t] : net_state) {
    if (name.rfind("encoder.", 0) != 0) continue;
    const std::string tv_name = name.substr(8);
    ASSERT_TRUE(torchvision_state.count(tv_name)) << tv_name;
    EXPECT_TRUE(test::all_close(torchvision_state.at(tv_name).to(DType::F64), t.to(DType::F64), 0.0, 0.0)) << name;
    ++compared;
  }
  EXPECT_EQ(compared + 2, int64_t(torchvision_state.size()));  // everything but fc.weight, fc.bias
  // The body-only entries also load with the generic strict loader.
  std::map<std::string, Tensor> body = torchvision_state;
  body.erase("fc.weight");
  body.erase("fc.bias");
  EXPECT_NO_THROW(net.encoder().load_state_dict(body));
}

TEST(DynamicUNet, UnetBlockResizesToTheSkip) {
  Generator gen(6);
  models::UnetBlock block(gen, 16, 8, /*halve=*/false, /*blur=*/true, /*self_attention=*/false, false);
  EXPECT_EQ(block.out_channels(), 16);
  Variable up(test::random_normal({2, 16, 3, 3}, 15), true);
  Variable skip(test::random_normal({2, 8, 7, 5}, 16), true);
  const Variable y = block(up, skip);  // shuf gives 6x6; resized to the skip's 7x5
  EXPECT_EQ(y.shape(), (Shape{2, 16, 7, 5}));
  sum(y).backward();
  EXPECT_EQ(up.grad().shape(), up.shape());
  EXPECT_EQ(skip.grad().shape(), skip.shape());
  models::UnetBlock halving(gen, 16, 8, /*halve=*/true, false, false, false);
  EXPECT_EQ(halving.out_channels(), 8);
  EXPECT_EQ(halving(up, skip).shape(), (Shape{2, 8, 7, 5}));
  expect_error_containing([&] { block(skip, up); }, "UnetBlock(16, 8)");
  expect_error_containing([&] { block.forward(up); }, "no single-input forward");
}

TEST(DynamicUNet, RecorderSeesEveryBlock) {
  Generator gen(10);
  DynamicUNetConfig cfg;
  cfg.width = 0.125;
  DynamicUNet net(gen, cfg);
  std::map<std::string, Shape> seen;
  {
    nn::ActivationRecorder rec(net);
    net(Variable(test::random_normal({1, 3, 64, 64}, 17)));
    for (const auto& r : rec.records()) seen[r.name] = r.output_shape;
  }
  const std::map<std::string, Shape> expected = {
      {"bridge", {1, 64, 2, 2}},          {"blocks.0", {1, 64, 4, 4}},       {"blocks.1.attn", {1, 48, 8, 8}},
      {"blocks.1", {1, 48, 8, 8}},        {"blocks.2", {1, 32, 16, 16}},     {"blocks.3", {1, 12, 32, 32}},
      {"blocks.3.shuf", {1, 16, 32, 32}}, {"last_shuf", {1, 12, 64, 64}},    {"res", {1, 15, 64, 64}},
      {"head", {1, 3, 64, 64}},           {"sigmoid_range", {1, 3, 64, 64}}, {"", {1, 3, 64, 64}},
      {"encoder.layer3", {1, 32, 4, 4}},
  };
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(seen.count(name)) << "the recorder did not see '" << name << "'";
    EXPECT_EQ(seen.at(name), shape) << name;
  }
}

TEST(DynamicUNet, UserErrorsAreClear) {
  Generator gen(11);
  DynamicUNetConfig cfg;
  cfg.width = 0.125;
  DynamicUNet net(gen, cfg);
  expect_error_containing([&] { net(Variable(Tensor::zeros({1, 3, 48, 64}))); }, "multiples of 32");
  expect_error_containing([&] { net(Variable(Tensor::zeros({1, 3, 64, 40}))); }, "(1, 3, 64, 40)");
  expect_error_containing([&] { net(Variable(Tensor::zeros({1, 4, 64, 64}))); }, "(N, 3, H, W)");
  expect_error_containing([&] { net(Variable(Tensor::zeros({3, 64, 64}))); }, "(N, 3, H, W)");

  DynamicUNetConfig bad = cfg;
  bad.y_lo = 1.0;
  bad.y_hi = 1.0;
  expect_error_containing([&] { DynamicUNet rejected(gen, bad); }, "y_lo < y_hi");
  bad = cfg;
  bad.width = 0.0;
  expect_error_containing([&] { DynamicUNet rejected(gen, bad); }, "width");
  bad = cfg;
  bad.out_channels = 0;
  expect_error_containing([&] { DynamicUNet rejected(gen, bad); }, "out_channels");
  bad = cfg;
  bad.width = 1.0 / 64;  // blocks.1 would have 6 channels: too few for query/key with C/8
  expect_error_containing([&] { DynamicUNet rejected(gen, bad); }, "self-attention needs at least 8");
  bad.self_attention = false;
  EXPECT_NO_THROW({ DynamicUNet accepted(gen, bad); });
}

TEST(DynamicUNet, OptionsChangeTheStructure) {
  Generator gen(12);
  DynamicUNetConfig cfg;
  cfg.width = 0.125;
  cfg.self_attention = false;
  cfg.blur = false;
  cfg.out_channels = 1;
  DynamicUNet net(gen, cfg);
  EXPECT_EQ(net.block(1).attn(), nullptr);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(net.block(i).shuf().blur());
  const auto shapes = state_shapes(net);
  EXPECT_EQ(shapes.at("head.weight"), (Shape{1, 15, 1, 1}));
  net.eval();
  const Variable y = net(Variable(test::random_normal({1, 3, 32, 64}, 18)));
  EXPECT_EQ(y.shape(), (Shape{1, 1, 32, 64}));

  DynamicUNetConfig plain = cfg;
  plain.self_attention = true;
  plain.spectral_norm = false;
  DynamicUNet net2(gen, plain);
  const auto shapes2 = state_shapes(net2);
  EXPECT_TRUE(shapes2.count("blocks.1.attn.query.weight"));
  EXPECT_FALSE(shapes2.count("blocks.1.attn.query.weight_orig"));
}

}  // namespace
}  // namespace fg
