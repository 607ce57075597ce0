// The neutral-change check (data/fill_check.h): a speck blended towards white or black over a coloured, textured
// image is kept at any opacity, a coloured change of the same size and strength is dropped, components are judged
// one by one, a grey image's changes are always neutral, and bad shapes are errors.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <vector>

#include "data/fill_check.h"
#include "tests/support/test_util.h"

namespace fg::data {
namespace {

constexpr int64_t kH = 40, kW = 48;

// A coloured, textured clean image: the fill the check compares with (a perfect fill returns exactly this).
Tensor clean_image() {
  Tensor img = Tensor::empty({3, kH, kW});
  float* p = img.data<float>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < kH; ++y)
      for (int64_t x = 0; x < kW; ++x)
        p[(c * kH + y) * kW + x] =
            float(0.45 + 0.2 * std::sin(0.3 * x + 1.7 * c) * std::cos(0.23 * y - 0.9 * c) + 0.05 * c);
  return img;
}

bool in_disc(int64_t y, int64_t x, int64_t cy, int64_t cx, int64_t r) {
  return (y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r;
}

// The (1, H, W) hole of the discs.
Tensor hole_of(const std::vector<std::array<int64_t, 3>>& discs) {
  Tensor h = Tensor::zeros({1, kH, kW});
  for (int64_t y = 0; y < kH; ++y)
    for (int64_t x = 0; x < kW; ++x)
      for (const auto& d : discs)
        if (in_disc(y, x, d[0], d[1], d[2])) h.data<float>()[y * kW + x] = 1.0f;
  return h;
}

// image with a speck over the disc: each channel blended towards `level` with `opacity` (neutral), or moved by
// `shift[c]` (a coloured change).
Tensor with_speck(const Tensor& image, std::array<int64_t, 3> disc, double opacity, double level) {
  Tensor out = image.clone();
  float* p = out.data<float>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < kH; ++y)
      for (int64_t x = 0; x < kW; ++x)
        if (in_disc(y, x, disc[0], disc[1], disc[2])) {
          float& v = p[(c * kH + y) * kW + x];
          v = float((1.0 - opacity) * v + opacity * level);
        }
  return out;
}
Tensor with_shift(const Tensor& image, std::array<int64_t, 3> disc, std::array<double, 3> shift) {
  Tensor out = image.clone();
  float* p = out.data<float>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < kH; ++y)
      for (int64_t x = 0; x < kW; ++x)
        if (in_disc(y, x, disc[0], disc[1], disc[2])) p[(c * kH + y) * kW + x] += float(shift[size_t(c)]);
  return out;
}

double kept_share(const Tensor& kept, const Tensor& hole) {
  double k = 0, h = 0;
  for (int64_t i = 0; i < kH * kW; ++i) {
    k += kept.data<float>()[i];
    h += hole.data<float>()[i];
  }
  return k / h;
}

TEST(NeutralCheck, LightAndDarkSpecksAreKeptAtAnyOpacity) {
  const Tensor clean = clean_image();
  const std::array<int64_t, 3> disc{20, 24, 5};
  const Tensor hole = hole_of({disc});
  for (double level : {0.93, 1.0, 0.0, 0.07})
    for (double opacity : {0.1, 0.5, 0.95}) {
      const Tensor damaged = with_speck(clean, disc, opacity, level);
      const Tensor kept = neutral_components(damaged, clean, hole);
      EXPECT_DOUBLE_EQ(kept_share(kept, hole), 1.0) << "level " << level << ", opacity " << opacity;
    }
}

TEST(NeutralCheck, AColouredChangeIsDropped) {
  const Tensor clean = clean_image();
  const std::array<int64_t, 3> disc{20, 24, 5};
  const Tensor hole = hole_of({disc});
  for (std::array<double, 3> shift : {std::array<double, 3>{0.2, -0.05, 0.0}, std::array<double, 3>{0.0, 0.15, 0.3},
                                      std::array<double, 3>{-0.2, -0.02, -0.1}}) {
    const Tensor damaged = with_shift(clean, disc, shift);
    EXPECT_GT(neutral_spread(damaged.data<float>(), clean.data<float>(), kH * kW,
                             [&] {
                               std::vector<int64_t> px;
                               for (int64_t i = 0; i < kH * kW; ++i)
                                 if (hole.data<float>()[i] > 0.5f) px.push_back(i);
                               return px;
                             }()),
              kNeutralMaxSpread);
    EXPECT_DOUBLE_EQ(kept_share(neutral_components(damaged, clean, hole), hole), 0.0);
  }
}

TEST(NeutralCheck, ComponentsAreJudgedOneByOne) {
  // A dark speck and a coloured change, apart (8-connectivity: a one-pixel gap separates them); a third component
  // the fill leaves unchanged is kept (nothing to judge).
  const Tensor clean = clean_image();
  const std::array<int64_t, 3> speck{10, 10, 4}, stain{28, 34, 5}, untouched{8, 38, 2};
  const Tensor damaged = with_shift(with_speck(clean, speck, 0.8, 0.02), stain, {0.25, 0.0, -0.1});
  const Tensor hole = hole_of({speck, stain, untouched});
  const Tensor kept = neutral_components(damaged, clean, hole);
  EXPECT_ALL_CLOSE(hole_of({speck, untouched}), kept, 0.0, 0.0);
  EXPECT_EQ(kept.shape(), (Shape{1, kH, kW}));
  // An (H, W) hole is read the same way.
  EXPECT_ALL_CLOSE(kept, neutral_components(damaged, clean, hole.select(0, 0)), 0.0, 0.0);
}

TEST(NeutralCheck, GreyImagesChangesAreNeutral) {
  // Grey repeated into RGB (what restore does with a grey scan): every change is the same in each channel.
  Tensor grey = Tensor::empty({3, kH, kW});
  const Tensor clean = clean_image();
  for (int64_t c = 0; c < 3; ++c) grey.select(0, c).copy_(clean.select(0, 1));
  const std::array<int64_t, 3> disc{20, 24, 6};
  const Tensor damaged = with_shift(grey, disc, {0.17, 0.17, 0.17});
  const Tensor hole = hole_of({disc});
  EXPECT_DOUBLE_EQ(kept_share(neutral_components(damaged, grey, hole), hole), 1.0);
}

TEST(NeutralCheck, BadInputsAreErrors) {
  const Tensor img = clean_image(), hole = hole_of({{20, 24, 3}});
  EXPECT_NE(test::error_of([&] { neutral_components(img, img.narrow(0, 0, 2), hole); }).find("(3, H, W)"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { neutral_components(img, img, Tensor::zeros({1, kH, kW + 1})); }).find("hole"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { neutral_components(img, img, hole, -1.0); }).find("negative"), std::string::npos);
}

}  // namespace
}  // namespace fg::data
