// max_pool2d and avg_pool2d: forward against naive window loops written here (the PyTorch rules: -inf padding,
// first maximum wins, the two avg divisors), the argmax routing of the gradient, finite-difference gradient checks,
// the fastai "blur" (replication pad then 2x2 stride-1 average), non-contiguous inputs and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.h"
#include "kernels/pool.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct PoolCase {
  Shape shape;  // (N, C, H, W)
  int64_t kernel, stride, pad;
};

// Every kernel/stride/padding combination PyTorch accepts for kernels 1, 2, 3, 4, 7, on odd and even sizes that
// are not multiples of the stride.
std::vector<PoolCase> pool_cases() {
  std::vector<PoolCase> cases;
  const std::vector<Shape> shapes = {{2, 3, 7, 9}, {1, 2, 8, 8}, {1, 1, 11, 10}};
  for (int64_t k : {1, 2, 3, 4, 7}) {
    for (int64_t s : {1, 2, 3}) {
      for (int64_t p : {0, 1}) {
        if (p > k / 2) continue;
        for (const Shape& sh : shapes) {
          if (sh[2] + 2 * p < k || sh[3] + 2 * p < k) continue;
          cases.push_back({sh, k, s, p});
        }
      }
    }
  }
  cases.push_back({{1, 1, 1, 1}, 1, 1, 0});  // a single element
  cases.push_back({{3, 1, 2, 5}, 2, 3, 1});  // stride above the kernel: some input columns are skipped
  return cases;
}

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

// Naive max pool over the full padded window in row-major order; positions outside the input are -inf.
void naive_max_pool(const Tensor& x, int64_t k, int64_t s, int64_t p, std::vector<double>& out,
                    std::vector<int64_t>& argmax) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = out_size(H, k, s, p), OW = out_size(W, k, s, p);
  out.assign(size_t(N * C * OH * OW), 0.0);
  argmax.assign(out.size(), -1);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double best = -std::numeric_limits<double>::infinity();
          int64_t best_index = -1;
          for (int64_t i = 0; i < k; ++i)
            for (int64_t j = 0; j < k; ++j) {
              const int64_t h = oh * s - p + i, w = ow * s - p + j;
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              const double v = x.at({n, c, h, w});
              if (best_index < 0 || v > best) {
                best = v;
                best_index = h * W + w;
              }
            }
          const size_t o = size_t(((n * C + c) * OH + oh) * OW + ow);
          out[o] = best;
          argmax[o] = best_index;
        }
}

// Naive average pool: the sum of the in-bounds elements of the window, divided by the whole window's area
// (count_include_pad) or by the number of in-bounds elements.
std::vector<double> naive_avg_pool(const Tensor& x, int64_t k, int64_t s, int64_t p, bool count_include_pad) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = out_size(H, k, s, p), OW = out_size(W, k, s, p);
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double sum = 0.0;
          int64_t inside = 0;
          for (int64_t i = 0; i < k; ++i)
            for (int64_t j = 0; j < k; ++j) {
              const int64_t h = oh * s - p + i, w = ow * s - p + j;
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              sum += x.at({n, c, h, w});
              ++inside;
            }
          out.push_back(sum / double(count_include_pad ? k * k : inside));
        }
  return out;
}

std::string case_name(const PoolCase& c) {
  return shape_str(c.shape) + " k" + std::to_string(c.kernel) + " s" + std::to_string(c.stride) + " p" +
         std::to_string(c.pad);
}

TEST(MaxPool2d, ForwardMatchesNaiveWindowLoops) {
  uint64_t seed = 1;
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(case_name(c));
    const Tensor x = test::random_tensor(c.shape, seed++);
    std::vector<double> ref;
    std::vector<int64_t> argmax;
    naive_max_pool(x, c.kernel, c.stride, c.pad, ref, argmax);
    const Variable y = max_pool2d(Variable(x), c.kernel, c.stride, c.pad);
    const Shape expected_shape = {c.shape[0], c.shape[1], out_size(c.shape[2], c.kernel, c.stride, c.pad),
                                  out_size(c.shape[3], c.kernel, c.stride, c.pad)};
    ASSERT_EQ(y.shape(), expected_shape);
    // The maximum is one of the inputs, so the result must be bit-exact.
    EXPECT_ALL_CLOSE(Tensor::from_vector(ref, expected_shape), y.data(), 0.0, 0.0);
  }
}

