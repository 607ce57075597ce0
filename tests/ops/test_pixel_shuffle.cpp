// pixel_shuffle and pixel_unshuffle: the index formula written out naively here for r = 1, 2, 3 on odd sizes,
// leading batch dims of any rank, the inverse property both ways, a hand-computed 2x2 case, finite-difference
// gradient checks, non-contiguous inputs and the errors.
#include <gtest/gtest.h>

#include <vector>

#include "autograd/ops.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct ShuffleCase {
  Shape shape;  // the shuffle's input (*, C * r * r, H, W)
  int64_t r;
};

std::vector<ShuffleCase> shuffle_cases() {
  return {{{2, 8, 3, 5}, 2}, {{1, 9, 2, 2}, 3}, {{3, 18, 1, 4}, 3},  {{1, 4, 1, 1}, 2},
          {{2, 3, 4, 3}, 1}, {{12, 5, 3}, 2},   {{2, 2, 9, 2, 3}, 3}};
}

// out[b, c, h * r + i, w * r + j] = in[b, c * r * r + i * r + j, h, w], with B the product of the leading dims.
std::vector<double> naive_shuffle(const Tensor& x, int64_t r) {
  const int64_t C = x.size(-3) / (r * r), H = x.size(-2), W = x.size(-1);
  const int64_t B = x.numel() / (C * r * r * H * W);
  const std::vector<double> in = x.to_vector();
  std::vector<double> out(in.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < r; ++i)
          for (int64_t w = 0; w < W; ++w)
            for (int64_t j = 0; j < r; ++j) {
              const int64_t src = ((b * C * r * r + c * r * r + i * r + j) * H + h) * W + w;
              const int64_t dst = ((b * C + c) * H * r + h * r + i) * W * r + w * r + j;
              out[size_t(dst)] = in[size_t(src)];
            }
  return out;
}

Shape shuffled_shape(const ShuffleCase& c) {
  Shape s = c.shape;
  const size_t d = s.size();
  s[d - 3] /= c.r * c.r;
  s[d - 2] *= c.r;
  s[d - 1] *= c.r;
  return s;
}

TEST(PixelShuffle, HandComputedFactorTwo) {
  // Four 1x1 channels become one 2x2 plane in (i, j) row-major order.
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 4, 1, 1});
  const Variable y = pixel_shuffle(Variable(x), 2);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(y.data().to_vector(), std::vector<double>({1, 2, 3, 4}));
  // Two channel groups of a 1x2 input: channel c * 4 + i * 2 + j lands at (i, 2 w + j).
  const Tensor x2 = Tensor::arange(8).view({1, 4, 1, 2});
  EXPECT_EQ(pixel_shuffle(Variable(x2), 2).data().to_vector(), std::vector<double>({0, 2, 1, 3, 4, 6, 5, 7}));
}

TEST(PixelShuffle, ForwardMatchesNaiveFormula) {
  uint64_t seed = 1;
  for (const ShuffleCase& c : shuffle_cases()) {
    SCOPED_TRACE(shape_str(c.shape) + " r" + std::to_string(c.r));
    const Tensor x = test::random_tensor(c.shape, seed++);
    const Variable y = pixel_shuffle(Variable(x), c.r);
    ASSERT_EQ(y.shape(), shuffled_shape(c));
    EXPECT_ALL_CLOSE(Tensor::from_vector(naive_shuffle(x, c.r), shuffled_shape(c)), y.data(), 0.0, 0.0);
  }
}

TEST(PixelShuffle, UnshuffleIsTheInverseBothWays) {
  uint64_t seed = 20;
  for (const ShuffleCase& c : shuffle_cases()) {
    SCOPED_TRACE(shape_str(c.shape) + " r" + std::to_string(c.r));
    const Tensor x = test::random_tensor(c.shape, seed++);
    const Tensor round_trip = pixel_unshuffle(pixel_shuffle(Variable(x), c.r), c.r).data();
    ASSERT_EQ(round_trip.shape(), c.shape);
    EXPECT_ALL_CLOSE(x, round_trip, 0.0, 0.0);
    const Tensor y = test::random_tensor(shuffled_shape(c), seed++);
    const Tensor unshuffled = pixel_unshuffle(Variable(y), c.r).data();
    ASSERT_EQ(unshuffled.shape(), c.shape);
    EXPECT_ALL_CLOSE(y, pixel_shuffle(Variable(unshuffled), c.r).data(), 0.0, 0.0);
  }
}

TEST(PixelShuffle, FiniteDifferenceGradient) {
  uint64_t seed = 40;
  for (const ShuffleCase& c : shuffle_cases()) {
    SCOPED_TRACE(shape_str(c.shape) + " r" + std::to_string(c.r));
    EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return pixel_shuffle(v[0], c.r); },
                   {test::random_tensor(c.shape, seed++, DType::F64)});
    EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return pixel_unshuffle(v[0], c.r); },
                   {test::random_tensor(shuffled_shape(c), seed++, DType::F64)});
  }
}

TEST(PixelShuffle, NonContiguousInputMatchesContiguous) {
  const Tensor x = test::random_tensor({2, 3, 5, 8}, 60).permute({0, 3, 1, 2});  // (2, 8, 3, 5)
  ASSERT_FALSE(x.is_contiguous());
  EXPECT_ALL_CLOSE(pixel_shuffle(Variable(x.contiguous()), 2).data(), pixel_shuffle(Variable(x), 2).data(), 0.0, 0.0);
  const Tensor y = test::random_tensor({1, 2, 12, 7}, 61).slice(3, 1, 7);  // (1, 2, 12, 6), strided rows
  EXPECT_ALL_CLOSE(pixel_unshuffle(Variable(y.contiguous()), 3).data(), pixel_unshuffle(Variable(y), 3).data(), 0.0,
                   0.0);
  EXPECT_GRAD_OK(
      [](const std::vector<Variable>& v) {
        return pixel_shuffle(permute(v[0], {0, 3, 1, 2}), 2);
      },
      {test::random_tensor({1, 2, 3, 4}, 62, DType::F64)});
}

TEST(PixelShuffle, InvalidArgumentsThrow) {
  EXPECT_THROW(pixel_shuffle(Variable(test::random_tensor({1, 6, 2, 2}, 1)), 2), Error);  // 6 % 4 != 0
  EXPECT_THROW(pixel_shuffle(Variable(test::random_tensor({1, 4, 2, 2}, 1)), 0), Error);
  EXPECT_THROW(pixel_shuffle(Variable(test::random_tensor({4, 2}, 1)), 2), Error);          // 2-D
  EXPECT_THROW(pixel_unshuffle(Variable(test::random_tensor({1, 1, 4, 5}, 1)), 2), Error);  // 5 % 2 != 0
  EXPECT_THROW(pixel_unshuffle(Variable(test::random_tensor({1, 1, 3, 3}, 1)), -1), Error);
  EXPECT_THROW(pixel_shuffle(Variable(Tensor::zeros({1, 4, 2, 2}, DType::I32)), 2), Error);
  try {
    pixel_shuffle(Variable(test::random_tensor({1, 6, 2, 2}, 1)), 2);
    FAIL() << "expected fg::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(1, 6, 2, 2)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fg
