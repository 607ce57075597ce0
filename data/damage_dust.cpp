// Dust and scratches (data/damage.h part 2; SPEC B "dustify"; seeds/004 4.1.3): procedural overlay sheets, the
// crop/warp/invert of a patch of one, and the blend.
//
// Planes are kept premultiplied (alpha, alpha * value) while elements are composited ("over") and while a patch is
// resampled, so bilinear sampling at the edge of a light speck does not mix in the undefined value of empty
// pixels (which would leave a dark fringe). The value is divided out at the end.
//
// Sizes are in units of a 256-px frame (`unit` = the frame's shorter side / 256 pixels; the frame is the image
// itself unless a caller says it is a crop of a larger one), so a 64 px and a 256 px image see the same dust at
// their own scale, a 64 px crop of a 256 px image the dust of the 256 px image, and element counts are per
// 256x256 units of area. A sheet is
// conceptually sheet_scale x the image, but only the window that the warped patch reads is rasterised: every
// element's parameters are still drawn (the random stream does not depend on the window), only pixels outside
// the window are skipped. That keeps a 256 px damage at a few milliseconds whatever the sheet scale.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <list>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "data/damage.h"
#include "data/damage_draws.h"
#include "data/image_io.h"
#include "data/resize.h"
#include "tensor/error.h"

namespace fg::data {

namespace {

using detail::Draws;

constexpr double kTwoPi = 2.0 * M_PI;

void check_options(const DustOptions& o) {
  FG_CHECK(o.overlays_per_image >= 0, "dust: overlays_per_image must be 0 or more, got " << o.overlays_per_image);
  FG_CHECK(std::isfinite(o.density) && o.density >= 0.0, "dust: density must be 0 or more, got " << o.density);
  FG_CHECK(o.p_invert >= 0.0 && o.p_invert <= 1.0,
           "dust: p_invert must be a probability in [0, 1], got " << o.p_invert);
  FG_CHECK(o.p_dark >= 0.0 && o.p_dark <= 1.0, "dust: p_dark must be a probability in [0, 1], got " << o.p_dark);
  FG_CHECK(o.warp_magnitude >= 0.0 && o.warp_magnitude < 1.0,
           "dust: warp_magnitude must be in [0, 1), got " << o.warp_magnitude);
  FG_CHECK(
      std::isfinite(o.sheet_scale) && o.sheet_scale >= 1.0 && o.sheet_scale <= 16.0,
      "dust: sheet_scale must be between 1 and 16 (the sheet is that many times the image), got " << o.sheet_scale);
  FG_CHECK(o.overlay_cache_mb >= 0, "dust: overlay_cache_mb must be 0 or more, got " << o.overlay_cache_mb);
}

void check_size(int64_t H, int64_t W, const char* op) {
  FG_CHECK(H >= 1 && W >= 1, op << ": the image must be at least 1x1, got " << H << "x" << W);
}

// A window of a sheet, premultiplied: its place (x0, y0) in the sheet and its size.
struct Planes {
  int64_t x0 = 0, y0 = 0, H = 0, W = 0;
  std::vector<float> alpha, premul;

