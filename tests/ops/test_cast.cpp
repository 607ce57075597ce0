// cast: every pair among f32, f64, f16 and bf16 through the differentiable op, exact round trips of representable
// values, round-to-nearest-even on hand-picked halfway cases, overflow to infinity, NaN and infinities preserved,
// non-contiguous inputs, and the gradient cast back to the input's dtype.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

const DType kFloatingTypes[] = {DType::F32, DType::F64, DType::F16, DType::BF16};

// Values exact in every one of the four types (8 significant bits at most, small exponents).
const std::vector<double> kExactEverywhere = {0.0, 1.0, -2.0, 0.5, 0.375, -96.0, 1.0 / 64, 240.0};

TEST(Cast, EveryPairOfFloatingTypes) {
  for (DType from : kFloatingTypes) {
    for (DType to : kFloatingTypes) {
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
      const Variable x(Tensor::from_vector(kExactEverywhere, {2, 4}, from));
      const Variable y = cast(x, to);
      ASSERT_EQ(y.dtype(), to);
      ASSERT_EQ(y.shape(), (Shape{2, 4}));
      EXPECT_EQ(y.data().to_vector(), kExactEverywhere);
      if (from == to) {
        EXPECT_TRUE(y.same(x));
      }
    }
  }
}

TEST(Cast, HalfRoundTripOfRepresentableValuesIsExact) {
  const std::vector<double> values = {
      0.0, 1.0, -2.0, 0.5, 3.140625, 1024.0, 65504.0 /* largest f16 */, -65504.0,
      std::ldexp(1.0, -14) /* smallest normal */, std::ldexp(1.0, -24) /* smallest subnormal */,
      std::ldexp(3.0, -20) /* subnormal */, 2047.0, -0.0009765625};
  const Variable x(Tensor::from_vector(values, {int64_t(values.size())}, DType::F32));
  const Variable back = cast(cast(x, DType::F16), DType::F32);
  EXPECT_EQ(back.data().to_vector(), values);
  const Variable neg_zero(Tensor::from_vector({-0.0}, {1}, DType::F32));
  EXPECT_TRUE(std::signbit(cast(cast(neg_zero, DType::F16), DType::F32).data().to_vector()[0]));
  EXPECT_TRUE(std::signbit(cast(cast(neg_zero, DType::BF16), DType::F32).data().to_vector()[0]));
}

TEST(Cast, BFloat16RoundTripOfRepresentableValuesIsExact) {
  const std::vector<double> values = {1.0, -1.5, 0.0078125, std::ldexp(1.0, 100), std::ldexp(-255.0, -130),
                                      3.3895313892515355e38 /* largest bf16 */};
  const Variable x(Tensor::from_vector(values, {int64_t(values.size())}, DType::F32));
  EXPECT_EQ(cast(cast(x, DType::BF16), DType::F32).data().to_vector(), values);
}

struct RoundingCase {
  double input, expected;
  const char* why;
};

void expect_rounding(DType narrow, const std::vector<RoundingCase>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(dtype_name(narrow)) + ": " + c.why);
    const Variable x(Tensor::from_vector({c.input}, {1}, DType::F32));
    EXPECT_EQ(cast(x, narrow).data().to_vector()[0], c.expected);
  }
}

TEST(Cast, BFloat16RoundsToNearestEven) {
  const double u = std::ldexp(1.0, -7);  // bf16 spacing in [1, 2): 7 stored mantissa bits
  const double inf = std::numeric_limits<double>::infinity();
  expect_rounding(DType::BF16,
                  {
                      {1.0 + u / 2, 1.0, "halfway, ties to the even 1.0"},
                      {1.0 + 3 * u / 2, 1.0 + 2 * u, "halfway, ties to the even 1 + 2u"},
                      {1.0 + u / 2 + std::ldexp(1.0, -20), 1.0 + u, "just above halfway rounds up"},
                      {1.0 + u / 2 - std::ldexp(1.0, -20), 1.0, "just below halfway rounds down"},
                      {-(1.0 + 3 * u / 2), -(1.0 + 2 * u), "negative halfway"},
                      {1.0 + u / 4, 1.0, "a quarter step rounds down"},
                      {256.0 + 1.0, 256.0, "257 is halfway between 256 and 258, ties to 256"},
                      {256.0 + 3.0, 260.0, "259 is halfway between 258 and 260, ties to 260"},
                      {std::numeric_limits<float>::max(), inf, "above the largest bf16 plus half a step"},
                  });
}

