// batch_norm: training forward against per-channel statistics computed naively here, running statistics after two
// training steps against hand-computed values (and a strided running buffer), eval mode, (N, C) and (N, C, L)
// inputs, a large-mean f32 input that a one-pass variance would ruin, non-contiguous inputs, finite-difference
// gradient checks for x, weight and bias in training and eval mode, and the errors PyTorch raises.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/batch_norm.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct BnCase {
  Shape shape;
  bool affine;
};

std::vector<BnCase> bn_cases() {
  return {{{2, 3, 4, 5}, true}, {{3, 7, 3, 3}, false}, {{5, 1, 1, 1}, true}, {{1, 2, 3, 1}, true},
          {{4, 3}, true},       {{2, 5}, false},       {{2, 3, 7}, true},    {{1, 4, 1, 2}, false}};
}

// Naive normalisation with the given per-channel mean and variance: (x - mean) / sqrt(var + eps) * w + b.
std::vector<double> naive_normalise(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& var,
                                    const std::vector<double>& w, const std::vector<double>& b, double eps) {
  const int64_t N = x.size(0), C = x.size(1), L = x.numel() / (N * C);
  const std::vector<double> xv = x.to_vector();
  std::vector<double> y(xv.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) {
        const size_t i = size_t((n * C + c) * L + l);
        y[i] = (xv[i] - mean[size_t(c)]) / std::sqrt(var[size_t(c)] + eps) * (w.empty() ? 1.0 : w[size_t(c)]) +
               (b.empty() ? 0.0 : b[size_t(c)]);
      }
  return y;
}

// Per-channel mean and biased variance, two passes in double.
void naive_stats(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  const int64_t N = x.size(0), C = x.size(1), L = x.numel() / (N * C);
  const std::vector<double> xv = x.to_vector();
  mean.assign(size_t(C), 0.0);
  var.assign(size_t(C), 0.0);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) mean[size_t(c)] += xv[size_t((n * C + c) * L + l)];
    mean[size_t(c)] /= double(N * L);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const double d = xv[size_t((n * C + c) * L + l)] - mean[size_t(c)];
        var[size_t(c)] += d * d;
      }
    var[size_t(c)] /= double(N * L);
  }
}

TEST(BatchNorm, TrainingForwardMatchesNaiveStatistics) {
  uint64_t seed = 1;
  for (const BnCase& c : bn_cases()) {
    SCOPED_TRACE(shape_str(c.shape) + (c.affine ? " affine" : " no affine"));
    const Tensor x = test::random_tensor(c.shape, seed++, DType::F32, -2.0, 3.0);
    const int64_t C = c.shape[1];
    const Tensor w = c.affine ? test::random_tensor({C}, seed++, DType::F32, 0.5, 1.5) : Tensor();
    const Tensor b = c.affine ? test::random_tensor({C}, seed++) : Tensor();
    std::vector<double> mean, var;
    naive_stats(x, mean, var);
    const std::vector<double> ref = naive_normalise(x, mean, var, c.affine ? w.to_vector() : std::vector<double>{},
                                                    c.affine ? b.to_vector() : std::vector<double>{}, 1e-5);
    const Variable y = batch_norm(Variable(x), c.affine ? Variable(w) : Variable(), c.affine ? Variable(b) : Variable(),
                                  Tensor(), Tensor(), true);
    ASSERT_EQ(y.shape(), c.shape);
    EXPECT_ALL_CLOSE(Tensor::from_vector(ref, c.shape), y.data(), 1e-5, 1e-5);
  }
}