  Planes() = default;
  Planes(int64_t x0_, int64_t y0_, int64_t h, int64_t w)
      : x0(x0_), y0(y0_), H(h), W(w), alpha(size_t(h * w), 0.0f), premul(size_t(h * w), 0.0f) {}
  int64_t x1() const { return x0 + W; }
  int64_t y1() const { return y0 + H; }
  // Porter-Duff "over" of a mark of coverage a and value v at sheet pixel (x, y), inside the window.
  void over(int64_t x, int64_t y, float a, float v) {
    const size_t i = size_t((y - y0) * W + (x - x0));
    premul[i] = a * v + (1.0f - a) * premul[i];
    alpha[i] = a + (1.0f - a) * alpha[i];
  }
};

// Pixel bounds [lo, hi) of a mark reaching from a - r to b + r, cut to [wlo, whi).
struct Span {
  int64_t lo, hi;
  bool empty() const { return lo >= hi; }
};
Span span(double a, double b, double r, int64_t wlo, int64_t whi) {
  return {std::max(wlo, int64_t(std::floor(a - r))), std::min(whi, int64_t(std::ceil(b + r)) + 1)};
}

// How much of a box filter of width s centred at distance rho falls inside [-R, R]: the anti-aliased (s = 1 px)
// or softened (s > 1) coverage of a mark of half-width R; below 1 when the mark is thinner than the filter.
inline double overlap(double rho, double R, double s) {
  return std::max(0.0, std::min(rho + 0.5 * s, R) - std::max(rho - 0.5 * s, -R)) / s;
}

inline double smoothstep01(double x) {
  x = std::clamp(x, 0.0, 1.0);
  return x * x * (3.0 - 2.0 * x);
}

// Light or dark, each element.
double element_value(Draws& d, const DustOptions& o) {
  return d.bernoulli(o.p_dark) ? d.uniform(0.0, 0.1) : d.uniform(0.9, 1.0);
}

// A speck: a slightly elliptic, slightly lumpy disc (radius with 2nd and 3rd angular harmonics), radius heavy-tailed
// (Pareto, minimum 0.5, tail index 1.5: half below 0.8 units, one in a hundred above 10), edge from crisp
// (anti-aliased) to soft.
void speck(Planes& p, Draws& d, const DustOptions& o, double unit, double Hs, double Ws) {
  const double cx = d.uniform(-2.0, Ws + 2.0), cy = d.uniform(-2.0, Hs + 2.0);
  const double r = std::min(d.pareto(0.5, 1.5), 12.0) * unit;
  const double k = std::sqrt(d.uniform(1.0, 1.8)), theta = d.uniform(0.0, M_PI);
  const double a2 = d.uniform(0.0, 0.18), p2 = d.uniform(0.0, kTwoPi);
  const double a3 = d.uniform(0.0, 0.12), p3 = d.uniform(0.0, kTwoPi);
  const double soft = 1.0 + d.uniform(0.0, 0.8) * r;
  const double opacity = d.uniform(0.55, 1.0);
  const float value = float(element_value(d, o));

  const double reach = r * (1.0 + a2 + a3) * k + soft;
  const Span xs = span(cx, cx, reach, p.x0, p.x1()), ys = span(cy, cy, reach, p.y0, p.y1());
  if (xs.empty() || ys.empty()) return;
  const double c = std::cos(theta), s = std::sin(theta);
  const double c2 = std::cos(p2), s2 = std::sin(p2), c3 = std::cos(p3), s3 = std::sin(p3);
  const bool lumpy = r > 1.5;  // below that the harmonics change less than the anti-aliasing
  for (int64_t y = ys.lo; y < ys.hi; ++y) {
    for (int64_t x = xs.lo; x < xs.hi; ++x) {
      const double dx = double(x) + 0.5 - cx, dy = double(y) + 0.5 - cy;
      const double ex = (c * dx + s * dy) * k, ey = (-s * dx + c * dy) / k;
      const double rho = std::sqrt(ex * ex + ey * ey);
      double R = r;
      if (lumpy && rho > 0.0) {
        // cos(n phi + p) from the direction (ex, ey) / rho, without an atan2 per pixel.
        const double cp = ex / rho, sp = ey / rho;
        const double cos2 = cp * cp - sp * sp, sin2 = 2.0 * cp * sp;
        const double cos3 = cp * (4.0 * cp * cp - 3.0), sin3 = sp * (3.0 - 4.0 * sp * sp);
        R *= 1.0 + a2 * (cos2 * c2 - sin2 * s2) + a3 * (cos3 * c3 - sin3 * s3);
      }
      const double cov = overlap(rho, R, soft);
      if (cov > 0.0) p.over(x, y, float(opacity * cov), value);
    }
  }
}

// A hair or fibre: a smooth random curve whose curvature performs a damped random walk (so the heading turns
// smoothly, sometimes curling), anti-aliased, thinning towards its ends. Length heavy-tailed (Pareto from 12 units,
// capped at 180).
void hair(Planes& p, Draws& d, const DustOptions& o, double unit, double Hs, double Ws) {
  const double length = std::min(d.pareto(12.0, 1.3), 180.0) * unit;
  const double half_width = 0.5 * d.uniform(0.5, 1.4) * unit;
  const double opacity = d.uniform(0.5, 1.0);
  const float value = float(element_value(d, o));
  const double stiffness = d.uniform(0.3, 1.5);
  double x = d.uniform(0.0, Ws), y = d.uniform(0.0, Hs), heading = d.uniform(0.0, kTwoPi);
  double kappa = d.normal(0.0, 0.03 * stiffness);  // per unit of length
  const double step = std::max(1.0, unit);         // pixels
  const double step_units = step / unit;
  const int64_t steps = std::max<int64_t>(1, int64_t(std::ceil(length / step)));
  std::vector<double> px(size_t(steps + 1)), py(size_t(steps + 1));
  px[0] = x;
  py[0] = y;
  for (int64_t i = 1; i <= steps; ++i) {
    kappa = kappa * std::pow(0.98, step_units) + d.normal(0.0, 0.01 * stiffness) * std::sqrt(step_units);
    heading += kappa * step_units;
    x += step * std::cos(heading);
    y += step * std::sin(heading);
    px[size_t(i)] = x;
    py[size_t(i)] = y;
  }
  const double reach = half_width + 1.5;
  const auto [minx, maxx] = std::minmax_element(px.begin(), px.end());
  const auto [miny, maxy] = std::minmax_element(py.begin(), py.end());
  const Span xs = span(*minx, *maxx, reach, p.x0, p.x1()), ys = span(*miny, *maxy, reach, p.y0, p.y1());
  if (xs.empty() || ys.empty()) return;
  // Coverage is the largest over the segments (not their sum), so joints are not drawn twice.
  const int64_t bw = xs.hi - xs.lo, bh = ys.hi - ys.lo;
  std::vector<float> cover(size_t(bw * bh), 0.0f);
  for (int64_t i = 0; i < steps; ++i) {
    const double ax = px[size_t(i)], ay = py[size_t(i)], bx = px[size_t(i + 1)], by = py[size_t(i + 1)];
    const double t = (double(i) + 0.5) / double(steps);
    const double hw = half_width * (0.35 + 0.65 * std::sqrt(std::sin(M_PI * t)));
    const Span sx = span(std::min(ax, bx), std::max(ax, bx), hw + 1.5, xs.lo, xs.hi);
    const Span sy = span(std::min(ay, by), std::max(ay, by), hw + 1.5, ys.lo, ys.hi);
    const double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int64_t yy = sy.lo; yy < sy.hi; ++yy) {
      for (int64_t xx = sx.lo; xx < sx.hi; ++xx) {
        const double qx = double(xx) + 0.5 - ax, qy = double(yy) + 0.5 - ay;
        const double u = len2 > 0.0 ? std::clamp((qx * dx + qy * dy) / len2, 0.0, 1.0) : 0.0;
        const double ex = qx - u * dx, ey = qy - u * dy;
        const float cov = float(overlap(std::sqrt(ex * ex + ey * ey), hw, 1.0));
        float& c = cover[size_t((yy - ys.lo) * bw + (xx - xs.lo))];
        c = std::max(c, cov);
      }
    }
  }
  for (int64_t yy = ys.lo; yy < ys.hi; ++yy)
    for (int64_t xx = xs.lo; xx < xs.hi; ++xx) {
      const float c = cover[size_t((yy - ys.lo) * bw + (xx - xs.lo))];
      if (c > 0.0f) p.over(xx, yy, float(opacity) * c, value);
    }
}

// A scratch: a thin near-vertical line (slope ~ N(0, 0.03)), slightly wavy (a long and a short sine), its
// opacity varying slowly along its length and fading in at both ends; half of them cross the whole sheet, the rest
// cover 15 to 80 % of its height; one in seven is wide (1.5 to 4 units).
void scratch(Planes& p, Draws& d, const DustOptions& o, double unit, double Hs, double Ws) {
  const double x0 = d.uniform(0.0, Ws), slope = d.normal(0.0, 0.03);
  double ya, yb;
  if (d.bernoulli(0.5)) {
    ya = -2.0;
    yb = Hs + 2.0;
  } else {
    const double len = d.uniform(0.15, 0.8) * Hs;
    ya = d.uniform(-0.5 * len, Hs - 0.5 * len);
    yb = ya + len;
  }
  const double a1 = d.uniform(0.0, 1.5) * unit, l1 = d.uniform(60.0, 300.0) * unit, f1 = d.uniform(0.0, kTwoPi);
  const double a2 = d.uniform(0.0, 0.5) * unit, l2 = d.uniform(10.0, 40.0) * unit, f2 = d.uniform(0.0, kTwoPi);
  const double hw = 0.5 * (d.bernoulli(1.0 / 7.0) ? d.uniform(1.5, 4.0) : d.uniform(0.4, 1.4)) * unit;
  const double opacity = d.uniform(0.35, 1.0), depth = d.uniform(0.0, 0.6);
  const double lo = d.uniform(20.0, 200.0) * unit, fo = d.uniform(0.0, kTwoPi);
  const float value = float(element_value(d, o));
  const double fade = std::min(8.0 * unit + 1.0, 0.25 * (yb - ya));

  const Span ys = span(ya, yb, 0.0, p.y0, p.y1());
  for (int64_t y = ys.lo; y < ys.hi; ++y) {
    const double yc = double(y) + 0.5;
    const double ends = std::clamp(std::min(yc - ya, yb - yc) / fade, 0.0, 1.0);
    if (ends <= 0.0) continue;
    const double xc =
        x0 + slope * (yc - ya) + a1 * std::sin(kTwoPi * yc / l1 + f1) + a2 * std::sin(kTwoPi * yc / l2 + f2);
    const double op = opacity * (1.0 - depth * 0.5 * (1.0 + std::sin(kTwoPi * yc / lo + fo))) * ends;
    const Span xs = span(xc, xc, hw + 1.0, p.x0, p.x1());
    for (int64_t x = xs.lo; x < xs.hi; ++x) {
      const double cov = overlap(std::fabs(double(x) + 0.5 - xc), hw, 1.0);
      if (cov > 0.0) p.over(x, y, float(op * cov), value);
    }
  }
}

// A blotch: an irregular soft stain, the level set of a sum of 3 to 9 Gaussian bumps scattered about a centre,
// with a smooth ramp across the level (soft edges) and a low opacity.
void blotch(Planes& p, Draws& d, const DustOptions& o, double unit, double Hs, double Ws) {
  const double cx = d.uniform(0.0, Ws), cy = d.uniform(0.0, Hs);
  const double R = d.uniform(3.0, 14.0) * unit;
  const int64_t n = d.uniform_int(3, 9);
  std::vector<double> bx(static_cast<size_t>(n)), by(static_cast<size_t>(n)), inv2s2(static_cast<size_t>(n));
  double reach = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    bx[size_t(k)] = cx + d.normal(0.0, 0.55 * R);
    by[size_t(k)] = cy + d.normal(0.0, 0.55 * R);
    const double s = R * d.uniform(0.25, 0.6);
    inv2s2[size_t(k)] = 0.5 / (s * s);
    reach = std::max(reach, std::hypot(bx[size_t(k)] - cx, by[size_t(k)] - cy) + 3.4 * s);
  }
  // Beyond `reach` every bump is below exp(-3.4^2 / 2) = 0.0031, the sum below 9 * 0.0031 = 0.028, under the lowest
  // ramp start (0.35 - 0.3 = 0.05): alpha is exactly 0 there, and the cut at the box is invisible.
  const double level = d.uniform(0.35, 0.7), ramp = d.uniform(0.08, 0.3);
  const double opacity = d.uniform(0.12, 0.5);
  const float value = float(element_value(d, o));
  const Span xs = span(cx, cx, reach, p.x0, p.x1()), ys = span(cy, cy, reach, p.y0, p.y1());
  if (xs.empty() || ys.empty()) return;
  for (int64_t y = ys.lo; y < ys.hi; ++y) {
    for (int64_t x = xs.lo; x < xs.hi; ++x) {
      const double qx = double(x) + 0.5, qy = double(y) + 0.5;
      double f = 0.0;
      for (int64_t k = 0; k < n; ++k) {
        const double ex = qx - bx[size_t(k)], ey = qy - by[size_t(k)];
        f += std::exp(-(ex * ex + ey * ey) * inv2s2[size_t(k)]);
      }
      const double a = opacity * smoothstep01((f - level + ramp) / (2.0 * ramp));
      if (a > 0.0) p.over(x, y, float(a), value);
    }
  }
}

