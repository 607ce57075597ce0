// Diffusion inpainting (data/inpaint.h): a constant image with a hole is filled exactly, an affine image to within
// the solver's tolerance, known pixels are never touched, fills stay inside the known range, holes at the border
// and of many shapes converge, and hole_from_mask thresholds and dilates as documented.
// Biharmonic inpainting: known pixels bit for bit, cubics reproduced (where the harmonic fill misses), holes at the
// edges and corners, many specks in one image (two of them one known pixel apart), constant images, edge cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "data/inpaint.h"
#include "tests/support/test_util.h"

namespace fg::data {
namespace {

// An (H, W) mask with the box [y0, y1) x [x0, x1) set.
Tensor box_mask(int64_t H, int64_t W, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  Tensor m = Tensor::zeros({H, W});
  float* p = m.data<float>();
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) p[y * W + x] = 1.0f;
  return m;
}

// image with the masked pixels overwritten by `junk` (what the damage left there).
Tensor damaged(const Tensor& image, const Tensor& mask, float junk) {
  Tensor out = image.clone();
  const int64_t C = image.size(0), HW = image.size(1) * image.size(2);
  const float* m = mask.contiguous().data<float>();
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < HW; ++i)
      if (m[i] > 0.5f) out.data<float>()[c * HW + i] = junk;
  return out;
}

Tensor affine_image(int64_t C, int64_t H, int64_t W) {
  Tensor img = Tensor::empty({C, H, W});
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        img.data<float>()[(c * H + y) * W + x] = float(0.2 + 0.1 * c + 0.006 * x + 0.004 * y);
  return img;
}

// A 17 x 23 mask of separate holes: a scratch across the image, a speck in a corner and a soft blob (0.8).
Tensor three_holes_mask() {
  Tensor mask = box_mask(17, 23, 0, 17, 6, 8);
  float* m = mask.data<float>();
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 20; x < 23; ++x) m[y * 23 + x] = 1.0f;
  for (int64_t y = 9; y < 14; ++y)
    for (int64_t x = 12; x < 18; ++x) m[y * 23 + x] = 0.8f;
  return mask;
}

// The shape errors both fills report (a mask of another size or with channels, an image without channels).
template <typename Fill>
void expect_shape_errors(const Tensor& img, Fill fill) {
  EXPECT_NE(test::error_of([&] { fill(img, Tensor::zeros({5, 6})); }).find("the mask is 5 x 6"), std::string::npos);
  EXPECT_NE(test::error_of([&] { fill(img, Tensor::zeros({2, 6, 6})); }).find("(1, H, W)"), std::string::npos);
  EXPECT_NE(test::error_of([&] { fill(Tensor::zeros({6, 6}), Tensor::zeros({6, 6})); }).find("(C, H, W)"),
            std::string::npos);
}

TEST(InpaintDiffusion, ConstantImageIsFilledExactly) {
  for (float level : {0.0f, 0.1f, 0.7333f, 1.0f}) {
    const Tensor clean = Tensor::full({3, 20, 24}, double(level));
    const Tensor mask = box_mask(20, 24, 5, 14, 3, 20);
    const Tensor out = inpaint_diffusion(damaged(clean, mask, 0.9f), mask);
    EXPECT_ALL_CLOSE(clean, out, 0.0, 0.0);
  }
}

TEST(InpaintDiffusion, AffineImageIsFilledToTheSolversTolerance) {
  // Affine values are harmonic (each the mean of its 4 neighbours), so the exact solution is the clean image; the
  // Gauss-Seidel sweeps stop when no value moves by more than 1e-6 per sweep, which for this 10 x 30 hole (slowest
  // mode contracting by about cos(pi / 11)^2 = 0.92 per sweep) leaves an error of at most 1e-6 / (1 - 0.92), about
  // 1.3e-5; 1e-4 gives room for the f32 rounding of the boundary values.
  const Tensor clean = affine_image(3, 32, 48);
  const Tensor mask = box_mask(32, 48, 11, 21, 9, 39);
  const Tensor out = inpaint_diffusion(damaged(clean, mask, 0.0f), mask);
  EXPECT_ALL_CLOSE(clean, out, 1e-4, 0.0);
}

TEST(InpaintDiffusion, KnownPixelsAreUntouchedAndFillsStayInRange) {
  const Tensor clean = test::random_tensor({3, 17, 23}, 5, DType::F32, 0.2, 0.6);
  const Tensor mask = three_holes_mask();
  const float* m = mask.data<float>();
  const Tensor in = damaged(clean, mask, 1.0f);
  const Tensor out = inpaint_diffusion(in, mask.unsqueeze(0));
  const auto vi = in.to_vector_f32(), vo = out.to_vector_f32();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 17 * 23; ++i) {
      const size_t k = size_t(c * 17 * 23 + i);
      if (m[i] > 0.5f) {
        EXPECT_GE(vo[k], 0.2f - 1e-6f) << k;  // the maximum principle: inside the known values' range
        EXPECT_LE(vo[k], 0.6f + 1e-6f) << k;
      } else {
        ASSERT_EQ(vo[k], vi[k]) << k;
      }
    }
}

