// data/resize.h: area averaging against block means, against sums worked out by hand for fractional footprints and
// against a direct 2-D integration written here; bilinear and resize() against PyTorch 1.13
// (tests/golden/data.safetensors, written by tools/make_data_fixtures.py, which also holds adaptive_avg_pool2d's
// answers for integer factors); constant images; resize_short_side's sizes; crop boxes; the Generator draws; and
// the errors a user can cause.
//
// Tolerances. The golden answers are f64 from inputs rounded to f32; filmgrad computes in f32 with f32 weights, so
// each output carries a few f32 roundings of values in [0, 1]: kF32 = 1e-6 absolute (the largest difference from
// PyTorch seen is 9e-8; a weight off by one part in 1e5 or a tap at the wrong pixel is far above it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "data/resize.h"
#include "tensor/error.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

constexpr double kF32 = 1e-6;

// The same (C, H, W) values stored W-major: W stride not 1 (unless the image is a single column or pixel).
Tensor non_contiguous(const Tensor& t) {
  Tensor v = t.permute({2, 1, 0}).contiguous().permute({2, 1, 0});
  if (t.size(2) > 1 && t.size(1) * t.size(0) > 1) {
    EXPECT_NE(v.stride(2), 1);
  }
  return v;
}

// A string field of a flat JSON object as json.dumps writes it ("key": "value").
std::string json_string(const std::string& json, const std::string& key) {
  const std::string pattern = "\"" + key + "\": \"";
  const size_t at = json.find(pattern);
  if (at == std::string::npos) throw Error("data fixture metadata lacks '" + key + "': " + json);
  const size_t begin = at + pattern.size();
  return json.substr(begin, json.find('"', begin) - begin);
}

int64_t json_int(const std::string& json, const std::string& key) {
  const std::string pattern = "\"" + key + "\": ";
  const size_t at = json.find(pattern);
  if (at == std::string::npos) throw Error("data fixture metadata lacks '" + key + "': " + json);
  return std::stoll(json.substr(at + pattern.size()));
}

// The mean of the input over each output pixel's footprint, integrated directly in 2-D (f64): the footprint of
// (i, j) is [i H / h, (i + 1) H / h) x [j W / w, (j + 1) W / w), each input pixel a unit square.
Tensor direct_area(const Tensor& x, int64_t h, int64_t w) {
  const int64_t C = x.size(0), H = x.size(1), W = x.size(2);
  std::vector<double> out;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) {
        const double y0 = double(i) * H / h, y1 = double(i + 1) * H / h;
        const double x0 = double(j) * W / w, x1 = double(j + 1) * W / w;
        double sum = 0.0;
        for (int64_t a = 0; a < H; ++a)
          for (int64_t b = 0; b < W; ++b) {
            const double oy = std::min(y1, double(a + 1)) - std::max(y0, double(a));
            const double ox = std::min(x1, double(b + 1)) - std::max(x0, double(b));
            if (oy > 0 && ox > 0) sum += oy * ox * x.at({c, a, b});
          }
        out.push_back(sum / ((y1 - y0) * (x1 - x0)));
      }
  return Tensor::from_vector(out, {C, h, w}, DType::F64);
}

TEST(ResizeArea, IntegerFactorsAreBlockMeans) {
  const Tensor x = test::random_tensor({2, 12, 18}, 1, DType::F32, 0.0, 1.0);
  for (const auto& [fh, fw] : std::vector<std::pair<int64_t, int64_t>>{{3, 3}, {2, 3}, {4, 1}, {1, 6}, {12, 18}}) {
    SCOPED_TRACE("block " + std::to_string(fh) + "x" + std::to_string(fw));
    const int64_t h = 12 / fh, w = 18 / fw;
    std::vector<double> ref;
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          double s = 0.0;
          for (int64_t a = 0; a < fh; ++a)
            for (int64_t b = 0; b < fw; ++b) s += x.at({c, i * fh + a, j * fw + b});
          ref.push_back(s / double(fh * fw));
        }
    const Tensor got = data::resize_area(x, h, w);
    ASSERT_EQ(got.shape(), (Shape{2, h, w}));
    EXPECT_TRUE(got.is_contiguous());
    EXPECT_EQ(got.dtype(), DType::F32);
    EXPECT_ALL_CLOSE(Tensor::from_vector(ref, {2, h, w}), got, kF32, 0.0);
  }
}

