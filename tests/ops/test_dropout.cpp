// Dropout and dropout2d: the mask against the Philox stream definition (element i kept when
// uniform01(word i) < 1 - p, the same rule as fg::bernoulli_), the kept fraction within binomial bounds, exact
// scaling by 1/(1-p), reproducibility from (seed, offset), whole-channel zeroing for dropout2d, the identity cases
// (eval, p == 0) that leave the generator alone, the gradient (the same mask) and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/dropout.h"
#include "tensor/philox.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

// Random values in [0.5, 2): never zero, so a zero in the output means "dropped".
Tensor nonzero_input(const Shape& shape, uint64_t seed, DType dtype = DType::F32) {
  return test::random_tensor(shape, seed, dtype, 0.5, 2.0);
}

int64_t count_nonzero(const Tensor& t) {
  int64_t n = 0;
  for (double v : t.to_vector()) n += v != 0.0;
  return n;
}

TEST(Dropout, KeptFractionWithinBinomialBounds) {
  const int64_t n = 1 << 20;
  const Tensor x = Tensor::ones({n});
  uint64_t seed = 100;
  for (double p : {0.05, 0.15, 0.5, 0.9}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    Generator gen(seed++);
    const int64_t kept = count_nonzero(dropout(Variable(x), p, true, gen).data());
    const double expected = double(n) * (1.0 - p);
    const double sd = std::sqrt(double(n) * p * (1.0 - p));
    // Six standard deviations: a false failure has probability ~2e-9.
    EXPECT_LT(std::abs(double(kept) - expected), 6.0 * sd) << "kept " << kept << " of " << n;
  }
}

TEST(Dropout, MaskFollowsPhiloxStreamDefinition) {
  const double p = 0.3;
  for (const Shape& shape : {Shape{1}, Shape{7}, Shape{3, 5, 11}}) {
    SCOPED_TRACE(shape_str(shape));
    Generator gen(77, 5);
    const uint64_t first = gen.offset();
    const Tensor x = nonzero_input(shape, 51, DType::F64);
    const std::vector<double> y = dropout(Variable(x), p, true, gen).data().to_vector();
    const std::vector<double> xv = x.to_vector();
    const Generator reference(77, 5);
    for (size_t i = 0; i < y.size(); ++i) {
      const bool keep = double(philox_uniform01(reference.word(first, i))) < 1.0 - p;
      EXPECT_EQ(y[i], keep ? xv[i] * (1.0 / (1.0 - p)) : 0.0) << "element " << i;
    }
    EXPECT_EQ(gen.offset(), first + (uint64_t(x.numel()) + 3) / 4);
  }
}

TEST(Dropout, MaskEqualsBernoulliOfKeepProbability) {
  const double p = 0.37;
  const Shape shape{5, 401};
  Generator g1(9, 3), g2(9, 3);
  const Tensor y = dropout(Variable(Tensor::ones(shape)), p, true, g1).data();
  Tensor keep = Tensor::empty(shape);
  bernoulli_(keep, g2, 1.0 - p);
  const std::vector<double> yv = y.to_vector(), kv = keep.to_vector();
  for (size_t i = 0; i < yv.size(); ++i) ASSERT_EQ(yv[i] != 0.0, kv[i] == 1.0) << "element " << i;
  EXPECT_EQ(g1.offset(), g2.offset());
}

TEST(Dropout, KeptElementsScaledExactly) {
  for (double p : {0.1, 0.25, 0.3, 0.5, 0.7}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    Generator gen(5);
    const Tensor x = nonzero_input({1000}, 52);
    const std::vector<float> xv = x.to_vector_f32(), yv = dropout(Variable(x), p, true, gen).data().to_vector_f32();
    const float scale = float(1.0 / (1.0 - p));
    int64_t kept = 0;
    for (size_t i = 0; i < xv.size(); ++i) {
      if (yv[i] == 0.0f) continue;
      ++kept;
      ASSERT_EQ(yv[i], xv[i] * scale) << "element " << i;
    }
    EXPECT_GT(kept, 0);
  }
}

TEST(Dropout, SameSeedSameMaskDifferentOffsetDifferentMask) {
  const Tensor x = nonzero_input({64, 33}, 53);
  Generator a(1234), b(1234), c(1234, 1000), d(4321);
  const std::vector<double> ya = dropout(Variable(x), 0.5, true, a).data().to_vector();
  EXPECT_EQ(ya, dropout(Variable(x), 0.5, true, b).data().to_vector());
  EXPECT_NE(ya, dropout(Variable(x), 0.5, true, c).data().to_vector());
  EXPECT_NE(ya, dropout(Variable(x), 0.5, true, d).data().to_vector());
  // The generator advanced, so the next draw from `a` differs from the first.
  EXPECT_NE(ya, dropout(Variable(x), 0.5, true, a).data().to_vector());
}

TEST(Dropout, NonContiguousInput) {
  const double p = 0.4;
  const Tensor base = nonzero_input({6, 5, 4}, 54);
  for (const Tensor& x : {base.permute({2, 0, 1}), base.slice(1, 0, 5, 2)}) {
    SCOPED_TRACE(shape_str(x.shape()));
    Generator gen(8), reference_gen(8);
    const Tensor y = dropout(Variable(x), p, true, gen).data();
    const Tensor mask = kernels::dropout_mask(x.shape(), p, reference_gen, DType::F32, Device::cpu());
    const std::vector<float> xv = x.to_vector_f32(), yv = y.to_vector_f32(), mv = mask.to_vector_f32();
    for (size_t i = 0; i < xv.size(); ++i) ASSERT_EQ(yv[i], xv[i] * mv[i]) << "element " << i;
  }
}

