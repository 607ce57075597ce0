// nn/losses.h: ssim_loss and gram_style_loss against values computed here in double from their definitions
// (a direct SSIM with an explicit Gaussian window, a direct Gram matrix), their limits (identical inputs, weight 0,
// quadratic scaling in the weight), finite-difference gradient checks, and the errors a user can cause.
// PyTorch's values are checked in tests/golden/test_golden_losses.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "nn/losses.h"
#include "tensor/error.h"
#include "tests/support/test_util.h"

namespace fg::nn {
namespace {

// pytorch-ssim, written out for one (N, C, H, W) pair in double: Gaussian window (sigma 1.5) centred on
// window / 2, zero padding window / 2, C1 = 0.01^2, C2 = 0.03^2, mean of the map. Odd windows only.
double direct_ssim(const Tensor& a, const Tensor& b, int64_t window) {
  const int64_t N = a.size(0), C = a.size(1), H = a.size(2), W = a.size(3), r = window / 2;
  std::vector<double> g(static_cast<size_t>(window));
  double total = 0.0;
  for (int64_t i = 0; i < window; ++i) {
    g[size_t(i)] = std::exp(-double((i - r) * (i - r)) / (2 * 1.5 * 1.5));
    total += g[size_t(i)];
  }
  for (double& v : g) v /= total;
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  auto at = [&](const std::vector<double>& v, int64_t n, int64_t c, int64_t h, int64_t w) {
    if (h < 0 || h >= H || w < 0 || w >= W) return 0.0;
    return v[size_t(((n * C + c) * H + h) * W + w)];
  };
  double sum = 0.0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          double mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
          for (int64_t i = 0; i < window; ++i)
            for (int64_t j = 0; j < window; ++j) {
              const double k = g[size_t(i)] * g[size_t(j)];
              const double xv = at(x, n, c, h + i - r, w + j - r), yv = at(y, n, c, h + i - r, w + j - r);
              mx += k * xv;
              my += k * yv;
              xx += k * xv * xv;
              yy += k * yv * yv;
              xy += k * xv * yv;
            }
          const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
          const double sx = xx - mx * mx, sy = yy - my * my, sxy = xy - mx * my;
          sum += (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sx + sy + c2));
        }
  return sum / double(N * C * H * W);
}

// l1(gram(a), gram(b)) * 5e3 * weight^2 in double.
double direct_gram_style(const Tensor& a, const Tensor& b, double weight) {
  const int64_t N = a.size(0), C = a.size(1), L = a.size(2) * a.size(3);
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double l1 = 0.0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < C; ++j) {
        double gx = 0, gy = 0;
        for (int64_t k = 0; k < L; ++k) {
          gx += x[size_t((n * C + i) * L + k)] * x[size_t((n * C + j) * L + k)];
          gy += y[size_t((n * C + i) * L + k)] * y[size_t((n * C + j) * L + k)];
        }
        l1 += std::fabs(gx - gy) / double(C * L);
      }
  return l1 / double(N * C * C) * 5e3 * weight * weight;
}

TEST(SsimLoss, MatchesTheDefinition) {
  struct Case {
    Shape shape;
    int64_t window;
  };
  for (const Case& c :
       std::vector<Case>{{{2, 3, 9, 10}, 5}, {{1, 1, 12, 7}, 11}, {{1, 16, 4, 4}, 5}, {{2, 2, 3, 3}, 3}}) {
    SCOPED_TRACE(shape_str(c.shape) + " window " + std::to_string(c.window));
    const Tensor x = test::random_tensor(c.shape, 11, DType::F64, 0.0, 1.0);
    const Tensor noise = test::random_normal(c.shape, 12, DType::F64);
    const Tensor y = add(Variable(x), mul_scalar(Variable(noise), 0.1)).data();
    const double expected = 1.0 - direct_ssim(x, y, c.window);
    EXPECT_NEAR(ssim_loss(Variable(x), Variable(y), c.window).item(), expected, 1e-12);
    // f32 agrees to f32 precision.
    EXPECT_NEAR(ssim_loss(Variable(x.to(DType::F32)), Variable(y.to(DType::F32)), c.window).item(), expected, 1e-5);
  }
}