TEST(MaxPool2d, GradientGoesToTheArgmax) {
  uint64_t seed = 100;
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(case_name(c));
    const Tensor x = test::random_tensor(c.shape, seed++, DType::F64);
    std::vector<double> ref;
    std::vector<int64_t> argmax;
    naive_max_pool(x, c.kernel, c.stride, c.pad, ref, argmax);
    Variable xv(x, true);
    const Variable y = max_pool2d(xv, c.kernel, c.stride, c.pad);
    const Tensor g = test::random_tensor(y.shape(), seed++, DType::F64);
    y.backward(g);
    const std::vector<double> gv = g.to_vector();
    std::vector<double> expected(size_t(x.numel()), 0.0);
    const int64_t plane_in = c.shape[2] * c.shape[3];
    const int64_t plane_out = y.size(2) * y.size(3);
    for (size_t o = 0; o < gv.size(); ++o) {
      expected[size_t(int64_t(o) / plane_out * plane_in + argmax[o])] += gv[o];
    }
    EXPECT_ALL_CLOSE(Tensor::from_vector(expected, c.shape, DType::F64), xv.grad(), 1e-12, 1e-12);
  }
}

TEST(MaxPool2d, TiesGoToTheFirstMaximumInRowMajorOrder) {
  // A constant plane: every element ties, so each window routes its gradient to its top-left in-bounds element.
  const Tensor x = Tensor::full({1, 1, 4, 5}, 2.0, DType::F64);
  Variable xv(x, true);
  const Variable y = max_pool2d(xv, 3, 2, 1);  // windows start at rows/cols -1, 1, (3 for cols)
  ASSERT_EQ(y.shape(), (Shape{1, 1, 2, 3}));
  y.backward(Tensor::ones(y.shape(), DType::F64));
  // Window starts clipped to the input: rows {0, 1}, cols {0, 1, 3}.
  const std::vector<double> expected = {1, 1, 0, 1, 0,  //
                                        1, 1, 0, 1, 0,  //
                                        0, 0, 0, 0, 0,  //
                                        0, 0, 0, 0, 0};
  EXPECT_ALL_CLOSE(Tensor::from_vector(expected, {1, 1, 4, 5}, DType::F64), xv.grad(), 0.0, 0.0);
}

TEST(MaxPool2d, TieBetweenDifferentPositionsPicksTheEarlierOne) {
  // Window of 2x2 with the maximum 5 at (0, 1) and (1, 0): (0, 1) comes first in row-major order.
  const Tensor x = Tensor::from_vector({1, 5, 5, 3}, {1, 1, 2, 2}, DType::F64);
  Variable xv(x, true);
  const Variable y = max_pool2d(xv, 2, 2, 0);
  EXPECT_EQ(y.data().to_vector(), std::vector<double>({5}));
  y.backward(Tensor::ones(y.shape(), DType::F64));
  EXPECT_EQ(xv.grad().to_vector(), std::vector<double>({0, 1, 0, 0}));
}

TEST(MaxPool2d, PaddingIsMinusInfinityNotZero) {
  const Tensor x = Tensor::full({1, 2, 3, 3}, -1.5);
  const Variable y = max_pool2d(Variable(x), 3, 1, 1);
  ASSERT_EQ(y.shape(), (Shape{1, 2, 3, 3}));
  for (double v : y.data().to_vector()) EXPECT_EQ(v, -1.5);
}

TEST(MaxPool2d, NaNPropagates) {
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, {1, 1, 4, 4});
  x.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();  // (1, 1): inside the top-left window only
  const std::vector<double> y = max_pool2d(Variable(x), 2, 2).data().to_vector();
  ASSERT_EQ(y.size(), 4u);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 8);
  EXPECT_EQ(y[2], 14);
  EXPECT_EQ(y[3], 16);
}

TEST(MaxPool2d, FiniteDifferenceGradient) {
  for (const PoolCase& c : std::vector<PoolCase>{
           {{2, 2, 5, 6}, 3, 2, 1}, {{1, 3, 4, 4}, 2, 2, 0}, {{1, 1, 7, 5}, 4, 1, 2}, {{1, 2, 3, 3}, 1, 3, 0}}) {
    SCOPED_TRACE(case_name(c));
    EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return max_pool2d(v[0], c.kernel, c.stride, c.pad); },
                   {test::random_tensor(c.shape, 7, DType::F64)});
  }
}

