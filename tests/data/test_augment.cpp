// data/augment.h: identities (no transform, and every transform at its neutral value), the exact mirror, the
// lighting formulas at single pixels, the geometry of zoom and warp (sizes, centres, corners; a linear image, on
// which bilinear interpolation is exact, sampled where augment_source_point says), reflection against a sampler
// written here, a mask moved exactly with its image, the frequency and range of each random transform over 2000
// draws, the constant number of draws, the documented word layout, and the errors a user can cause.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "data/augment.h"
#include "tensor/error.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using data::AugmentOptions;
using data::AugmentParams;

Tensor random_image(const Shape& shape, uint64_t seed) {
  return test::random_tensor(shape, seed, DType::F32, 0.0, 1.0);
}

// f(row, col) = 0.2 + 0.01 row + 0.013 col on every channel (channel c adds 0.1 c): bilinear sampling reproduces
// it exactly wherever the sample lies inside the image.
double linear(double row, double col, int64_t c) {
  return 0.2 + 0.01 * row + 0.013 * col + 0.1 * double(c);
}

Tensor linear_image(int64_t C, int64_t H, int64_t W) {
  std::vector<double> v;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j) v.push_back(linear(double(i), double(j), c));
  return Tensor::from_vector(v, {C, H, W});
}

// fastai's logit/sigmoid written out directly.
double ref_logit(double x) {
  x = std::min(std::max(x, 1e-7), 1.0 - 1e-7);
  return std::log(x / (1.0 - x));
}
double ref_sigmoid(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

// Reflection about the centres of pixels 0 and n - 1, by folding step by step.
double fold(double v, int64_t n) {
  if (n == 1) return 0.0;
  const double hi = double(n - 1);
  while (v < 0.0 || v > hi) v = v < 0.0 ? -v : 2.0 * hi - v;
  return v;
}

// Bilinear sample of channel c at (row, col) with reflection (f64).
double sample(const Tensor& x, int64_t c, double row, double col) {
  const int64_t H = x.size(1), W = x.size(2);
  row = fold(row, H);
  col = fold(col, W);
  const int64_t r0 = std::min(int64_t(std::floor(row)), H - 1), c0 = std::min(int64_t(std::floor(col)), W - 1);
  const int64_t r1 = std::min(r0 + 1, H - 1), c1 = std::min(c0 + 1, W - 1);
  const double fr = row - double(r0), fc = col - double(c0);
  return (1 - fr) * ((1 - fc) * x.at({c, r0, c0}) + fc * x.at({c, r0, c1})) +
         fr * ((1 - fc) * x.at({c, r1, c0}) + fc * x.at({c, r1, c1}));
}

TEST(Augment, NothingOnIsExactlyTheInput) {
  const Tensor x = random_image({3, 17, 23}, 1);
  const AugmentParams p;
  ASSERT_TRUE(p.is_identity());
  const Tensor y = data::apply_augment(x, p);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.to_vector(), x.to_vector());
  EXPECT_FALSE(y.shares_storage_with(x));
}

TEST(Augment, NeutralValuesGiveTheInputBack) {
  const Tensor x = random_image({3, 16, 21}, 2);
  AugmentParams p;
  p.warp = true;  // all four magnitudes 0
  p.zoom = true;  // scale 1, any centre
  p.zoom_row = 0.3;
  p.zoom_col = 0.8;
  p.brightness = true;  // change 0.5
  p.contrast = true;    // scale 1
  EXPECT_FALSE(p.is_identity());
  EXPECT_ALL_CLOSE(x, data::apply_augment(x, p), 1e-6, 0.0);
  // Each alone.
  for (int k = 0; k < 4; ++k) {
    AugmentParams q;
    q.warp = k == 0;
    q.zoom = k == 1;
    q.brightness = k == 2;
    q.contrast = k == 3;
    SCOPED_TRACE(k);
    EXPECT_ALL_CLOSE(x, data::apply_augment(x, q), 1e-6, 0.0);
  }
}