TEST(InpaintDiffusion, EdgeCases) {
  const Tensor img = test::random_tensor({1, 6, 6}, 7, DType::F32, 0.0, 1.0);
  // No hole: unchanged. All hole: nothing to fill from, unchanged.
  EXPECT_ALL_CLOSE(img, inpaint_diffusion(img, Tensor::zeros({6, 6})), 0.0, 0.0);
  EXPECT_ALL_CLOSE(img, inpaint_diffusion(img, Tensor::full({6, 6}, 1.0)), 0.0, 0.0);
  // One known pixel fills everything with its value.
  Tensor mask = Tensor::full({6, 6}, 1.0);
  mask.data<float>()[14] = 0.0f;
  EXPECT_ALL_CLOSE(Tensor::full({1, 6, 6}, double(img.to_vector_f32()[14])), inpaint_diffusion(img, mask), 0.0, 0.0);
  expect_shape_errors(img, [](const Tensor& image, const Tensor& mask) { return inpaint_diffusion(image, mask); });
}

// Options that send every component to the conjugate gradients instead of the direct (banded Cholesky) solve.
InpaintOptions cg_only() {
  InpaintOptions o;
  o.direct_max_doubles = 0;
  return o;
}

// A cubic in x and y, scaled to the image: its gradient never vanishes inside (the linear terms dominate), so its
// extremes lie on the image's edges, inside the known pixels' range the biharmonic fill is clamped to.
Tensor cubic_image(int64_t C, int64_t H, int64_t W) {
  Tensor img = Tensor::empty({C, H, W});
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const double X = double(x) / double(W), Y = double(y) / double(H), s = 1.0 - 0.3 * double(c);
        img.data<float>()[(c * H + y) * W + x] =
            float(0.3 + s * (0.2 * X + 0.1 * Y + 0.15 * X * X - 0.1 * X * Y + 0.12 * Y * Y + 0.05 * X * X * X -
                             0.04 * X * X * Y + 0.03 * X * Y * Y + 0.06 * Y * Y * Y));
      }
  return img;
}

// The largest |a - b| over the pixels the mask marks.
double hole_error(const Tensor& a, const Tensor& b, const Tensor& mask) {
  const auto va = a.to_vector_f32(), vb = b.to_vector_f32(), vm = mask.contiguous().to_vector_f32();
  const size_t HW = vm.size();
  double worst = 0.0;
  for (size_t k = 0; k < va.size(); ++k)
    if (vm[k % HW] > 0.5f) worst = std::max(worst, std::fabs(double(va[k]) - double(vb[k])));
  return worst;
}

TEST(InpaintBiharmonic, KnownPixelsAreUntouchedAndFillsAreValid) {
  const Tensor clean = test::random_tensor({3, 17, 23}, 5, DType::F32, 0.2, 0.6);
  const Tensor mask = three_holes_mask();
  const float* m = mask.data<float>();
  const Tensor in = damaged(clean, mask, 1.0f);
  const Tensor out = inpaint_biharmonic(in, mask.unsqueeze(0));
  ASSERT_EQ(out.shape(), in.shape());
  const auto vi = in.to_vector_f32(), vo = out.to_vector_f32();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 17 * 23; ++i) {
      const size_t k = size_t(c * 17 * 23 + i);
      if (m[i] > 0.5f) {
        ASSERT_TRUE(std::isfinite(vo[k])) << k;
        EXPECT_GE(vo[k], 0.2f - 1e-6f) << k;  // clamped to the known values' range (random in [0.2, 0.6))
        EXPECT_LE(vo[k], 0.6f + 1e-6f) << k;
      } else {
        ASSERT_EQ(vo[k], vi[k]) << k;
      }
    }
  EXPECT_EQ(in.to_vector_f32(), vi);  // the input itself is not written
}

