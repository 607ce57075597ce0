// Damage synthesis (data/damage.h): determinism, the ranges and formulas the header promises, the statistics of
// the contents, and the overlay folder.
//
// Exact comparisons (EXPECT_EQ on floats) are deliberate where the header fixes the arithmetic: O and the dust blend
// are one std::fma, and the dust mask is 1 - prod(1 - alpha_k) in f32, so recomputing them here must agree bit for
// bit. The smoothness bound: a mask blurred by a normalised Gaussian kernel g (any padding that extends the mask
// with values in [0, 1], mirror here) changes between neighbours by at most g's centre tap, since the difference is
// a sum of (g[k] - g[k - 1]) m[k] whose positive part adds up to the peak of a unimodal kernel.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "data/damage.h"
#include "data/image_io.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using namespace fg::data;

// (C, H, W) f32 uniform in [lo, hi).
Tensor image(int64_t C, int64_t H, int64_t W, uint64_t seed, double lo = 0.1, double hi = 0.9) {
  return test::random_tensor({C, H, W}, seed, DType::F32, lo, hi);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const std::vector<float> x = a.to_vector_f32(), y = b.to_vector_f32();
  return std::equal(x.begin(), x.end(), y.begin(),
                    [](float p, float q) { return std::memcmp(&p, &q, sizeof(float)) == 0; });
}

float min_of(const Tensor& t) {
  const std::vector<float> v = t.to_vector_f32();
  return *std::min_element(v.begin(), v.end());
}
float max_of(const Tensor& t) {
  const std::vector<float> v = t.to_vector_f32();
  return *std::max_element(v.begin(), v.end());
}
double mean_of(const Tensor& t) {
  const std::vector<float> v = t.to_vector_f32();
  double s = 0.0;
  for (float x : v) s += x;
  return s / double(v.size());
}

// The largest difference between horizontal or vertical neighbours of a (1, H, W) mask.
double largest_jump(const Tensor& m) {
  const int64_t H = m.size(1), W = m.size(2);
  const std::vector<float> v = m.to_vector_f32();
  double jump = 0.0;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      if (x + 1 < W) jump = std::max(jump, double(std::fabs(v[size_t(y * W + x + 1)] - v[size_t(y * W + x)])));
      if (y + 1 < H) jump = std::max(jump, double(std::fabs(v[size_t((y + 1) * W + x)] - v[size_t(y * W + x)])));
    }
  return jump;
}

// The centre tap of the normalised Gaussian of damage.h (sigma scaled by the short side / 256, cut at 4 sigma).
double centre_tap(double sigma) {
  const int64_t r = std::max<int64_t>(1, int64_t(std::ceil(4.0 * sigma)));
  double sum = 0.0;
  for (int64_t k = -r; k <= r; ++k) sum += std::exp(-0.5 * double(k * k) / (sigma * sigma));
  return 1.0 / sum;
}

using MaskFn = Tensor (*)(int64_t, int64_t, Generator&, const NegativeDamageOptions&);

// ---------------------------------------------------------------- negatives: masks

TEST(NegativeMask, SameSeedSameBitsOtherSeedOtherMask) {
  for (MaskFn f : {MaskFn(make_stroke_mask), MaskFn(make_circle_mask)}) {
    Generator a(11), b(11), c(12);
    const Tensor ma = f(96, 80, a, {}), mb = f(96, 80, b, {}), mc = f(96, 80, c, {});
    EXPECT_EQ(ma.shape(), Shape({1, 96, 80}));
    EXPECT_TRUE(same_bits(ma, mb));
    EXPECT_FALSE(same_bits(ma, mc));
    EXPECT_EQ(a.offset(), b.offset());  // the generator moved on by the same amount
  }
}