TEST(Augment, FlipIsAnExactMirror) {
  for (const Shape& shape : {Shape{3, 9, 14}, Shape{1, 6, 7}, Shape{2, 5, 1}, Shape{1, 1, 2}}) {
    SCOPED_TRACE(shape_str(shape));
    const Tensor x = random_image(shape, 3);
    AugmentParams p;
    p.flip = true;
    const Tensor y = data::apply_augment(x, p);
    ASSERT_EQ(y.shape(), x.shape());
    const int64_t W = shape[2];
    for (int64_t c = 0; c < shape[0]; ++c)
      for (int64_t i = 0; i < shape[1]; ++i)
        for (int64_t j = 0; j < W; ++j)
          ASSERT_EQ(y.at({c, i, j}), x.at({c, i, W - 1 - j})) << c << " " << i << " " << j;
    // Twice is the input.
    EXPECT_EQ(data::apply_augment(y, p).to_vector(), x.to_vector());
  }
}

TEST(Augment, LightingFormulasAtPixels) {
  const std::vector<double> values = {0.0, 1e-9, 0.1, 0.25, 0.5, 0.73, 0.999, 1.0};
  const Tensor x = Tensor::from_vector(values, {1, 2, 4});
  struct Case {
    bool brightness, contrast;
    double change, scale;
  };
  const Case cases[] = {{true, false, 0.7, 1.0},
                        {true, false, 0.25, 1.0},
                        {false, true, 0.5, 2.0},
                        {false, true, 0.5, 0.5},
                        {true, true, 0.3, 1.7}};
  for (const Case& k : cases) {
    SCOPED_TRACE("change " + std::to_string(k.change) + " scale " + std::to_string(k.scale));
    AugmentParams p;
    p.brightness = k.brightness;
    p.brightness_change = k.change;
    p.contrast = k.contrast;
    p.contrast_scale = k.scale;
    const Tensor y = data::apply_augment(x, p);
    for (size_t i = 0; i < values.size(); ++i) {
      // fastai: one logit image, brightness adds logit(change), contrast multiplies, then the sigmoid.
      double z = ref_logit(values[i]);
      if (k.brightness) z += std::log(k.change / (1.0 - k.change));
      if (k.contrast) z *= k.scale;
      const double want = ref_sigmoid(z);
      EXPECT_NEAR(y.to_vector()[i], want, 1e-6 * std::max(1.0, want)) << "x = " << values[i];
    }
    // Without lighting the values are untouched.
    EXPECT_EQ(data::apply_augment(x, p, /*lighting=*/false).to_vector(), x.to_vector());
  }
  // Brighter is brighter, more contrast spreads values away from 0.5.
  AugmentParams bright;
  bright.brightness = true;
  bright.brightness_change = 0.7;
  const std::vector<double> b = data::apply_augment(x, bright).to_vector();
  for (size_t i = 2; i + 2 < values.size(); ++i) EXPECT_GT(b[i], values[i]);
  AugmentParams strong;
  strong.contrast = true;
  strong.contrast_scale = 2.0;
  const std::vector<double> s = data::apply_augment(x, strong).to_vector();
  EXPECT_LT(s[2], values[2]);
  EXPECT_NEAR(s[4], 0.5, 1e-7);
  EXPECT_GT(s[5], values[5]);
}