TEST(InpaintBiharmonic, CubicsAreReproducedWhereTheHarmonicFillIsNot) {
  // Away from the edges every stencil is whole, and the 5-point Laplacian of a cubic is exactly its (affine)
  // Laplacian, whose discrete Laplacian is 0: the cubic solves the normal equations, which have one solution. What
  // is left is the f32 rounding of the known values (6e-8 at 0.5), the direct solve's rounding in double, or CG's
  // stop at 1e-10 of the right-hand side; 1e-5 is the f32 result's accuracy asked for, with room. Both solvers.
  const int64_t H = 40, W = 44;
  const Tensor clean = cubic_image(2, H, W);
  const Tensor mask = box_mask(H, W, 9, 31, 12, 30);  // 22 x 18, at least 9 pixels from every edge
  const Tensor in = damaged(clean, mask, 0.0f);
  const double bi = hole_error(inpaint_biharmonic(in, mask), clean, mask);
  EXPECT_LT(bi, 1e-5);
  EXPECT_LT(hole_error(inpaint_biharmonic(in, mask, cg_only()), clean, mask), 1e-5);

  // x^2 + y^2 (scaled; Laplacian 4 everywhere) is cubic but not harmonic: the harmonic fill sags in the hole.
  Tensor bowl = Tensor::empty({1, H, W});
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) bowl.data<float>()[y * W + x] = float(double(x * x + y * y) / double(2 * 44 * 44));
  const Tensor bowl_in = damaged(bowl, mask, 0.0f);
  const double bowl_bi = hole_error(inpaint_biharmonic(bowl_in, mask), bowl, mask);
  const double bowl_harmonic = hole_error(inpaint_diffusion(bowl_in, mask), bowl, mask);
  EXPECT_LT(bowl_bi, 1e-5);
  EXPECT_GT(bowl_harmonic, 1e-2);  // measured 0.032 (the biharmonic fill: 3e-8, f32 rounding)
  EXPECT_GT(bowl_harmonic, 1000 * bowl_bi);
}

TEST(InpaintBiharmonic, HolesAtTheEdgesAndCornersConverge) {
  // A corner block, a band along the top edge and a strip down the right edge of a smooth image. The edges' stencils
  // are cut, so the cubic is no longer exact there; the fill must still converge (a far tighter solve agrees), stay
  // finite and near the smooth image, and do better than the harmonic fill of the same non-harmonic image.
  const int64_t H = 30, W = 36;
  const Tensor clean = cubic_image(1, H, W);
  Tensor mask = box_mask(H, W, 0, 7, 0, 9);
  float* m = mask.data<float>();
  for (int64_t x = 14; x < 26; ++x) m[0 * W + x] = m[1 * W + x] = 1.0f;
  for (int64_t y = 10; y < 30; ++y) m[y * W + 34] = m[y * W + 35] = 1.0f;
  const Tensor in = damaged(clean, mask, 1.0f);
  const Tensor out = inpaint_biharmonic(in, mask);
  for (float v : out.to_vector_f32()) ASSERT_TRUE(std::isfinite(v));
  // The direct solve against CG run to near double rounding (the two share only the stencils and right-hand side):
  // they differ by CG's residual left times the inverse's norm (cond ~ 1e5 for these few hundred pixels), and
  // by the direct solve's rounding, far under 1e-5.
  InpaintOptions tight = cg_only();
  tight.cg_tolerance = 1e-14;
  tight.cg_max_iterations = 100000;
  EXPECT_LT(hole_error(out, inpaint_biharmonic(in, mask, tight), mask), 1e-5);
  const double bi = hole_error(out, clean, mask), harmonic = hole_error(inpaint_diffusion(in, mask), clean, mask);
  EXPECT_LT(bi, 0.05);  // the image spans 0.3 .. 0.87 (measured: 0.031, the harmonic fill 0.053)
  EXPECT_LT(bi, harmonic);
  // A constant image stays constant, with the hole at the edges too, bit for bit: CG's start is exact (residual
  // 0), the direct solve is off by rounding in double only, and the clamp to the known range [c, c] settles both.
  const Tensor flat = Tensor::full({2, H, W}, 0.4375);
  EXPECT_ALL_CLOSE(flat, inpaint_biharmonic(damaged(flat, mask, 0.0f), mask, cg_only()), 0.0, 0.0);
  EXPECT_ALL_CLOSE(flat, inpaint_biharmonic(damaged(flat, mask, 0.0f), mask), 0.0, 0.0);
}

