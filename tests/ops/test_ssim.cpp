// SSIM (pytorch-ssim's definition): both kernel variants (separable and direct 2-D window) against a direct
// 2-D-window loop written here from the definition, over a case table (1 x 1 images, windows 1 to 11 including the
// even windows 2 and 4 whose map is one larger than the image, windows larger than the image, several images and
// channels, permuted and step-sliced views); hand-computed values (constant images, one pixel under a 3 x 3 window,
// the asymmetric weights of an even window); SSIM(x, x) = 1 with a zero gradient; the separable backward against
// the direct one; finite-difference gradient checks for x and y with windows 1, 2, 3, 4, 5, 11; the errors a user
// can cause.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "kernels/ssim.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using kernels::SsimVariant;

struct NaiveSsim {
  double value;
  std::vector<double> per_channel;  // N*C
};

// pytorch-ssim, literally: mu = conv2d(img, outer(g, g), padding = ws / 2), sigma^2 = conv2d(img^2) - mu^2, ...
NaiveSsim naive_ssim(const Tensor& x, const Tensor& y, int64_t ws, double sigma) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t pad = ws / 2;
  const int64_t OH = H + 2 * pad - ws + 1, OW = W + 2 * pad - ws + 1;
  std::vector<double> g(size_t(ws), 0.0);
  double gsum = 0;
  for (int64_t i = 0; i < ws; ++i) {
    g[size_t(i)] = std::exp(-double((i - ws / 2) * (i - ws / 2)) / (2 * sigma * sigma));
    gsum += g[size_t(i)];
  }
  for (double& v : g) v /= gsum;
  const std::vector<double> xv = x.to_vector(), yv = y.to_vector();
  auto X = [&](int64_t n, int64_t c, int64_t r, int64_t q) { return xv[size_t(((n * C + c) * H + r) * W + q)]; };
  auto Y = [&](int64_t n, int64_t c, int64_t r, int64_t q) { return yv[size_t(((n * C + c) * H + r) * W + q)]; };
  const double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;
  NaiveSsim out{0.0, {}};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      double channel = 0;
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          double mu1 = 0, mu2 = 0, e11 = 0, e22 = 0, e12 = 0;
          for (int64_t a = 0; a < ws; ++a)
            for (int64_t b = 0; b < ws; ++b) {
              const int64_t r = i - pad + a, q = j - pad + b;
              if (r < 0 || r >= H || q < 0 || q >= W) continue;  // zero padding
              const double w = g[size_t(a)] * g[size_t(b)];
              mu1 += w * X(n, c, r, q);
              mu2 += w * Y(n, c, r, q);
              e11 += w * X(n, c, r, q) * X(n, c, r, q);
              e22 += w * Y(n, c, r, q) * Y(n, c, r, q);
              e12 += w * X(n, c, r, q) * Y(n, c, r, q);
            }
          const double s1 = e11 - mu1 * mu1, s2 = e22 - mu2 * mu2, s12 = e12 - mu1 * mu2;
          channel += ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 * mu1 + mu2 * mu2 + C1) * (s1 + s2 + C2));
        }
      out.value += channel;
      out.per_channel.push_back(channel / double(OH * OW));
    }
  out.value /= double(N * C * OH * OW);
  return out;
}

struct SsimCase {
  std::string name;
  Shape shape;
  std::vector<int64_t> windows;
  double sigma;
  // Views of the inputs: x and y are made from these makers (seeded differently) so the layout varies.
  std::function<Tensor(const Shape&, uint64_t, DType)> make;
};

Tensor plain(const Shape& s, uint64_t seed, DType t) {
  return test::random_tensor(s, seed, t, 0, 1);
}

std::vector<SsimCase> ssim_cases() {
  return {
      {"pixel", {1, 1, 1, 1}, {1, 2, 3, 11}, 1.5, plain},
      {"odd", {1, 2, 7, 9}, {1, 2, 3, 4, 5, 7, 11}, 1.5, plain},
      {"window_larger_than_image", {1, 1, 3, 4}, {5, 6, 11}, 1.5, plain},
      {"batch", {2, 3, 16, 13}, {5, 11}, 1.5, plain},
      {"row", {2, 1, 1, 17}, {3, 4, 11}, 1.5, plain},
      {"other_sigma", {1, 2, 6, 5}, {3, 4, 7}, 0.8, plain},
      {"permuted",
       {2, 3, 5, 6},
       {3, 4, 11},
       1.5,
       [](const Shape& s, uint64_t seed, DType t) {
         // Stored (N, H, C, W), viewed (N, C, H, W).
         return test::random_tensor({s[0], s[2], s[1], s[3]}, seed, t, 0, 1).permute({0, 2, 1, 3});
       }},
      {"sliced_step2",
       {1, 2, 5, 7},
       {3, 4},
       1.5,
       [](const Shape& s, uint64_t seed, DType t) {
         return test::random_tensor({s[0], s[1], 2 * s[2], s[3]}, seed, t, 0, 1).slice(2, 0, 2 * s[2], 2);
       }},
  };
}