TEST(Cast, HalfRoundsToNearestEven) {
  const double u = std::ldexp(1.0, -10);  // f16 spacing in [1, 2)
  const double inf = std::numeric_limits<double>::infinity();
  expect_rounding(DType::F16,
                  {
                      {1.0 + u / 2, 1.0, "halfway, ties to the even 1.0"},
                      {1.0 + 3 * u / 2, 1.0 + 2 * u, "halfway, ties to the even 1 + 2u"},
                      {2049.0, 2048.0, "halfway between 2048 and 2050"},
                      {65519.0, 65504.0, "below the overflow threshold"},
                      {65520.0, inf, "halfway between 65504 and 65536 ties to infinity"},
                      {-1e6, -inf, "negative overflow"},
                      {std::ldexp(1.0, -26), 0.0, "below half the smallest subnormal"},
                      {std::ldexp(3.0, -26), std::ldexp(1.0, -24), "three quarters of it rounds up"},
                  });
}

TEST(Cast, NaNAndInfinitiesSurvive) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (DType from : kFloatingTypes) {
    for (DType to : kFloatingTypes) {
      if (from == to) continue;
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
      const std::vector<double> y =
          cast(Variable(Tensor::from_vector({nan, inf, -inf, -nan}, {4}, from)), to).data().to_vector();
      EXPECT_TRUE(std::isnan(y[0]));
      EXPECT_EQ(y[1], inf);
      EXPECT_EQ(y[2], -inf);
      EXPECT_TRUE(std::isnan(y[3]));
    }
  }
}

TEST(Cast, NonContiguousInput) {
  const Tensor base = test::random_tensor({4, 6, 5}, 61, DType::F32, -8, 8);
  for (const Tensor& x : {base.permute({2, 0, 1}), base.slice(1, 1, 6, 2), base.transpose(0, 2)}) {
    SCOPED_TRACE(shape_str(x.shape()));
    const Variable y = cast(Variable(x), DType::F64);
    ASSERT_EQ(y.shape(), x.shape());
    EXPECT_EQ(y.data().to_vector(), x.to_vector());  // f32 -> f64 is exact
    const Variable h = cast(Variable(x), DType::BF16);
    std::vector<double> expected = x.to_vector();
    for (double& v : expected) v = bf16_to_float(float_to_bf16(float(v)));
    EXPECT_EQ(h.data().to_vector(), expected);
  }
}

// The gradient arrives in the output's dtype and leaves in the input's.
TEST(Cast, GradientIsCastBack) {
  for (DType from : kFloatingTypes) {
    for (DType to : kFloatingTypes) {
      if (from == to) continue;
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
      const Variable x(Tensor::from_vector(kExactEverywhere, {8}, from), true);
      const Variable y = cast(x, to);
      EXPECT_FALSE(y.is_leaf());
      const std::vector<double> g = {1.0, -0.5, 2.0, 0.25, -4.0, 8.0, 0.125, -1.0};
      const std::vector<Tensor> gx = fg::grad(y, {x}, Tensor::from_vector(g, {8}, to));
      ASSERT_EQ(gx.size(), 1u);
      EXPECT_EQ(gx[0].dtype(), from);
      EXPECT_EQ(gx[0].to_vector(), g);
    }
  }
}

// f64 -> f32 -> f64: the composite is the identity up to f32 rounding (relative 6e-8), so a coarse step keeps the
// rounding noise in the central differences (about 6e-8 |x| / eps) far below the tolerance.
TEST(Cast, GradientCheckThroughF32) {
  GradCheckOptions options;
  options.eps = 1e-3;
  options.atol = 1e-3;
  options.rtol = 1e-3;
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return cast(cast(v[0], DType::F32), DType::F64); },
                 {test::random_tensor({3, 4}, 62, DType::F64)}, {}, options);
  // The gradient also flows through an op computed in f32 between the casts.
  EXPECT_GRAD_OK(
      [](const std::vector<Variable>& v) { return cast(sigmoid(cast(v[0], DType::F32)), DType::F64); },
      {test::random_tensor({5}, 63, DType::F64)}, {}, options);
}

TEST(Cast, Errors) {
  const Variable x(Tensor::ones({3}));
  EXPECT_THROW(cast(x, DType::I32), Error);
  EXPECT_THROW(cast(x, DType::U8), Error);
  EXPECT_THROW(cast(Variable(Tensor::ones({3}, DType::I64)), DType::F32), Error);
  EXPECT_THROW(cast(Variable(), DType::F32), Error);
}

}  // namespace
}  // namespace fg