// Draws a whole Hs x Ws sheet from d and rasterises the part inside p's window. Element rates per 256x256 units of
// area at density 1: 45 specks, 1.5 hairs, 0.35 blotches; 0.6 scratches per 256 units of width. Each sheet has its
// own dustiness, a log-normal factor (sigma 0.5) on every rate, so some patches are clean and some filthy.
void render_sheet(Planes& p, Draws& d, const DustOptions& o, double unit, int64_t Hs, int64_t Ws) {
  const double H = double(Hs), W = double(Ws);
  const double area = (H / unit) * (W / unit) / 65536.0;
  const double dust = std::exp(d.normal(0.0, 0.5)) * o.density;
  const int64_t blotches = d.poisson(0.35 * area * dust);
  const int64_t scratches = d.poisson(0.6 * (W / unit) / 256.0 * dust);
  const int64_t hairs = d.poisson(1.5 * area * dust);
  const int64_t specks = d.poisson(45.0 * area * dust);
  for (int64_t i = 0; i < blotches; ++i) blotch(p, d, o, unit, H, W);
  for (int64_t i = 0; i < scratches; ++i) scratch(p, d, o, unit, H, W);
  for (int64_t i = 0; i < hairs; ++i) hair(p, d, o, unit, H, W);
  for (int64_t i = 0; i < specks; ++i) speck(p, d, o, unit, H, W);
}

