// Tiled inference (data/tiling.h): the per-axis plan, reflection padding done while cutting each tile (the padded
// image is never stored), and the feathered weighted mean accumulated straight into the output.
#include "data/tiling.h"

#include <algorithm>
#include <cstring>

#include "tensor/error.h"

namespace fg::data {

namespace {

struct Plan {
  int64_t tile;    // rounded down to the multiple
  int64_t stride;  // between consecutive origins (the last one excepted)
};

Plan check_options(const TileOptions& o, const char* op) {
  FG_CHECK(o.multiple >= 1, op << ": multiple must be at least 1, got " << o.multiple);
  FG_CHECK(o.tile >= o.multiple, op << ": tile " << o.tile << " is smaller than the model's size multiple "
                                    << o.multiple << "; use a tile of at least " << o.multiple);
  FG_CHECK(o.margin >= 0 && o.ramp >= 0,
           op << ": margin and ramp must not be negative, got margin " << o.margin << ", ramp " << o.ramp);
  const int64_t t = o.tile / o.multiple * o.multiple;
  FG_CHECK(2 * o.margin + o.ramp < t, op << ": 2 * margin + ramp = " << 2 * o.margin + o.ramp << " leaves nothing of a "
                                         << t << "-pixel tile; use a larger tile or a "
                                         << "smaller margin or ramp");
  const int64_t s = (t - 2 * o.margin - o.ramp) / o.multiple * o.multiple;
  FG_CHECK(s >= o.multiple, op << ": a " << t << "-pixel tile minus 2 * margin + ramp = " << 2 * o.margin + o.ramp
                               << " leaves less than one multiple (" << o.multiple << ") between tile origins; "
                               << "use a tile of at least " << 2 * o.margin + o.ramp + o.multiple
                               << " or a smaller margin or ramp");
  return {t, s};
}

int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}

std::vector<int64_t> origins(int64_t length, const TileOptions& o, const Plan& plan) {
  const int64_t padded = round_up(length, o.multiple);
  const int64_t t = std::min(plan.tile, padded);
  std::vector<int64_t> out;
  if (padded <= t) return {0};
  for (int64_t origin = 0; origin < padded - t; origin += plan.stride) out.push_back(origin);
  out.push_back(padded - t);
  return out;
}

// Index into [0, n) of padded position p (p >= 0): 'reflect' about the edge pixels, folded as often as needed.
int64_t reflect_index(int64_t p, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  p %= period;
  return p < n ? p : period - p;
}

// The 1-D weights of a tile of side t at `origin` in a padded side of `padded` pixels.
std::vector<float> axis_weights(int64_t origin, int64_t t, int64_t padded, const TileOptions& o) {
  std::vector<float> w(static_cast<size_t>(t));
  const bool inner_start = origin > 0, inner_end = origin + t < padded;
  auto factor = [&](int64_t d) {  // d: pixels from an inner edge
    if (d < o.margin) return 0.0;
    if (d < o.margin + o.ramp) return (double(d - o.margin) + 0.5) / double(o.ramp);
    return 1.0;
  };
  for (int64_t j = 0; j < t; ++j) {
    double v = 1.0;
    if (inner_start) v *= factor(j);
    if (inner_end) v *= factor(t - 1 - j);
    w[size_t(j)] = float(v);
  }
  return w;
}

// Cuts the (C, th, tw) tile at (r0, c0) of the reflection-padded image out of the (C, H, W) contiguous image.
Tensor cut_tile(const float* image, int64_t C, int64_t H, int64_t W, int64_t r0, int64_t c0, int64_t th, int64_t tw) {
  Tensor tile = Tensor::empty({C, th, tw});
  float* t = tile.data<float>();
  std::vector<int64_t> cols(static_cast<size_t>(tw));
  for (int64_t j = 0; j < tw; ++j) cols[size_t(j)] = reflect_index(c0 + j, W);
  const int64_t direct = std::max<int64_t>(0, std::min(tw, W - c0));  // columns inside the image
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < th; ++i) {
      const float* src = image + (c * H + reflect_index(r0 + i, H)) * W;
      float* dst = t + (c * th + i) * tw;
      std::memcpy(dst, src + c0, sizeof(float) * size_t(direct));
      for (int64_t j = direct; j < tw; ++j) dst[j] = src[cols[size_t(j)]];
    }
  }
  return tile;
}

// Runs fn and checks what it returned: (out_channels, th, tw), brought to f32 CPU contiguous.
Tensor run_tile(const TileFunction& fn, const Tensor& tile, int64_t out_channels) {
  Tensor y = fn(tile);
  FG_CHECK(y.defined(),
           "run_tiled: the tile function returned an undefined tensor for a tile of shape " << shape_str(tile.shape()));
  const Shape want = {out_channels, tile.size(1), tile.size(2)};
  FG_CHECK(y.shape() == want, "run_tiled: the tile function returned shape "
                                  << shape_str(y.shape()) << " for a tile of shape " << shape_str(tile.shape())
                                  << "; expected " << shape_str(want)
                                  << " (same height and width as the tile, out_channels channels)");
  FG_CHECK(dtype_is_floating(y.dtype()),
           "run_tiled: the tile function returned " << dtype_name(y.dtype()) << "; expected floating point");
  return y.to(Device::cpu()).to(DType::F32).contiguous();
}

}  // namespace