TEST(Ssim, ForwardMatchesNaive) {
  for (DType dtype : {DType::F32, DType::F64}) {
    // f32: the inputs are exact in double and the kernel filters in double; only the final rounding remains.
    const double tol = dtype == DType::F32 ? 2e-7 : 1e-13;
    for (const auto& c : ssim_cases()) {
      const Tensor x = c.make(c.shape, 1, dtype), y = c.make(c.shape, 2, dtype);
      for (int64_t ws : c.windows) {
        const NaiveSsim ref = naive_ssim(x, y, ws, c.sigma);
        for (SsimVariant v : {SsimVariant::SEPARABLE, SsimVariant::DIRECT_2D}) {
          SCOPED_TRACE(c.name + " ws " + std::to_string(ws) + " " + dtype_name(dtype) +
                       (v == SsimVariant::SEPARABLE ? " separable" : " direct"));
          const kernels::SsimResult r = kernels::ssim(x, y, {ws, c.sigma}, true, v);
          EXPECT_EQ(r.value.shape(), Shape{});
          EXPECT_EQ(r.value.dtype(), dtype);
          EXPECT_NEAR(r.value.item(), ref.value, tol);
          EXPECT_ALL_CLOSE(Tensor::from_vector(ref.per_channel, {c.shape[0], c.shape[1]}, DType::F64), r.per_channel,
                           tol, 0);
          const int64_t oh = kernels::ssim_map_size(c.shape[2], ws), ow = kernels::ssim_map_size(c.shape[3], ws);
          EXPECT_EQ(oh, c.shape[2] + (ws % 2 == 0 ? 1 : 0));
          EXPECT_EQ(ow, c.shape[3] + (ws % 2 == 0 ? 1 : 0));
          EXPECT_EQ(r.stats.moments.shape(), Shape({5, c.shape[0], c.shape[1], oh, ow}));
        }
        // The autograd op (separable) agrees.
        EXPECT_NEAR(ssim(Variable(x), Variable(y), ws, c.sigma).item(), ref.value, tol);
      }
    }
  }
}

TEST(Ssim, VariantsAgree) {
  // Statistics and gradients of the separable and direct variants, in f64 where they should agree to rounding.
  for (const auto& c : ssim_cases()) {
    const Tensor x = c.make(c.shape, 3, DType::F64), y = c.make(c.shape, 4, DType::F64);
    for (int64_t ws : c.windows) {
      SCOPED_TRACE(c.name + " ws " + std::to_string(ws));
      const kernels::SsimParams p{ws, c.sigma};
      const kernels::SsimResult sep = kernels::ssim(x, y, p, true, SsimVariant::SEPARABLE);
      const kernels::SsimResult dir = kernels::ssim(x, y, p, true, SsimVariant::DIRECT_2D);
      EXPECT_ALL_CLOSE(dir.stats.moments, sep.stats.moments, 1e-14, 1e-12);
      const Tensor go = Tensor::scalar(0.75, DType::F64);
      const kernels::SsimGrads gs = kernels::ssim_backward(go, x, y, sep.stats, p, true, true, SsimVariant::SEPARABLE);
      const kernels::SsimGrads gd = kernels::ssim_backward(go, x, y, dir.stats, p, true, true, SsimVariant::DIRECT_2D);
      EXPECT_ALL_CLOSE(gd.x, gs.x, 1e-14, 1e-10);
      EXPECT_ALL_CLOSE(gd.y, gs.y, 1e-14, 1e-10);
      // One gradient alone is the same as with both.
      const kernels::SsimGrads only_y = kernels::ssim_backward(go, x, y, sep.stats, p, false, true);
      EXPECT_FALSE(only_y.x.defined());
      EXPECT_ALL_CLOSE(gs.y, only_y.y, 0, 0);
      const kernels::SsimGrads only_x = kernels::ssim_backward(go, x, y, sep.stats, p, true, false);
      EXPECT_FALSE(only_x.y.defined());
      EXPECT_ALL_CLOSE(gs.x, only_x.x, 0, 0);
    }
  }
}