TEST(SsimLoss, ZeroForIdenticalInputsAndPositiveOtherwise) {
  const Tensor x = test::random_tensor({2, 3, 8, 8}, 3, DType::F64);
  EXPECT_NEAR(ssim_loss(Variable(x), Variable(x), 5).item(), 0.0, 1e-14);
  EXPECT_NEAR(ssim_loss(Variable(x), Variable(x)).item(), 0.0, 1e-14);  // default window 11
  const Tensor y = test::random_tensor({2, 3, 8, 8}, 4, DType::F64);
  const double unrelated = ssim_loss(Variable(x), Variable(y), 5).item();
  EXPECT_GT(unrelated, 0.5);  // independent noise: SSIM near 0
  EXPECT_LT(unrelated, 2.0);  // 1 - SSIM lies in [0, 2]
}

TEST(SsimLoss, Gradients) {
  const Tensor x = test::random_tensor({1, 2, 6, 5}, 21, DType::F64, 0.0, 1.0);
  const Tensor y = test::random_tensor({1, 2, 6, 5}, 22, DType::F64, 0.0, 1.0);
  for (int64_t window : {5, 11}) {
    SCOPED_TRACE("window " + std::to_string(window));
    EXPECT_GRAD_OK([window](const std::vector<Variable>& v) { return ssim_loss(v[0], v[1], window); }, {x, y});
  }
}

TEST(GramStyleLoss, MatchesTheDefinition) {
  for (const Shape& s : std::vector<Shape>{{2, 3, 4, 5}, {1, 1, 1, 1}, {1, 16, 3, 2}}) {
    SCOPED_TRACE(shape_str(s));
    const Tensor a = test::random_tensor(s, 31, DType::F64, 0.0, 2.0);
    const Tensor b = test::random_tensor(s, 32, DType::F64, 0.0, 2.0);
    for (double w : {1.0, 6.0, 0.3}) {
      const double expected = direct_gram_style(a, b, w);
      EXPECT_NEAR(gram_style_loss(Variable(a), Variable(b), w).item(), expected, 1e-12 * expected);
      EXPECT_NEAR(gram_style_loss(Variable(a.to(DType::F32)), Variable(b.to(DType::F32)), w).item(), expected,
                  1e-5 * expected);
    }
  }
}

TEST(GramStyleLoss, ScalesWithTheSquaredWeight) {
  const Tensor a = test::random_tensor({2, 4, 3, 3}, 41, DType::F64);
  const Tensor b = test::random_tensor({2, 4, 3, 3}, 42, DType::F64);
  const double one = gram_style_loss(Variable(a), Variable(b), 1.0).item();
  EXPECT_GT(one, 0.0);
  EXPECT_NEAR(gram_style_loss(Variable(a), Variable(b), 70.0).item(), 4900.0 * one, 1e-9 * 4900.0 * one);
  EXPECT_EQ(gram_style_loss(Variable(a), Variable(b), 0.0).item(), 0.0);
  EXPECT_EQ(gram_style_loss(Variable(a), Variable(a), 5.0).item(), 0.0);
}

TEST(GramStyleLoss, Gradients) {
  const Tensor a = test::random_tensor({2, 3, 3, 4}, 51, DType::F64);
  const Tensor b = test::random_tensor({2, 3, 3, 4}, 52, DType::F64);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return gram_style_loss(v[0], v[1], 2.5); }, {a, b});
}

TEST(Losses, UserErrors) {
  const Variable a(Tensor::zeros({1, 2, 5, 5})), b(Tensor::zeros({1, 3, 5, 5})), flat(Tensor::zeros({4, 5}));
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { ssim_loss(a, b, 5); }, "(1, 2, 5, 5) and (1, 3, 5, 5)");
  expect_error([&] { ssim_loss(flat, flat, 5); }, "(N, C, H, W)");
  expect_error([&] { ssim_loss(a, a, 0); }, "window_size");
  expect_error([&] { gram_style_loss(a, b, 1.0); }, "gram_style_loss");
  expect_error([&] { gram_style_loss(a, Variable(), 1.0); }, "defined");
}

}  // namespace
}  // namespace fg::nn