TEST(NegativeMask, BinaryCoverageLandsInRange) {
  NegativeDamageOptions o;
  o.smooth_sigma = 0.0;  // the unsmoothed mask itself
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{256, 256}, {64, 48}, {32, 32}, {17, 100}};
  for (MaskFn f : {MaskFn(make_stroke_mask), MaskFn(make_circle_mask)}) {
    for (const auto& [H, W] : sizes) {
      for (uint64_t seed = 0; seed < 12; ++seed) {
        Generator gen(seed);
        const Tensor m = f(H, W, gen, o);
        const std::vector<float> v = m.to_vector_f32();
        int64_t ones = 0;
        for (float x : v) {
          ASSERT_TRUE(x == 0.0f || x == 1.0f) << x;
          ones += x == 1.0f;
        }
        const double coverage = double(ones) / double(H * W);
        EXPECT_GE(coverage, o.min_coverage) << H << "x" << W << " seed " << seed;
        EXPECT_LE(coverage, o.max_coverage) << H << "x" << W << " seed " << seed;
      }
    }
  }
  // A narrow range far from the defaults is met too.
  o.min_coverage = 0.40;
  o.max_coverage = 0.45;
  for (MaskFn f : {MaskFn(make_stroke_mask), MaskFn(make_circle_mask)}) {
    for (uint64_t seed = 0; seed < 6; ++seed) {
      Generator gen(seed);
      const double coverage = mean_of(f(64, 64, gen, o));
      EXPECT_GE(coverage, 0.40);
      EXPECT_LE(coverage, 0.45);
    }
  }
}

TEST(NegativeMask, SmoothedMaskIsSoftBoundedAndKeepsTheCoverage) {
  NegativeDamageOptions binary;
  binary.smooth_sigma = 0.0;
  for (MaskFn f : {MaskFn(make_stroke_mask), MaskFn(make_circle_mask)}) {
    for (int64_t S : {64, 256}) {
      for (uint64_t seed = 0; seed < 4; ++seed) {
        Generator g1(seed), g2(seed);
        const Tensor hard = f(S, S, g1, binary);
        const Tensor soft = f(S, S, g2, {});  // the same draws, then blurred
        EXPECT_GE(min_of(soft), 0.0f);
        EXPECT_LE(max_of(soft), 1.0f);
        const double sigma = NegativeDamageOptions{}.smooth_sigma * double(S) / 256.0;
        EXPECT_LE(largest_jump(soft), centre_tap(sigma) + 1e-5) << "S " << S << " seed " << seed;
        EXPECT_NEAR(mean_of(soft), mean_of(hard), 1e-4);  // mirror padding keeps the sum
        // Really blurred: values strictly between 0 and 1 exist; the hard mask has none.
        const std::vector<float> v = soft.to_vector_f32();
        EXPECT_TRUE(std::any_of(v.begin(), v.end(), [](float x) { return x > 0.05f && x < 0.95f; }));
      }
    }
  }
}

TEST(NegativeMask, BadOptionsAreRefused) {
  Generator gen(1);
  NegativeDamageOptions o;
  o.min_coverage = 0.3;
  o.max_coverage = 0.2;
  EXPECT_NE(test::error_of([&] { make_stroke_mask(32, 32, gen, o); }).find("coverage"), std::string::npos);
  o = {};
  o.smooth_sigma = -1.0;
  EXPECT_NE(test::error_of([&] { make_circle_mask(32, 32, gen, o); }).find("smooth_sigma"), std::string::npos);
  o = {};
  o.w_grey = o.w_impulse = o.w_patch = 0.0;
  EXPECT_NE(test::error_of([&] { damage_negative(image(3, 8, 8, 1), {}, gen, o); }).find("weights"), std::string::npos);
  EXPECT_NE(test::error_of([&] { make_stroke_mask(0, 32, gen, {}); }).find("at least 1x1"), std::string::npos);
  EXPECT_NE(test::error_of([&] { damage_negative(image(1, 8, 8, 1), {}, gen, {}); }).find("RGB"), std::string::npos);
}

// ---------------------------------------------------------------- negatives: contents and blend

NegativeDamageOptions only(DamageContent c) {
  NegativeDamageOptions o;
  o.w_grey = c == DamageContent::GREY ? 1.0 : 0.0;
  o.w_impulse = c == DamageContent::IMPULSE ? 1.0 : 0.0;
  o.w_patch = c == DamageContent::PATCH ? 1.0 : 0.0;
  return o;
}