TEST(Ssim, HandComputedValues) {
  // Constant images under a 1 x 1 window: no variance, so every map entry is (2ab + C1) / (a^2 + b^2 + C1).
  const Tensor a = Tensor::full({1, 2, 3, 4}, 0.5, DType::F64), b = Tensor::full({1, 2, 3, 4}, 0.25, DType::F64);
  EXPECT_NEAR(ssim(Variable(a), Variable(b), 1).item(), 0.2501 / 0.3126, 1e-15);

  // One pixel (x = 1, y = 0) under a 3 x 3 window: only the centre tap, weight w = (1 / (1 + 2 e^(-1/4.5)))^2, sees
  // the image, so mu_x = w, var_x = w - w^2, mu_y = var_y = cov = 0 and SSIM = C1 C2 / ((w^2 + C1)(w - w^2 + C2)).
  const Tensor one = Tensor::full({1, 1, 1, 1}, 1.0, DType::F64), zero = Tensor::zeros({1, 1, 1, 1}, DType::F64);
  EXPECT_NEAR(ssim(Variable(one), Variable(zero), 3).item(), 3.2353523487435136e-05, 1e-18);
  const kernels::SsimResult r3 = kernels::ssim(one, zero, {3, 1.5}, true);
  EXPECT_NEAR(r3.stats.moments.at({0, 0, 0, 0, 0}), 0.1477613163468188, 1e-15);
  EXPECT_NEAR(r3.stats.moments.at({2, 0, 0, 0, 0}), 0.1477613163468188 * (1 - 0.1477613163468188), 1e-15);

  // An even window (2): g = (e^(-2/9), 1) / (1 + e^(-2/9)) is not symmetric and the map is 2 x 2 for one pixel.
  // Map entry (i, j) reads the pixel through taps (1 - i, 1 - j), so mu_x = [[g1 g1, g1 g0], [g0 g1, g0 g0]].
  const double g0 = 0.444671944737631, g1 = 0.555328055262369;
  const kernels::SsimResult r2 = kernels::ssim(one, zero, {2, 1.5}, true);
  ASSERT_EQ(r2.stats.moments.shape(), Shape({5, 1, 1, 2, 2}));
  const Tensor mu_x = r2.stats.moments.select(0, 0).reshape({4});
  EXPECT_ALL_CLOSE(Tensor::from_vector({g1 * g1, g1 * g0, g0 * g1, g0 * g0}, {4}, DType::F64), mu_x, 1e-15, 0);
}

TEST(Ssim, IdenticalImagesGiveOneAndZeroGradient) {
  for (DType dtype : {DType::F32, DType::F64}) {
    for (int64_t ws : {1, 4, 5, 11}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " ws " + std::to_string(ws));
      const Tensor x = test::random_tensor({2, 3, 9, 8}, 5, dtype, 0, 1);
      EXPECT_NEAR(ssim(Variable(x), Variable(x.clone()), ws).item(), 1.0, dtype == DType::F32 ? 1e-7 : 1e-14);
      // SSIM <= 1 with equality at x == y, so x == y is a maximum: the gradient vanishes there (to rounding,
      // amplified up to 1/C2 ~ 1e3 where the local variance is 0; gradients of different images are ~1e-3).
      Variable vx(x, true);
      ssim(vx, Variable(x.clone()), ws).backward();
      EXPECT_LT(kernels::max_abs(vx.grad()), 1e-12);
    }
  }
  // Different images score below 1.
  const Tensor x = test::random_tensor({1, 1, 8, 8}, 6, DType::F64, 0, 1);
  const Tensor y = test::random_tensor({1, 1, 8, 8}, 7, DType::F64, 0, 1);
  const double s = ssim(Variable(x), Variable(y)).item();
  EXPECT_LT(s, 0.5);
  EXPECT_GT(s, -1.0);
}

TEST(Ssim, F32MatchesF64) {
  const Tensor x = test::random_tensor({2, 3, 20, 17}, 8, DType::F32, 0, 1);
  const Tensor y = test::random_tensor({2, 3, 20, 17}, 9, DType::F32, 0, 1);
  for (int64_t ws : {4, 11}) {
    SCOPED_TRACE(ws);
    Variable x32(x, true), y32(y, true), x64(x.to(DType::F64), true), y64(y.to(DType::F64), true);
    const Variable s32 = ssim(x32, y32, ws), s64 = ssim(x64, y64, ws);
    EXPECT_NEAR(s32.item(), s64.item(), 1e-7);
    s32.backward();
    s64.backward();
    // The f32 path filters in double too; gradients differ by the rounding of the saved statistics and results.
    EXPECT_ALL_CLOSE(x64.grad(), x32.grad(), 1e-9, 1e-5);
    EXPECT_ALL_CLOSE(y64.grad(), y32.grad(), 1e-9, 1e-5);
  }
}

