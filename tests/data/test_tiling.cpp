// data/tiling.h: one tile is exactly fn(reflection-padded image); convolutional networks (plain, and with max-pools
// and upsampling aligned to a multiple of 4) give the same result tiled as untiled; odd sizes are padded and cropped
// back; the feathering follows the documented ramp (checked against weights computed here from the header's
// formula), sums to one across exact seams and blends constants smoothly; the plan (origins, counts, tile sizes,
// progress) is what count_tiles and tile_origins say; bad options and bad tile functions throw.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "data/tiling.h"
#include "nn/layers.h"
#include "tensor/error.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using data::TileOptions;

// 'reflect' padding index, folded step by step (an independent twin of the library's).
int64_t fold(int64_t p, int64_t n) {
  if (n == 1) return 0;
  while (p < 0 || p >= n) p = p < 0 ? -p : 2 * (n - 1) - p;
  return p;
}

// (C, H, W) reflection-padded at the bottom and right to (C, Hp, Wp).
Tensor pad_reflect(const Tensor& x, int64_t Hp, int64_t Wp) {
  const int64_t C = x.size(0), H = x.size(1), W = x.size(2);
  std::vector<double> v;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < Hp; ++i)
      for (int64_t j = 0; j < Wp; ++j) v.push_back(x.at({c, fold(i, H), fold(j, W)}));
  return Tensor::from_vector(v, {C, Hp, Wp});
}

// A network as a tile function: (C, h, w) -> (C', h, w), eval mode, no autograd graph.
data::TileFunction as_tile_function(std::shared_ptr<nn::Module> net) {
  return [net](const Tensor& tile) {
    NoGradGuard no_grad;
    return (*net)(Variable(tile.unsqueeze(0))).data().select(0, 0).contiguous();
  };
}

// Radius 3: three 3x3 convolutions with zero padding.
std::shared_ptr<nn::Module> conv_net(Generator& gen) {
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Conv2d>(gen, 3, 6, 3, 1, 1));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::Conv2d>(gen, 6, 6, 3, 1, 1));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::Conv2d>(gen, 6, 2, 3, 1, 1));
  net->eval();
  return net;
}

// Two 2x2 max-pools, then x4 nearest upsampling: sizes must be multiples of 4, and the receptive field reaches
// about 12 pixels (1 + 4 * 1.5 + 2 * 2 + 1, rounded up).
std::shared_ptr<nn::Module> pooled_net(Generator& gen) {
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Conv2d>(gen, 3, 5, 3, 1, 1));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::MaxPool2d>(2));
  net->push_back(std::make_shared<nn::Conv2d>(gen, 5, 5, 3, 1, 1));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::MaxPool2d>(2));
  net->push_back(std::make_shared<nn::Conv2d>(gen, 5, 5, 3, 1, 1));
  net->push_back(std::make_shared<nn::UpsampleNearest>(4));
  net->push_back(std::make_shared<nn::Conv2d>(gen, 5, 3, 3, 1, 1));
  net->eval();
  return net;
}

// The header's weight of pixel j of a tile of side t at `origin` in a padded side of `padded`.
double header_weight(int64_t j, int64_t origin, int64_t t, int64_t padded, const TileOptions& o) {
  auto factor = [&](int64_t d) {
    if (d < o.margin) return 0.0;
    if (d < o.margin + o.ramp) return (double(d - o.margin) + 0.5) / double(o.ramp);
    return 1.0;
  };
  double w = 1.0;
  if (origin > 0) w *= factor(j);
  if (origin + t < padded) w *= factor(t - 1 - j);
  return w;
}