TEST(NegativeDamage, DeterministicAndOnlyTheBlueChannelChanges) {
  const Tensor rgb = image(3, 72, 64, 5), other = image(3, 90, 90, 6);
  const Tensor rgb_before = rgb.clone();
  Generator a(3), b(3), c(4);
  const NegativeDamage da = damage_negative(rgb, other, a), db = damage_negative(rgb, other, b);
  const NegativeDamage dc = damage_negative(rgb, other, c);
  EXPECT_TRUE(same_bits(rgb, rgb_before));  // the clean image is not written
  EXPECT_EQ(da.damaged_blue.shape(), Shape({1, 72, 64}));
  EXPECT_EQ(da.mask.shape(), Shape({1, 72, 64}));
  EXPECT_TRUE(same_bits(da.damaged_blue, db.damaged_blue));
  EXPECT_TRUE(same_bits(da.mask, db.mask));
  EXPECT_EQ(da.shape, db.shape);
  EXPECT_EQ(da.content, db.content);
  EXPECT_FALSE(same_bits(da.mask, dc.mask));
  // Where M = 0 the blue channel is the clean one, exactly.
  const std::vector<float> M = da.mask.to_vector_f32(), O = da.damaged_blue.to_vector_f32();
  const std::vector<float> I = rgb.select(0, 2).contiguous().to_vector_f32();
  int64_t untouched = 0;
  for (size_t i = 0; i < M.size(); ++i)
    if (M[i] == 0.0f) {
      ASSERT_EQ(O[i], I[i]);
      ++untouched;
    }
  EXPECT_GT(untouched, 0);
}

TEST(NegativeDamage, ShapesAndContentsAllOccur) {
  const Tensor rgb = image(3, 32, 32, 1), other = image(3, 32, 32, 2);
  int strokes = 0, circles = 0, grey = 0, impulse = 0, patch = 0;
  for (uint64_t seed = 0; seed < 60; ++seed) {
    Generator gen(seed);
    const NegativeDamage d = damage_negative(rgb, other, gen);
    (d.shape == MaskShape::STROKES ? strokes : circles)++;
    (d.content == DamageContent::GREY ? grey : d.content == DamageContent::IMPULSE ? impulse : patch)++;
  }
  EXPECT_GT(strokes, 10);
  EXPECT_GT(circles, 10);
  EXPECT_GT(grey, 5);
  EXPECT_GT(impulse, 5);
  EXPECT_GT(patch, 5);
  // Without another image PATCH is not possible: GREY takes its place.
  for (uint64_t seed = 0; seed < 5; ++seed) {
    Generator gen(seed);
    EXPECT_EQ(damage_negative(rgb, Tensor(), gen, only(DamageContent::PATCH)).content, DamageContent::GREY);
  }
}

TEST(NegativeDamage, GreyIsOneLevelBlendedExactly) {
  const Tensor rgb = image(3, 64, 64, 7);
  const std::vector<float> I = rgb.select(0, 2).contiguous().to_vector_f32();
  std::vector<float> levels;
  for (uint64_t seed = 0; seed < 6; ++seed) {
    Generator gen(seed);
    const NegativeDamage d = damage_negative(rgb, {}, gen, only(DamageContent::GREY));
    ASSERT_EQ(d.content, DamageContent::GREY);
    const std::vector<float> M = d.mask.to_vector_f32(), O = d.damaged_blue.to_vector_f32();
    float level = -1.0f;
    for (size_t i = 0; i < M.size(); ++i)
      if (M[i] == 1.0f) {
        if (level < 0.0f) level = O[i];
        ASSERT_EQ(O[i], level) << "GREY is one constant inside the mask";
      }
    ASSERT_GE(level, 0.0f) << "the mask has a full-strength part";
    for (size_t i = 0; i < M.size(); ++i) ASSERT_EQ(O[i], std::fma(M[i], level, (1.0f - M[i]) * I[i])) << i;
    levels.push_back(level);
  }
  std::sort(levels.begin(), levels.end());
  EXPECT_LT(levels.front(), levels.back());  // drawn per image
}

TEST(NegativeDamage, ImpulseIsHalfSaltAndPepper) {
  const Tensor rgb = image(3, 128, 128, 8);
  const std::vector<float> I = rgb.select(0, 2).contiguous().to_vector_f32();
  NegativeDamageOptions o = only(DamageContent::IMPULSE);
  o.min_coverage = 0.2;
  o.max_coverage = 0.3;
  int64_t full = 0, zeros = 0, ones = 0, clean = 0;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    Generator gen(seed);
    const NegativeDamage d = damage_negative(rgb, {}, gen, o);
    const std::vector<float> M = d.mask.to_vector_f32(), O = d.damaged_blue.to_vector_f32();
    for (size_t i = 0; i < M.size(); ++i) {
      // Every pixel is the blend of one of the three possible contents.
      const float b0 = std::fma(M[i], 0.0f, (1.0f - M[i]) * I[i]);
      const float b1 = std::fma(M[i], 1.0f, (1.0f - M[i]) * I[i]);
      const float bi = std::fma(M[i], I[i], (1.0f - M[i]) * I[i]);
      ASSERT_TRUE(O[i] == b0 || O[i] == b1 || O[i] == bi) << i;
      if (M[i] != 1.0f) continue;
      ++full;
      zeros += O[i] == 0.0f;
      ones += O[i] == 1.0f;
      clean += O[i] == I[i];
    }
  }
  ASSERT_GT(full, 4000);
  EXPECT_NEAR(double(zeros) / double(full), 0.25, 0.02);
  EXPECT_NEAR(double(ones) / double(full), 0.25, 0.02);
  EXPECT_NEAR(double(clean) / double(full), 0.50, 0.02);
}