TEST(Augment, ZoomKeepsSizeAndMapsCentre) {
  const int64_t H = 21, W = 31;
  const Tensor x = linear_image(2, H, W);
  AugmentParams p;
  p.zoom = true;
  p.zoom_scale = 1.5;
  // Centred zoom: the centre pixel stays where it is and the rest spreads from it by 1.5.
  const data::SourcePoint centre = data::augment_source_point(p, H, W, 10, 15);
  EXPECT_NEAR(centre.row, 10.0, 1e-12);
  EXPECT_NEAR(centre.col, 15.0, 1e-12);
  const data::SourcePoint corner = data::augment_source_point(p, H, W, 0, 0);
  EXPECT_NEAR(corner.row, 10.0 - 10.0 / 1.5, 1e-12);
  EXPECT_NEAR(corner.col, 15.0 - 15.0 / 1.5, 1e-12);
  Tensor y = data::apply_augment(x, p);
  ASSERT_EQ(y.shape(), x.shape());
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j)
        ASSERT_NEAR(y.at({c, i, j}), linear(10.0 + (i - 10.0) / 1.5, 15.0 + (j - 15.0) / 1.5, c), 1e-5);

  // Zoom towards the bottom-right corner (row = col = 1): that corner stays put; (row, col) = (0, 1): top-right.
  p.zoom_scale = 2.0;
  p.zoom_row = 1.0;
  p.zoom_col = 1.0;
  const data::SourcePoint br = data::augment_source_point(p, H, W, H - 1, W - 1);
  EXPECT_NEAR(br.row, H - 1.0, 1e-12);
  EXPECT_NEAR(br.col, W - 1.0, 1e-12);
  y = data::apply_augment(x, p);
  EXPECT_NEAR(y.at({0, H - 1, W - 1}), x.at({0, H - 1, W - 1}), 1e-6);
  EXPECT_NEAR(y.at({0, 0, 0}), linear((H - 1) / 2.0, (W - 1) / 2.0, 0), 1e-6);
  p.zoom_row = 0.0;
  const data::SourcePoint tr = data::augment_source_point(p, H, W, 0, W - 1);
  EXPECT_NEAR(tr.row, 0.0, 1e-12);
  EXPECT_NEAR(tr.col, W - 1.0, 1e-12);
}

TEST(Augment, SymmetricWarpWithEqualOppositeMagnitudesIsAScaling) {
  const int64_t H = 19, W = 25;
  AugmentParams p;
  p.warp = true;
  p.warp_x = p.warp_x_bottom = 0.2;
  p.warp_y = p.warp_y_right = -0.1;
  // Content of the normalised point v appears at v * (1 + m): output u samples u / (1 + m).
  for (const auto& [i, j] : std::vector<std::pair<double, double>>{{9, 12}, {0, 0}, {18, 24}, {3, 20}, {11.5, 2.25}}) {
    const data::SourcePoint s = data::augment_source_point(p, H, W, i, j);
    EXPECT_NEAR(s.row, 9.0 + (i - 9.0) / 0.9, 1e-9) << i << " " << j;
    EXPECT_NEAR(s.col, 12.0 + (j - 12.0) / 1.2, 1e-9) << i << " " << j;
  }
}

TEST(Augment, PerspectiveWarpMovesTheCornersAsFastaiDoes) {
  const int64_t H = 15, W = 22;
  AugmentParams p;
  p.warp = true;
  p.warp_x = 0.21;          // m3: top edge
  p.warp_y = 0.07;          // m1: left edge
  p.warp_x_bottom = -0.12;  // m2: bottom edge
  p.warp_y_right = 0.18;    // m0: right edge
  // Normalised (x, y) -> output pixel (row, col).
  auto pixel = [&](double x, double y) {
    return std::pair<double, double>{(y + 1) / 2 * (H - 1), (x + 1) / 2 * (W - 1)};
  };
  const double m0 = p.warp_y_right, m1 = p.warp_y, m2 = p.warp_x_bottom, m3 = p.warp_x;
  struct Corner {
    double ox, oy, tx, ty;
  };
  const Corner corners[] = {
      {-1, -1, -1 - m3, -1 - m1}, {-1, 1, -1 - m2, 1 + m1}, {1, -1, 1 + m3, -1 - m0}, {1, 1, 1 + m2, 1 + m0}};
  for (const Corner& k : corners) {
    const auto [tr, tc] = pixel(k.tx, k.ty);
    const auto [orow, ocol] = pixel(k.ox, k.oy);
    const data::SourcePoint s = data::augment_source_point(p, H, W, tr, tc);
    EXPECT_NEAR(s.row, orow, 1e-9) << "corner (" << k.ox << ", " << k.oy << ")";
    EXPECT_NEAR(s.col, ocol, 1e-9) << "corner (" << k.ox << ", " << k.oy << ")";
  }
  const Tensor x = linear_image(1, H, W);
  const Tensor y = data::apply_augment(x, p, false);
  ASSERT_EQ(y.shape(), x.shape());
  // Every output equals the linear function at its source point (folded into the image by reflection).
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < W; ++j) {
      const data::SourcePoint s = data::augment_source_point(p, H, W, double(i), double(j));
      ASSERT_NEAR(y.at({0, i, j}), linear(fold(s.row, H), fold(s.col, W), 0), 1e-5) << i << " " << j;
    }
}