TEST(MaxPool2d, ThreeDimensionalInputIsOneImage) {
  const Tensor x = test::random_tensor({3, 6, 5}, 3);
  const Tensor y3 = max_pool2d(Variable(x), 3, 2, 1).data();
  const Tensor y4 = max_pool2d(Variable(x.unsqueeze(0)), 3, 2, 1).data();
  ASSERT_EQ(y3.shape(), (Shape{3, 3, 3}));
  EXPECT_ALL_CLOSE(y4.squeeze(0), y3, 0.0, 0.0);
}

// The backward scatters into the input plane at each saved index; indices from a forward on a larger input used to
// be written through unchecked (outside the gradient buffer). Now they are refused, naming the plane.
TEST(MaxPool2d, BackwardRefusesIndicesOutsideTheInputPlane) {
  const Tensor x = test::random_tensor({1, 2, 8, 8}, 4);
  Tensor indices;
  const Tensor y = kernels::max_pool2d_forward(x, kernels::Pool2dParams{2, 2, 2, 2, 0, 0}, &indices);
  ASSERT_EQ(y.shape(), (Shape{1, 2, 4, 4}));
  const Tensor go = Tensor::ones(y.shape());
  EXPECT_EQ(kernels::max_pool2d_backward(go, indices, x.shape()).shape(), x.shape());
  // A 5x5 input with window 2, stride 1 also pools to 4x4, but the indices address an 8x8 plane.
  const std::string msg = test::error_of([&] { kernels::max_pool2d_backward(go, indices, {1, 2, 5, 5}); });
  EXPECT_NE(msg.find("outside the 5x5 input plane"), std::string::npos) << msg;
  Tensor negative = indices.clone();
  negative.select(3, 0).fill_(-1.0);
  EXPECT_THROW(kernels::max_pool2d_backward(go, negative, x.shape()), Error);
}

TEST(AvgPool2d, ForwardMatchesNaiveWindowLoops) {
  uint64_t seed = 200;
  for (bool include_pad : {true, false}) {
    for (const PoolCase& c : pool_cases()) {
      SCOPED_TRACE(case_name(c) + (include_pad ? " count_include_pad" : " exclude pad"));
      const Tensor x = test::random_tensor(c.shape, seed++);
      const std::vector<double> ref = naive_avg_pool(x, c.kernel, c.stride, c.pad, include_pad);
      const Variable y = avg_pool2d(Variable(x), c.kernel, c.stride, c.pad, include_pad);
      const Shape expected_shape = {c.shape[0], c.shape[1], out_size(c.shape[2], c.kernel, c.stride, c.pad),
                                    out_size(c.shape[3], c.kernel, c.stride, c.pad)};
      ASSERT_EQ(y.shape(), expected_shape);
      EXPECT_ALL_CLOSE(Tensor::from_vector(ref, expected_shape), y.data(), 1e-6, 1e-6);
    }
  }
}

TEST(AvgPool2d, HandComputedCornerWithAndWithoutPadding) {
  // 2x2 input, kernel 3, stride 1, padding 1: every window covers the whole input (sum 10) plus 5 padded cells.
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2});
  EXPECT_ALL_CLOSE(Tensor::full({1, 1, 2, 2}, 10.0 / 9.0), avg_pool2d(Variable(x), 3, 1, 1, true).data(), 1e-7, 0);
  EXPECT_ALL_CLOSE(Tensor::full({1, 1, 2, 2}, 10.0 / 4.0), avg_pool2d(Variable(x), 3, 1, 1, false).data(), 1e-7, 0);
}

TEST(AvgPool2d, FiniteDifferenceGradient) {
  for (bool include_pad : {true, false}) {
    for (const PoolCase& c : std::vector<PoolCase>{
             {{2, 2, 5, 6}, 3, 2, 1}, {{1, 3, 4, 5}, 2, 1, 0}, {{1, 1, 7, 5}, 4, 3, 2}, {{1, 2, 3, 3}, 1, 2, 0}}) {
      SCOPED_TRACE(case_name(c));
      EXPECT_GRAD_OK(
          [&](const std::vector<Variable>& v) { return avg_pool2d(v[0], c.kernel, c.stride, c.pad, include_pad); },
          {test::random_tensor(c.shape, 11, DType::F64)});
    }
  }
}