TEST(NegativeDamage, PatchIsACropOfTheOtherBlueChannel) {
  const int64_t H = 48, W = 40, H2 = 57, W2 = 53;
  const Tensor rgb = image(3, H, W, 9);
  const std::vector<float> I = rgb.select(0, 2).contiguous().to_vector_f32();
  // The other image's blue channel numbers its pixels, so a value tells where it came from.
  Tensor other = image(3, H2, W2, 10);
  for (int64_t y = 0; y < H2; ++y)
    for (int64_t x = 0; x < W2; ++x) other.data<float>()[(2 * H2 + y) * W2 + x] = float(y * W2 + x + 1) / 4096.0f;
  std::vector<std::pair<int64_t, int64_t>> offsets;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    Generator gen(seed);
    const NegativeDamage d = damage_negative(rgb, other, gen, only(DamageContent::PATCH));
    ASSERT_EQ(d.content, DamageContent::PATCH);
    const std::vector<float> M = d.mask.to_vector_f32(), O = d.damaged_blue.to_vector_f32();
    int64_t top = -1, left = -1;
    for (int64_t i = 0; i < H * W && top < 0; ++i)
      if (M[size_t(i)] == 1.0f) {
        const int64_t k = std::lround(O[size_t(i)] * 4096.0f) - 1;
        top = k / W2 - i / W;
        left = k % W2 - i % W;
      }
    ASSERT_GE(top, 0);
    ASSERT_LE(top, H2 - H);
    ASSERT_GE(left, 0);
    ASSERT_LE(left, W2 - W);
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const size_t i = size_t(y * W + x);
        const float N = float((y + top) * W2 + x + left + 1) / 4096.0f;
        ASSERT_EQ(O[i], std::fma(M[i], N, (1.0f - M[i]) * I[i])) << y << "," << x;
      }
    offsets.emplace_back(top, left);
  }
  std::sort(offsets.begin(), offsets.end());
  EXPECT_NE(offsets.front(), offsets.back());  // the crop moves

  // A grey other image gives its only channel; a smaller one is scaled up to cover the image.
  Generator gen(1);
  const Tensor small_grey = image(1, 20, 30, 11, 0.4, 0.6);
  const NegativeDamage d = damage_negative(rgb, small_grey, gen, only(DamageContent::PATCH));
  const std::vector<float> M = d.mask.to_vector_f32(), O = d.damaged_blue.to_vector_f32();
  for (size_t i = 0; i < M.size(); ++i)
    if (M[i] == 1.0f) {
      ASSERT_GE(O[i], 0.4f - 1e-6f);
      ASSERT_LE(O[i], 0.6f + 1e-6f);
    }
}

// ---------------------------------------------------------------- dust: overlays

TEST(DustOverlay, DeterministicInRangeAndBothLightAndDark) {
  Generator a(21), b(21), c(22);
  const Overlay oa = make_dust_overlay(128, 96, a), ob = make_dust_overlay(128, 96, b);
  const Overlay oc = make_dust_overlay(128, 96, c);
  EXPECT_EQ(oa.alpha.shape(), Shape({128, 96}));
  EXPECT_EQ(oa.value.shape(), Shape({128, 96}));
  EXPECT_TRUE(same_bits(oa.alpha, ob.alpha));
  EXPECT_TRUE(same_bits(oa.value, ob.value));
  EXPECT_FALSE(same_bits(oa.alpha, oc.alpha));
  int64_t light = 0, dark = 0, clear = 0;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    Generator gen(seed);
    const Overlay ov = make_dust_overlay(128, 128, gen);
    const std::vector<float> al = ov.alpha.to_vector_f32(), v = ov.value.to_vector_f32();
    for (size_t i = 0; i < al.size(); ++i) {
      ASSERT_TRUE(al[i] >= 0.0f && al[i] <= 1.0f && v[i] >= 0.0f && v[i] <= 1.0f) << al[i] << " " << v[i];
      clear += al[i] == 0.0f;
      if (al[i] > 0.5f) {
        light += v[i] > 0.8f;
        dark += v[i] < 0.2f;
      }
    }
  }
  EXPECT_GT(light, 50);
  EXPECT_GT(dark, 50);
  EXPECT_GT(clear, 8 * 128 * 128 / 2);  // dust, not a veil
}