TEST(Augment, EverythingAtOnceMatchesAReferenceSampler) {
  // Negative warp magnitudes and a zoom towards a corner with a flip: sources fall outside the image, so the
  // reflection is exercised; the reference samples with the sampler written above.
  const Tensor x = random_image({2, 13, 18}, 7);
  AugmentParams p;
  p.flip = true;
  p.warp = true;
  p.warp_x = -0.24;
  p.warp_y = -0.2;
  p.warp_x_bottom = -0.05;
  p.warp_y_right = 0.15;
  p.zoom = true;
  p.zoom_scale = 1.2;
  p.zoom_row = 0.1;
  p.zoom_col = 0.9;
  const Tensor y = data::apply_augment(x, p, false);
  int outside = 0;
  for (int64_t i = 0; i < 13; ++i)
    for (int64_t j = 0; j < 18; ++j) {
      const data::SourcePoint s = data::augment_source_point(p, 13, 18, double(i), double(j));
      if (s.row < 0 || s.row > 12 || s.col < 0 || s.col > 17) ++outside;
      for (int64_t c = 0; c < 2; ++c) ASSERT_NEAR(y.at({c, i, j}), sample(x, c, s.row, s.col), 1e-5) << i << " " << j;
    }
  EXPECT_GT(outside, 10) << "the case should reach outside the image";
  // Flip composes last: flipping the result of the same params without flip mirrors the source x coordinate.
  AugmentParams q = p;
  q.flip = false;
  for (const auto& [i, j] : std::vector<std::pair<double, double>>{{0, 0}, {6, 9}, {12, 17}}) {
    const data::SourcePoint a = data::augment_source_point(p, 13, 18, i, j);
    const data::SourcePoint b = data::augment_source_point(q, 13, 18, i, j);
    EXPECT_NEAR(a.row, b.row, 1e-12);
    EXPECT_NEAR(a.col, 17.0 - b.col, 1e-12);
  }
}

// A number field of a flat JSON object as json.dumps writes it ("key": 1.5).
double json_number(const std::string& json, const std::string& key) {
  const std::string pattern = "\"" + key + "\": ";
  const size_t at = json.find(pattern);
  if (at == std::string::npos) throw Error("data fixture metadata lacks '" + key + "': " + json);
  return std::stod(json.substr(at + pattern.size()));
}