// (alpha, alpha * value) -> an Overlay, value = premul / alpha (0 where alpha is 0).
Overlay to_overlay(const Planes& p) {
  Overlay ov{Tensor::empty({p.H, p.W}), Tensor::empty({p.H, p.W})};
  float* a = ov.alpha.data<float>();
  float* v = ov.value.data<float>();
  for (int64_t i = 0; i < p.H * p.W; ++i) {
    const float al = std::clamp(p.alpha[size_t(i)], 0.0f, 1.0f);
    a[i] = al;
    v[i] = al > 0.0f ? std::clamp(p.premul[size_t(i)] / al, 0.0f, 1.0f) : 0.0f;
  }
  return ov;
}

// Where an H x W patch reads from an Hs x Ws sheet: the output's unit square (s, t) maps by a perspective
// transform to a quadrilateral of sheet pixels. The warp is fastai's symmetric warp with magnitudes (p, q) drawn
// in (-m, m): in the patch's normalised [-1, 1]^2 frame the corners (-1,-1), (1,-1), (1,1), (-1,1) move to
// (-1-p, -1-q), (1+p, -1+q), (1-p, 1-q), (-1+p, 1+q); then a random horizontal and vertical flip; the frame itself is
// placed uniformly where the whole quadrilateral fits in the sheet (centred, edges repeating, when it cannot).
struct Placement {
  double a, b, c, d, e, f, g, h;  // x = (a s + b t + c) / (g s + h t + 1), y = (d s + e t + f) / (g s + h t + 1)
  bool flip_x, flip_y;
  double minx, maxx, miny, maxy;  // the quadrilateral's bounding box, sheet pixels
};