TEST(Tiling, SingleTileIsExactlyFnOfThePaddedImage) {
  const Tensor x = test::random_tensor({2, 13, 22}, 1, DType::F32, 0.0, 1.0);
  TileOptions o;
  o.tile = 64;
  o.margin = 8;
  o.ramp = 8;
  o.multiple = 4;
  ASSERT_EQ(data::count_tiles(13, 22, o), 1);
  Tensor seen, produced;
  int calls = 0;
  // Not pointwise, so the padding shows: out = tile + 0.5 * (the tile shifted one pixel left), 3 channels.
  auto fn = [&](const Tensor& t) {
    ++calls;
    seen = t.clone();
    const int64_t h = t.size(1), w = t.size(2);
    std::vector<double> v;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j)
          v.push_back(t.at({c % 2, i, j}) + 0.5 * t.at({c % 2, i, std::min(j + 1, w - 1)}));
    produced = Tensor::from_vector(v, {3, h, w});
    return produced;
  };
  const Tensor y = data::run_tiled(x, fn, 3, o);
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(seen.shape(), (Shape{2, 16, 24}));
  EXPECT_EQ(seen.to_vector(), pad_reflect(x, 16, 24).to_vector()) << "the tile is the reflection-padded image";
  ASSERT_EQ(y.shape(), (Shape{3, 13, 22}));
  EXPECT_EQ(y.to_vector(), produced.slice(1, 0, 13).slice(2, 0, 22).contiguous().to_vector());

  // Sides that are already multiples: no padding, the function's own result.
  const Tensor z = test::random_tensor({2, 16, 20}, 2, DType::F32, 0.0, 1.0);
  const Tensor yz = data::run_tiled(z, fn, 3, o);
  EXPECT_EQ(seen.to_vector(), z.to_vector());
  EXPECT_EQ(yz.to_vector(), produced.to_vector());
  // A 1x1 image padded to 4x4 repeats its pixel.
  const Tensor one = Tensor::full({2, 1, 1}, 0.25);
  data::run_tiled(one, fn, 3, o);
  EXPECT_EQ(seen.to_vector(), Tensor::full({2, 4, 4}, 0.25).to_vector());
}

TEST(Tiling, ConvNetTiledEqualsUntiled) {
  Generator gen(3);
  const data::TileFunction fn = as_tile_function(conv_net(gen));
  const Tensor x = test::random_tensor({3, 45, 53}, 4, DType::F32, 0.0, 1.0);
  const Tensor whole = fn(x);
  TileOptions o;
  o.tile = 20;
  o.margin = 3;  // the receptive-field radius exactly
  o.ramp = 2;
  o.multiple = 1;
  const int64_t n = data::count_tiles(45, 53, o);
  ASSERT_GE(data::tile_origins(45, o).size(), 3u);
  ASSERT_GE(data::tile_origins(53, o).size(), 3u);
  int64_t calls = 0;
  const Tensor tiled = data::run_tiled(
      x,
      [&](const Tensor& t) {
        ++calls;
        EXPECT_LE(t.size(1), 20);
        EXPECT_LE(t.size(2), 20);
        return fn(t);
      },
      2, o);
  EXPECT_EQ(calls, n);
  EXPECT_ALL_CLOSE(whole, tiled, 1e-5, 0.0);

  // A margin below the radius lets the tiles' zero padding through: the check above can fail.
  o.margin = 1;
  const Tensor leaky = data::run_tiled(x, fn, 2, o);
  EXPECT_FALSE(test::all_close(whole, leaky, 1e-4, 0.0));
}

TEST(Tiling, PooledNetTiledEqualsUntiledOnPaddedImage) {
  Generator gen(5);
  const data::TileFunction fn = as_tile_function(pooled_net(gen));
  const Tensor x = test::random_tensor({3, 90, 117}, 6, DType::F32, 0.0, 1.0);  // pads to 92 x 120
  const Tensor whole = fn(pad_reflect(x, 92, 120)).slice(1, 0, 90).slice(2, 0, 117).contiguous();
  TileOptions o;
  o.tile = 66;  // rounded down to 64
  o.margin = 16;
  o.ramp = 8;
  o.multiple = 4;
  const std::vector<int64_t> rows = data::tile_origins(90, o), cols = data::tile_origins(117, o);
  ASSERT_GE(rows.size(), 2u);
  ASSERT_GE(cols.size(), 3u);
  for (int64_t r : rows) EXPECT_EQ(r % 4, 0);
  for (int64_t c : cols) EXPECT_EQ(c % 4, 0);
  const Tensor tiled = data::run_tiled(
      x,
      [&](const Tensor& t) {
        EXPECT_EQ(t.size(1), 64);
        EXPECT_EQ(t.size(2), 64);
        return fn(t);
      },
      3, o);
  ASSERT_EQ(tiled.shape(), (Shape{3, 90, 117}));
  EXPECT_ALL_CLOSE(whole, tiled, 1e-5, 0.0);
  // The same through a single tile (exactly fn(padded image)).
  TileOptions big = o;
  big.tile = 128;
  EXPECT_EQ(data::run_tiled(x, fn, 3, big).to_vector(), whole.to_vector());
}