TEST(BatchNorm, RunningStatisticsAfterTwoStepsMatchHandComputedValues) {
  // x (2, 2, 1, 2). Step 1: channel 0 holds {1, 2, 3, 4} (mean 2.5, unbiased var 5/3), channel 1 {0, 0, 2, 2}
  // (mean 1, unbiased var 4/3). Step 2: channel 0 {10, 10, 10, 14} (mean 11, unbiased var 4), channel 1
  // {-1, 1, -1, 1} (mean 0, unbiased var 4/3). From mean 0 / var 1 with momentum 0.1:
  //   mean: 0.9 (0.9 * 0 + 0.1 * 2.5) + 0.1 * 11 = 1.325;   0.9 (0.1 * 1) + 0 = 0.09
  //   var:  0.9 (0.9 + 0.1 * 5/3) + 0.1 * 4 = 1.36;           0.9 (0.9 + 0.1 * 4/3) + 0.1 * 4/3 = 1.06333...
  const Tensor x1 = Tensor::from_vector({1, 2, 0, 0, 3, 4, 2, 2}, {2, 2, 1, 2});
  const Tensor x2 = Tensor::from_vector({10, 10, -1, 1, 10, 14, -1, 1}, {2, 2, 1, 2});
  Tensor running_mean = Tensor::zeros({2});
  Tensor running_var = Tensor::ones({2});
  batch_norm(Variable(x1), Variable(), Variable(), running_mean, running_var, true, 0.1);
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.25, 0.1}, {2}), running_mean, 1e-7, 1e-6);
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.9 + 0.5 / 3, 0.9 + 0.4 / 3}, {2}), running_var, 1e-7, 1e-6);
  const Variable y2 = batch_norm(Variable(x2), Variable(), Variable(), running_mean, running_var, true, 0.1);
  EXPECT_ALL_CLOSE(Tensor::from_vector({1.325, 0.09}, {2}), running_mean, 1e-7, 1e-6);
  EXPECT_ALL_CLOSE(Tensor::from_vector({1.36, 0.81 + 0.12 + 0.4 / 3}, {2}), running_var, 1e-7, 1e-6);
  // The training output used the batch's own statistics: channel 0 of step 2 is (x - 11) / sqrt(3 + eps).
  const double s = 1.0 / std::sqrt(3.0 + 1e-5);
  EXPECT_NEAR(y2.data().at({0, 0, 0, 0}), -s, 1e-6);
  EXPECT_NEAR(y2.data().at({1, 0, 0, 1}), 3 * s, 1e-6);
}

TEST(BatchNorm, MomentumAndStridedRunningBuffers) {
  // Running statistics living in every other element of a larger buffer are updated in place, the gaps untouched.
  const Tensor x = Tensor::from_vector({1, 2, 0, 0, 3, 4, 2, 2}, {2, 2, 1, 2}, DType::F64);
  Tensor mean_buffer = Tensor::full({4}, 7.0, DType::F64);
  Tensor var_buffer = Tensor::full({4}, 7.0, DType::F64);
  Tensor running_mean = mean_buffer.slice(0, 0, 4, 2);
  Tensor running_var = var_buffer.slice(0, 0, 4, 2);
  running_mean.fill_(0.0);
  running_var.fill_(1.0);
  batch_norm(Variable(x), Variable(), Variable(), running_mean, running_var, true, 0.3);
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.3 * 2.5, 7, 0.3 * 1, 7}, {4}, DType::F64), mean_buffer, 1e-12, 1e-12);
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.7 + 0.3 * 5 / 3, 7, 0.7 + 0.3 * 4 / 3, 7}, {4}, DType::F64), var_buffer,
                   1e-12, 1e-12);
}

// tensor/overlap.h: running statistics that live inside x would be updated while x is still being read (channel 0's
// update would change channel 1's input on the CPU; on CUDA the order is the threads'). Refused on both devices.
TEST(BatchNorm, RunningStatisticsInsideTheInputAreRefused) {
  const Tensor x = Tensor::from_vector({1, 2, 0, 0, 3, 4, 2, 2}, {2, 2, 1, 2}, DType::F64);
  const Tensor inside = x.select(0, 1).select(1, 0).select(1, 1);  // (2): x[1, :, 0, 1]
  const Tensor other = Tensor::ones({2}, DType::F64);
  const std::string msg = test::error_of([&] { kernels::batch_norm_batch_stats(x, 1e-5, inside, other, 0.1); });
  EXPECT_NE(msg.find("shares memory"), std::string::npos) << msg;
  EXPECT_EQ(x.at({1, 0, 0, 1}), 4.0);
  EXPECT_THROW(kernels::batch_norm_batch_stats(x, 1e-5, other, other, 0.1), Error);  // one buffer for both
}

