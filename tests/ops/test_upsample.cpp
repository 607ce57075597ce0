// upsample_nearest2d: forward against the exact formula src = floor(dst * in / out) on sizes where PyTorch's f32
// arithmetic agrees with it (integer and non-integer ratios, up and down), a pinned case where PyTorch's f32
// rounding picks a lower index, gradient scatter-add counts, finite-difference gradient checks, non-contiguous
// inputs and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "autograd/ops.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct UpCase {
  Shape shape;  // (N, C, H, W)
  int64_t out_h, out_w;
};

std::vector<UpCase> up_cases() {
  return {
      {{2, 3, 3, 5}, 6, 10},  // 2x (the U-Net's case)
      {{1, 2, 4, 4}, 4, 4},   // identity
      {{1, 1, 3, 3}, 7, 5},   // non-integer ratios
      {{2, 1, 5, 7}, 3, 4},   // downsampling
      {{1, 2, 1, 1}, 3, 2},   // from one pixel
      {{1, 1, 2, 3}, 5, 9},   // 2.5x and 3x
      {{1, 3, 6, 4}, 6, 13},  // one dim only
      {{1, 1, 7, 2}, 1, 1},   // to one pixel
  };
}

// The exact rule with integer arithmetic; for every size in up_cases() PyTorch's f32 computation agrees with it.
int64_t exact_source(int64_t dst, int64_t in, int64_t out) { return std::min(dst * in / out, in - 1); }

std::vector<double> naive_upsample(const Tensor& x, int64_t OH, int64_t OW) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) out.push_back(x.at({n, c, exact_source(i, H, OH), exact_source(j, W, OW)}));
  return out;
}

std::string case_name(const UpCase& c) {
  return shape_str(c.shape) + " -> " + std::to_string(c.out_h) + "x" + std::to_string(c.out_w);
}

TEST(UpsampleNearest2d, ForwardMatchesExactFormula) {
  uint64_t seed = 1;
  for (const UpCase& c : up_cases()) {
    SCOPED_TRACE(case_name(c));
    const Tensor x = test::random_tensor(c.shape, seed++);
    const Variable y = upsample_nearest2d(Variable(x), c.out_h, c.out_w);
    const Shape expected_shape = {c.shape[0], c.shape[1], c.out_h, c.out_w};
    ASSERT_EQ(y.shape(), expected_shape);
    EXPECT_ALL_CLOSE(Tensor::from_vector(naive_upsample(x, c.out_h, c.out_w), expected_shape), y.data(), 0.0, 0.0);
  }
}

TEST(UpsampleNearest2d, HandComputedThreeToFive) {
  // in 3 -> out 5: src = floor(dst * 0.6) = 0, 0, 1, 1, 2.
  const Tensor x = Tensor::from_vector({10, 20, 30}, {1, 1, 1, 3});
  EXPECT_EQ(upsample_nearest2d(Variable(x), 1, 5).data().to_vector(), std::vector<double>({10, 10, 20, 20, 30}));
}

TEST(UpsampleNearest2d, FollowsPyTorchFloatRounding) {
  // PyTorch computes scale = 2 / 82 in f32 and floor(41 * scale) in f32: 41 * 0.024390243f rounds to 0.99999994f,
  // so output row 41 copies input row 0, where the exact formula would give row 1. Row 42 copies row 1.
  const Tensor x = Tensor::from_vector({1, 2}, {1, 1, 2, 1});
  const std::vector<double> y = upsample_nearest2d(Variable(x), 82, 1).data().to_vector();
  ASSERT_EQ(y.size(), 82u);
  EXPECT_EQ(y[40], 1);
  EXPECT_EQ(y[41], 1);
  EXPECT_EQ(y[42], 2);
  EXPECT_EQ(std::count(y.begin(), y.end(), 1.0), 42);
}

TEST(UpsampleNearest2d, BackwardAddsEveryCopy) {
  uint64_t seed = 30;
  for (const UpCase& c : up_cases()) {
    SCOPED_TRACE(case_name(c));
    Variable xv(test::random_tensor(c.shape, seed++, DType::F64), true);
    const Variable y = upsample_nearest2d(xv, c.out_h, c.out_w);
    const Tensor g = test::random_tensor(y.shape(), seed++, DType::F64);
    y.backward(g);
    const int64_t H = c.shape[2], W = c.shape[3];
    const std::vector<double> gv = g.to_vector();
    std::vector<double> expected(size_t(xv.numel()), 0.0);
    for (int64_t p = 0; p < c.shape[0] * c.shape[1]; ++p)
      for (int64_t i = 0; i < c.out_h; ++i)
        for (int64_t j = 0; j < c.out_w; ++j) {
          expected[size_t(p * H * W + exact_source(i, H, c.out_h) * W + exact_source(j, W, c.out_w))] +=
              gv[size_t((p * c.out_h + i) * c.out_w + j)];
        }
    EXPECT_ALL_CLOSE(Tensor::from_vector(expected, c.shape, DType::F64), xv.grad(), 1e-12, 1e-12);
  }
}

TEST(UpsampleNearest2d, FiniteDifferenceGradient) {
  uint64_t seed = 60;
  for (const UpCase& c : up_cases()) {
    SCOPED_TRACE(case_name(c));
    EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return upsample_nearest2d(v[0], c.out_h, c.out_w); },
                   {test::random_tensor(c.shape, seed++, DType::F64)});
  }
}

TEST(UpsampleNearest2d, NonContiguousInputMatchesContiguous) {
  const Tensor x = test::random_tensor({2, 5, 3, 4}, 70).permute({0, 3, 2, 1});  // (2, 4, 3, 5)
  ASSERT_FALSE(x.is_contiguous());
  EXPECT_ALL_CLOSE(upsample_nearest2d(Variable(x.contiguous()), 7, 10).data(),
                   upsample_nearest2d(Variable(x), 7, 10).data(), 0.0, 0.0);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return upsample_nearest2d(transpose(v[0], 2, 3), 5, 4); },
                 {test::random_tensor({1, 2, 3, 2}, 71, DType::F64)});
}

TEST(UpsampleNearest2d, InvalidArgumentsThrow) {
  const Variable x(test::random_tensor({1, 1, 3, 3}, 1));
  EXPECT_THROW(upsample_nearest2d(x, 0, 4), Error);
  EXPECT_THROW(upsample_nearest2d(x, 4, -1), Error);
  EXPECT_THROW(upsample_nearest2d(Variable(test::random_tensor({1, 3, 3}, 1)), 6, 6), Error);  // 3-D
  EXPECT_THROW(upsample_nearest2d(Variable(Tensor::zeros({1, 1, 2, 2}, DType::I32)), 4, 4), Error);
}

}  // namespace
}  // namespace fg
