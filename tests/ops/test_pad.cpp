// replication_pad2d and zero_pad2d: hand-computed planes (the blur's asymmetric left/top padding, pads larger than
// 1, negative pads that crop), a naive branchy reference over a case table, gradient routing to the copied element,
// finite-difference gradient checks, non-contiguous inputs and the errors.
#include <gtest/gtest.h>

#include <vector>

#include "autograd/ops.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct PadCase {
  Shape shape;
  int64_t left, right, top, bottom;
};

std::vector<PadCase> pad_cases() {
  return {
      {{1, 1, 2, 2}, 1, 0, 1, 0},    // the blur's padding
      {{2, 3, 5, 4}, 1, 1, 1, 1},    // symmetric
      {{1, 2, 3, 5}, 3, 2, 4, 1},    // larger than 1, larger than the input in places
      {{1, 1, 1, 1}, 2, 3, 1, 2},    // a single element
      {{2, 1, 4, 6}, 0, 0, 0, 0},    // identity
      {{1, 2, 5, 7}, -1, 2, 1, -2},  // negative pads crop
      {{3, 4, 7}, 1, 2, 0, 3},       // 3-D (C, H, W)
  };
}

std::string case_name(const PadCase& c) {
  return shape_str(c.shape) + " l" + std::to_string(c.left) + " r" + std::to_string(c.right) + " t" +
         std::to_string(c.top) + " b" + std::to_string(c.bottom);
}

Shape padded(const PadCase& c) {
  Shape s = c.shape;
  s[s.size() - 2] += c.top + c.bottom;
  s[s.size() - 1] += c.left + c.right;
  return s;
}

// Naive references written with explicit region branches rather than a clamp.
std::vector<double> naive_pad(const Tensor& x, const PadCase& c, bool replication) {
  const Shape out_shape = padded(c);
  const int64_t H = x.size(-2), W = x.size(-1);
  const int64_t OH = out_shape[out_shape.size() - 2], OW = out_shape.back();
  const int64_t planes = x.numel() / (H * W);
  const std::vector<double> xv = x.to_vector();
  std::vector<double> out;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t i = 0; i < OH; ++i)
      for (int64_t j = 0; j < OW; ++j) {
        int64_t h = i - c.top, w = j - c.left;
        const bool inside = h >= 0 && h < H && w >= 0 && w < W;
        if (!replication) {
          out.push_back(inside ? xv[size_t(pl * H * W + h * W + w)] : 0.0);
          continue;
        }
        if (h < 0) h = 0;
        if (h >= H) h = H - 1;
        if (w < 0) w = 0;
        if (w >= W) w = W - 1;
        out.push_back(xv[size_t(pl * H * W + h * W + w)]);
      }
  return out;
}

TEST(ReplicationPad2d, HandComputedBlurPadding) {
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2});
  const Variable y = replication_pad2d(Variable(x), 1, 0, 1, 0);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(y.data().to_vector(), std::vector<double>({1, 1, 2, 1, 1, 2, 3, 3, 4}));
}

TEST(ReplicationPad2d, HandComputedLargePads) {
  // [[1, 2, 3]] padded left 2, right 1, top 1, bottom 2: every row is the edge-extended [1, 1, 1, 2, 3, 3].
  const Tensor x = Tensor::from_vector({1, 2, 3}, {1, 1, 1, 3});
  const Variable y = replication_pad2d(Variable(x), 2, 1, 1, 2);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 4, 6}));
  const std::vector<double> row = {1, 1, 1, 2, 3, 3};
  std::vector<double> expected;
  for (int i = 0; i < 4; ++i) expected.insert(expected.end(), row.begin(), row.end());
  EXPECT_EQ(y.data().to_vector(), expected);
}