Placement draw_placement(Draws& dr, int64_t H, int64_t W, int64_t Hs, int64_t Ws, double magnitude) {
  const double p = dr.uniform(-magnitude, magnitude), q = dr.uniform(-magnitude, magnitude);
  Placement pl{};
  pl.flip_x = dr.bernoulli(0.5);
  pl.flip_y = dr.bernoulli(0.5);
  const double half_w = 0.5 * double(W), half_h = 0.5 * double(H);
  const double mx = std::fabs(p) * half_w, my = std::fabs(q) * half_h;  // how far the corners reach out
  const double left =
      double(Ws) >= double(W) + 2.0 * mx ? dr.uniform(mx, double(Ws) - double(W) - mx) : 0.5 * (double(Ws) - double(W));
  const double top =
      double(Hs) >= double(H) + 2.0 * my ? dr.uniform(my, double(Hs) - double(H) - my) : 0.5 * (double(Hs) - double(H));
  const auto px = [&](double xn) { return left + (xn + 1.0) * half_w; };
  const auto py = [&](double yn) { return top + (yn + 1.0) * half_h; };
  // Corners for (s, t) = (0,0), (1,0), (1,1), (0,1).
  const double x0 = px(-1 - p), y0 = py(-1 - q), x1 = px(1 + p), y1 = py(-1 + q);
  const double x2 = px(1 - p), y2 = py(1 - q), x3 = px(-1 + p), y3 = py(1 + q);
  // Heckbert's square-to-quadrilateral mapping.
  const double sx = x0 - x1 + x2 - x3, sy = y0 - y1 + y2 - y3;
  if (sx == 0.0 && sy == 0.0) {
    pl.a = x1 - x0, pl.b = x2 - x1, pl.c = x0, pl.d = y1 - y0, pl.e = y2 - y1, pl.f = y0, pl.g = 0.0, pl.h = 0.0;
  } else {
    const double dx1 = x1 - x2, dx2 = x3 - x2, dy1 = y1 - y2, dy2 = y3 - y2;
    const double den = dx1 * dy2 - dx2 * dy1;
    pl.g = (sx * dy2 - dx2 * sy) / den;
    pl.h = (dx1 * sy - sx * dy1) / den;
    pl.a = x1 - x0 + pl.g * x1, pl.b = x3 - x0 + pl.h * x3, pl.c = x0;
    pl.d = y1 - y0 + pl.g * y1, pl.e = y3 - y0 + pl.h * y3, pl.f = y0;
  }
  pl.minx = std::min({x0, x1, x2, x3}), pl.maxx = std::max({x0, x1, x2, x3});
  pl.miny = std::min({y0, y1, y2, y3}), pl.maxy = std::max({y0, y1, y2, y3});
  return pl;
}

// The part of the sheet that bilinear sampling inside the quadrilateral can touch.
Planes window_for(const Placement& pl, int64_t Hs, int64_t Ws) {
  const int64_t x0 = std::clamp<int64_t>(int64_t(std::floor(pl.minx - 0.5)) - 1, 0, Ws - 1);
  const int64_t x1 = std::clamp<int64_t>(int64_t(std::ceil(pl.maxx - 0.5)) + 2, x0 + 1, Ws);
  const int64_t y0 = std::clamp<int64_t>(int64_t(std::floor(pl.miny - 0.5)) - 1, 0, Hs - 1);
  const int64_t y1 = std::clamp<int64_t>(int64_t(std::ceil(pl.maxy - 0.5)) + 2, y0 + 1, Hs);
  return Planes(x0, y0, y1 - y0, x1 - x0);
}