TEST(Tiling, OddSizesPaddedAndCroppedBack) {
  TileOptions o;
  o.tile = 32;
  o.margin = 4;
  o.ramp = 4;
  o.multiple = 8;
  for (const auto& [H, W] : std::vector<std::pair<int64_t, int64_t>>{{37, 50}, {1, 70}, {65, 3}, {33, 33}}) {
    SCOPED_TRACE(std::to_string(H) + "x" + std::to_string(W));
    const Tensor x = test::random_tensor({2, H, W}, uint64_t(H * 100 + W), DType::F32, 0.0, 1.0);
    int64_t calls = 0;
    const Tensor y = data::run_tiled(
        x,
        [&](const Tensor& t) {
          ++calls;
          EXPECT_EQ(t.size(1) % 8, 0);
          EXPECT_EQ(t.size(2) % 8, 0);
          return t;  // the identity: the weighted mean of equal values is the value
        },
        2, o);
    EXPECT_EQ(calls, data::count_tiles(H, W, o));
    ASSERT_EQ(y.shape(), x.shape());
    EXPECT_ALL_CLOSE(x, y, 1e-6, 1e-6);
  }
}

TEST(Tiling, FeatheringFollowsTheRampAndBlendsSmoothly) {
  // One row of tiles (H fits), several columns: tile k returns the constant k, so the output along a row is the
  // weighted mean of the tile indices with the header's weights.
  TileOptions o;
  o.tile = 24;
  o.margin = 3;
  o.ramp = 6;
  o.multiple = 2;
  const int64_t H = 10, W = 75;  // W pads to 76
  const std::vector<int64_t> cols = data::tile_origins(W, o);
  ASSERT_GE(cols.size(), 4u);
  int64_t k = 0;
  const Tensor y = data::run_tiled(
      Tensor::zeros({1, H, W}),
      [&](const Tensor& t) {
        return Tensor::full({1, t.size(1), t.size(2)}, double(k++));
      },
      1, o);
  for (int64_t j = 0; j < W; ++j) {
    double num = 0.0, den = 0.0;
    for (size_t c = 0; c < cols.size(); ++c) {
      if (j < cols[c] || j >= cols[c] + 24) continue;
      const double w = header_weight(j - cols[c], cols[c], 24, 76, o);
      num += w * double(c);
      den += w;
    }
    ASSERT_GT(den, 0.0) << j;
    for (int64_t i = 0; i < H; ++i) ASSERT_NEAR(y.at({0, i, j}), num / den, 1e-5) << i << " " << j;
    // Smooth: neighbouring tiles differ by 1, the ramp spreads it over `ramp` pixels (an unfeathered seam would
    // jump by 1). The last tile, flush with the end, can overlap two others, whose indices differ by 2.
    if (j > 0) {
      const double bound = (j < cols.back() ? 1.0 : 2.0) / double(o.ramp);
      EXPECT_LE(std::fabs(y.at({0, 0, j}) - y.at({0, 0, j - 1})), bound + 1e-6) << j;
      EXPECT_GE(y.at({0, 0, j}), y.at({0, 0, j - 1}) - 1e-6) << "monotone across seams, at " << j;
    }
  }
  EXPECT_EQ(y.at({0, 0, 0}), 0.0);
  EXPECT_EQ(y.at({0, 0, W - 1}), double(cols.size() - 1));

  // Where two tiles overlap by exactly 2 * margin + ramp the weights sum to one.
  ASSERT_EQ(cols[1] - cols[0], 24 - 2 * 3 - 6);
  for (int64_t j = cols[1]; j < 24; ++j)
    EXPECT_NEAR(header_weight(j, 0, 24, 76, o) + header_weight(j - cols[1], cols[1], 24, 76, o), 1.0, 1e-12) << j;

  // A constant function gives that constant everywhere: the normalisation is right in 2-D too.
  TileOptions sq = o;
  const Tensor ones = data::run_tiled(
      Tensor::zeros({1, 61, 47}),
      [](const Tensor& t) {
        return Tensor::full({2, t.size(1), t.size(2)}, 0.75);
      },
      2, sq);
  EXPECT_ALL_CLOSE(Tensor::full({2, 61, 47}, 0.75), ones, 1e-6, 0.0);
}