TEST(DustOverlay, PDarkChoosesTheElementsValues) {
  for (double p_dark : {0.0, 1.0}) {
    DustOptions o;
    o.p_dark = p_dark;
    for (uint64_t seed = 0; seed < 4; ++seed) {
      Generator gen(seed);
      const Overlay ov = make_dust_overlay(96, 96, gen, o);
      const std::vector<float> al = ov.alpha.to_vector_f32(), v = ov.value.to_vector_f32();
      for (size_t i = 0; i < al.size(); ++i) {
        if (al[i] < 0.01f) continue;
        // Dark elements are drawn in [0, 0.1], light ones in [0.9, 1]; compositing stays between them.
        if (p_dark == 1.0) {
          ASSERT_LE(v[i], 0.1f + 1e-4f);
        } else {
          ASSERT_GE(v[i], 0.9f - 1e-4f);
        }
      }
    }
  }
}

TEST(DustOverlay, BlendIsTheFormula) {
  Generator gen(5);
  const Overlay ov = make_dust_overlay(40, 56, gen);
  const Tensor clean = image(3, 40, 56, 6, 0.0, 1.0);
  const Tensor out = blend_overlay(clean, ov);
  ASSERT_EQ(out.shape(), clean.shape());
  const std::vector<float> c = clean.to_vector_f32(), o = out.to_vector_f32();
  const std::vector<float> a = ov.alpha.to_vector_f32(), v = ov.value.to_vector_f32();
  for (int64_t ch = 0; ch < 3; ++ch)
    for (size_t i = 0; i < a.size(); ++i) {
      const size_t k = size_t(ch) * a.size() + i;
      ASSERT_EQ(o[k], std::fma(a[i], v[i], (1.0f - a[i]) * c[k]));
    }
  EXPECT_NE(test::error_of([&] { blend_overlay(image(3, 40, 50, 1), ov); }).find("(40, 56)"), std::string::npos);
}

// ---------------------------------------------------------------- dust: the synthesizer

TEST(DustSynthesizer, DeterministicAndDifferentPerSeed) {
  const DustSynthesizer ds;
  const Tensor clean = image(3, 64, 64, 1);
  Generator a(1), b(1), c(2), d(1);
  const DustDamage da = ds.apply(clean, 7, a), db = ds.apply(clean, 7, b);
  const DustDamage dc = ds.apply(clean, 7, c), dd = ds.apply(clean, 8, d);
  EXPECT_TRUE(same_bits(da.damaged, db.damaged));
  EXPECT_TRUE(same_bits(da.mask, db.mask));
  EXPECT_FALSE(same_bits(da.mask, dc.mask));  // another draw
  EXPECT_FALSE(same_bits(da.mask, dd.mask));  // another pattern
  EXPECT_EQ(da.damaged.shape(), clean.shape());
  EXPECT_EQ(da.mask.shape(), Shape({1, 64, 64}));
}