// Bilinear resampling of the (premultiplied) window at the placement's points, pixel centres at +0.5; samples
// outside the window (only where the sheet itself ends) repeat its edge. Then value = premul / alpha, inverted
// when asked.
Overlay resample(const Planes& win, const Placement& pl, int64_t H, int64_t W, bool invert) {
  Overlay ov{Tensor::empty({H, W}), Tensor::empty({H, W})};
  float* A = ov.alpha.data<float>();
  float* V = ov.value.data<float>();
  const float* wa = win.alpha.data();
  const float* wp = win.premul.data();
  const double max_x = double(win.W - 1), max_y = double(win.H - 1);
  const double off_x = 0.5 + double(win.x0), off_y = 0.5 + double(win.y0);
  for (int64_t i = 0; i < H; ++i) {
    double t = (double(i) + 0.5) / double(H);
    if (pl.flip_y) t = 1.0 - t;
    // Along a row only s changes: x = (a s + nx) / (g s + nw), y = (d s + ny) / (g s + nw).
    const double nx = pl.b * t + pl.c, ny = pl.e * t + pl.f, nw = pl.h * t + 1.0;
    for (int64_t j = 0; j < W; ++j) {
      double s = (double(j) + 0.5) / double(W);
      if (pl.flip_x) s = 1.0 - s;
      const double inv = 1.0 / (pl.g * s + nw);
      const double fx = std::clamp((pl.a * s + nx) * inv - off_x, 0.0, max_x);
      const double fy = std::clamp((pl.d * s + ny) * inv - off_y, 0.0, max_y);
      const int64_t xa = int64_t(fx), ya = int64_t(fy);
      const int64_t dx = xa < win.W - 1 ? 1 : 0, dy = ya < win.H - 1 ? win.W : 0;
      const float wx = float(fx - double(xa)), wy = float(fy - double(ya));
      const float w00 = (1.0f - wx) * (1.0f - wy), w01 = wx * (1.0f - wy), w10 = (1.0f - wx) * wy, w11 = wx * wy;
      const int64_t k = ya * win.W + xa;
      float al = 0.0f, val = 0.0f;
      if (wa[k] + wa[k + dx] + wa[k + dy] + wa[k + dy + dx] > 0.0f) {  // most of a sheet is empty
        al = std::clamp(w00 * wa[k] + w01 * wa[k + dx] + w10 * wa[k + dy] + w11 * wa[k + dy + dx], 0.0f, 1.0f);
        const float pm = w00 * wp[k] + w01 * wp[k + dx] + w10 * wp[k + dy] + w11 * wp[k + dy + dx];
        val = al > 0.0f ? std::clamp(pm / al, 0.0f, 1.0f) : 0.0f;
      }
      A[i * W + j] = al;
      V[i * W + j] = invert ? 1.0f - val : val;
    }
  }
  return ov;
}

Tensor prepare_clean(const Tensor& clean, const char* op) {
  FG_CHECK(clean.defined() && clean.dim() == 3 && clean.size(0) >= 1,
           op << ": the clean image must be (C, H, W), got "
              << (clean.defined() ? shape_str(clean.shape()) : std::string("an undefined tensor")));
  FG_CHECK(dtype_is_floating(clean.dtype()),
           op << ": the clean image must be floating point in [0, 1], got " << dtype_name(clean.dtype()));
  check_size(clean.size(1), clean.size(2), op);
  return clean.to(Device::cpu()).to(DType::F32).contiguous();
}

// out = alpha * value + (1 - alpha) * out on every channel, as one fused multiply-add (see damage.h).
void blend_into(float* out, int64_t C, int64_t n, const Overlay& ov) {
  const float* a = ov.alpha.data<float>();
  const float* v = ov.value.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    float* o = out + c * n;
    for (int64_t i = 0; i < n; ++i) o[i] = std::fma(a[i], v[i], (1.0f - a[i]) * o[i]);
  }
}

// Rec. 601 luma, what PIL's convert("L") computes: the brightness of an overlay pixel.
inline float luma(float r, float g, float b) {
  return 0.299f * r + 0.587f * g + 0.114f * b;
}

}  // namespace

// ---- the overlay folder ----

struct DustSynthesizer::OverlayFolder {
  std::string dir;
  std::vector<std::string> files;  // sorted, so a file's number does not depend on the directory's order
  int64_t budget = 0;              // bytes