TEST(ResizeArea, FractionalFootprintsByHand) {
  // 3 -> 2: footprints [0, 1.5) and [1.5, 3): (a + b / 2) / 1.5 and (b / 2 + c) / 1.5.
  const Tensor row3 = Tensor::from_vector({0.3, 0.9, 0.6}, {1, 1, 3});
  const std::vector<double> want3 = {(0.3 + 0.45) / 1.5, (0.45 + 0.6) / 1.5};
  EXPECT_ALL_CLOSE(Tensor::from_vector(want3, {1, 1, 2}), data::resize_area(row3, 1, 2), kF32, 0.0);
  // The same along H.
  EXPECT_ALL_CLOSE(Tensor::from_vector(want3, {1, 2, 1}), data::resize_area(row3.view({1, 3, 1}), 2, 1), kF32, 0.0);

  // 5 -> 3: footprint 5/3: [0.6 0.4 0 0 0], [0 0.2 0.6 0.2 0], [0 0 0 0.4 0.6].
  const std::vector<double> v = {1.0, 2.0, 4.0, 8.0, 16.0};
  const std::vector<double> want5 = {0.6 * 1 + 0.4 * 2, 0.2 * 2 + 0.6 * 4 + 0.2 * 8, 0.4 * 8 + 0.6 * 16};
  EXPECT_ALL_CLOSE(Tensor::from_vector(want5, {1, 3, 1}), data::resize_area(Tensor::from_vector(v, {1, 5, 1}), 3, 1),
                   1e-5, 1e-6);

  // 2-D, 3x3 -> 2x2: the top-left output is (x00 + x01/2 + x10/2 + x11/4) / 2.25.
  const Tensor sq = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3});
  const double tl = (1 + 2 / 2.0 + 4 / 2.0 + 5 / 4.0) / 2.25, br = (5 / 4.0 + 6 / 2.0 + 8 / 2.0 + 9) / 2.25;
  const Tensor got = data::resize_area(sq, 2, 2);
  EXPECT_NEAR(got.at({0, 0, 0}), tl, 1e-6);
  EXPECT_NEAR(got.at({0, 1, 1}), br, 1e-6);
  EXPECT_NEAR(got.at({0, 0, 1}), (2 / 2.0 + 3 + 5 / 4.0 + 6 / 2.0) / 2.25, 1e-6);
}

TEST(ResizeArea, MatchesDirectIntegration) {
  struct Case {
    Shape in;
    int64_t h, w;
  };
  // Shrinking by non-integer factors both ways, one axis kept, and growing (each output then covers one or two
  // input pixels).
  const Case cases[] = {{{3, 13, 11}, 5, 4}, {{1, 17, 9}, 7, 9}, {{2, 4, 3}, 7, 8}, {{1, 9, 10}, 4, 15}};
  uint64_t seed = 10;
  for (const Case& k : cases) {
    SCOPED_TRACE(shape_str(k.in) + " -> " + std::to_string(k.h) + "x" + std::to_string(k.w));
    const Tensor x = test::random_tensor(k.in, seed++, DType::F32, 0.0, 1.0);
    const Tensor got = data::resize_area(x, k.h, k.w);
    EXPECT_ALL_CLOSE(direct_area(x, k.h, k.w), got, kF32, 0.0);
    // Any strides give the same bits.
    const Tensor again = data::resize_area(non_contiguous(x), k.h, k.w);
    EXPECT_EQ(got.to_vector(), again.to_vector());
  }
}

TEST(Resize, ViewsAreReadInPlace) {
  // A crop view: unit stride along W, but the C and H strides of the larger image.
  const Tensor big = test::random_tensor({3, 30, 40}, 12, DType::F32, 0.0, 1.0);
  const Tensor view = big.slice(1, 3, 26).slice(2, 5, 36);
  ASSERT_FALSE(view.is_contiguous());
  const Tensor copy = view.clone();
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{7, 9}, {40, 11}, {23, 50}}) {
    EXPECT_EQ(data::resize_area(view, h, w).to_vector(), data::resize_area(copy, h, w).to_vector());
    EXPECT_EQ(data::resize_bilinear(view, h, w).to_vector(), data::resize_bilinear(copy, h, w).to_vector());
    EXPECT_EQ(data::resize(view, h, w).to_vector(), data::resize(copy, h, w).to_vector());
  }
}

