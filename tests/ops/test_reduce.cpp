// sum and mean over any dims: forward against explicit loops, keepdim, negative dims, gradients, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

TEST(Reduce, SumOverEachDimMatchesLoops) {
  const Tensor x = test::random_tensor({3, 4, 5}, 1, DType::F64);
  const Tensor s1 = sum(Variable(x), {1}).data();
  ASSERT_EQ(s1.shape(), (Shape{3, 5}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t k = 0; k < 5; ++k) {
      double r = 0;
      for (int64_t j = 0; j < 4; ++j) r += x.at({i, j, k});
      EXPECT_NEAR(s1.at({i, k}), r, 1e-12);
    }
  const Tensor s02 = sum(Variable(x), {0, -1}, true).data();
  ASSERT_EQ(s02.shape(), (Shape{1, 4, 1}));
  for (int64_t j = 0; j < 4; ++j) {
    double r = 0;
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t k = 0; k < 5; ++k) r += x.at({i, j, k});
    EXPECT_NEAR(s02.at({0, j, 0}), r, 1e-12);
  }
  double all = 0;
  for (double v : x.to_vector()) all += v;
  EXPECT_NEAR(sum(Variable(x)).item(), all, 1e-12);
  EXPECT_NEAR(mean(Variable(x)).item(), all / 60, 1e-12);
  EXPECT_EQ(sum(Variable(x)).shape(), Shape{});
  EXPECT_NEAR(mean(Variable(x), {2}).data().at({1, 2}), s1.at({1, 0}) * 0 + [&] {
    double r = 0;
    for (int64_t k = 0; k < 5; ++k) r += x.at({1, 2, k});
    return r / 5;
  }(), 1e-12);
}

TEST(Reduce, NonContiguousInputAndF32Accuracy) {
  const Tensor x = test::random_tensor({6, 5}, 2, DType::F64).transpose(0, 1);
  EXPECT_ALL_CLOSE(sum(Variable(x.contiguous()), {1}).data(), sum(Variable(x), {1}).data(), 1e-12, 0);
  // one million f32 ones sum exactly (accumulation is in double)
  EXPECT_EQ(kernels::sum(Tensor::ones({1000, 1000})).item(), 1e6);
}

// mean's 1 / count is applied to the double accumulator before the result is rounded to the dtype. It used to be a
// sum rounded to the dtype, then scaled: a sum beyond the dtype's range gave Inf. On the CPU that takes f32 near
// its maximum; on CUDA the same line keeps an f16 mean of more than 65504 in total finite (tests/gpu).
TEST(Reduce, MeanScalesBeforeRoundingSoALargeSumDoesNotOverflow) {
  const Tensor big = Tensor::full({4, 3}, 3e38, DType::F32);  // any two of them sum beyond f32's 3.4e38
  const Tensor all = mean(Variable(big)).data();
  ASSERT_TRUE(std::isfinite(all.item()));
  EXPECT_NEAR(all.item(), 3e38, 3e38 * 1e-7);
  const Tensor rows = mean(Variable(big), {0}).data();
  for (double v : rows.to_vector()) EXPECT_NEAR(v, 3e38, 3e38 * 1e-7);
  EXPECT_FALSE(std::isfinite(sum(Variable(big)).data().item()));  // the sum itself does overflow
  // The scale argument of kernels::sum directly, and its default.
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {2, 2}, DType::F64);
  EXPECT_EQ(kernels::sum(x, {1}, false, 0.5).to_vector(), (std::vector<double>{1.5, 3.5}));
  EXPECT_EQ(kernels::sum(x).item(), 10.0);
}

TEST(Reduce, Gradients) {
  const Tensor x = test::random_tensor({2, 3, 4}, 3, DType::F64);
  for (const std::vector<int64_t>& dims : std::vector<std::vector<int64_t>>{{}, {0}, {1}, {-1}, {0, 2}}) {
    for (bool keep : {false, true}) {
      EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return sum(v[0], dims, keep); }, {x});
      EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return mean(v[0], dims, keep); }, {x});
    }
  }
}

TEST(Reduce, SumToShapeUndoesBroadcasting) {
  const Tensor g = Tensor::ones({2, 3, 4}, DType::F64);
  EXPECT_EQ(kernels::sum_to_shape(g, {3, 1}).to_vector(), (std::vector<double>{8, 8, 8}));
  EXPECT_EQ(kernels::sum_to_shape(g, {}).item(), 24.0);
  EXPECT_EQ(kernels::sum_to_shape(g, {1, 1, 4}).shape(), (Shape{1, 1, 4}));
}

TEST(Reduce, Errors) {
  const Variable x(Tensor::ones({2, 3}));
  EXPECT_THROW(sum(x, {2}), Error);
  EXPECT_THROW(sum(x, {0, 0}), Error);
  EXPECT_THROW(mean(Variable(Tensor::zeros({0}))), Error);
}

}  // namespace
}  // namespace fg