std::vector<int64_t> tile_origins(int64_t length, const TileOptions& options) {
  const Plan plan = check_options(options, "tile_origins");
  FG_CHECK(length >= 1, "tile_origins: the side must be at least 1 pixel, got " << length);
  return origins(length, options, plan);
}

int64_t count_tiles(int64_t H, int64_t W, const TileOptions& options) {
  const Plan plan = check_options(options, "count_tiles");
  FG_CHECK(H >= 1 && W >= 1, "count_tiles: the image must be at least 1x1, got " << H << "x" << W);
  return int64_t(origins(H, options, plan).size() * origins(W, options, plan).size());
}

Tensor run_tiled(const Tensor& image, const TileFunction& fn, int64_t out_channels, const TileOptions& options,
                 const std::function<void(int64_t, int64_t)>& on_tile) {
  const Plan plan = check_options(options, "run_tiled");
  FG_CHECK(image.defined() && image.dim() == 3,
           "run_tiled: expected a (C, H, W) image, got "
               << (image.defined() ? shape_str(image.shape()) : "an undefined tensor"));
  FG_CHECK(image.dtype() == DType::F32,
           "run_tiled: expected an f32 image, got " << dtype_name(image.dtype()) << " (convert with .to(DType::F32))");
  FG_CHECK(image.device().is_cpu(),
           "run_tiled: the image must be on the CPU (tiles are sent to the model one by "
           "one), got "
               << image.device().str());
  FG_CHECK(image.numel() > 0, "run_tiled: the image is empty, shape " << shape_str(image.shape()));
  FG_CHECK(out_channels >= 1, "run_tiled: out_channels must be at least 1, got " << out_channels);
  FG_CHECK(bool(fn), "run_tiled: no tile function given");

  const Tensor src = image.contiguous();
  const float* data = src.data<float>();
  const int64_t C = src.size(0), H = src.size(1), W = src.size(2);
  const int64_t Hp = round_up(H, options.multiple), Wp = round_up(W, options.multiple);
  const int64_t th = std::min(plan.tile, Hp), tw = std::min(plan.tile, Wp);
  const std::vector<int64_t> rows = origins(H, options, plan), cols = origins(W, options, plan);
  const int64_t total = int64_t(rows.size() * cols.size());

  if (total == 1) {  // exactly fn(padded image), cropped back
    const Tensor y = run_tile(fn, cut_tile(data, C, H, W, 0, 0, Hp, Wp), out_channels);
    if (on_tile) on_tile(1, 1);
    if (Hp == H && Wp == W) return y;
    return y.slice(1, 0, H).slice(2, 0, W).clone();
  }

  // Separable weight sums: the 2-D sum over the grid of tiles is (sum of row weights) x (sum of column weights).
  std::vector<std::vector<float>> row_w, col_w;
  std::vector<double> row_sum(size_t(H), 0.0), col_sum(size_t(W), 0.0);
  for (int64_t r0 : rows) {
    row_w.push_back(axis_weights(r0, th, Hp, options));
    for (int64_t i = 0; i < th && r0 + i < H; ++i) row_sum[size_t(r0 + i)] += row_w.back()[size_t(i)];
  }
  for (int64_t c0 : cols) {
    col_w.push_back(axis_weights(c0, tw, Wp, options));
    for (int64_t j = 0; j < tw && c0 + j < W; ++j) col_sum[size_t(c0 + j)] += col_w.back()[size_t(j)];
  }

  Tensor out = Tensor::zeros({out_channels, H, W});
  float* o = out.data<float>();
  int64_t done = 0;
  for (size_t ri = 0; ri < rows.size(); ++ri) {
    const int64_t r0 = rows[ri], h_in = std::min(th, H - r0);
    for (size_t ci = 0; ci < cols.size(); ++ci) {
      const int64_t c0 = cols[ci], w_in = std::min(tw, W - c0);
      const Tensor y = run_tile(fn, cut_tile(data, C, H, W, r0, c0, th, tw), out_channels);
      const float* yd = y.data<float>();
      const float* wr = row_w[ri].data();
      const float* wc = col_w[ci].data();
      for (int64_t c = 0; c < out_channels; ++c) {
        for (int64_t i = 0; i < h_in; ++i) {
          if (wr[i] == 0.0f) continue;
          const float* yrow = yd + (c * th + i) * tw;
          float* orow = o + (c * H + r0 + i) * W + c0;
          for (int64_t j = 0; j < w_in; ++j) orow[j] += wr[i] * wc[j] * yrow[j];
        }
      }
      ++done;
      if (on_tile) on_tile(done, total);
    }
  }
  for (int64_t c = 0; c < out_channels; ++c)
    for (int64_t i = 0; i < H; ++i) {
      float* orow = o + (c * H + i) * W;
      for (int64_t j = 0; j < W; ++j) orow[j] = float(double(orow[j]) / (row_sum[size_t(i)] * col_sum[size_t(j)]));
    }
  return out;
}

}  // namespace fg::data