TEST(Resize, ConstantImageStaysConstant) {
  const Tensor x = Tensor::full({3, 23, 17}, 0.37);
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{7, 5}, {23, 17}, {40, 51}, {1, 1}, {9, 30}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    const Tensor want = Tensor::full({3, h, w}, 0.37);
    EXPECT_ALL_CLOSE(want, data::resize_area(x, h, w), 1e-6, 0.0);
    EXPECT_ALL_CLOSE(want, data::resize_bilinear(x, h, w), 1e-6, 0.0);
    EXPECT_ALL_CLOSE(want, data::resize(x, h, w), 1e-6, 0.0);
  }
}

TEST(Resize, SameSizeIsExactCopy) {
  const Tensor x = test::random_tensor({2, 6, 9}, 3, DType::F32, 0.0, 1.0);
  for (const Tensor& y : {data::resize_area(x, 6, 9), data::resize_bilinear(x, 6, 9), data::resize(x, 6, 9)}) {
    EXPECT_EQ(y.to_vector(), x.to_vector());
    EXPECT_FALSE(y.shares_storage_with(x));
  }
}

TEST(ResizeGolden, FileDescribesItself) {
  const SafeTensors& f = test::golden("data");
  ASSERT_TRUE(f.metadata.count("_format")) << "regenerate with /usr/bin/python3 tools/make_data_fixtures.py";
  EXPECT_EQ(f.metadata.at("_format"), "filmgrad-golden-data-1");
  EXPECT_TRUE(f.metadata.count("_torch_version"));
}

TEST(ResizeGolden, MatchesPyTorch) {
  const SafeTensors& f = test::golden("data");
  std::set<std::string> compared, ops;
  double largest = 0.0;
  std::string where;
  int cases = 0;
  for (const auto& [name, json] : f.metadata) {
    if (name.empty() || name[0] == '_') continue;
    const std::string op = json_string(json, "op");
    if (op == "augment") continue;  // tests/data/test_augment.cpp
    SCOPED_TRACE(name);
    ++cases;
    const int64_t h = json_int(json, "out_h"), w = json_int(json, "out_w");
    const Tensor x = f.get(name + ".x").to(DType::F32);
    const Tensor& y = f.get(name + ".y");
    compared.insert(name + ".x");
    compared.insert(name + ".y");
    ops.insert(op);
    for (const Tensor& input : {x, non_contiguous(x)}) {
      Tensor got;
      if (op == "bilinear")
        got = data::resize_bilinear(input, h, w);
      else if (op == "area")
        got = data::resize_area(input, h, w);
      else if (op == "resize")
        got = data::resize(input, h, w);
      else
        FAIL() << "unknown op '" << op << "' in the fixture";
      ASSERT_EQ(got.shape(), y.shape());
      EXPECT_ALL_CLOSE(y, got, kF32, 0.0);
      const std::vector<double> a = y.to_vector(), b = got.to_vector();
      for (size_t i = 0; i < a.size(); ++i)
        if (std::fabs(a[i] - b[i]) > largest) {
          largest = std::fabs(a[i] - b[i]);
          where = name;
        }
    }
  }
  EXPECT_GE(cases, 15) << "the fixture has fewer cases than tools/make_data_fixtures.py writes";
  EXPECT_EQ(ops, (std::set<std::string>{"area", "bilinear", "resize"}));
  for (const auto& [tensor_name, t] : f.tensors)
    if (tensor_name.rfind("augment_", 0) != 0) {
      EXPECT_TRUE(compared.count(tensor_name)) << "stored tensor '" << tensor_name << "' is never compared";
    }
  std::printf("largest difference from PyTorch over %d resize cases: %.3g at %s\n", cases, largest, where.c_str());
}

TEST(ResizeShortSide, SizesAndRounding) {
  const Tensor land = test::random_tensor({3, 40, 60}, 4, DType::F32, 0.0, 1.0);
  EXPECT_EQ(data::resize_short_side(land, 20).shape(), (Shape{3, 20, 30}));
  EXPECT_EQ(data::resize_short_side(land, 80).shape(), (Shape{3, 80, 120}));
  const Tensor port = test::random_tensor({1, 60, 40}, 5, DType::F32, 0.0, 1.0);
  EXPECT_EQ(data::resize_short_side(port, 20).shape(), (Shape{1, 30, 20}));
  // 10 * 4 / 7 = 5.71 -> 6; 9 * 4 / 8 = 4.5 -> 5 (half up); 3 * 2 / 3 = 2.
  EXPECT_EQ(data::resize_short_side(Tensor::zeros({1, 7, 10}), 4).shape(), (Shape{1, 4, 6}));
  EXPECT_EQ(data::resize_short_side(Tensor::zeros({1, 9, 8}), 4).shape(), (Shape{1, 5, 4}));
  EXPECT_EQ(data::resize_short_side(Tensor::zeros({1, 3, 3}), 2).shape(), (Shape{1, 2, 2}));
  // The long side never rounds below the short side: 1000 x 1001 to 1 px.
  EXPECT_EQ(data::resize_short_side(Tensor::zeros({1, 1000, 1001}), 1).shape(), (Shape{1, 1, 1}));
  // Already the right short side: the input itself.
  const Tensor same = data::resize_short_side(land, 40);
  EXPECT_TRUE(same.shares_storage_with(land));
  EXPECT_EQ(same.shape(), land.shape());
  // Shrinking uses area averaging: 40x60 -> 20x30 is the 2x2 block mean.
  EXPECT_ALL_CLOSE(data::resize_area(land, 20, 30), data::resize_short_side(land, 20), 0.0, 0.0);
}