TEST(DustSynthesizer, ApplyBlendsItsOverlaysInTurnAndLeavesCleanAreasAlone) {
  const DustSynthesizer ds;
  for (int64_t C : {1, 3}) {
    for (uint64_t seed = 0; seed < 3; ++seed) {
      const Tensor clean = image(C, 80, 72, seed + 30, 0.0, 1.0);
      Generator g1(seed), g2(seed);
      const DustDamage d = ds.apply(clean, seed + 100, g1);
      const std::vector<Overlay> overlays = ds.draw_overlays(80, 72, seed + 100, g2);
      ASSERT_EQ(overlays.size(), 2u);
      Tensor expect = clean;
      std::vector<float> keep(80 * 72, 1.0f);
      for (const Overlay& ov : overlays) {
        expect = blend_overlay(expect, ov);
        const std::vector<float> a = ov.alpha.to_vector_f32();
        for (size_t i = 0; i < keep.size(); ++i) keep[i] *= 1.0f - a[i];
      }
      EXPECT_TRUE(same_bits(d.damaged, expect));
      const std::vector<float> m = d.mask.to_vector_f32();
      for (size_t i = 0; i < keep.size(); ++i) ASSERT_EQ(m[i], 1.0f - keep[i]);
      EXPECT_GE(min_of(d.mask), 0.0f);
      EXPECT_LE(max_of(d.mask), 1.0f);
      // Alpha 0 everywhere: the pixel is the clean one, exactly, on every channel.
      const std::vector<float> x = clean.to_vector_f32(), y = d.damaged.to_vector_f32();
      int64_t untouched = 0, changed = 0;
      for (int64_t ch = 0; ch < C; ++ch)
        for (size_t i = 0; i < m.size(); ++i) {
          const size_t k = size_t(ch) * m.size() + i;
          if (m[i] == 0.0f) {
            ASSERT_EQ(y[k], x[k]);
            ++untouched;
          }
          changed += y[k] != x[k];
        }
      EXPECT_GT(untouched, int64_t(m.size()) / 2 * C);
      EXPECT_GT(changed, 0);
    }
  }
}

TEST(DustSynthesizer, PatternDiffersPerResolution) {
  const DustSynthesizer ds;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    Generator g64(seed), g128(seed);
    const Tensor m64 = ds.apply(image(3, 64, 64, 1), 42, g64).mask;
    const Tensor m128 = ds.apply(image(3, 128, 128, 1), 42, g128).mask;
    // The 128 px mask brought to 64 px (2x2 means) against the 64 px one: unrelated dust, low correlation.
    const std::vector<float> a = m64.to_vector_f32(), big = m128.to_vector_f32();
    std::vector<double> b(a.size());
    for (int64_t y = 0; y < 64; ++y)
      for (int64_t x = 0; x < 64; ++x)
        b[size_t(y * 64 + x)] =
            0.25 * (big[size_t(2 * y * 128 + 2 * x)] + big[size_t(2 * y * 128 + 2 * x + 1)] +
                    big[size_t((2 * y + 1) * 128 + 2 * x)] + big[size_t((2 * y + 1) * 128 + 2 * x + 1)]);
    double ma = 0, mb = 0;
    for (size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
    ma /= double(a.size());
    mb /= double(a.size());
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      sab += (a[i] - ma) * (b[i] - mb);
      saa += (a[i] - ma) * (a[i] - ma);
      sbb += (b[i] - mb) * (b[i] - mb);
    }
    ASSERT_GT(saa, 0.0);
    ASSERT_GT(sbb, 0.0);
    EXPECT_LT(sab / std::sqrt(saa * sbb), 0.5) << "seed " << seed;
  }
}

TEST(DustSynthesizer, InversionFlipsTheValueOnly) {
  DustOptions never, always;
  never.p_invert = 0.0;
  always.p_invert = 1.0;
  const DustSynthesizer plain(never), inverted(always);
  Generator g1(3), g2(3);
  const std::vector<Overlay> a = plain.draw_overlays(50, 60, 9, g1), b = inverted.draw_overlays(50, 60, 9, g2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_TRUE(same_bits(a[k].alpha, b[k].alpha));
    const std::vector<float> va = a[k].value.to_vector_f32(), vb = b[k].value.to_vector_f32();
    for (size_t i = 0; i < va.size(); ++i) ASSERT_EQ(vb[i], 1.0f - va[i]);
  }
}

TEST(DustSynthesizer, NoOverlaysNoDamageAndBadOptionsRefused) {
  DustOptions o;
  o.overlays_per_image = 0;
  const DustSynthesizer ds(o);
  const Tensor clean = image(3, 16, 16, 2);
  Generator gen(1);
  const DustDamage d = ds.apply(clean, 1, gen);
  EXPECT_TRUE(same_bits(d.damaged, clean));
  EXPECT_EQ(max_of(d.mask), 0.0f);
  o = {};
  o.sheet_scale = 0.5;
  EXPECT_NE(test::error_of([&] { DustSynthesizer bad(o); }).find("sheet_scale"), std::string::npos);
  o = {};
  o.p_invert = 2.0;
  EXPECT_NE(test::error_of([&] { DustSynthesizer bad(o); }).find("p_invert"), std::string::npos);
  EXPECT_NE(test::error_of([&] {
              DustSynthesizer().apply(Tensor::zeros({16, 16}), 1, gen);
            }).find("(C, H, W)"),
            std::string::npos);
}

