// fastai v1's get_transforms for (C, H, W) images (data/augment.h): the draw, the composed coordinate map, one
// bilinear resample with reflection, and lighting in logit space.
//
// The coordinate map is computed once per call (a source pixel, its neighbours and the fractional position per
// output pixel) and then applied to every channel, so an RGB image costs one map and three gathers. Coordinates
// are computed in f64, interpolation in f32, lighting in f64.
#include "data/augment.h"

#include <array>
#include <cmath>
#include <vector>

#include "tensor/error.h"

namespace fg::data {

namespace {

constexpr double kLogitEps = 1e-7;  // fastai v1's logit_ clamp
constexpr double kSnap = 1e-9;      // a source coordinate this close to an integer is that integer

// The 3x3 homography of fastai's _find_coeffs(orig, targ): maps each target corner to its original corner.
// h = (c0..c7) with H = [[c0, c1, c2], [c3, c4, c5], [c6, c7, 1]].
using Homography = std::array<double, 9>;

Homography find_coeffs(const std::array<std::array<double, 2>, 4>& orig,
                       const std::array<std::array<double, 2>, 4>& targ) {
  double a[8][9];  // the augmented system [A | b]
  for (int k = 0; k < 4; ++k) {
    const double tx = targ[size_t(k)][0], ty = targ[size_t(k)][1];
    const double ox = orig[size_t(k)][0], oy = orig[size_t(k)][1];
    const double r0[9] = {tx, ty, 1, 0, 0, 0, -ox * tx, -ox * ty, ox};
    const double r1[9] = {0, 0, 0, tx, ty, 1, -oy * tx, -oy * ty, oy};
    for (int j = 0; j < 9; ++j) {
      a[2 * k][j] = r0[j];
      a[2 * k + 1][j] = r1[j];
    }
  }
  // Gaussian elimination with partial pivoting.
  for (int col = 0; col < 8; ++col) {
    int pivot = col;
    for (int r = col + 1; r < 8; ++r)
      if (std::fabs(a[r][col]) > std::fabs(a[pivot][col])) pivot = r;
    FG_CHECK(std::fabs(a[pivot][col]) > 1e-12,
             "apply_augment: the warp magnitudes fold the square over itself (degenerate perspective); keep each "
             "magnitude inside (-1, 1)");
    if (pivot != col)
      for (int j = 0; j < 9; ++j) std::swap(a[col][j], a[pivot][j]);
    for (int r = 0; r < 8; ++r) {
      if (r == col) continue;
      const double f = a[r][col] / a[col][col];
      if (f == 0.0) continue;
      for (int j = col; j < 9; ++j) a[r][j] -= f * a[col][j];
    }
  }
  Homography h{};
  for (int i = 0; i < 8; ++i) h[size_t(i)] = a[i][8] / a[i][i];
  h[8] = 1.0;
  return h;
}

Homography symmetric_warp(const AugmentParams& p) {
  const double m0 = p.warp_y_right, m1 = p.warp_y, m2 = p.warp_x_bottom, m3 = p.warp_x;
  const std::array<std::array<double, 2>, 4> orig = {{{-1, -1}, {-1, 1}, {1, -1}, {1, 1}}};
  const std::array<std::array<double, 2>, 4> targ = {
      {{-1 - m3, -1 - m1}, {-1 - m2, 1 + m1}, {1 + m3, -1 - m0}, {1 + m2, 1 + m0}}};
  return find_coeffs(orig, targ);
}

void check_params(const AugmentParams& p) {
  if (p.warp) {
    for (double m : {p.warp_x, p.warp_y, p.warp_x_bottom, p.warp_y_right})
      FG_CHECK(std::isfinite(m) && std::fabs(m) < 1.0, "apply_augment: warp magnitudes must lie in (-1, 1), got " << m);
  }
  if (p.zoom) {
    FG_CHECK(std::isfinite(p.zoom_scale) && p.zoom_scale > 0.0,
             "apply_augment: zoom_scale must be positive, got " << p.zoom_scale);
    FG_CHECK(std::isfinite(p.zoom_row) && std::isfinite(p.zoom_col),
             "apply_augment: zoom_row and zoom_col must be finite, got " << p.zoom_row << ", " << p.zoom_col);
  }
  if (p.brightness)
    FG_CHECK(p.brightness_change > 0.0 && p.brightness_change < 1.0,
             "apply_augment: brightness_change must lie in (0, 1) (0.5 is no change), got " << p.brightness_change);
  if (p.contrast)
    FG_CHECK(std::isfinite(p.contrast_scale) && p.contrast_scale > 0.0,
             "apply_augment: contrast_scale must be positive (1 is no change), got " << p.contrast_scale);
}

// fastai's grid point for index i of n: linspace(-1, 1, n), or -1 when n == 1.
double grid_coordinate(double i, int64_t n) {
  return n > 1 ? -1.0 + 2.0 * i / double(n - 1) : -1.0;
}

// The normalised source point of normalised output point (x, y).
void map_point(const AugmentParams& p, const Homography* warp, double& x, double& y) {
  if (warp != nullptr) {
    const Homography& h = *warp;
    const double d = h[6] * x + h[7] * y + h[8];
    const double wx = (h[0] * x + h[1] * y + h[2]) / d;
    const double wy = (h[3] * x + h[4] * y + h[5]) / d;
    x = wx;
    y = wy;
  }
  if (p.zoom) {
    const double s = p.zoom_scale;
    x = x / s + (1.0 - 1.0 / s) * (2.0 * p.zoom_col - 1.0);
    y = y / s + (1.0 - 1.0 / s) * (2.0 * p.zoom_row - 1.0);
  }
  if (p.flip) x = -x;
}

// Normalised coordinate -> pixel coordinate (align_corners=True).
double to_pixel(double u, int64_t n) {
  return (u + 1.0) * 0.5 * double(n - 1);
}

// PyTorch's reflect_coordinates for align_corners=True: reflect about the centres of pixels 0 and n - 1, then clip.
double reflect(double v, int64_t n) {
  if (n <= 1) return 0.0;
  const double span = double(n - 1);
  if (v >= 0.0 && v <= span) return v;  // the common case, without fmod
  v = std::fabs(v);
  const double flips = std::floor(v / span);
  const double extra = std::fmod(v, span);
  v = (std::fmod(flips, 2.0) == 0.0) ? extra : span - extra;
  return std::min(std::max(v, 0.0), span);
}

double snap(double v) {
  const double r = std::nearbyint(v);
  return std::fabs(v - r) < kSnap ? r : v;
}

// One output pixel's bilinear taps into an (H, W) plane: the top-left source pixel `offset`, the steps to its
// right and lower neighbours (0 when the weight there is 0, so a pixel with weight 0 is never read) and the
// fractional position.
struct PixelTaps {
  int64_t offset;
  int32_t dx, dy;
  float fx, fy;
};

std::vector<PixelTaps> build_map(const AugmentParams& p, int64_t H, int64_t W) {
  Homography h{};
  const Homography* warp = nullptr;
  if (p.warp) {
    h = symmetric_warp(p);
    warp = &h;
  }
  std::vector<PixelTaps> map(size_t(H * W));
  for (int64_t i = 0; i < H; ++i) {
    for (int64_t j = 0; j < W; ++j) {
      double x = grid_coordinate(double(j), W), y = grid_coordinate(double(i), H);
      map_point(p, warp, x, y);
      const double px = reflect(snap(to_pixel(x, W)), W);
      const double py = reflect(snap(to_pixel(y, H)), H);
      const int64_t x0 = std::min(int64_t(px), W - 1), y0 = std::min(int64_t(py), H - 1);
      PixelTaps& t = map[size_t(i * W + j)];
      t.offset = y0 * W + x0;
      t.fx = float(px - double(x0));
      t.fy = float(py - double(y0));
      t.dx = (t.fx != 0.0f && x0 + 1 < W) ? 1 : 0;
      t.dy = (t.fy != 0.0f && y0 + 1 < H) ? int32_t(W) : 0;
    }
  }
  return map;
}

void check_probability(double p, const char* name) {
  FG_CHECK(p >= 0.0 && p <= 1.0, "augment options: " << name << " must be a probability in [0, 1], got " << p);
}

}  // namespace

AugmentParams draw_augment(const AugmentOptions& o, Generator& gen) {
  check_probability(o.p_flip, "p_flip");
  check_probability(o.p_warp, "p_warp");
  check_probability(o.p_zoom, "p_zoom");
  check_probability(o.p_brightness, "p_brightness");
  check_probability(o.p_contrast, "p_contrast");
  FG_CHECK(o.warp_magnitude >= 0.0 && o.warp_magnitude < 1.0,
           "augment options: warp_magnitude must lie in [0, 1) (fastai's default for restoration is 0.25), got "
               << o.warp_magnitude);
  FG_CHECK(std::isfinite(o.max_zoom) && o.max_zoom >= 1.0,
           "augment options: max_zoom must be at least 1 (1 is no zoom), got " << o.max_zoom);
  FG_CHECK(o.brightness_lo > 0.0 && o.brightness_lo <= o.brightness_hi && o.brightness_hi < 1.0,
           "augment options: the brightness range must satisfy 0 < lo <= hi < 1 (0.5 is no change), got ("
               << o.brightness_lo << ", " << o.brightness_hi << ")");
  FG_CHECK(std::isfinite(o.contrast_hi) && o.contrast_lo > 0.0 && o.contrast_lo <= o.contrast_hi,
           "augment options: the contrast range must satisfy 0 < lo <= hi (1 is no change), got ("
               << o.contrast_lo << ", " << o.contrast_hi << ")");

  const uint64_t first = gen.reserve(kAugmentDraws);
  double u[kAugmentDraws];
  for (int k = 0; k < kAugmentDraws; ++k) u[k] = double(philox_uniform01(gen.word(first, uint64_t(k))));

  AugmentParams p;
  p.flip = u[0] < o.p_flip;
  p.warp = u[1] < o.p_warp;
  if (p.warp) {
    const double m = o.warp_magnitude;
    p.warp_y_right = m * (2.0 * u[2] - 1.0);
    p.warp_y = m * (2.0 * u[3] - 1.0);
    p.warp_x_bottom = m * (2.0 * u[4] - 1.0);
    p.warp_x = m * (2.0 * u[5] - 1.0);
  }
  p.zoom = u[6] < o.p_zoom;
  if (p.zoom) {
    p.zoom_scale = 1.0 + (o.max_zoom - 1.0) * u[7];
    p.zoom_row = u[8];
    p.zoom_col = u[9];
  }
  p.brightness = u[10] < o.p_brightness;
  if (p.brightness) p.brightness_change = o.brightness_lo + (o.brightness_hi - o.brightness_lo) * u[11];
  p.contrast = u[12] < o.p_contrast;
  if (p.contrast) {
    const double llo = std::log(o.contrast_lo), lhi = std::log(o.contrast_hi);
    p.contrast_scale = std::exp(llo + (lhi - llo) * u[13]);
  }
  return p;
}

SourcePoint augment_source_point(const AugmentParams& params, int64_t H, int64_t W, double row, double col) {
  FG_CHECK(H >= 1 && W >= 1, "augment_source_point: the image must be at least 1x1, got " << H << "x" << W);
  check_params(params);
  Homography h{};
  if (params.warp) h = symmetric_warp(params);
  double x = grid_coordinate(col, W), y = grid_coordinate(row, H);
  map_point(params, params.warp ? &h : nullptr, x, y);
  return {to_pixel(y, H), to_pixel(x, W)};
}

Tensor apply_augment(const Tensor& chw, const AugmentParams& params, bool lighting) {
  FG_CHECK(chw.defined() && chw.dim() == 3, "apply_augment: expected a (C, H, W) image, got "
                                                << (chw.defined() ? shape_str(chw.shape()) : "an undefined tensor")
                                                << " (use unsqueeze(0) for a single-channel (H, W) image)");
  FG_CHECK(chw.dtype() == DType::F32, "apply_augment: expected an f32 image, got "
                                          << dtype_name(chw.dtype()) << " (convert with .to(DType::F32))");
  FG_CHECK(chw.device().is_cpu(),
           "apply_augment: the image is on " << chw.device().str() << "; copy it with .to(Device::cpu()) first");
  FG_CHECK(chw.numel() > 0, "apply_augment: the image is empty, shape " << shape_str(chw.shape()));
  check_params(params);
  const int64_t C = chw.size(0), H = chw.size(1), W = chw.size(2);
  const Tensor src = chw.contiguous();
  Tensor out;
  if (params.flip || params.warp || params.zoom) {
    const std::vector<PixelTaps> map = build_map(params, H, W);
    out = Tensor::empty({C, H, W});
    const float* s = src.data<float>();
    float* o = out.data<float>();
    for (int64_t c = 0; c < C; ++c) {
      const float* plane = s + c * H * W;
      float* dst = o + c * H * W;
      for (int64_t k = 0; k < H * W; ++k) {
        const PixelTaps& t = map[size_t(k)];
        const float* q = plane + t.offset;
        const float top = (1.0f - t.fx) * q[0] + t.fx * q[t.dx];
        const float bottom = (1.0f - t.fx) * q[t.dy] + t.fx * q[t.dy + t.dx];
        dst[k] = (1.0f - t.fy) * top + t.fy * bottom;
      }
    }
  } else {
    out = src.clone();
  }
  if (lighting && (params.brightness || params.contrast)) {
    // sigmoid((logit(x) + b) * s) = 1 / (1 + r^s * exp(-b s)) with r = (1 - x) / x: one pow per pixel (none
    // without contrast) instead of a log and an exp. b = scipy.special.logit(change), unclamped, as fastai. The pow
    // is in f32 (a quarter of the time of f64's); its relative error of a few 1e-7 is scaled by y (1 - y) <= 1/4.
    const double c = params.brightness_change;
    const double b = params.brightness ? std::log(c / (1.0 - c)) : 0.0;
    const double s = params.contrast ? params.contrast_scale : 1.0;
    const double k_factor = std::exp(-b * s);
    float* o = out.data<float>();
    for (int64_t k = 0; k < out.numel(); ++k) {
      const double x = std::min(std::max(double(o[k]), kLogitEps), 1.0 - kLogitEps);
      const double r = (1.0 - x) / x;
      const double rs = s == 1.0 ? r : double(std::pow(float(r), float(s)));
      o[k] = float(1.0 / (1.0 + rs * k_factor));
    }
  }
  return out;
}

}  // namespace fg::data