TEST(Crop, CenterBox) {
  const data::CropBox b = data::center_crop_box(10, 9, 4, 5);
  EXPECT_EQ(b.top, 3);
  EXPECT_EQ(b.left, 2);
  EXPECT_EQ(b.height, 4);
  EXPECT_EQ(b.width, 5);
  const data::CropBox whole = data::center_crop_box(7, 8, 7, 8);
  EXPECT_EQ(whole.top, 0);
  EXPECT_EQ(whole.left, 0);
  // (H - h) / 2 rounded down.
  EXPECT_EQ(data::center_crop_box(11, 11, 4, 4).top, 3);
}

TEST(Crop, RandomBoxBoundsCoverageAndDeterminism) {
  Generator gen(42);
  std::set<int64_t> tops, lefts;
  for (int k = 0; k < 400; ++k) {
    const uint64_t before = gen.offset();
    const data::CropBox b = data::random_crop_box(12, 9, 8, 7, gen);
    EXPECT_EQ(gen.offset(), before + 2) << "one Philox block per uniform_int";
    ASSERT_GE(b.top, 0);
    ASSERT_LE(b.top, 4);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.left, 2);
    EXPECT_EQ(b.height, 8);
    EXPECT_EQ(b.width, 7);
    tops.insert(b.top);
    lefts.insert(b.left);
  }
  EXPECT_EQ(tops.size(), 5u) << "every top in [0, H - h] is drawn";
  EXPECT_EQ(lefts.size(), 3u) << "every left in [0, W - w] is drawn";
  Generator a(7), b(7);
  for (int k = 0; k < 20; ++k) {
    const data::CropBox x = data::random_crop_box(100, 80, 31, 17, a), y = data::random_crop_box(100, 80, 31, 17, b);
    EXPECT_EQ(x.top, y.top);
    EXPECT_EQ(x.left, y.left);
  }
  // A crop as large as the image has one place.
  Generator g(1);
  const data::CropBox full = data::random_crop_box(5, 6, 5, 6, g);
  EXPECT_EQ(full.top, 0);
  EXPECT_EQ(full.left, 0);
}

TEST(Crop, CopiesTheBox) {
  const Tensor x = test::random_tensor({3, 10, 12}, 6, DType::F32, 0.0, 1.0);
  const data::CropBox box{2, 5, 4, 6};
  const Tensor c = data::crop(x, box);
  ASSERT_EQ(c.shape(), (Shape{3, 4, 6}));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_FALSE(c.shares_storage_with(x));
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 6; ++j) ASSERT_EQ(c.at({ch, i, j}), x.at({ch, 2 + i, 5 + j}));
  // The whole image is still a copy.
  EXPECT_FALSE(data::crop(x, {0, 0, 10, 12}).shares_storage_with(x));
  // Non-contiguous input.
  EXPECT_EQ(data::crop(non_contiguous(x), box).to_vector(), c.to_vector());
}

TEST(Crop, Errors) {
  const Tensor x = Tensor::zeros({3, 10, 12});
  EXPECT_NE(test::error_of([&] { data::center_crop_box(10, 12, 11, 4); }).find("does not fit"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::center_crop_box(10, 12, 0, 4); }).find("at least 1x1"), std::string::npos);
  Generator gen(0);
  EXPECT_NE(test::error_of([&] { data::random_crop_box(10, 12, 4, 13, gen); }).find("does not fit"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::crop(x, {8, 0, 4, 4}); }).find("does not lie inside"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::crop(x, {-1, 0, 4, 4}); }).find("does not lie inside"), std::string::npos);
  EXPECT_NE(test::error_of([&] {
              data::crop(Tensor::zeros({10, 12}), {0, 0, 4, 4});
            }).find("(C, H, W)"),
            std::string::npos);
}