// tests/golden/data.safetensors (tools/make_data_fixtures.py): fastai v1's pipeline written in PyTorch (the warp's
// 8x8 system solved by torch.linalg.solve, F.grid_sample with reflection, logit/sigmoid lighting), in f64. filmgrad
// interpolates in f32: the largest difference seen is ~1e-7; 1e-6 catches a wrong tap or a wrong corner.
TEST(AugmentGolden, MatchesFastaiPipelineInPyTorch) {
  const SafeTensors& f = test::golden("data");
  int cases = 0;
  double largest = 0.0;
  std::set<std::string> compared;
  for (const auto& [name, json] : f.metadata) {
    if (name.rfind("augment_", 0) != 0) continue;
    SCOPED_TRACE(name);
    ++cases;
    AugmentParams p;
    p.flip = json_number(json, "flip") != 0;
    p.warp = json_number(json, "warp") != 0;
    p.warp_x = json_number(json, "warp_x");
    p.warp_y = json_number(json, "warp_y");
    p.warp_x_bottom = json_number(json, "warp_x_bottom");
    p.warp_y_right = json_number(json, "warp_y_right");
    p.zoom = json_number(json, "zoom") != 0;
    p.zoom_scale = json_number(json, "zoom_scale");
    p.zoom_row = json_number(json, "zoom_row");
    p.zoom_col = json_number(json, "zoom_col");
    p.brightness = json_number(json, "brightness") != 0;
    p.brightness_change = json_number(json, "brightness_change");
    p.contrast = json_number(json, "contrast") != 0;
    p.contrast_scale = json_number(json, "contrast_scale");
    const bool lighting = json_number(json, "lighting") != 0;
    const Tensor x = f.get(name + ".x").to(DType::F32);
    const Tensor& y = f.get(name + ".y");
    compared.insert(name + ".x");
    compared.insert(name + ".y");
    const Tensor got = data::apply_augment(x, p, lighting);
    ASSERT_EQ(got.shape(), y.shape());
    EXPECT_ALL_CLOSE(y, got, 1e-6, 0.0);
    const std::vector<double> a = y.to_vector(), b = got.to_vector();
    for (size_t i = 0; i < a.size(); ++i) largest = std::max(largest, std::fabs(a[i] - b[i]));
  }
  EXPECT_GE(cases, 7) << "the fixture has fewer augment cases than tools/make_data_fixtures.py writes";
  for (const auto& [tensor_name, t] : f.tensors)
    if (tensor_name.rfind("augment_", 0) == 0) {
      EXPECT_TRUE(compared.count(tensor_name)) << "stored tensor '" << tensor_name << "' is never compared";
    }
  std::printf("largest difference from the PyTorch fastai pipeline over %d cases: %.3g\n", cases, largest);
}

TEST(Augment, SameParamsMoveAMaskWithItsImage) {
  const Tensor image = random_image({3, 20, 24}, 8);
  // The mask is the image's green channel; with the same params it must come out as the augmented green channel.
  const Tensor mask = image.select(0, 1).unsqueeze(0).contiguous();
  Generator gen(123);
  AugmentOptions all;
  all.p_flip = all.p_warp = all.p_zoom = all.p_brightness = all.p_contrast = 1.0;
  for (int k = 0; k < 5; ++k) {
    const AugmentParams p = data::draw_augment(all, gen);
    const Tensor geometric = data::apply_augment(image, p, false);
    const Tensor moved = data::apply_augment(mask, p, false);
    EXPECT_EQ(moved.to_vector(), geometric.select(0, 1).unsqueeze(0).contiguous().to_vector());
    // The lit image has the same geometry with the lighting on top.
    const Tensor lit = data::apply_augment(image, p, true);
    AugmentParams light_only;
    light_only.brightness = p.brightness;
    light_only.brightness_change = p.brightness_change;
    light_only.contrast = p.contrast;
    light_only.contrast_scale = p.contrast_scale;
    EXPECT_EQ(lit.to_vector(), data::apply_augment(geometric, light_only).to_vector());
  }
  // Any strides give the same result.
  AugmentParams p;
  p.zoom = true;
  p.zoom_scale = 1.3;
  const Tensor nc = image.permute({2, 1, 0}).contiguous().permute({2, 1, 0});
  EXPECT_EQ(data::apply_augment(nc, p).to_vector(), data::apply_augment(image, p).to_vector());
}