TEST(Ssim, NonContiguousInputsMatchCopies) {
  const Tensor xs = test::random_tensor({2, 7, 3, 9}, 10, DType::F64, 0, 1);
  const Tensor ys = test::random_tensor({2, 3, 14, 9}, 11, DType::F64, 0, 1);
  const Tensor x = xs.permute({0, 2, 1, 3}), y = ys.slice(2, 0, 14, 2);
  ASSERT_FALSE(x.is_contiguous());
  ASSERT_FALSE(y.is_contiguous());
  ASSERT_EQ(x.shape(), y.shape());
  Variable vx(x, true), vy(y, true), cx(x.contiguous(), true), cy(y.contiguous(), true);
  const Variable sv = ssim(vx, vy, 5), sc = ssim(cx, cy, 5);
  EXPECT_EQ(sv.item(), sc.item());
  sv.backward();
  sc.backward();
  EXPECT_ALL_CLOSE(cx.grad(), vx.grad(), 0, 0);
  EXPECT_ALL_CLOSE(cy.grad(), vy.grad(), 0, 0);
}

TEST(Ssim, GradCheck) {
  const Tensor x = test::random_tensor({1, 2, 7, 9}, 12, DType::F64, 0, 1);
  const Tensor y = test::random_tensor({1, 2, 7, 9}, 13, DType::F64, 0, 1);
  for (int64_t ws : {1, 2, 3, 4, 5, 11}) {
    SCOPED_TRACE(ws);
    auto f = [ws](const std::vector<Variable>& v) { return ssim(v[0], v[1], ws); };
    EXPECT_GRAD_OK(f, {x, y});
    EXPECT_GRAD_OK(f, {x, y}, {false, true});
    EXPECT_GRAD_OK(f, {x, y}, {true, false});
  }
  // Correlated images (y = x + small noise): the regime an SSIM loss trains in, with larger covariance terms.
  const Tensor near = kernels::add(x, test::random_tensor({1, 2, 7, 9}, 14, DType::F64, -0.05, 0.05));
  auto f5 = [](const std::vector<Variable>& v) { return ssim(v[0], v[1], 5); };
  EXPECT_GRAD_OK(f5, {x, near});
  // Another sigma, a batch, and an output gradient other than 1 (the SSIM loss 1 - SSIM, times 3).
  auto fl = [](const std::vector<Variable>& v) {
    return mul_scalar(add_scalar(neg(ssim(v[0], v[1], 4, 0.7)), 1.0), 3.0);
  };
  EXPECT_GRAD_OK(fl, {test::random_tensor({2, 2, 5, 6}, 15, DType::F64, 0, 1),
                      test::random_tensor({2, 2, 5, 6}, 16, DType::F64, 0, 1)});
  // Through non-contiguous views.
  auto fv = [](const std::vector<Variable>& v) {
    return ssim(permute(v[0], {0, 2, 1, 3}), slice(v[1], 3, 0, 12, 2), 3);
  };
  EXPECT_GRAD_OK(fv, {test::random_tensor({1, 5, 2, 6}, 17, DType::F64, 0, 1),
                      test::random_tensor({1, 2, 5, 12}, 18, DType::F64, 0, 1)});
}

TEST(Ssim, EmptyBatchGivesNaN) {
  // No images: the mean of an empty map, NaN as in PyTorch; the gradient is empty.
  const Tensor e = Tensor::zeros({0, 3, 4, 4});
  Variable v(e, true);
  const Variable s = ssim(v, Variable(e), 3);
  EXPECT_TRUE(std::isnan(s.item()));
  s.backward();
  EXPECT_EQ(v.grad().shape(), e.shape());
}