TEST(AvgPool2d, BlurOfPixelShuffleICNRKeepsTheSize) {
  // fastai's blur: ReplicationPad2d((1, 0, 1, 0)) then AvgPool2d(2, stride=1). On [[1, 2], [3, 4]] the padded
  // plane is [[1, 1, 2], [1, 1, 2], [3, 3, 4]], whose 2x2 means are [[1, 1.5], [2, 2.5]].
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::F64);
  Variable xv(x, true);
  const Variable y = avg_pool2d(replication_pad2d(xv, 1, 0, 1, 0), 2, 1);
  EXPECT_EQ(y.data().to_vector(), std::vector<double>({1, 1.5, 2, 2.5}));
  y.backward(Tensor::ones(y.shape(), DType::F64));
  // Input (0, 0) is copied into 4 padded cells which feed 1 + 2 + 2 + 4 = 9 window slots -> 9/4; and so on.
  EXPECT_EQ(xv.grad().to_vector(), std::vector<double>({9.0 / 4, 3.0 / 4, 3.0 / 4, 1.0 / 4}));
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return avg_pool2d(replication_pad2d(v[0], 1, 0, 1, 0), 2, 1); },
                 {test::random_tensor({2, 3, 5, 4}, 5, DType::F64)});
}

TEST(Pool2d, NonContiguousInputMatchesContiguous) {
  // Channels-last data permuted to (N, C, H, W), and a strided slice.
  const Tensor nhwc = test::random_tensor({2, 7, 6, 3}, 9);
  const Tensor permuted = nhwc.permute({0, 3, 1, 2});
  ASSERT_FALSE(permuted.is_contiguous());
  const Tensor sliced = test::random_tensor({2, 3, 14, 6}, 10).slice(2, 1, 14, 2);
  for (const Tensor& x : {permuted, sliced}) {
    EXPECT_ALL_CLOSE(max_pool2d(Variable(x.contiguous()), 3, 2, 1).data(), max_pool2d(Variable(x), 3, 2, 1).data(), 0.0,
                     0.0);
    EXPECT_ALL_CLOSE(avg_pool2d(Variable(x.contiguous()), 2, 1, 1, false).data(),
                     avg_pool2d(Variable(x), 2, 1, 1, false).data(), 0.0, 0.0);
  }
  EXPECT_GRAD_OK(
      [](const std::vector<Variable>& v) {
        return max_pool2d(permute(v[0], {0, 3, 1, 2}), 2, 1, 1);
      },
      {test::random_tensor({1, 4, 5, 2}, 12, DType::F64)});
}

TEST(Pool2d, InvalidArgumentsThrow) {
  const Variable x(test::random_tensor({1, 2, 5, 5}, 1));
  EXPECT_THROW(max_pool2d(x, 3, 1, 2), Error);  // padding above half the kernel
  EXPECT_THROW(avg_pool2d(x, 2, 1, 2), Error);
  EXPECT_THROW(max_pool2d(x, 0, 1, 0), Error);  // empty kernel
  EXPECT_THROW(avg_pool2d(x, 2, 0, 0), Error);  // zero stride
  EXPECT_THROW(max_pool2d(x, 3, 1, -1), Error);
  EXPECT_THROW(max_pool2d(x, 7, 1, 0), Error);  // input smaller than the kernel
  EXPECT_THROW(avg_pool2d(Variable(test::random_tensor({1, 1, 1, 6}, 1)), 4, 1, 1), Error);  // too short only
  EXPECT_THROW(max_pool2d(Variable(test::random_tensor({5, 5}, 1)), 2, 2), Error);           // 2-D
  EXPECT_THROW(avg_pool2d(Variable(test::random_tensor({1, 1, 1, 5, 5}, 1)), 2, 2), Error);  // 5-D
  EXPECT_THROW(max_pool2d(Variable(Tensor::zeros({1, 1, 4, 4}, DType::I32)), 2, 2), Error);
  try {
    max_pool2d(x, 3, 1, 2);
    FAIL() << "expected fg::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_pool2d"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fg