TEST(AugmentDraw, FrequenciesAndRanges) {
  const AugmentOptions o;  // the dissertation's settings
  Generator gen(2024);
  const int n = 2000;
  int flips = 0, warps = 0, zooms = 0, brights = 0, contrasts = 0, below_one = 0;
  double log_sum = 0.0;
  for (int k = 0; k < n; ++k) {
    const AugmentParams p = data::draw_augment(o, gen);
    flips += p.flip;
    warps += p.warp;
    zooms += p.zoom;
    brights += p.brightness;
    contrasts += p.contrast;
    if (p.warp) {
      for (double m : {p.warp_x, p.warp_y, p.warp_x_bottom, p.warp_y_right}) {
        ASSERT_GT(m, -0.25);
        ASSERT_LT(m, 0.25);
      }
      EXPECT_NE(p.warp_x, p.warp_x_bottom) << "four independent magnitudes";
    } else {
      EXPECT_EQ(p.warp_x, 0.0);
    }
    if (p.zoom) {
      ASSERT_GE(p.zoom_scale, 1.0);
      ASSERT_LT(p.zoom_scale, 1.5);
      ASSERT_GE(p.zoom_row, 0.0);
      ASSERT_LT(p.zoom_row, 1.0);
      ASSERT_GE(p.zoom_col, 0.0);
      ASSERT_LT(p.zoom_col, 1.0);
    } else {
      EXPECT_EQ(p.zoom_scale, 1.0);
    }
    if (p.brightness) {
      ASSERT_GE(p.brightness_change, 0.25);
      ASSERT_LT(p.brightness_change, 0.75);
    } else {
      EXPECT_EQ(p.brightness_change, 0.5);
    }
    if (p.contrast) {
      ASSERT_GE(p.contrast_scale, 0.5);
      ASSERT_LT(p.contrast_scale, 2.0);
      below_one += p.contrast_scale < 1.0;
      log_sum += std::log(p.contrast_scale);
    } else {
      EXPECT_EQ(p.contrast_scale, 1.0);
    }
  }
  // Standard deviations of a frequency over 2000 draws: 0.011 at p 0.5, 0.0097 at p 0.75; allow about 4.5 of them.
  EXPECT_NEAR(flips / double(n), 0.5, 0.05);
  EXPECT_NEAR(warps / double(n), 0.75, 0.045);
  EXPECT_NEAR(zooms / double(n), 0.75, 0.045);
  EXPECT_NEAR(brights / double(n), 0.75, 0.045);
  EXPECT_NEAR(contrasts / double(n), 0.75, 0.045);
  // Log-uniform contrast: half below 1, log mean 0 (sd of log(scale) 0.4, of its mean over ~1500 draws 0.01).
  EXPECT_NEAR(below_one / double(contrasts), 0.5, 0.06);
  EXPECT_NEAR(log_sum / contrasts, 0.0, 0.05);

  // Probabilities 0 and 1 are never and always.
  AugmentOptions never;
  never.p_flip = never.p_warp = never.p_zoom = never.p_brightness = never.p_contrast = 0.0;
  AugmentOptions always;
  always.p_flip = always.p_warp = always.p_zoom = always.p_brightness = always.p_contrast = 1.0;
  for (int k = 0; k < 100; ++k) {
    EXPECT_TRUE(data::draw_augment(never, gen).is_identity());
    const AugmentParams a = data::draw_augment(always, gen);
    EXPECT_TRUE(a.flip && a.warp && a.zoom && a.brightness && a.contrast);
  }
}

TEST(AugmentDraw, ConstantNumberOfDraws) {
  AugmentOptions never;
  never.p_flip = never.p_warp = never.p_zoom = never.p_brightness = never.p_contrast = 0.0;
  AugmentOptions always;
  always.p_flip = always.p_warp = always.p_zoom = always.p_brightness = always.p_contrast = 1.0;
  const AugmentOptions usual;
  // Different seeds give different outcomes but end at the same offset, whatever the options.
  std::vector<bool> flips;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    for (const AugmentOptions* o : std::vector<const AugmentOptions*>{&never, &always, &usual}) {
      Generator gen(seed, 5);
      const AugmentParams p = data::draw_augment(*o, gen);
      EXPECT_EQ(gen.offset(), 5u + (data::kAugmentDraws + 3) / 4);
      if (o == &usual) flips.push_back(p.flip);
    }
  }
  EXPECT_NE(std::count(flips.begin(), flips.end(), true), 0);
  EXPECT_NE(std::count(flips.begin(), flips.end(), false), 0);
  // What follows a draw is the same stream as after reserving kAugmentDraws by hand.
  Generator a(77), b(77);
  data::draw_augment(usual, a);
  b.reserve(data::kAugmentDraws);
  EXPECT_EQ(a.offset(), b.offset());
}