TEST(Resize, Errors) {
  const Tensor x = Tensor::zeros({3, 10, 12});
  EXPECT_NE(test::error_of([&] { data::resize_area(x, 0, 5); }).find("at least 1x1"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::resize_bilinear(x, 5, -2); }).find("at least 1x1"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::resize(Tensor::zeros({10, 12}), 5, 5); }).find("(C, H, W)"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::resize(x.to(DType::F64), 5, 5); }).find("f32"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::resize(Tensor::zeros({3, 0, 4}), 5, 5); }).find("empty"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::resize(Tensor(), 5, 5); }).find("undefined"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::resize_short_side(x, 0); }).find("short side"), std::string::npos);
}

TEST(Draws, UniformRangeAndMean) {
  Generator gen(3);
  double sum = 0.0;
  const int n = 4000;
  for (int k = 0; k < n; ++k) {
    const uint64_t before = gen.offset();
    const double v = data::uniform(gen, -2.0, 6.0);
    ASSERT_EQ(gen.offset(), before + 1);
    ASSERT_GE(v, -2.0);
    ASSERT_LT(v, 6.0);
    sum += v;
  }
  // Mean 2, sd of the mean 8 / sqrt(12 n) = 0.037: 5 sd.
  EXPECT_NEAR(sum / n, 2.0, 0.19);
  EXPECT_EQ(data::uniform(gen, 1.5, 1.5), 1.5);
  // The first draw is philox.h's uniform01 of word 0 of the first block.
  Generator a(9), b(9);
  EXPECT_EQ(data::uniform(a), double(philox_uniform01(b.word(0, 0))));
  EXPECT_NE(test::error_of([&] { data::uniform(gen, 2.0, 1.0); }).find("ordered"), std::string::npos);
}

TEST(Draws, UniformIntInclusiveAndUnbiased) {
  Generator gen(11);
  std::vector<int> counts(7, 0);
  const int n = 7000;
  for (int k = 0; k < n; ++k) {
    const int64_t v = data::uniform_int(gen, -3, 3);
    ASSERT_GE(v, -3);
    ASSERT_LE(v, 3);
    ++counts[size_t(v + 3)];
  }
  // Each value 1000 expected, sd ~29: within 5 sd.
  for (int c : counts) EXPECT_NEAR(c, 1000, 150);
  EXPECT_EQ(data::uniform_int(gen, 5, 5), 5);
  // The full int64 range does not overflow.
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  std::set<bool> signs;
  for (int k = 0; k < 64; ++k) signs.insert(data::uniform_int(gen, lo, hi) < 0);
  EXPECT_EQ(signs.size(), 2u);
  EXPECT_NE(test::error_of([&] { data::uniform_int(gen, 2, 1); }).find("ordered"), std::string::npos);
}

TEST(Draws, BernoulliAndNormal) {
  Generator gen(5);
  int hits = 0;
  const int n = 5000;
  for (int k = 0; k < n; ++k) hits += data::bernoulli(gen, 0.3) ? 1 : 0;
  EXPECT_NEAR(double(hits) / n, 0.3, 0.035);  // sd 0.0065
  for (int k = 0; k < 100; ++k) {
    EXPECT_FALSE(data::bernoulli(gen, 0.0));
    EXPECT_TRUE(data::bernoulli(gen, 1.0));
  }
  double s = 0.0, s2 = 0.0;
  for (int k = 0; k < n; ++k) {
    const uint64_t before = gen.offset();
    const double v = data::normal(gen, 2.0, 0.5);
    ASSERT_EQ(gen.offset(), before + 1);
    s += v;
    s2 += v * v;
  }
  const double mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
  EXPECT_NEAR(mean, 2.0, 0.035);  // sd of the mean 0.007
  EXPECT_NEAR(sd, 0.5, 0.03);
  // normal() is element 0 of philox.h's normal_ stream.
  Generator a(21), b(21);
  Tensor t = Tensor::empty({1}, DType::F64);
  normal_(t, b);
  EXPECT_DOUBLE_EQ(data::normal(a), t.item());
  EXPECT_NE(test::error_of([&] { data::bernoulli(gen, 1.5); }).find("probability"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::normal(gen, 0.0, -1.0); }).find("stddev"), std::string::npos);
}

}  // namespace
}  // namespace fg