TEST(BatchNorm, EvalModeUsesRunningStatisticsAndLeavesThemAlone) {
  uint64_t seed = 50;
  for (const BnCase& c : bn_cases()) {
    SCOPED_TRACE(shape_str(c.shape));
    const int64_t C = c.shape[1];
    const Tensor x = test::random_tensor(c.shape, seed++);
    const Tensor running_mean = test::random_tensor({C}, seed++);
    const Tensor running_var = test::random_tensor({C}, seed++, DType::F32, 0.2, 2.0);
    const Tensor w = test::random_tensor({C}, seed++), b = test::random_tensor({C}, seed++);
    const std::vector<double> mean_before = running_mean.to_vector(), var_before = running_var.to_vector();
    const std::vector<double> ref =
        naive_normalise(x, mean_before, var_before, c.affine ? w.to_vector() : std::vector<double>{},
                        c.affine ? b.to_vector() : std::vector<double>{}, 1e-3);
    const Variable y = batch_norm(Variable(x), c.affine ? Variable(w) : Variable(), c.affine ? Variable(b) : Variable(),
                                  running_mean, running_var, false, 0.1, 1e-3);
    EXPECT_ALL_CLOSE(Tensor::from_vector(ref, c.shape), y.data(), 1e-5, 1e-5);
    EXPECT_EQ(running_mean.to_vector(), mean_before);
    EXPECT_EQ(running_var.to_vector(), var_before);
  }
  // A single value per channel is fine in eval mode.
  const Variable one = batch_norm(Variable(Tensor::ones({1, 3, 1, 1})), Variable(), Variable(), Tensor::zeros({3}),
                                  Tensor::ones({3}), false);
  EXPECT_EQ(one.shape(), (Shape{1, 3, 1, 1}));
}

TEST(BatchNorm, LargeMeanF32KeepsItsPrecision) {
  // Values 1000 +- 1: E[x^2] - E[x]^2 in f32 would lose every significant digit of the variance.
  const Tensor x = test::random_tensor({4, 2, 8, 8}, 77, DType::F32, 999.0, 1001.0);
  std::vector<double> mean, var;
  naive_stats(x, mean, var);
  const Tensor ref = Tensor::from_vector(naive_normalise(x, mean, var, {}, {}, 1e-5), x.shape());
  const Tensor got = batch_norm(Variable(x), Variable(), Variable(), Tensor(), Tensor(), true).data();
  EXPECT_ALL_CLOSE(ref, got, 2e-4, 1e-4);
  EXPECT_LT(test::nmse(ref, got), 1e-8);
}

TEST(BatchNorm, NonContiguousInputMatchesContiguous) {
  const Tensor x = test::random_tensor({3, 5, 4, 6}, 90).permute({0, 3, 1, 2});  // (3, 6, 5, 4), channels last
  ASSERT_FALSE(x.is_contiguous());
  const Tensor w = test::random_tensor({6}, 91), b = test::random_tensor({6}, 92);
  Tensor rm1 = Tensor::zeros({6}), rv1 = Tensor::ones({6}), rm2 = Tensor::zeros({6}), rv2 = Tensor::ones({6});
  const Tensor y1 = batch_norm(Variable(x.contiguous()), Variable(w), Variable(b), rm1, rv1, true).data();
  const Tensor y2 = batch_norm(Variable(x), Variable(w), Variable(b), rm2, rv2, true).data();
  EXPECT_ALL_CLOSE(y1, y2, 0.0, 0.0);
  EXPECT_ALL_CLOSE(rm1, rm2, 0.0, 0.0);
  EXPECT_ALL_CLOSE(rv1, rv2, 0.0, 0.0);
  EXPECT_GRAD_OK(
      [](const std::vector<Variable>& v) {
        return batch_norm(permute(v[0], {0, 3, 1, 2}), v[1], v[2], Tensor(), Tensor(), true);
      },
      {test::random_tensor({2, 3, 2, 4}, 93, DType::F64), test::random_tensor({4}, 94, DType::F64),
       test::random_tensor({4}, 95, DType::F64)});
}

