// Layers and init: parameter names and shapes as PyTorch has them, PyTorch's default init bounds, forwards against
// the ops they wrap or hand-computed values, kaiming statistics on large tensors, the ICNR property after
// PixelShuffle, and spectral normalisation (names, power iteration by hand, convergence to the largest singular
// value, the gradient through sigma).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/spectral_norm.h"
#include "tests/support/test_util.h"

namespace fg::nn {
namespace {

using test::random_tensor;

std::vector<std::string> state_names(const Module& m) {
  std::vector<std::string> out;
  for (const auto& e : m.state_dict()) out.push_back(e.first);
  return out;
}

struct Stats {
  double mean = 0, std = 0, max_abs = 0;
};
Stats stats_of(const Tensor& t) {
  const std::vector<double> v = t.to_vector();
  Stats s;
  for (double x : v) {
    s.mean += x;
    s.max_abs = std::max(s.max_abs, std::abs(x));
  }
  s.mean /= double(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / double(v.size()));
  return s;
}

// ---- init ----

TEST(Init, FansAndGainsAsPyTorch) {
  const init::Fans f = init::calculate_fans({64, 3, 7, 5});
  EXPECT_EQ(f.fan_in, 3 * 35);
  EXPECT_EQ(f.fan_out, 64 * 35);
  EXPECT_EQ(init::calculate_fans({10, 20}).fan_in, 20);
  EXPECT_THROW(init::calculate_fans({10}), Error);
  EXPECT_DOUBLE_EQ(init::calculate_gain(init::Nonlinearity::Relu), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain(init::Nonlinearity::LeakyRelu, 0.0), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain(init::Nonlinearity::LeakyRelu, std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain(init::Nonlinearity::Tanh), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(init::Nonlinearity::Sigmoid), 1.0);
}

TEST(Init, KaimingNormalStdOnALargeTensor) {
  Generator gen(42);
  Tensor w = Tensor::empty({256, 128, 3, 3});  // 294,912 draws: the sample std is within 0.2% of the truth
  init::kaiming_normal_(w, gen);
  const double want = std::sqrt(2.0 / (128 * 9));
  const Stats s = stats_of(w);
  EXPECT_NEAR(s.std, want, 0.01 * want);
  EXPECT_NEAR(s.mean, 0.0, 0.01 * want);
  EXPECT_GT(s.max_abs, 4.0 * want);  // normal tails, not a clipped or uniform draw

  init::kaiming_normal_(w, gen, 0.0, init::FanMode::FanOut, init::Nonlinearity::Relu);
  const double want_out = std::sqrt(2.0 / (256 * 9));
  EXPECT_NEAR(stats_of(w).std, want_out, 0.01 * want_out);
}

TEST(Init, KaimingUniformBoundsAndStd) {
  Generator gen(43);
  Tensor w = Tensor::empty({256, 128, 3, 3});
  init::kaiming_uniform_(w, gen, 0.0, init::FanMode::FanIn, init::Nonlinearity::Relu);
  const double std = std::sqrt(2.0 / (128 * 9));
  const double bound = std::sqrt(3.0) * std;
  const Stats s = stats_of(w);
  EXPECT_LE(s.max_abs, bound);
  EXPECT_GT(s.max_abs, 0.999 * bound);
  EXPECT_NEAR(s.std, std, 0.01 * std);
}

TEST(Init, SameSeedSameWeights) {
  Generator a(5), b(5), c(6);
  Tensor wa = Tensor::empty({8, 4, 3, 3}), wb = Tensor::empty({8, 4, 3, 3}), wc = Tensor::empty({8, 4, 3, 3});
  init::kaiming_normal_(wa, a);
  init::kaiming_normal_(wb, b);
  init::kaiming_normal_(wc, c);
  EXPECT_ALL_CLOSE(wa, wb, 0.0, 0.0);
  EXPECT_GT(test::nmse(wa, wc), 0.1);
}

TEST(Init, ConstantsAndNonContiguousTargets) {
  Tensor t = Tensor::empty({3, 4});
  init::ones_(t);
  EXPECT_EQ(stats_of(t).mean, 1.0);
  init::zeros_(t);
  EXPECT_EQ(stats_of(t).max_abs, 0.0);
  init::constant_(t.transpose(0, 1).slice(0, 1, 3), 2.5);  // columns 1 and 2
  EXPECT_EQ(t.at({2, 1}), 2.5);
  EXPECT_EQ(t.at({2, 2}), 2.5);
  EXPECT_EQ(t.at({2, 0}), 0.0);
  EXPECT_EQ(t.at({2, 3}), 0.0);
}

// After PixelShuffle(r), the r*r outputs of each block come from output channels r*r*k .. r*r*k + r*r - 1 of the conv:
// ICNR makes those channels equal, so each block must be constant. Checks every block; returns the worst spread.
double worst_block_spread(const Tensor& y, int64_t r) {
  double worst = 0;
  for (int64_t n = 0; n < y.size(0); ++n)
    for (int64_t c = 0; c < y.size(1); ++c)
      for (int64_t h = 0; h < y.size(2); h += r)
        for (int64_t w = 0; w < y.size(3); w += r) {
          const double first = y.at({n, c, h, w});
          for (int64_t i = 0; i < r; ++i)
            for (int64_t j = 0; j < r; ++j) worst = std::max(worst, std::abs(y.at({n, c, h + i, w + j}) - first));
        }
  return worst;
}

TEST(Init, IcnrMakesEveryPixelShuffleBlockEqual) {
  struct Case {
    int64_t out, in, k, r;
  };
  for (const Case c : {Case{8 * 4, 5, 1, 2}, Case{3 * 4, 4, 3, 2}, Case{2 * 9, 3, 1, 3}}) {
    SCOPED_TRACE("out " + std::to_string(c.out) + " k " + std::to_string(c.k) + " r " + std::to_string(c.r));
    Generator gen(11);
    Tensor w = Tensor::empty({c.out, c.in, c.k, c.k});
    init::icnr_(w, gen, c.r);
    // The weight itself: w[r*r*k + s] == w[r*r*k].
    for (int64_t o = 0; o < c.out; ++o)
      EXPECT_ALL_CLOSE(w.select(0, o - o % (c.r * c.r)), w.select(0, o), 0.0, 0.0);
    const Variable wv(w);
    const Conv2dParams p = Conv2dParams::square(1, c.k / 2);
    // A constant input (the property fastai states) and a random one (the property holds for any input).
    for (const Tensor& x : {Tensor::full({2, c.in, 5, 6}, 0.75), random_tensor({2, c.in, 5, 6}, 3)}) {
      const Tensor y = pixel_shuffle(conv2d(Variable(x), wv, Variable(), p), c.r).data();
      EXPECT_EQ(y.shape(), (Shape{2, c.out / (c.r * c.r), 5 * c.r, 6 * c.r}));
      EXPECT_LE(worst_block_spread(y, c.r), 1e-6);
    }
    // The check can fail: a plain kaiming init does not give equal blocks.
    Tensor plain = Tensor::empty(w.shape());
    init::kaiming_normal_(plain, gen);
    const Tensor y = pixel_shuffle(conv2d(Variable(random_tensor({2, c.in, 5, 6}, 3)), Variable(plain), Variable(), p),
                                   c.r)
                         .data();
    EXPECT_GT(worst_block_spread(y, c.r), 1e-2);
  }
}

TEST(Init, IcnrSubKernelsAreKaimingNormal) {
  Generator gen(12);
  Tensor w = Tensor::empty({4 * 256, 64, 3, 3});
  init::icnr_(w, gen, 2);
  const Tensor distinct = w.slice(0, 0, w.size(0), 4);  // one row per sub-kernel
  const double want = std::sqrt(2.0 / (64 * 9));        // fan_in of K = c_in * kh * kw
  EXPECT_NEAR(stats_of(distinct).std, want, 0.01 * want);
  EXPECT_THROW(init::icnr_(Tensor::empty({6, 2, 1, 1}), gen, 2), Error);
}

// ---- convolutions and linear ----

TEST(Conv2d, NamesShapesAndDefaultInitBounds) {
  Generator gen(1);
  Conv2d conv(gen, 64, 32, 3, 1, 1);
  EXPECT_EQ(state_names(conv), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(conv.weight().shape(), (Shape{32, 64, 3, 3}));
  EXPECT_EQ(conv.bias().shape(), (Shape{32}));
  // kaiming_uniform_(a = sqrt(5)) is U(+-1/sqrt(fan_in)); the bias uses the same bound.
  const double bound = 1.0 / std::sqrt(64.0 * 9.0);
  const Stats w = stats_of(conv.weight().data());
  EXPECT_LE(w.max_abs, bound);
  EXPECT_GT(w.max_abs, 0.99 * bound);
  EXPECT_NEAR(w.std, bound / std::sqrt(3.0), 0.02 * bound);
  EXPECT_LE(stats_of(conv.bias().data()).max_abs, bound);
  EXPECT_GT(stats_of(conv.bias().data()).std, 0.2 * bound);

  Conv2d no_bias(gen, 3, 8, 7, 2, 3, 1, false);
  EXPECT_EQ(state_names(no_bias), std::vector<std::string>{"weight"});
  EXPECT_FALSE(no_bias.bias().defined());
  EXPECT_THROW(Conv2d(gen, 0, 8, 3), Error);
  EXPECT_THROW(Conv2d(gen, 3, 8, 3, 0), Error);
}

TEST(Conv2d, ForwardIsTheConvOpWithStridePaddingDilation) {
  Generator gen(2);
  Conv2d conv(gen, 3, 5, 3, 2, 1, 2);
  const Tensor x = random_tensor({2, 3, 9, 8}, 4);
  const Variable y = conv.forward(Variable(x));
  // OH = (9 + 2 - 2*(3-1) - 1) / 2 + 1 = 4, OW = (8 + 2 - 4 - 1) / 2 + 1 = 3
  EXPECT_EQ(y.shape(), (Shape{2, 5, 4, 3}));
  const Variable ref = conv2d(Variable(x), conv.weight(), conv.bias(), Conv2dParams::square(2, 1, 2));
  EXPECT_ALL_CLOSE(ref.data(), y.data(), 0.0, 0.0);
}

TEST(Conv1d, NamesAndForward) {
  Generator gen(3);
  Conv1d conv(gen, 4, 6, 3, 1, 1);
  EXPECT_EQ(state_names(conv), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(conv.weight().shape(), (Shape{6, 4, 3}));
  EXPECT_LE(stats_of(conv.weight().data()).max_abs, 1.0 / std::sqrt(12.0));
  const Tensor x = random_tensor({2, 4, 7}, 5);
  const Variable y = conv.forward(Variable(x));
  EXPECT_EQ(y.shape(), (Shape{2, 6, 7}));
  EXPECT_ALL_CLOSE(conv1d(Variable(x), conv.weight(), conv.bias(), 1, 1).data(), y.data(), 0.0, 0.0);
  EXPECT_EQ(conv.extra_repr(), "4, 6, kernel_size=(3,), stride=(1,), padding=(1,)");
}

TEST(Linear, ForwardAgainstHandComputation) {
  Generator gen(4);
  Linear lin(gen, 3, 2);
  EXPECT_EQ(state_names(lin), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_LE(stats_of(lin.weight().data()).max_abs, 1.0 / std::sqrt(3.0));
  const Tensor x = random_tensor({4, 3}, 6);
  const Tensor y = lin.forward(Variable(x)).data();
  ASSERT_EQ(y.shape(), (Shape{4, 2}));
  const Tensor w = lin.weight().data(), b = lin.bias().data();
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t o = 0; o < 2; ++o) {
      double want = b.at({o});
      for (int64_t i = 0; i < 3; ++i) want += w.at({o, i}) * x.at({n, i});
      EXPECT_NEAR(y.at({n, o}), want, 1e-6);
    }
}

// ---- BatchNorm2d ----

TEST(BatchNorm2d, NamesDefaultsAndErrors) {
  BatchNorm2d bn(6);
  EXPECT_EQ(state_names(bn), (std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                                       "num_batches_tracked"}));
  EXPECT_ALL_CLOSE(Tensor::ones({6}), bn.weight().data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(Tensor::zeros({6}), bn.bias().data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(Tensor::ones({6}), bn.running_var(), 0.0, 0.0);
  EXPECT_EQ(bn.num_parameters(), 12);
  BatchNorm2d plain(6, 1e-3, 0.01, false);
  EXPECT_EQ(state_names(plain), (std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"}));
  EXPECT_EQ(plain.extra_repr(), "6, eps=0.001, momentum=0.01, affine=False, track_running_stats=True");
  EXPECT_THROW(bn.forward(Variable(Tensor::zeros({2, 6}))), Error);
  EXPECT_THROW(bn.forward(Variable(Tensor::zeros({2, 5, 3, 3}))), Error);
}

TEST(BatchNorm2d, RunningStatisticsFollowPyTorchsRule) {
  BatchNorm2d bn(2, 1e-5, 0.3);
  const Tensor x = random_tensor({3, 2, 2, 2}, 7, DType::F32, 0.0, 4.0);
  bn.forward(Variable(x));
  for (int64_t c = 0; c < 2; ++c) {
    std::vector<double> v;
    for (int64_t n = 0; n < 3; ++n)
      for (int64_t i = 0; i < 4; ++i) v.push_back(x.at({n, c, i / 2, i % 2}));
    double mean = 0, ss = 0;
    for (double e : v) mean += e;
    mean /= double(v.size());
    for (double e : v) ss += (e - mean) * (e - mean);
    const double unbiased = ss / double(v.size() - 1);
    EXPECT_NEAR(bn.running_mean().at({c}), 0.3 * mean, 1e-5);
    EXPECT_NEAR(bn.running_var().at({c}), 0.7 + 0.3 * unbiased, 1e-5);
  }
  EXPECT_EQ(bn.num_batches_tracked(), 1);
  bn.eval();
  bn.forward(Variable(x));
  EXPECT_EQ(bn.num_batches_tracked(), 1);
}

// ---- element-wise and shape layers ----

TEST(Activations, ValuesAgainstFormulas) {
  const std::vector<double> xs = {-2.0, -0.5, 0.0, 1.5};
  const Tensor x = Tensor::from_vector(xs, {4});
  const auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  const Tensor relu_y = ReLU().forward(Variable(x)).data();
  const Tensor leaky_y = LeakyReLU(0.2).forward(Variable(x)).data();
  const Tensor sig_y = Sigmoid().forward(Variable(x)).data();
  const Tensor range_y = SigmoidRange(-3.0, 3.0).forward(Variable(x)).data();
  const Tensor tanh_y = Tanh().forward(Variable(x)).data();
  for (int64_t i = 0; i < 4; ++i) {
    const double v = xs[size_t(i)];
    EXPECT_NEAR(relu_y.at({i}), std::max(v, 0.0), 1e-7);
    EXPECT_NEAR(leaky_y.at({i}), v > 0 ? v : 0.2 * v, 1e-7);
    EXPECT_NEAR(sig_y.at({i}), sig(v), 1e-6);
    EXPECT_NEAR(range_y.at({i}), sig(v) * 6.0 - 3.0, 1e-6);
    EXPECT_NEAR(tanh_y.at({i}), std::tanh(v), 1e-6);
  }
  EXPECT_THROW(SigmoidRange(1.0, -1.0), Error);
  EXPECT_EQ(Identity().forward(Variable(x)).data().at({1}), -0.5);
}

TEST(Pooling, DefaultStrideIsTheKernel) {
  const Tensor x = Tensor::arange(16).reshape({1, 1, 4, 4});
  const Tensor mp = MaxPool2d(2).forward(Variable(x)).data();
  EXPECT_EQ(mp.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(mp.to_vector(), (std::vector<double>{5, 7, 13, 15}));
  const Tensor ap = AvgPool2d(2).forward(Variable(x)).data();
  EXPECT_EQ(ap.to_vector(), (std::vector<double>{2.5, 4.5, 10.5, 12.5}));
  // fastai's blur: AvgPool2d(2, stride 1) keeps 4x4 -> 3x3.
  EXPECT_EQ(AvgPool2d(2, 1).forward(Variable(x)).shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(MaxPool2d(3, 2, 1).forward(Variable(x)).shape(), (Shape{1, 1, 2, 2}));
}

TEST(Padding, ReplicationAndZero) {
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2});
  // fastai's blur pads left 1, top 1 by replication.
  const Tensor r = ReplicationPad2d(1, 0, 1, 0).forward(Variable(x)).data();
  EXPECT_EQ(r.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(r.to_vector(), (std::vector<double>{1, 1, 2, 1, 1, 2, 3, 3, 4}));
  const Tensor z = ZeroPad2d(1).forward(Variable(x)).data();
  EXPECT_EQ(z.shape(), (Shape{1, 1, 4, 4}));
  EXPECT_EQ(z.at({0, 0, 0, 0}), 0.0);
  EXPECT_EQ(z.at({0, 0, 1, 1}), 1.0);
  EXPECT_EQ(z.at({0, 0, 2, 2}), 4.0);
  EXPECT_EQ(ReplicationPad2d(1, 0, 1, 0).extra_repr(), "(1, 0, 1, 0)");
  EXPECT_THROW(ZeroPad2d(-1, 0, 0, 0), Error);
}

TEST(Resampling, PixelShuffleAndUpsample) {
  const Tensor x = Tensor::arange(8).reshape({1, 4, 1, 2});
  const Tensor ps = PixelShuffle(2).forward(Variable(x)).data();
  ASSERT_EQ(ps.shape(), (Shape{1, 1, 2, 4}));
  // out[0, 0, i, 2w + j] = in[0, 2i + j, 0, w]
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t w = 0; w < 2; ++w)
      for (int64_t j = 0; j < 2; ++j) EXPECT_EQ(ps.at({0, 0, i, 2 * w + j}), x.at({0, 2 * i + j, 0, w}));
  const Tensor up = UpsampleNearest(2).forward(Variable(Tensor::from_vector({1, 2}, {1, 1, 1, 2}))).data();
  EXPECT_EQ(up.shape(), (Shape{1, 1, 2, 4}));
  EXPECT_EQ(up.to_vector(), (std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2}));
  const auto sized = UpsampleNearest::with_size(3, 5);
  EXPECT_EQ(sized->forward(Variable(Tensor::zeros({2, 3, 2, 2}))).shape(), (Shape{2, 3, 3, 5}));
  EXPECT_EQ(sized->extra_repr(), "size=(3, 5), mode=nearest");
  EXPECT_EQ(UpsampleNearest(2).extra_repr(), "scale_factor=2.0, mode=nearest");
}

TEST(Flatten, KeepsTheBatchDim) {
  EXPECT_EQ(Flatten().forward(Variable(Tensor::zeros({2, 3, 4, 5}))).shape(), (Shape{2, 60}));
  EXPECT_EQ(Flatten(0).forward(Variable(Tensor::zeros({2, 3}))).shape(), (Shape{6}));
}

TEST(Dropout, TrainingMasksEvalPassesThroughSeedsReproduce) {
  const Tensor x = Tensor::ones({64, 64});
  Dropout a(0.5, 7), b(0.5, 7), c(0.5, 8);
  const Tensor ya = a.forward(Variable(x)).data();
  EXPECT_ALL_CLOSE(ya, b.forward(Variable(x)).data(), 0.0, 0.0);
  EXPECT_GT(test::nmse(ya, c.forward(Variable(x)).data()), 0.1);
  int64_t zeros = 0;
  for (double v : ya.to_vector()) {
    EXPECT_TRUE(v == 0.0 || v == 2.0) << v;
    zeros += v == 0.0;
  }
  EXPECT_NEAR(double(zeros) / 4096.0, 0.5, 0.05);
  // The module's generator advances: the next mask differs.
  EXPECT_GT(test::nmse(ya, a.forward(Variable(x)).data()), 0.1);
  a.eval();
  EXPECT_ALL_CLOSE(x, a.forward(Variable(x)).data(), 0.0, 0.0);
  EXPECT_THROW(Dropout(1.5, 1), Error);

  // Seeds drawn from one parent differ, so sibling layers do not share masks.
  Generator parent(3);
  Dropout d1(0.5, parent), d2(0.5, parent);
  EXPECT_NE(d1.generator().seed(), d2.generator().seed());
}

TEST(Dropout2d, ZeroesWholeChannels) {
  Dropout2d d(0.5, 9);
  const Tensor y = d.forward(Variable(Tensor::ones({4, 16, 3, 3}))).data();
  int64_t dropped = 0;
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t c = 0; c < 16; ++c) {
      const double first = y.at({n, c, 0, 0});
      EXPECT_TRUE(first == 0.0 || first == 2.0);
      dropped += first == 0.0;
      for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(y.at({n, c, i / 3, i % 3}), first);
    }
  EXPECT_GT(dropped, 10);
  EXPECT_LT(dropped, 54);
}

TEST(Sequential, NamesIndexingAndForward) {
  Generator gen(5);
  auto conv = std::make_shared<Conv2d>(gen, 2, 3, 3, 1, 1);
  Sequential seq{conv, std::make_shared<ReLU>()};
  seq.push_back(std::make_shared<Flatten>());
  EXPECT_EQ(seq.size(), 3u);
  EXPECT_EQ(state_names(seq), (std::vector<std::string>{"0.weight", "0.bias"}));
  EXPECT_EQ(seq[0].get(), conv.get());
  EXPECT_EQ(seq.at<Conv2d>(0).get(), conv.get());
  EXPECT_THROW(seq.at<BatchNorm2d>(0), Error);
  EXPECT_THROW(seq[3], Error);
  const Tensor x = random_tensor({2, 2, 4, 4}, 8);
  const Tensor want = flatten(relu(conv->forward(Variable(x))), 1).data();
  EXPECT_ALL_CLOSE(want, seq.forward(Variable(x)).data(), 0.0, 0.0);
}

// ---- spectral norm and self-attention ----

TEST(SpectralNorm, NamesFollowTorchSpectralNorm) {
  Generator gen(6);
  Conv2d conv(gen, 3, 4, 3, 1, 1);
  conv.use_spectral_norm(gen);
  // PyTorch deletes "weight" and registers "weight_orig" after the existing parameters.
  EXPECT_EQ(state_names(conv), (std::vector<std::string>{"bias", "weight_orig", "weight_u", "weight_v"}));
  EXPECT_EQ(conv.weight().shape(), (Shape{4, 3, 3, 3}));
  EXPECT_EQ(conv.buffer("weight_u").shape(), (Shape{4}));
  EXPECT_EQ(conv.buffer("weight_v").shape(), (Shape{27}));
  EXPECT_NEAR(kernels::sum_squares(conv.buffer("weight_u").data()), 1.0, 1e-6);
  EXPECT_NEAR(kernels::sum_squares(conv.buffer("weight_v").data()), 1.0, 1e-6);
  EXPECT_EQ(conv.num_parameters(), 4 + 108);
  EXPECT_THROW(conv.use_spectral_norm(gen), Error);
}

TEST(SpectralNorm, OnePowerIterationByHand) {
  Generator gen(7);
  Linear lin(gen, 3, 2, false);
  lin.use_spectral_norm(gen);
  const Tensor w = lin.weight().data();
  const std::vector<double> u0 = lin.buffer("weight_u").data().to_vector();
  lin.effective_weight();  // training: one iteration
  // v = normalize(W^T u0), u = normalize(W v)
  std::vector<double> v(3, 0.0), u(2, 0.0);
  for (int64_t j = 0; j < 3; ++j)
    for (int64_t i = 0; i < 2; ++i) v[size_t(j)] += w.at({i, j}) * u0[size_t(i)];
  double nv = 0;
  for (double e : v) nv += e * e;
  for (double& e : v) e /= std::sqrt(nv);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) u[size_t(i)] += w.at({i, j}) * v[size_t(j)];
  double nu = 0;
  for (double e : u) nu += e * e;
  for (double& e : u) e /= std::sqrt(nu);
  EXPECT_ALL_CLOSE(Tensor::from_vector(v, {3}), lin.buffer("weight_v").data(), 1e-6, 1e-5);
  EXPECT_ALL_CLOSE(Tensor::from_vector(u, {2}), lin.buffer("weight_u").data(), 1e-6, 1e-5);
  // sigma = u^T W v, and the effective weight is W / sigma.
  double sigma = 0;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) sigma += u[size_t(i)] * w.at({i, j}) * v[size_t(j)];
  EXPECT_NEAR(lin.spectral_norm()->sigma(), sigma, 1e-5);
  lin.eval();
  EXPECT_ALL_CLOSE(kernels::mul_scalar(w, 1.0 / sigma), lin.effective_weight().data(), 1e-6, 1e-5);
  // Eval runs no iteration.
  EXPECT_ALL_CLOSE(Tensor::from_vector(u, {2}), lin.buffer("weight_u").data(), 1e-6, 1e-5);
}

TEST(SpectralNorm, SigmaConvergesToTheLargestSingularValue) {
  Generator gen(8);
  SelfAttention attn(gen, 16, true);
  // value.weight_orig (16, 16, 1) diagonal: its singular values are |d_i|, the largest 4 (at a negative entry).
  Tensor w = attn.value()->weight().data();
  w.zero_();
  for (int64_t i = 0; i < 16; ++i) w.select(0, i).select(0, i).fill_(i == 3 ? -4.0 : 0.5 + 0.1 * double(i));
  const double sigma0 = attn.value()->spectral_norm()->sigma();
  EXPECT_LT(std::abs(sigma0), 3.9);  // random u, v are far from the singular vectors
  const Tensor x = random_tensor({1, 16, 2, 2}, 9);
  for (int it = 0; it < 40; ++it) attn.forward(Variable(x));  // one iteration per training forward
  EXPECT_NEAR(attn.value()->spectral_norm()->sigma(), 4.0, 1e-5);
  attn.eval();
  const Tensor w_eff = attn.value()->effective_weight().data();
  EXPECT_NEAR(w_eff.at({3, 3, 0}), -1.0, 1e-5);
  EXPECT_NEAR(w_eff.at({0, 0, 0}), 0.5 / 4.0, 1e-6);
  EXPECT_NEAR(w_eff.at({0, 1, 0}), 0.0, 1e-7);
}

TEST(SpectralNorm, GradientFlowsThroughSigma) {
  const Tensor w = random_tensor({3, 2, 2}, 10, DType::F64);
  Tensor u = random_tensor({3}, 11, DType::F64);
  Tensor v = random_tensor({4}, 12, DType::F64);
  u = kernels::mul_scalar(u, 1.0 / std::sqrt(kernels::sum_squares(u)));
  v = kernels::mul_scalar(v, 1.0 / std::sqrt(kernels::sum_squares(v)));
  EXPECT_GRAD_OK([&](const std::vector<Variable>& in) { return spectral_normalize(in[0], u, v); }, {w});

  // The closed form: for L = sum(R * W / sigma), dL/dW = R / sigma - (sum(R * W) / sigma^2) u v^T.
  const Tensor r = random_tensor({3, 2, 2}, 13, DType::F64);
  const Variable wv(w, true);
  sum(mul(spectral_normalize(wv, u, v), Variable(r))).backward();
  const double sigma = spectral_sigma(w, u, v);
  double rw = 0;
  for (int64_t i = 0; i < 12; ++i) rw += r.to_vector()[size_t(i)] * w.to_vector()[size_t(i)];
  std::vector<double> want(12);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j)
      want[size_t(i * 4 + j)] = r.to_vector()[size_t(i * 4 + j)] / sigma -
                                rw / (sigma * sigma) * u.at({i}) * v.at({j});
  EXPECT_ALL_CLOSE(Tensor::from_vector(want, {3, 2, 2}, DType::F64), wv.grad(), 1e-12, 1e-9);
}

TEST(SelfAttention, NamesAndShapesAsFastai) {
  Generator gen(9);
  SelfAttention sn(gen, 16);
  EXPECT_EQ(state_names(sn),
            (std::vector<std::string>{"gamma", "query.weight_orig", "query.weight_u", "query.weight_v",
                                      "key.weight_orig", "key.weight_u", "key.weight_v", "value.weight_orig",
                                      "value.weight_u", "value.weight_v"}));
  EXPECT_EQ(sn.query()->weight().shape(), (Shape{2, 16, 1}));
  EXPECT_EQ(sn.value()->weight().shape(), (Shape{16, 16, 1}));
  EXPECT_EQ(sn.query()->buffer("weight_u").shape(), (Shape{2}));
  EXPECT_EQ(sn.query()->buffer("weight_v").shape(), (Shape{16}));
  EXPECT_EQ(sn.num_parameters(), 2 * 32 + 256 + 1);

  SelfAttention plain(gen, 16, false);
  EXPECT_EQ(state_names(plain),
            (std::vector<std::string>{"gamma", "query.weight", "key.weight", "value.weight"}));
  // fastai's conv1d init: kaiming_normal_, std sqrt(2 / fan_in) = sqrt(2 / 16).
  EXPECT_NEAR(stats_of(plain.value()->weight().data()).std, std::sqrt(2.0 / 16.0), 0.1 * std::sqrt(2.0 / 16.0));
  EXPECT_THROW(SelfAttention(gen, 4), Error);
}

TEST(SelfAttention, ForwardUsesTheNormalisedWeights) {
  Generator gen(10);
  SelfAttention attn(gen, 16);
  const Tensor x = random_tensor({2, 16, 3, 2}, 14);
  // gamma starts at 0: the output is the input.
  EXPECT_ALL_CLOSE(x, attn.forward(Variable(x)).data(), 1e-7, 0.0);
  Tensor g = attn.gamma().data();
  g.fill_(0.5);
  attn.eval();
  const Tensor y = attn.forward(Variable(x)).data();
  const auto normalised = [](const std::shared_ptr<Conv1d>& c) {
    return spectral_normalize(c->weight(), c->buffer("weight_u").data(), c->buffer("weight_v").data());
  };
  const Tensor want = self_attention(Variable(x), normalised(attn.query()), normalised(attn.key()),
                                     normalised(attn.value()), attn.gamma())
                          .data();
  EXPECT_ALL_CLOSE(want, y, 1e-6, 1e-5);
  EXPECT_THROW(attn.forward(Variable(Tensor::zeros({1, 8, 2, 2}))), Error);

  // Gradients reach gamma and every weight_orig.
  attn.train();
  sum(attn.forward(Variable(x))).backward();
  for (const auto& p : attn.named_parameters()) EXPECT_TRUE(p.second.grad().defined()) << p.first;
}

}  // namespace
}  // namespace fg::nn