// Edge length per unit of coverage of a damage mask: sum of |differences| between neighbours over the sum of the
// mask. For marks of width r it goes as 1 / r, so it measures the pixel size of the dust.
double edge_per_coverage(const std::vector<Tensor>& masks) {
  double edges = 0, cover = 0;
  for (const Tensor& m : masks) {
    const int64_t H = m.size(1), W = m.size(2);
    const auto v = m.to_vector();
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const double a = v[size_t(y * W + x)];
        cover += a;
        if (x + 1 < W) edges += std::fabs(v[size_t(y * W + x + 1)] - a);
        if (y + 1 < H) edges += std::fabs(v[size_t((y + 1) * W + x)] - a);
      }
  }
  return edges / cover;
}

TEST(DustSynthesizer, DustFollowsTheFrameNotTheCrop) {
  // A 64 px crop of a 256 px frame gets the dust of the 256 px image (the same pixel sizes), not the dust of a
  // 64 px image (four times smaller). Pooled over 24 sheets each, so the heavy-tailed sizes average out. The
  // measure is 1 / width only for marks wider than the anti-aliasing, so four times finer dust scores about twice
  // (2.06 when this was written; the crop of the frame 0.99): the bounds are within 35 % of the whole image for
  // the crop of the frame, above 1.5 for the crop-sized dust.
  const DustSynthesizer synth;
  std::vector<Tensor> crop_of_frame, whole, own;
  const Tensor flat = Tensor::full({1, 256, 256}, 0.5);
  for (uint64_t seed = 0; seed < 24; ++seed) {
    Generator g1(seed), g2(seed), g3(seed);
    crop_of_frame.push_back(synth.apply(flat.narrow(1, 0, 64).narrow(2, 0, 64).contiguous(), seed, g1, 256).mask);
    whole.push_back(synth.apply(flat, seed, g2).mask);
    own.push_back(synth.apply(flat.narrow(1, 0, 64).narrow(2, 0, 64).contiguous(), seed, g3).mask);
  }
  const double a = edge_per_coverage(crop_of_frame), b = edge_per_coverage(whole), c = edge_per_coverage(own);
  const std::string ratios =
      "crop of frame / whole " + std::to_string(a / b) + ", own / whole " + std::to_string(c / b);
  std::printf("%s\n", ratios.c_str());
  EXPECT_NEAR(a / b, 1.0, 0.35) << ratios;
  EXPECT_GT(c / b, 1.5) << ratios;
  // The default (0) is the image's own size; a bad frame is refused.
  Generator g4(1), g5(1);
  EXPECT_TRUE(same_bits(synth.apply(flat, 3, g4).damaged, synth.apply(flat, 3, g5, 256).damaged));
  Generator g6(1);
  EXPECT_NE(test::error_of([&] { synth.apply(flat, 3, g6, -1); }).find("frame"), std::string::npos);
}

TEST(Damage, TinyAndThinImagesWork) {
  const DustSynthesizer ds;
  for (const auto& [H, W] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 9}, {7, 1}, {3, 2}}) {
    Generator gen(H * 10 + W);
    const DustDamage d = ds.apply(image(3, H, W, 1), 5, gen);
    EXPECT_EQ(d.mask.shape(), Shape({1, H, W}));
    EXPECT_GE(min_of(d.mask), 0.0f);
    EXPECT_LE(max_of(d.mask), 1.0f);
    const Overlay ov = make_dust_overlay(H, W, gen);
    EXPECT_EQ(ov.alpha.shape(), Shape({H, W}));
    const NegativeDamage n = damage_negative(image(3, H, W, 2), image(3, 2, 2, 3), gen);
    EXPECT_EQ(n.damaged_blue.shape(), Shape({1, H, W}));
    EXPECT_GE(min_of(n.mask), 0.0f);
    EXPECT_LE(max_of(n.mask), 1.0f);
    EXPECT_GT(max_of(n.mask), 0.0f);  // at least one pixel, even where 2 % of the image is less than one
  }
}

// ---------------------------------------------------------------- dust: overlay folder

class OverlayFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("fg_test_damage_" + std::to_string(::getpid()) + "_" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void note(const std::string& name) const { std::ofstream(path(name)) << "not an image\n"; }
  std::filesystem::path dir_;
};