TEST(InpaintBiharmonic, ManySpecksInOneImage) {
  // 300 round specks of radius 0 to 3 anywhere away from the edges (many touching or one known pixel apart), plus
  // two specks placed exactly one known pixel apart, which share a Laplacian site: solving them separately would
  // miss the cubic. Every hole away from the edges must reproduce it (see the cubic test for the 1e-5).
  const int64_t H = 120, W = 160;
  const Tensor clean = cubic_image(3, H, W);
  Tensor mask = Tensor::zeros({H, W});
  float* m = mask.data<float>();
  std::mt19937 rng(3);
  for (int k = 0; k < 300; ++k) {
    const int64_t r = int64_t(rng() % 4), cy = 6 + int64_t(rng() % uint32_t(H - 12)),
                  cx = 6 + int64_t(rng() % uint32_t(W - 12));
    for (int64_t y = cy - r; y <= cy + r; ++y)
      for (int64_t x = cx - r; x <= cx + r; ++x)
        if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) m[y * W + x] = 1.0f;
  }
  for (int64_t y = 100; y < 110; ++y) {
    for (int64_t x = 3; x < 6; ++x) m[y * W + x] = 0.0f;
    m[y * W + 3] = m[y * W + 5] = 1.0f;  // two 1-px lines with a known column between them
  }
  const Tensor in = damaged(clean, mask, 0.0f);
  const Tensor out = inpaint_biharmonic(in, mask);
  EXPECT_LT(hole_error(out, clean, mask), 1e-5);
  EXPECT_LT(hole_error(inpaint_biharmonic(in, mask, cg_only()), clean, mask), 1e-5);
  InpaintOptions mixed;  // the smallest specks (band of at most 60 values) direct, the rest by CG
  mixed.direct_max_doubles = 60;
  EXPECT_LT(hole_error(inpaint_biharmonic(in, mask, mixed), clean, mask), 1e-5);
  const auto vi = in.to_vector_f32(), vo = out.to_vector_f32();
  for (size_t k = 0; k < vi.size(); ++k) {
    if (!(m[k % size_t(H * W)] > 0.5f)) {
      ASSERT_EQ(vo[k], vi[k]) << k;
    }
  }
}

TEST(InpaintBiharmonic, EdgeCases) {
  const Tensor img = test::random_tensor({2, 6, 6}, 7, DType::F32, 0.0, 1.0);
  // No hole, or all hole (nothing to fill from): unchanged.
  EXPECT_ALL_CLOSE(img, inpaint_biharmonic(img, Tensor::zeros({6, 6})), 0.0, 0.0);
  EXPECT_ALL_CLOSE(img, inpaint_biharmonic(img, Tensor::full({1, 6, 6}, 1.0)), 0.0, 0.0);
  // One known pixel: the constant is the exact minimiser (every Laplacian 0).
  Tensor mask = Tensor::full({6, 6}, 1.0);
  mask.data<float>()[14] = 0.0f;
  const auto v = img.to_vector_f32();
  Tensor expected = Tensor::empty({2, 6, 6});
  for (int64_t i = 0; i < 72; ++i) expected.data<float>()[i] = v[size_t(i < 36 ? 14 : 36 + 14)];
  EXPECT_ALL_CLOSE(expected, inpaint_biharmonic(img, mask), 0.0, 0.0);
  // A 1 x W image: every site has at most 2 neighbours.
  Tensor row = Tensor::empty({1, 1, 9});
  for (int64_t x = 0; x < 9; ++x) row.data<float>()[x] = float(0.1 * double(x));
  const Tensor row_mask = box_mask(1, 9, 0, 1, 3, 6).unsqueeze(0);
  EXPECT_ALL_CLOSE(row, inpaint_biharmonic(damaged(row, row_mask.select(0, 0), 0.9f), row_mask), 1e-6, 0.0);
  expect_shape_errors(img, [](const Tensor& image, const Tensor& mask) { return inpaint_biharmonic(image, mask); });
  EXPECT_NE(test::error_of([&] {
              inpaint_biharmonic(img, Tensor::zeros({6, 6}).to(DType::F64));
            }).find("f32"),
            std::string::npos);
  InpaintOptions negative;
  negative.direct_max_doubles = -1;
  EXPECT_NE(test::error_of([&] {
              inpaint_biharmonic(img, Tensor::zeros({6, 6}), negative);
            }).find("must not be negative"),
            std::string::npos);
}

TEST(HoleFromMask, ThresholdsAndDilates) {
  Tensor soft = Tensor::zeros({5, 7});
  soft.data<float>()[2 * 7 + 3] = 0.9f;  // above the threshold
  soft.data<float>()[0 * 7 + 6] = 0.4f;  // below it: ignored
  const Tensor h0 = hole_from_mask(soft, 0.5, 0);
  ASSERT_EQ(h0.shape(), (Shape{1, 5, 7}));
  EXPECT_EQ(h0.to_vector_f32()[2 * 7 + 3], 1.0f);
  double sum0 = 0;
  for (float v : h0.to_vector_f32()) sum0 += v;
  EXPECT_EQ(sum0, 1.0);
  const Tensor h1 = hole_from_mask(soft, 0.5, 1);
  const auto v1 = h1.to_vector_f32();
  for (int64_t y = 0; y < 5; ++y)
    for (int64_t x = 0; x < 7; ++x)
      EXPECT_EQ(v1[size_t(y * 7 + x)], (std::abs(y - 2) <= 1 && std::abs(x - 3) <= 1) ? 1.0f : 0.0f) << y << "," << x;
  EXPECT_NE(test::error_of([&] { hole_from_mask(soft, 0.5, -1); }).find("negative"), std::string::npos);
}

}  // namespace
}  // namespace fg::data