TEST(Ssim, Errors) {
  const Tensor x = Tensor::zeros({1, 2, 5, 5});
  EXPECT_THROW(ssim(Variable(x), Variable(Tensor::zeros({1, 2, 5, 6}))), Error);
  EXPECT_THROW(ssim(Variable(x), Variable(Tensor::zeros({1, 1, 5, 5}))), Error);
  EXPECT_THROW(ssim(Variable(Tensor::zeros({2, 5, 5})), Variable(Tensor::zeros({2, 5, 5}))), Error);
  EXPECT_THROW(ssim(Variable(x), Variable(Tensor::zeros({1, 2, 5, 5}, DType::F64))), Error);
  const Tensor xi = Tensor::zeros({1, 2, 5, 5}, DType::I32);
  EXPECT_THROW(ssim(Variable(xi), Variable(xi)), Error);
  EXPECT_THROW(ssim(Variable(x), Variable(x), 0), Error);
  EXPECT_THROW(ssim(Variable(x), Variable(x), -3), Error);
  EXPECT_THROW(ssim(Variable(x), Variable(x), 11, 0.0), Error);
  EXPECT_THROW(ssim(Variable(x), Variable(x), 11, -1.5), Error);
  EXPECT_THROW(ssim(Variable(x), Variable(x), 11, std::numeric_limits<double>::quiet_NaN()), Error);
  EXPECT_THROW(ssim(Variable(Tensor::zeros({1, 1, 0, 3})), Variable(Tensor::zeros({1, 1, 0, 3}))), Error);
  EXPECT_THROW(ssim(Variable(), Variable(x)), Error);
  // The backward checks that the statistics belong to these images and this window.
  const kernels::SsimResult r = kernels::ssim(x, x, {11, 1.5}, true);
  EXPECT_THROW(kernels::ssim_backward(Tensor::scalar(1.0), x, x, r.stats, {4, 1.5}, true, true), Error);
  EXPECT_THROW(kernels::ssim_backward(Tensor::scalar(1.0), x, x, kernels::SsimStats(), {11, 1.5}, true, true), Error);
  EXPECT_THROW(kernels::ssim_backward(Tensor::zeros({2}), x, x, r.stats, {11, 1.5}, true, true), Error);
  try {
    ssim(Variable(x), Variable(Tensor::zeros({1, 2, 5, 6})));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("ssim"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(1, 2, 5, 6)"), std::string::npos) << msg;
  }
}

// For odd windows the statistics of every window size have the image's shape, so a backward given another window
// than its forward's used to run with the wrong window and return wrong gradients. The statistics now carry the
// parameters they were made with, and the backward compares them with its own (on CUDA too: check_ssim_stats).
TEST(Ssim, BackwardRefusesStatisticsOfAnotherWindowOrSigma) {
  const Tensor x = test::random_tensor({1, 2, 9, 8}, 71, DType::F64, 0, 1);
  const Tensor y = test::random_tensor({1, 2, 9, 8}, 72, DType::F64, 0, 1);
  const kernels::SsimResult r11 = kernels::ssim(x, y, {11, 1.5}, true);
  const kernels::SsimResult r5 = kernels::ssim(x, y, {5, 1.5}, true);
  ASSERT_EQ(r11.stats.moments.shape(), r5.stats.moments.shape());  // what made the mistake undetectable
  EXPECT_EQ(r11.stats.params.window_size, 11);
  const Tensor go = Tensor::scalar(-1.0, DType::F64);
  std::string msg = test::error_of([&] { kernels::ssim_backward(go, x, y, r11.stats, {5, 1.5}, true, true); });
  EXPECT_NE(msg.find("window 11, sigma 1.5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("window 5, sigma 1.5"), std::string::npos) << msg;
  msg = test::error_of([&] { kernels::ssim_backward(go, x, y, r11.stats, {11, 1.0}, true, true); });
  EXPECT_NE(msg.find("sigma 1"), std::string::npos) << msg;
  // Statistics of other images (a shape the parameters cannot explain) are refused too.
  const Tensor wider = test::random_tensor({1, 2, 9, 9}, 73, DType::F64, 0, 1);
  msg = test::error_of([&] { kernels::ssim_backward(go, wider, wider, r11.stats, {11, 1.5}, true, true); });
  EXPECT_NE(msg.find("forward's stats"), std::string::npos) << msg;
  // With the forward's parameters each backward runs, and the two windows' gradients differ.
  const kernels::SsimGrads g11 = kernels::ssim_backward(go, x, y, r11.stats, r11.stats.params, true, false);
  const kernels::SsimGrads g5 = kernels::ssim_backward(go, x, y, r5.stats, r5.stats.params, true, false);
  EXPECT_GT(test::nmse(g11.x, g5.x), 1e-3);
}

}  // namespace
}  // namespace fg
