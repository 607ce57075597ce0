// Philox4x32-10 against the published known-answer vectors, and the stream definition of philox.h.
#include <gtest/gtest.h>

#include <cmath>

#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace fg {
namespace {

TEST(Philox, KnownAnswerVectors) {
  // From the Random123 distribution's known-answer tests (philox4x32_10).
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Philox, StreamIsDefinedPerElement) {
  Generator g(42, 7);
  Tensor t = Tensor::empty({10});
  uniform_(t, g);
  EXPECT_EQ(g.offset(), 7u + 3u);  // ceil(10 / 4) blocks reserved
  const Generator ref(42);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(float(t.at({i})), philox_uniform01(ref.word(7, uint64_t(i))));
  // a second draw continues the stream, it does not repeat it
  Tensor u = Tensor::empty({10});
  uniform_(u, g);
  EXPECT_NE(t.to_vector(), u.to_vector());
  // the same seed and offset reproduce a draw, whatever the layout of the destination
  Generator g2(42, 7);
  Tensor v = Tensor::empty({5, 2}).transpose(0, 1);
  uniform_(v, g2);
  EXPECT_EQ(v.contiguous().reshape({10}).to_vector(), t.to_vector());
}

TEST(Philox, UniformNormalBernoulliStatistics) {
  Generator g(3);
  const int64_t n = 200000;
  Tensor u = Tensor::empty({n}, DType::F64), z = Tensor::empty({n}, DType::F64), b = Tensor::empty({n});
  uniform_(u, g, -2.0, 4.0);
  normal_(z, g, 1.0, 2.0);
  bernoulli_(b, g, 0.3);
  auto stats = [](const Tensor& t) {
    double s = 0, s2 = 0;
    for (double v : t.to_vector()) {
      s += v;
      s2 += v * v;
    }
    const double m = s / double(t.numel());
    return std::make_pair(m, s2 / double(t.numel()) - m * m);
  };
  // bounds: 5 standard errors of the mean
  auto [mu, vu] = stats(u);
  EXPECT_NEAR(mu, 1.0, 5 * std::sqrt(3.0 / n));
  EXPECT_NEAR(vu, 3.0, 0.05);
  auto [mz, vz] = stats(z);
  EXPECT_NEAR(mz, 1.0, 5 * 2.0 / std::sqrt(double(n)));
  EXPECT_NEAR(vz, 4.0, 0.08);
  auto [mb, vb] = stats(b);
  EXPECT_NEAR(mb, 0.3, 5 * std::sqrt(0.21 / n));
  for (double v : u.to_vector()) ASSERT_TRUE(v >= -2.0 && v < 4.0);
  EXPECT_THROW(bernoulli_(b, g, 1.5), Error);
  Tensor i = Tensor::empty({4}, DType::I32);
  EXPECT_THROW(uniform_(i, g), Error);
}

}  // namespace
}  // namespace fg