TEST(AugmentDraw, FollowsTheDocumentedWords) {
  const AugmentOptions o;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Generator gen(seed);
    const Generator copy = gen;
    const AugmentParams p = data::draw_augment(o, gen);
    std::vector<double> u;
    for (int k = 0; k < data::kAugmentDraws; ++k) u.push_back(double(philox_uniform01(copy.word(0, uint64_t(k)))));
    EXPECT_EQ(p.flip, u[0] < 0.5);
    EXPECT_EQ(p.warp, u[1] < 0.75);
    if (p.warp) {
      EXPECT_DOUBLE_EQ(p.warp_y_right, 0.25 * (2 * u[2] - 1));
      EXPECT_DOUBLE_EQ(p.warp_y, 0.25 * (2 * u[3] - 1));
      EXPECT_DOUBLE_EQ(p.warp_x_bottom, 0.25 * (2 * u[4] - 1));
      EXPECT_DOUBLE_EQ(p.warp_x, 0.25 * (2 * u[5] - 1));
    }
    EXPECT_EQ(p.zoom, u[6] < 0.75);
    if (p.zoom) {
      EXPECT_DOUBLE_EQ(p.zoom_scale, 1.0 + 0.5 * u[7]);
      EXPECT_DOUBLE_EQ(p.zoom_row, u[8]);
      EXPECT_DOUBLE_EQ(p.zoom_col, u[9]);
    }
    EXPECT_EQ(p.brightness, u[10] < 0.75);
    if (p.brightness) {
      EXPECT_DOUBLE_EQ(p.brightness_change, 0.25 + 0.5 * u[11]);
    }
    EXPECT_EQ(p.contrast, u[12] < 0.75);
    if (p.contrast) {
      EXPECT_NEAR(p.contrast_scale, std::exp(std::log(0.5) + (std::log(2.0) - std::log(0.5)) * u[13]), 1e-12);
    }
  }
}

TEST(Augment, Errors) {
  Generator gen(0);
  auto draw_error = [&](AugmentOptions o) { return test::error_of([&] { data::draw_augment(o, gen); }); };
  AugmentOptions o;
  o.p_flip = 1.5;
  EXPECT_NE(draw_error(o).find("p_flip"), std::string::npos);
  o = {};
  o.p_contrast = -0.1;
  EXPECT_NE(draw_error(o).find("p_contrast"), std::string::npos);
  o = {};
  o.warp_magnitude = 1.2;
  EXPECT_NE(draw_error(o).find("warp_magnitude"), std::string::npos);
  o = {};
  o.max_zoom = 0.9;
  EXPECT_NE(draw_error(o).find("max_zoom"), std::string::npos);
  o = {};
  o.brightness_lo = 0.0;
  EXPECT_NE(draw_error(o).find("brightness"), std::string::npos);
  o = {};
  o.contrast_lo = 3.0;
  EXPECT_NE(draw_error(o).find("contrast"), std::string::npos);
  // A refused draw consumes nothing.
  EXPECT_EQ(gen.offset(), 0u);

  const Tensor x = random_image({1, 4, 4}, 9);
  auto apply_error = [&](AugmentParams p) { return test::error_of([&] { data::apply_augment(x, p); }); };
  AugmentParams p;
  p.brightness = true;
  p.brightness_change = 1.0;
  EXPECT_NE(apply_error(p).find("brightness_change"), std::string::npos);
  p = {};
  p.contrast = true;
  p.contrast_scale = 0.0;
  EXPECT_NE(apply_error(p).find("contrast_scale"), std::string::npos);
  p = {};
  p.zoom = true;
  p.zoom_scale = -1.0;
  EXPECT_NE(apply_error(p).find("zoom_scale"), std::string::npos);
  p = {};
  p.warp = true;
  p.warp_y = 1.0;
  EXPECT_NE(apply_error(p).find("warp"), std::string::npos);
  EXPECT_NE(test::error_of([&] {
              data::apply_augment(Tensor::zeros({4, 4}), {});
            }).find("(C, H, W)"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              data::apply_augment(Tensor::zeros({1, 4, 4}, DType::F64), {});
            }).find("f32"),
            std::string::npos);
}

}  // namespace
}  // namespace fg