  // Resized sheets by (file, short side); the least recently used at the back of `lru`.
  using Key = std::pair<int64_t, int64_t>;
  std::mutex mutex;
  std::list<Key> lru;
  struct Entry {
    std::shared_ptr<const Planes> planes;
    std::list<Key>::iterator pos;
  };
  std::map<Key, Entry> cache;
  int64_t bytes = 0;

  // File `file` as a premultiplied sheet whose shorter side is `short_side` (aspect kept).
  std::shared_ptr<const Planes> sheet(int64_t file, int64_t short_side) {
    const Key key{file, short_side};
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = cache.find(key);
      if (it != cache.end()) {
        lru.splice(lru.begin(), lru, it->second.pos);
        return it->second.planes;
      }
    }
    // Decoded and resized outside the lock, so threads work in parallel; two threads asking for the same sheet at
    // once both make it (the same values) and the second keeps the first's.
    auto planes = std::make_shared<const Planes>(load(files[size_t(file)], short_side));
    const int64_t b = int64_t(planes->alpha.size() * 2 * sizeof(float));
    if (b > budget) return planes;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second.planes;
    while (bytes + b > budget && !lru.empty()) {
      auto victim = cache.find(lru.back());
      bytes -= int64_t(victim->second.planes->alpha.size() * 2 * sizeof(float));
      cache.erase(victim);
      lru.pop_back();
    }
    lru.push_front(key);
    cache.emplace(key, Entry{planes, lru.begin()});
    bytes += b;
    return planes;
  }

  // An image without alpha is dust on a dark background: alpha = luma, value 1. With alpha: alpha = that channel,
  // value = the colour's luma (divided back out of premultiplied TIFF colour).
  static Planes load(const std::string& path, int64_t short_side) {
    const Image img = read_image(path);
    const int64_t h = img.height(), w = img.width(), n = h * w;
    const Tensor px = img.pixels.contiguous();
    const float* src = px.data<float>();
    Tensor ap = Tensor::empty({2, h, w});
    float* A = ap.data<float>();
    float* P = A + n;
    for (int64_t i = 0; i < n; ++i) {
      float a, lum;
      switch (img.channels) {
        case 1:
          a = src[i], lum = 1.0f;
          break;
        case 2:
          a = src[n + i], lum = src[i];
          break;
        case 3:
          a = luma(src[i], src[n + i], src[2 * n + i]), lum = 1.0f;
          break;
        default:
          a = src[3 * n + i], lum = luma(src[i], src[n + i], src[2 * n + i]);
          break;
      }
      a = std::clamp(a, 0.0f, 1.0f);
      const bool stored_premultiplied = img.has_alpha() && img.alpha_premultiplied;
      A[i] = a;
      P[i] = std::min(a, stored_premultiplied ? lum : a * lum);
    }
    const double s = double(short_side) / double(std::min(h, w));
    const int64_t nh = std::max(short_side, int64_t(std::llround(double(h) * s)));
    const int64_t nw = std::max(short_side, int64_t(std::llround(double(w) * s)));
    const Tensor r = resize(ap, nh, nw).contiguous();
    Planes out(0, 0, nh, nw);
    std::memcpy(out.alpha.data(), r.data<float>(), size_t(nh * nw) * sizeof(float));
    std::memcpy(out.premul.data(), r.data<float>() + nh * nw, size_t(nh * nw) * sizeof(float));
    return out;
  }
};

// ---- public API ----

Overlay make_dust_overlay(int64_t H, int64_t W, Generator& gen, const DustOptions& options) {
  check_options(options);
  check_size(H, W, "make_dust_overlay");
  Draws d(gen);
  Planes p(0, 0, H, W);
  render_sheet(p, d, options, double(std::min(H, W)) / 256.0, H, W);
  return to_overlay(p);
}

Tensor blend_overlay(const Tensor& clean, const Overlay& overlay) {
  const Tensor x = prepare_clean(clean, "blend_overlay");
  const int64_t C = x.size(0), H = x.size(1), W = x.size(2);
  FG_CHECK(overlay.alpha.defined() && overlay.value.defined() && overlay.alpha.shape() == Shape({H, W}) &&
               overlay.value.shape() == Shape({H, W}),
           "blend_overlay: the overlay's alpha and value must both be ("
               << H << ", " << W << ") like the image, got "
               << (overlay.alpha.defined() ? shape_str(overlay.alpha.shape()) : std::string("undefined")) << " and "
               << (overlay.value.defined() ? shape_str(overlay.value.shape()) : std::string("undefined")));
  const Overlay ov{overlay.alpha.to(Device::cpu()).to(DType::F32).contiguous(),
                   overlay.value.to(Device::cpu()).to(DType::F32).contiguous()};
  Tensor out = x.clone();
  blend_into(out.data<float>(), C, H * W, ov);
  return out;
}

