// Diffusion inpainting (data/inpaint.h): a constant image with a hole is filled exactly, an affine image to within
// the solver's tolerance, known pixels are never touched, fills stay inside the known range, holes at the border
// and of many shapes converge, and hole_from_mask thresholds and dilates as documented.
#include <gtest/gtest.h>

#include <cmath>

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
  // A scratch, a speck touching the border and a blob: several separate holes.
  Tensor mask = box_mask(17, 23, 0, 17, 6, 8);
  float* m = mask.data<float>();
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 20; x < 23; ++x) m[y * 23 + x] = 1.0f;
  for (int64_t y = 9; y < 14; ++y)
    for (int64_t x = 12; x < 18; ++x) m[y * 23 + x] = 0.8f;
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
  EXPECT_NE(test::error_of([&] {
              inpaint_diffusion(img, Tensor::zeros({5, 6}));
            }).find("the mask is 5 x 6"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              inpaint_diffusion(img, Tensor::zeros({2, 6, 6}));
            }).find("(1, H, W)"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              inpaint_diffusion(Tensor::zeros({6, 6}), Tensor::zeros({6, 6}));
            }).find("(C, H, W)"),
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