TEST(Tiling, PlanCountsAndProgress) {
  TileOptions o;  // the defaults: tile 512, margin 32, ramp 32, multiple 32: stride 416
  EXPECT_EQ(data::tile_origins(512, o), (std::vector<int64_t>{0}));
  EXPECT_EQ(data::tile_origins(500, o), (std::vector<int64_t>{0}));
  EXPECT_EQ(data::tile_origins(513, o), (std::vector<int64_t>{0, 32}));  // pads to 544; the last is flush with it
  EXPECT_EQ(data::tile_origins(2000, o), (std::vector<int64_t>{0, 416, 832, 1248, 1504}));
  EXPECT_EQ(data::count_tiles(2000, 513, o), 10);
  EXPECT_EQ(data::count_tiles(1, 1, o), 1);
  for (int64_t L : {700, 1000, 4097, 5640}) {
    const std::vector<int64_t> r = data::tile_origins(L, o);
    const int64_t padded = (L + 31) / 32 * 32;
    EXPECT_EQ(r.front(), 0);
    EXPECT_EQ(r.back(), padded - 512);
    for (size_t k = 1; k < r.size(); ++k) {
      EXPECT_EQ(r[k] % 32, 0);
      EXPECT_GT(r[k], r[k - 1]);
      EXPECT_LE(r[k] - r[k - 1], 512 - 2 * 32 - 32) << "consecutive tiles overlap by at least 2 * margin + ramp";
    }
  }

  TileOptions small;
  small.tile = 16;
  small.margin = 2;
  small.ramp = 2;
  small.multiple = 2;
  const int64_t n = data::count_tiles(41, 29, small);
  std::vector<std::pair<int64_t, int64_t>> progress;
  int64_t calls = 0;
  data::run_tiled(
      Tensor::zeros({1, 41, 29}),
      [&](const Tensor& t) {
        ++calls;
        return t;
      },
      1, small, [&](int64_t done, int64_t total) { progress.emplace_back(done, total); });
  EXPECT_EQ(calls, n);
  ASSERT_EQ(int64_t(progress.size()), n);
  for (int64_t k = 0; k < n; ++k) {
    EXPECT_EQ(progress[size_t(k)].first, k + 1);
    EXPECT_EQ(progress[size_t(k)].second, n);
  }
  EXPECT_EQ(n, int64_t(data::tile_origins(41, small).size() * data::tile_origins(29, small).size()));
}

TEST(Tiling, ResultsOfOtherTypesAreConverted) {
  TileOptions o;
  o.tile = 16;
  o.margin = 2;
  o.ramp = 2;
  o.multiple = 1;
  const Tensor x = test::random_tensor({1, 30, 20}, 9, DType::F32, 0.0, 1.0);
  // f64 and non-contiguous results.
  const Tensor y = data::run_tiled(
      x, [](const Tensor& t) { return t.to(DType::F64).transpose(1, 2).contiguous().transpose(1, 2); }, 1, o);
  EXPECT_EQ(y.dtype(), DType::F32);
  EXPECT_ALL_CLOSE(x, y, 1e-6, 1e-6);
}

TEST(Tiling, BadOptionsAndFunctionsThrow) {
  const Tensor x = Tensor::zeros({1, 40, 40});
  auto identity = [](const Tensor& t) { return t; };
  auto error_with = [&](TileOptions o) { return test::error_of([&] { data::run_tiled(x, identity, 1, o); }); };
  TileOptions o;
  o.tile = 16;
  o.multiple = 32;
  EXPECT_NE(error_with(o).find("smaller than the model's size multiple"), std::string::npos);
  o = {};
  o.tile = 64;
  o.margin = 16;
  o.ramp = 32;
  EXPECT_NE(error_with(o).find("2 * margin + ramp"), std::string::npos);
  o = {};
  o.tile = 64;
  o.margin = 12;
  o.ramp = 16;  // 64 - 40 = 24 < 32: no room for one multiple between origins
  EXPECT_NE(error_with(o).find("less than one multiple"), std::string::npos);
  o = {};
  o.margin = -1;
  EXPECT_NE(error_with(o).find("negative"), std::string::npos);
  o = {};
  o.multiple = 0;
  EXPECT_NE(error_with(o).find("multiple must be at least 1"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::count_tiles(10, 10, o); }).find("multiple"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::tile_origins(0, TileOptions{}); }).find("at least 1"), std::string::npos);

  TileOptions ok;
  ok.tile = 16;
  ok.margin = 2;
  ok.ramp = 2;
  ok.multiple = 4;
  EXPECT_NE(test::error_of([&] {
              data::run_tiled(
                  x, [](const Tensor& t) { return t.slice(1, 0, t.size(1) - 4); }, 1, ok);
            }).find("returned shape"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { data::run_tiled(x, identity, 3, ok); }).find("expected (3,"), std::string::npos);
  EXPECT_NE(test::error_of([&] {
              data::run_tiled(
                  x, [](const Tensor&) { return Tensor(); }, 1, ok);
            }).find("undefined"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              data::run_tiled(Tensor::zeros({40, 40}), identity, 1, ok);
            }).find("(C, H, W)"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { data::run_tiled(x.to(DType::F64), identity, 1, ok); }).find("f32"), std::string::npos);
  EXPECT_NE(test::error_of([&] { data::run_tiled(x, data::TileFunction(), 1, ok); }).find("no tile function"),
            std::string::npos);
}

}  // namespace
}  // namespace fg