DustSynthesizer::DustSynthesizer(const DustOptions& options, const std::string& overlay_dir) : options_(options) {
  check_options(options_);
  if (overlay_dir.empty()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  FG_CHECK(fs::is_directory(overlay_dir, ec),
           "the dust overlay folder '" << overlay_dir << "' does not exist or is not a folder");
  auto folder = std::make_unique<OverlayFolder>();
  folder->dir = overlay_dir;
  folder->budget = options_.overlay_cache_mb * (int64_t(1) << 20);
  try {
    for (const auto& entry : fs::directory_iterator(overlay_dir)) {
      if (entry.is_regular_file() && !image_format_for_path(entry.path().string()).empty())
        folder->files.push_back(entry.path().string());
    }
  } catch (const fs::filesystem_error& e) {
    throw Error("cannot list the dust overlay folder '" + overlay_dir + "': " + e.code().message());
  }
  FG_CHECK(!folder->files.empty(), "the dust overlay folder '"
                                       << overlay_dir
                                       << "' holds no images (PNG, JPEG, TIFF, BMP or TGA); add overlay images "
                                          "or leave the overlay folder unset to use the procedural generator");
  std::sort(folder->files.begin(), folder->files.end());
  folder_ = std::move(folder);
}

DustSynthesizer::~DustSynthesizer() = default;

std::vector<Overlay> DustSynthesizer::draw_overlays(int64_t H, int64_t W, uint64_t pattern_seed, Generator& gen,
                                                    double frame_short_side) const {
  check_size(H, W, "dust");
  FG_CHECK(std::isfinite(frame_short_side) && frame_short_side >= 0,
           "dust: the frame's shorter side must be 0 (the image's own) or a positive number of pixels, got "
               << frame_short_side);
  Draws d(gen);
  const double unit = (frame_short_side > 0 ? frame_short_side : double(std::min(H, W))) / 256.0;
  std::vector<Overlay> out;
  for (int k = 0; k < options_.overlays_per_image; ++k) {
    Generator sheet_gen(detail::mix4(pattern_seed, uint64_t(H), uint64_t(W), uint64_t(k)));
    Draws sd(sheet_gen);
    if (folder_) {
      const int64_t file = sd.uniform_int(0, int64_t(folder_->files.size()) - 1);
      const int64_t short_side = int64_t(std::ceil(options_.sheet_scale * double(std::max(H, W)) - 1e-9));
      const std::shared_ptr<const Planes> sheet = folder_->sheet(file, short_side);
      const Placement pl = draw_placement(d, H, W, sheet->H, sheet->W, options_.warp_magnitude);
      out.push_back(resample(*sheet, pl, H, W, d.bernoulli(options_.p_invert)));
    } else {
      const int64_t Hs = int64_t(std::ceil(options_.sheet_scale * double(H) - 1e-9));
      const int64_t Ws = int64_t(std::ceil(options_.sheet_scale * double(W) - 1e-9));
      const Placement pl = draw_placement(d, H, W, Hs, Ws, options_.warp_magnitude);
      Planes window = window_for(pl, Hs, Ws);
      render_sheet(window, sd, options_, unit, Hs, Ws);
      out.push_back(resample(window, pl, H, W, d.bernoulli(options_.p_invert)));
    }
  }
  return out;
}

DustDamage DustSynthesizer::apply(const Tensor& clean, uint64_t pattern_seed, Generator& gen,
                                  double frame_short_side) const {
  const Tensor x = prepare_clean(clean, "dust");
  const int64_t C = x.size(0), H = x.size(1), W = x.size(2), n = H * W;
  const std::vector<Overlay> overlays = draw_overlays(H, W, pattern_seed, gen, frame_short_side);
  DustDamage out;
  out.damaged = x.clone();
  out.mask = Tensor::empty({1, H, W});
  std::vector<float> keep(size_t(n), 1.0f);  // prod(1 - alpha_k)
  for (const Overlay& ov : overlays) {
    blend_into(out.damaged.data<float>(), C, n, ov);
    const float* a = ov.alpha.data<float>();
    for (int64_t i = 0; i < n; ++i) keep[size_t(i)] *= 1.0f - a[i];
  }
  float* m = out.mask.data<float>();
  for (int64_t i = 0; i < n; ++i) m[i] = 1.0f - keep[size_t(i)];
  return out;
}

}  // namespace fg::data