TEST_F(OverlayFolderTest, GreyDustOnBlackGivesWhiteDust) {
  // Sparse bright specks on black, 1 channel: alpha = the brightness, value 1.
  Tensor g = Tensor::zeros({1, 40, 30});
  for (int64_t i = 0; i < 40 * 30; i += 7) g.data<float>()[i] = float((i / 7) % 5 + 1) / 5.0f;
  write_image(path("specks.png"), make_image(g));
  note("readme.txt");
  DustOptions o;
  o.p_invert = 0.0;
  const DustSynthesizer ds(o, dir_.string());
  for (uint64_t seed = 0; seed < 3; ++seed) {
    Generator gen(seed);
    const std::vector<Overlay> ovs = ds.draw_overlays(32, 32, seed, gen);
    ASSERT_EQ(ovs.size(), 2u);
    for (const Overlay& ov : ovs) {
      const std::vector<float> a = ov.alpha.to_vector_f32(), v = ov.value.to_vector_f32();
      EXPECT_GT(*std::max_element(a.begin(), a.end()), 0.0f);
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_TRUE(a[i] >= 0.0f && a[i] <= 1.0f);
        if (a[i] > 0.01f) {
          ASSERT_NEAR(v[i], 1.0f, 1e-5f);
        }
      }
    }
  }
}

TEST_F(OverlayFolderTest, AlphaChannelAndLumaAreUsedAndResultsAreThreadSafe) {
  // RGBA of one colour (luma 0.299*0.2 + 0.587*0.4 + 0.114*0.6 = 0.3630) with a varying alpha: value = the luma.
  Tensor rgba = Tensor::empty({4, 50, 50});
  float* p = rgba.data<float>();
  for (int64_t i = 0; i < 2500; ++i) {
    p[i] = 0.2f;
    p[2500 + i] = 0.4f;
    p[5000 + i] = 0.6f;
    p[7500 + i] = (i % 11 == 0) ? 1.0f : 0.0f;
  }
  write_image(path("a.png"), make_image(rgba));
  const float luma =
      (std::lround(0.2f * 255) * 0.299f + std::lround(0.4f * 255) * 0.587f + std::lround(0.6f * 255) * 0.114f) / 255.0f;
  DustOptions o;
  o.p_invert = 0.0;
  const DustSynthesizer ds(o, dir_.string());
  Generator gen(4);
  for (const Overlay& ov : ds.draw_overlays(48, 40, 1, gen)) {
    const std::vector<float> a = ov.alpha.to_vector_f32(), v = ov.value.to_vector_f32();
    EXPECT_GT(*std::max_element(a.begin(), a.end()), 0.0f);
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i] > 0.01f) {
        ASSERT_NEAR(v[i], luma, 1e-4f);
      }
  }

  // Add an RGB texture and check that threads sharing one synthesizer get what a lone caller gets.
  write_image(path("b.png"), make_image(image(3, 32, 64, 3, 0.0, 1.0)));
  const DustSynthesizer shared(DustOptions{}, dir_.string());
  const Tensor clean = image(3, 40, 40, 12);
  std::vector<DustDamage> serial(8), parallel(8);
  for (size_t k = 0; k < serial.size(); ++k) {
    Generator g(k);
    serial[k] = DustSynthesizer(DustOptions{}, dir_.string()).apply(clean, k, g);
  }
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t k = t; k < parallel.size(); k += 4) {
        Generator g(k);
        parallel[k] = shared.apply(clean, k, g);
      }
    });
  for (std::thread& t : threads) t.join();
  bool some_differ = false;
  for (size_t k = 0; k < serial.size(); ++k) {
    EXPECT_TRUE(same_bits(serial[k].damaged, parallel[k].damaged)) << k;
    EXPECT_TRUE(same_bits(serial[k].mask, parallel[k].mask)) << k;
    some_differ = some_differ || !same_bits(serial[k].mask, serial[0].mask);
  }
  EXPECT_TRUE(some_differ);
}

TEST_F(OverlayFolderTest, AFolderWithoutImagesIsRefused) {
  note("notes.txt");
  const std::string err = test::error_of([&] { DustSynthesizer ds(DustOptions{}, dir_.string()); });
  EXPECT_NE(err.find("holds no images"), std::string::npos) << err;
  EXPECT_NE(err.find(dir_.string()), std::string::npos) << err;
  const std::string missing = test::error_of([&] { DustSynthesizer ds(DustOptions{}, path("nowhere")); });
  EXPECT_NE(missing.find("does not exist"), std::string::npos) << missing;
}

}  // namespace
}  // namespace fg