TEST(Dropout, IdentityInEvalModeAndAtZero) {
  const Variable x(nonzero_input({3, 4}, 55), true);
  Generator gen(1, 17);
  EXPECT_TRUE(dropout(x, 0.5, false, gen).same(x));
  EXPECT_TRUE(dropout(x, 0.0, true, gen).same(x));
  EXPECT_TRUE(dropout2d(x, 0.5, false, gen).same(x));
  EXPECT_TRUE(dropout2d(x, 0.0, true, gen).same(x));
  EXPECT_EQ(gen.offset(), 17u);
}

TEST(Dropout2d, ZeroesWholeChannels) {
  const double p = 0.5;
  const float scale = float(1.0 / (1.0 - p));
  for (const Shape& shape : {Shape{4, 6, 5, 7}, Shape{3, 5, 9}, Shape{1, 1, 2, 2}}) {
    SCOPED_TRACE(shape_str(shape));
    const Tensor x = nonzero_input(shape, 56);
    Generator gen(21), reference_gen(21);
    const Tensor y = dropout2d(Variable(x), p, true, gen).data();
    // One draw per (n, c), in (n, c) order.
    Tensor keep = Tensor::empty({shape[0], shape[1]});
    bernoulli_(keep, reference_gen, 1.0 - p);
    const std::vector<float> xv = x.to_vector_f32(), yv = y.to_vector_f32(), kv = keep.to_vector_f32();
    const size_t plane = size_t(x.numel() / (shape[0] * shape[1]));
    int64_t kept_channels = 0;
    for (size_t ch = 0; ch < kv.size(); ++ch) {
      kept_channels += kv[ch] == 1.0f;
      for (size_t i = ch * plane; i < (ch + 1) * plane; ++i)
        ASSERT_EQ(yv[i], kv[ch] == 1.0f ? xv[i] * scale : 0.0f) << "channel " << ch << " element " << i;
    }
    EXPECT_EQ(gen.offset(), (uint64_t(shape[0] * shape[1]) + 3) / 4);
    if (kv.size() > 10) {
      EXPECT_GT(kept_channels, 0);
      EXPECT_LT(kept_channels, int64_t(kv.size()));
    }
  }
}

TEST(Dropout2d, KeptChannelFractionWithinBinomialBounds) {
  const double p = 0.15;  // the NoGAN critic's rate
  const Tensor x = Tensor::ones({128, 512, 1, 2});
  Generator gen(99);
  const std::vector<double> y = dropout2d(Variable(x), p, true, gen).data().to_vector();
  int64_t kept = 0;
  for (size_t ch = 0; ch < y.size() / 2; ++ch) {
    ASSERT_EQ(y[2 * ch], y[2 * ch + 1]);
    kept += y[2 * ch] != 0.0;
  }
  const double channels = 128.0 * 512.0;
  EXPECT_LT(std::abs(double(kept) - channels * (1 - p)), 6.0 * std::sqrt(channels * p * (1 - p)));
}

TEST(Dropout, GradientIsTheSameMask) {
  const double p = 0.4;
  const Tensor g = test::random_tensor({4, 3, 5}, 57, DType::F64);
  for (bool channel_wise : {false, true}) {
    SCOPED_TRACE(channel_wise ? "dropout2d" : "dropout");
    Variable x(nonzero_input({4, 3, 5}, 58, DType::F64), true);
    Generator gen(3);
    const Variable y = channel_wise ? dropout2d(x, p, true, gen) : dropout(x, p, true, gen);
    const std::vector<double> gx = fg::grad(y, {x}, g)[0].to_vector();
    const std::vector<double> yv = y.data().to_vector(), xv = x.data().to_vector(), gv = g.to_vector();
    for (size_t i = 0; i < gx.size(); ++i) {
      const double mask = yv[i] / xv[i];  // 0 or 1/(1-p) up to the rounding of x * scale
      EXPECT_EQ(gx[i], yv[i] == 0.0 ? 0.0 : gv[i] * (1.0 / (1.0 - p))) << "element " << i;
      EXPECT_TRUE(mask == 0.0 || std::abs(mask - 1.0 / (1.0 - p)) < 1e-15);
    }
  }
}

// A generator created inside f makes the mask the same on every evaluation, so f is a fixed linear map.
TEST(Dropout, GradientCheck) {
  const Tensor x = test::random_tensor({3, 4, 5}, 59, DType::F64);
  EXPECT_GRAD_OK(
      [](const std::vector<Variable>& v) {
        Generator gen(11);
        return dropout(v[0], 0.3, true, gen);
      },
      {x});
  EXPECT_GRAD_OK(
      [](const std::vector<Variable>& v) {
        Generator gen(12);
        return dropout2d(permute(v[0], {1, 0, 2}), 0.5, true, gen);
      },
      {x});
}

TEST(Dropout, Errors) {
  const Variable x(Tensor::ones({2, 3}));
  Generator gen(1);
  for (double p : {-0.1, 1.0, 1.5}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    EXPECT_THROW(dropout(x, p, true, gen), Error);
    EXPECT_THROW(dropout(x, p, false, gen), Error);
    EXPECT_THROW(dropout2d(x, p, true, gen), Error);
  }
  EXPECT_THROW(dropout(x, std::nan(""), true, gen), Error);
  EXPECT_THROW(dropout2d(Variable(Tensor::ones({5})), 0.5, true, gen), Error);
  EXPECT_THROW(dropout(Variable(Tensor::ones({5}, DType::I32)), 0.5, true, gen), Error);
  EXPECT_THROW(kernels::apply_dropout_mask(Tensor::ones({2, 3}), Tensor::ones({3})), Error);
  EXPECT_EQ(gen.offset(), 0u);
}

}  // namespace
}  // namespace fg