TEST(BatchNorm, FiniteDifferenceGradientTraining) {
  uint64_t seed = 100;
  for (const BnCase& c : bn_cases()) {
    SCOPED_TRACE(shape_str(c.shape));
    const int64_t C = c.shape[1];
    const Tensor x = test::random_tensor(c.shape, seed++, DType::F64);
    if (c.affine) {
      EXPECT_GRAD_OK(
          [](const std::vector<Variable>& v) { return batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), true); },
          {x, test::random_tensor({C}, seed++, DType::F64, 0.5, 1.5), test::random_tensor({C}, seed++, DType::F64)});
    } else {
      EXPECT_GRAD_OK(
          [](const std::vector<Variable>& v) {
            return batch_norm(v[0], Variable(), Variable(), Tensor(), Tensor(), true);
          },
          {x});
    }
  }
  // Only the weight and bias asked for (a frozen input): x's gradient is skipped, the others still right.
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), true); },
                 {test::random_tensor({3, 2, 2, 2}, 150, DType::F64), test::random_tensor({2}, 151, DType::F64),
                  test::random_tensor({2}, 152, DType::F64)},
                 {false, true, true});
}

TEST(BatchNorm, FiniteDifferenceGradientEval) {
  uint64_t seed = 200;
  for (const BnCase& c : bn_cases()) {
    SCOPED_TRACE(shape_str(c.shape));
    const int64_t C = c.shape[1];
    const Tensor running_mean = test::random_tensor({C}, seed++, DType::F64);
    const Tensor running_var = test::random_tensor({C}, seed++, DType::F64, 0.3, 2.0);
    EXPECT_GRAD_OK(
        [&](const std::vector<Variable>& v) { return batch_norm(v[0], v[1], v[2], running_mean, running_var, false); },
        {test::random_tensor(c.shape, seed++, DType::F64), test::random_tensor({C}, seed++, DType::F64),
         test::random_tensor({C}, seed++, DType::F64)});
  }
}

TEST(BatchNorm, GradientOfXMatchesTheClosedFormInEvalMode) {
  // Eval mode is an affine map per channel: dx = dy * w / sqrt(var + eps).
  const Tensor running_mean = Tensor::from_vector({0.5, -1.0}, {2}, DType::F64);
  const Tensor running_var = Tensor::from_vector({4.0, 0.25}, {2}, DType::F64);
  Variable x(test::random_tensor({2, 2, 1, 1}, 300, DType::F64), true);
  Variable w(Tensor::from_vector({3.0, -2.0}, {2}, DType::F64), true);
  const Variable y = batch_norm(x, w, Variable(), running_mean, running_var, false, 0.1, 0.0);
  y.backward(Tensor::ones(y.shape(), DType::F64));
  EXPECT_ALL_CLOSE(Tensor::from_vector({1.5, -4.0, 1.5, -4.0}, {2, 2, 1, 1}, DType::F64), x.grad(), 1e-12, 1e-12);
}

TEST(BatchNorm, SingleValuePerChannelInTrainingThrows) {
  for (const Shape& s : {Shape{1, 3, 1, 1}, Shape{1, 3}, Shape{1, 2, 1}}) {
    SCOPED_TRACE(shape_str(s));
    try {
      batch_norm(Variable(Tensor::ones(s)), Variable(), Variable(), Tensor::zeros({s[1]}), Tensor::ones({s[1]}), true);
      FAIL() << "expected fg::Error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("Expected more than 1 value per channel when training"), std::string::npos)
          << e.what();
    }
  }
}

TEST(BatchNorm, InvalidArgumentsThrow) {
  const Variable x(test::random_tensor({2, 3, 2, 2}, 1));
  EXPECT_THROW(batch_norm(x, Variable(Tensor::ones({4})), Variable(), Tensor(), Tensor(), true), Error);
  EXPECT_THROW(batch_norm(x, Variable(), Variable(Tensor::ones({3, 1})), Tensor(), Tensor(), true), Error);
  EXPECT_THROW(batch_norm(x, Variable(Tensor::ones({3}, DType::F64)), Variable(), Tensor(), Tensor(), true), Error);
  EXPECT_THROW(batch_norm(x, Variable(), Variable(), Tensor::zeros({2}), Tensor::ones({3}), true), Error);
  EXPECT_THROW(batch_norm(x, Variable(), Variable(), Tensor(), Tensor(), false), Error);  // eval without stats
  EXPECT_THROW(batch_norm(Variable(test::random_tensor({5}, 1)), Variable(), Variable(), Tensor(), Tensor(), true),
               Error);
  EXPECT_THROW(
      batch_norm(Variable(Tensor::zeros({2, 3}, DType::I32)), Variable(), Variable(), Tensor(), Tensor(), true), Error);
}

}  // namespace
}  // namespace fg