TEST(ZeroPad2d, HandComputed) {
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2});
  const Variable y = zero_pad2d(Variable(x), 1, 2, 0, 1);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3, 5}));
  EXPECT_EQ(y.data().to_vector(), std::vector<double>({0, 1, 2, 0, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(Pad2d, ForwardMatchesNaiveReference) {
  uint64_t seed = 1;
  for (const PadCase& c : pad_cases()) {
    SCOPED_TRACE(case_name(c));
    const Tensor x = test::random_tensor(c.shape, seed++);
    const Variable r = replication_pad2d(Variable(x), c.left, c.right, c.top, c.bottom);
    const Variable z = zero_pad2d(Variable(x), c.left, c.right, c.top, c.bottom);
    ASSERT_EQ(r.shape(), padded(c));
    ASSERT_EQ(z.shape(), padded(c));
    EXPECT_ALL_CLOSE(Tensor::from_vector(naive_pad(x, c, true), padded(c)), r.data(), 0.0, 0.0);
    EXPECT_ALL_CLOSE(Tensor::from_vector(naive_pad(x, c, false), padded(c)), z.data(), 0.0, 0.0);
  }
}

TEST(ReplicationPad2d, GradientSumsEveryCopy) {
  // 2x2 padded by 1 on every side: each input element is a corner of the 4x4 output and is copied 4 times.
  const Tensor x = test::random_tensor({1, 1, 2, 2}, 3, DType::F64);
  Variable xv(x, true);
  const Variable y = replication_pad2d(xv, 1, 1, 1, 1);
  y.backward(Tensor::ones(y.shape(), DType::F64));
  EXPECT_EQ(xv.grad().to_vector(), std::vector<double>({4, 4, 4, 4}));
  // The blur's padding on 2x3: the first row and column are copied once more, (0, 0) three more times.
  Variable xv2(test::random_tensor({1, 1, 2, 3}, 4, DType::F64), true);
  const Variable y2 = replication_pad2d(xv2, 1, 0, 1, 0);
  y2.backward(Tensor::ones(y2.shape(), DType::F64));
  EXPECT_EQ(xv2.grad().to_vector(), std::vector<double>({4, 2, 2, 2, 1, 1}));
}

TEST(ZeroPad2d, GradientIsTheCrop) {
  Variable xv(test::random_tensor({1, 1, 2, 2}, 3, DType::F64), true);
  const Variable y = zero_pad2d(xv, 1, 0, 0, 1);  // output 3x3; input sits at rows 0-1, cols 1-2
  y.backward(Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, DType::F64));
  EXPECT_EQ(xv.grad().to_vector(), std::vector<double>({2, 3, 5, 6}));
}

TEST(Pad2d, FiniteDifferenceGradient) {
  uint64_t seed = 50;
  for (const PadCase& c : pad_cases()) {
    SCOPED_TRACE(case_name(c));
    EXPECT_GRAD_OK(
        [&](const std::vector<Variable>& v) { return replication_pad2d(v[0], c.left, c.right, c.top, c.bottom); },
        {test::random_tensor(c.shape, seed++, DType::F64)});
    EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return zero_pad2d(v[0], c.left, c.right, c.top, c.bottom); },
                   {test::random_tensor(c.shape, seed++, DType::F64)});
  }
}

TEST(Pad2d, NonContiguousInputMatchesContiguous) {
  const Tensor x = test::random_tensor({2, 5, 4, 3}, 8).permute({0, 3, 1, 2});  // (2, 3, 5, 4), channels last
  ASSERT_FALSE(x.is_contiguous());
  EXPECT_ALL_CLOSE(replication_pad2d(Variable(x.contiguous()), 2, 1, 1, 3).data(),
                   replication_pad2d(Variable(x), 2, 1, 1, 3).data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(zero_pad2d(Variable(x.contiguous()), 2, 1, 1, 3).data(), zero_pad2d(Variable(x), 2, 1, 1, 3).data(),
                   0.0, 0.0);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return replication_pad2d(transpose(v[0], 2, 3), 1, 0, 1, 0); },
                 {test::random_tensor({1, 2, 3, 4}, 9, DType::F64)});
}

TEST(Pad2d, InvalidArgumentsThrow) {
  const Variable x(test::random_tensor({1, 1, 3, 3}, 1));
  EXPECT_THROW(replication_pad2d(x, -2, -1, 0, 0), Error);  // width 0
  EXPECT_THROW(replication_pad2d(x, 0, 0, -4, 0), Error);   // negative height
  EXPECT_THROW(zero_pad2d(x, 0, 0, -4, 0), Error);
  EXPECT_THROW(replication_pad2d(Variable(test::random_tensor({3, 3}, 1)), 1, 1, 1, 1), Error);  // 2-D
  EXPECT_THROW(replication_pad2d(Variable(test::random_tensor({1, 1, 1, 3, 3}, 1)), 1, 1, 1, 1), Error);
  EXPECT_THROW(zero_pad2d(Variable(test::random_tensor({3}, 1)), 1, 1, 1, 1), Error);
  EXPECT_THROW(replication_pad2d(Variable(Tensor::zeros({1, 1, 2, 2}, DType::I32)), 1, 1, 1, 1), Error);
  // A 2-D input is fine for zero padding (F.pad pads the last two dims of any rank).
  EXPECT_EQ(zero_pad2d(Variable(test::random_tensor({2, 2}, 1)), 1, 1, 0, 0).shape(), (Shape{2, 4}));
}

}  // namespace
}  // namespace fg
