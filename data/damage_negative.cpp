// Damage of old negatives (data/damage.h part 1; SPEC A; seeds/000 section 4.2): a free-form mask, Gaussian-smoothed,
// alpha-blends a content N into the clean blue channel.
//
// Masks are drawn binary first, element by element (one stroke, or one circle cluster), so the coverage can be
// steered: a target coverage is drawn in [min_coverage, max_coverage]; elements are added until the mask reaches
// it; an element that would overshoot (beyond 1.5x the target, or beyond the maximum) is taken back and the next
// one is drawn smaller. Should 200 elements not get there (a tiny image), the mask grows pixel by pixel along its
// border, in raster order, up to the minimum. The coverage therefore lands in range whenever the range holds a
// whole number of pixels. Then the Gaussian blur (mirror padding, which keeps the mask's sum) softens the edges:
// neighbouring values then differ by at most the kernel's centre weight (~0.4 / sigma).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "data/damage.h"
#include "data/damage_draws.h"
#include "data/resize.h"
#include "tensor/error.h"

namespace fg::data {

namespace {

using detail::Draws;

constexpr int kMaxElements = 200;
constexpr double kTwoPi = 2.0 * M_PI;

void check_options(const NegativeDamageOptions& o) {
  FG_CHECK(o.p_strokes >= 0.0 && o.p_strokes <= 1.0,
           "negative damage: p_strokes must be a probability in [0, 1], got " << o.p_strokes);
  FG_CHECK(o.w_grey >= 0.0 && o.w_impulse >= 0.0 && o.w_patch >= 0.0 && o.w_grey + o.w_impulse + o.w_patch > 0.0,
           "negative damage: the content weights (grey " << o.w_grey << ", impulse " << o.w_impulse << ", patch "
                                                         << o.w_patch << ") must be non-negative with a positive sum");
  FG_CHECK(
      std::isfinite(o.smooth_sigma) && o.smooth_sigma >= 0.0,
      "negative damage: smooth_sigma must be 0 (no smoothing) or a positive number of pixels, got " << o.smooth_sigma);
  FG_CHECK(o.min_coverage >= 0.0 && o.min_coverage <= o.max_coverage && o.max_coverage <= 1.0,
           "negative damage: the coverage range must satisfy 0 <= min <= max <= 1, got [" << o.min_coverage << ", "
                                                                                          << o.max_coverage << "]");
}

void check_size(int64_t H, int64_t W, const char* op) {
  FG_CHECK(H >= 1 && W >= 1, op << ": the image must be at least 1x1, got " << H << "x" << W);
}

// A binary mask that remembers which pixels the current element set, so the element can be taken back.
struct BinaryMask {
  int64_t H, W;
  std::vector<uint8_t> px;
  int64_t count = 0;
  std::vector<int64_t> added;  // pixels set by the element being drawn

  BinaryMask(int64_t h, int64_t w) : H(h), W(w), px(size_t(h * w), 0) {}

  void set(int64_t i) {
    if (px[size_t(i)]) return;
    px[size_t(i)] = 1;
    ++count;
    added.push_back(i);
  }
  void take_back() {
    for (int64_t i : added) px[size_t(i)] = 0;
    count -= int64_t(added.size());
    added.clear();
  }

  // Every pixel whose centre lies within r of the segment (ax, ay)-(bx, by): a line of width 2r with round ends.
  void capsule(double ax, double ay, double bx, double by, double r) {
    const int64_t x0 = std::max<int64_t>(0, int64_t(std::floor(std::min(ax, bx) - r)));
    const int64_t x1 = std::min<int64_t>(W - 1, int64_t(std::ceil(std::max(ax, bx) + r)));
    const int64_t y0 = std::max<int64_t>(0, int64_t(std::floor(std::min(ay, by) - r)));
    const int64_t y1 = std::min<int64_t>(H - 1, int64_t(std::ceil(std::max(ay, by) + r)));
    const double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy, r2 = r * r;
    for (int64_t y = y0; y <= y1; ++y) {
      for (int64_t x = x0; x <= x1; ++x) {
        const double px_ = double(x) + 0.5 - ax, py_ = double(y) + 0.5 - ay;
        const double t = len2 > 0.0 ? std::clamp((px_ * dx + py_ * dy) / len2, 0.0, 1.0) : 0.0;
        const double ex = px_ - t * dx, ey = py_ - t * dy;
        if (ex * ex + ey * ey <= r2) set(y * W + x);
      }
    }
  }
};

// One free-form stroke as VCNet draws them (after DeepFill v2's brush strokes): 4 to 12 vertices joined by
// segments of length ~ N(d/8, d/16) (d the image diagonal), directions alternating around +-72 degrees (here
// about a random base direction), width 12 to 40 px at 256 px; `scale` shrinks length and width.
void draw_stroke(BinaryMask& m, Draws& d, double scale) {
  const double H = double(m.H), W = double(m.W);
  const double unit = std::min(H, W) / 256.0;
  const double mean_angle = kTwoPi / 5.0, angle_range = kTwoPi / 15.0;
  const double avg_len = std::sqrt(H * H + W * W) / 8.0 * scale;
  const int64_t vertices = d.uniform_int(4, 12);
  const double base = d.uniform(0.0, kTwoPi);
  const double radius = 0.5 * d.uniform(12.0, 40.0) * unit * scale;
  double x = d.uniform(0.0, W), y = d.uniform(0.0, H);
  for (int64_t i = 0; i < vertices; ++i) {
    double angle = d.uniform(mean_angle - angle_range, mean_angle + angle_range);
    if (i % 2 == 0) angle = kTwoPi - angle;
    angle += base;
    const double len = std::clamp(d.normal(avg_len, avg_len / 2.0), 0.0, 2.0 * avg_len);
    const double nx = std::clamp(x + len * std::cos(angle), 0.0, W);
    const double ny = std::clamp(y + len * std::sin(angle), 0.0, H);
    m.capsule(x, y, nx, ny, radius);
    x = nx;
    y = ny;
  }
}

// One circle cluster (seeds/000 4.2.1): 1 to 3 circles of radius 6-14 % of the short side; each spawns 2 to 5
// smaller circles (0.35-0.65 of its radius) centred at random points inside it; 2 or 3 generations. Only the last
// generation is drawn: the paper calls this mask "discrete", a scatter of spots grouped where their ancestors were,
// which drawing every generation (a disc with bumps) would not give.
void draw_circle_cluster(BinaryMask& m, Draws& d, double scale) {
  struct Circle {
    double x, y, r;
  };
  const double short_side = double(std::min(m.H, m.W));
  std::vector<Circle> circles(size_t(d.uniform_int(1, 3)));
  for (Circle& c : circles) {
    c.x = d.uniform(0.0, double(m.W));
    c.y = d.uniform(0.0, double(m.H));
    c.r = d.uniform(0.06, 0.14) * short_side * scale;
  }
  const int64_t generations = d.uniform_int(2, 3);
  for (int64_t g = 0; g < generations; ++g) {
    std::vector<Circle> next;
    for (const Circle& parent : circles) {
      const int64_t children = d.uniform_int(2, 5);
      for (int64_t k = 0; k < children; ++k) {
        const double rho = parent.r * std::sqrt(d.uniform01()), phi = d.uniform(0.0, kTwoPi);
        next.push_back(
            {parent.x + rho * std::cos(phi), parent.y + rho * std::sin(phi), parent.r * d.uniform(0.35, 0.65)});
      }
    }
    circles = std::move(next);
  }
  // A spot smaller than a pixel would set nothing; half a pixel sets at least the pixel holding its centre.
  for (const Circle& c : circles) m.capsule(c.x, c.y, c.x, c.y, std::max(c.r, 0.5));
}

// Adds elements until the coverage reaches a target drawn in range (see the file header).
template <typename DrawElement>
void fill_to_coverage(BinaryMask& m, Draws& d, const NegativeDamageOptions& o, DrawElement draw) {
  const int64_t N = m.H * m.W;
  const int64_t lo = int64_t(std::ceil(o.min_coverage * double(N)));
  const int64_t hi = std::max(lo, int64_t(std::floor(o.max_coverage * double(N))));
  const int64_t target = std::clamp(int64_t(std::ceil(d.uniform(o.min_coverage, o.max_coverage) * double(N))), lo, hi);
  const int64_t upper = std::min(hi, std::max(target + 1, int64_t(std::ceil(1.5 * double(target)))));
  double scale = 1.0;
  for (int e = 0; e < kMaxElements && m.count < target; ++e) {
    m.added.clear();
    draw(m, d, scale);
    if (m.count > upper) {
      m.take_back();
      scale *= 0.75;
    }
  }
  m.added.clear();
  if (m.count >= lo) return;
  if (m.count == 0) m.set(d.uniform_int(0, N - 1));
  std::vector<uint8_t> before;
  while (m.count < lo) {
    before = m.px;
    for (int64_t y = 0; y < m.H && m.count < lo; ++y) {
      for (int64_t x = 0; x < m.W && m.count < lo; ++x) {
        const int64_t i = y * m.W + x;
        if (before[size_t(i)]) continue;
        const bool border = (x > 0 && before[size_t(i - 1)]) || (x + 1 < m.W && before[size_t(i + 1)]) ||
                            (y > 0 && before[size_t(i - m.W)]) || (y + 1 < m.H && before[size_t(i + m.W)]);
        if (border) m.set(i);
      }
    }
  }
  m.added.clear();
}

// Half-sample mirror (scipy's 'reflect': d c b a | a b c d | d c b a), for any distance outside [0, n).
int64_t mirror(int64_t i, int64_t n) {
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

// The normalised Gaussian taps for offsets -radius..radius, radius = ceil(4 sigma).
std::vector<float> gaussian_taps(double sigma) {
  const int64_t radius = std::max<int64_t>(1, int64_t(std::ceil(4.0 * sigma)));
  std::vector<double> w(size_t(2 * radius + 1));
  double sum = 0.0;
  for (int64_t k = -radius; k <= radius; ++k) {
    w[size_t(k + radius)] = std::exp(-0.5 * double(k * k) / (sigma * sigma));
    sum += w[size_t(k + radius)];
  }
  std::vector<float> taps(w.size());
  for (size_t k = 0; k < w.size(); ++k) taps[k] = float(w[k] / sum);
  return taps;
}

// The binary mask as floats, blurred along H then W when sigma > 0. Values within 1e-6 of 0 or 1 become exactly 0 or
// 1 (the taps, rounded to f32, do not sum to exactly 1), so the inside of a large mark is exactly 1 and the far
// tails exactly 0.
Tensor smooth_mask(const BinaryMask& m, double sigma) {
  const int64_t H = m.H, W = m.W;
  Tensor out = Tensor::empty({1, H, W});
  float* o = out.data<float>();
  for (int64_t i = 0; i < H * W; ++i) o[i] = m.px[size_t(i)] ? 1.0f : 0.0f;
  if (sigma <= 0.0) return out;
  const std::vector<float> taps = gaussian_taps(sigma);
  const int64_t radius = int64_t(taps.size() / 2);
  std::vector<float> tmp(size_t(H * W), 0.0f);
  for (int64_t y = 0; y < H; ++y) {  // along H: whole rows at a time, which vectorises
    float* t = tmp.data() + y * W;
    for (int64_t k = -radius; k <= radius; ++k) {
      const float w = taps[size_t(k + radius)];
      const float* src = o + mirror(y + k, H) * W;
      for (int64_t x = 0; x < W; ++x) t[x] += w * src[x];
    }
  }
  std::vector<float> row(size_t(W + 2 * radius));
  for (int64_t y = 0; y < H; ++y) {  // along W, from a mirrored copy of the row
    const float* t = tmp.data() + y * W;
    for (int64_t x = -radius; x < W + radius; ++x) row[size_t(x + radius)] = t[mirror(x, W)];
    float* dst = o + y * W;
    for (int64_t x = 0; x < W; ++x) {
      float s = 0.0f;
      for (int64_t k = 0; k <= 2 * radius; ++k) s += taps[size_t(k)] * row[size_t(x + k)];
      dst[x] = s <= 1e-6f ? 0.0f : (s >= 1.0f - 1e-6f ? 1.0f : s);
    }
  }
  return out;
}

double scaled_sigma(const NegativeDamageOptions& o, int64_t H, int64_t W) {
  return o.smooth_sigma * double(std::min(H, W)) / 256.0;
}

Tensor stroke_mask(int64_t H, int64_t W, Draws& d, const NegativeDamageOptions& o) {
  BinaryMask m(H, W);
  fill_to_coverage(m, d, o, draw_stroke);
  return smooth_mask(m, scaled_sigma(o, H, W));
}

Tensor circle_mask(int64_t H, int64_t W, Draws& d, const NegativeDamageOptions& o) {
  BinaryMask m(H, W);
  fill_to_coverage(m, d, o, draw_circle_cluster);
  return smooth_mask(m, scaled_sigma(o, H, W));
}

// The blue channel of `other` (channel 2 of colour, 0 of grey), brought to at least H x W (scaled up, aspect kept,
// when smaller), then a uniformly placed H x W crop of it: (H * W) contiguous.
std::vector<float> patch_of(const Tensor& other, int64_t H, int64_t W, Draws& d) {
  FG_CHECK(other.dim() == 3 && other.size(0) >= 1 && other.size(1) >= 1 && other.size(2) >= 1,
           "negative damage: the other image for PATCH content must be (C, H, W), got " << shape_str(other.shape()));
  FG_CHECK(dtype_is_floating(other.dtype()),
           "negative damage: the other image must be floating point in [0, 1], got " << dtype_name(other.dtype()));
  const int64_t channel = other.size(0) >= 3 ? 2 : 0;
  Tensor blue = other.to(Device::cpu()).select(0, channel).unsqueeze(0).to(DType::F32);
  const int64_t h = blue.size(1), w = blue.size(2);
  if (h < H || w < W) {
    const double s = std::max(double(H) / double(h), double(W) / double(w));
    const int64_t nh = std::max(H, int64_t(std::ceil(double(h) * s - 1e-9)));
    const int64_t nw = std::max(W, int64_t(std::ceil(double(w) * s - 1e-9)));
    blue = resize(blue, nh, nw);
  }
  blue = blue.contiguous();
  const int64_t top = d.uniform_int(0, blue.size(1) - H), left = d.uniform_int(0, blue.size(2) - W);
  std::vector<float> out(size_t(H * W));
  const float* src = blue.data<float>();
  for (int64_t y = 0; y < H; ++y)
    std::memcpy(out.data() + y * W, src + (top + y) * blue.size(2) + left, size_t(W) * sizeof(float));
  return out;
}

}  // namespace

Tensor make_stroke_mask(int64_t H, int64_t W, Generator& gen, const NegativeDamageOptions& options) {
  check_options(options);
  check_size(H, W, "make_stroke_mask");
  Draws d(gen);
  return stroke_mask(H, W, d, options);
}

Tensor make_circle_mask(int64_t H, int64_t W, Generator& gen, const NegativeDamageOptions& options) {
  check_options(options);
  check_size(H, W, "make_circle_mask");
  Draws d(gen);
  return circle_mask(H, W, d, options);
}

NegativeDamage damage_negative(const Tensor& rgb, const Tensor& other, Generator& gen,
                               const NegativeDamageOptions& options) {
  check_options(options);
  FG_CHECK(rgb.defined() && rgb.dim() == 3 && rgb.size(0) == 3,
           "damage_negative: the clean image must be RGB (3, H, W), got "
               << (rgb.defined() ? shape_str(rgb.shape()) : std::string("an undefined tensor")));
  FG_CHECK(dtype_is_floating(rgb.dtype()),
           "damage_negative: the clean image must be floating point in [0, 1], got " << dtype_name(rgb.dtype()));
  const int64_t H = rgb.size(1), W = rgb.size(2);
  check_size(H, W, "damage_negative");
  const Tensor clean = rgb.to(Device::cpu()).select(0, 2).to(DType::F32).contiguous();
  const float* I = clean.data<float>();

  Draws d(gen);
  NegativeDamage out;
  out.shape = d.bernoulli(options.p_strokes) ? MaskShape::STROKES : MaskShape::CIRCLES;
  const double total = options.w_grey + options.w_impulse + options.w_patch;
  const double pick = d.uniform(0.0, total);
  out.content = pick < options.w_grey                       ? DamageContent::GREY
                : pick < options.w_grey + options.w_impulse ? DamageContent::IMPULSE
                                                            : DamageContent::PATCH;
  // A zero weight is never picked, even where rounding would land on its boundary.
  if (out.content == DamageContent::PATCH && options.w_patch == 0.0)
    out.content = options.w_impulse > 0.0 ? DamageContent::IMPULSE : DamageContent::GREY;
  if (out.content == DamageContent::PATCH && !other.defined()) out.content = DamageContent::GREY;

  out.mask = out.shape == MaskShape::STROKES ? stroke_mask(H, W, d, options) : circle_mask(H, W, d, options);
  const float* M = out.mask.data<float>();
  out.damaged_blue = Tensor::empty({1, H, W});
  float* O = out.damaged_blue.data<float>();
  const int64_t n = H * W;
  // O = M N + (1 - M) I as one fused multiply-add, so the result does not depend on whether the compiler fuses.
  switch (out.content) {
    case DamageContent::GREY: {
      const float level = float(d.uniform01());
      for (int64_t i = 0; i < n; ++i) O[i] = std::fma(M[i], level, (1.0f - M[i]) * I[i]);
      break;
    }
    case DamageContent::IMPULSE: {
      // One Philox word per pixel (the stream's element i is pixel i): below 1/4 pepper, below 1/2 salt.
      const uint64_t first = gen.reserve(uint64_t(n));
      const std::array<uint32_t, 2> key = {uint32_t(gen.seed()), uint32_t(gen.seed() >> 32)};
      for (int64_t b = 0; b < (n + 3) / 4; ++b) {
        const uint64_t block = first + uint64_t(b);
        const auto w = philox4x32_10({uint32_t(block), uint32_t(block >> 32), 0u, 0u}, key);
        for (int64_t j = 0; j < 4 && 4 * b + j < n; ++j) {
          const int64_t i = 4 * b + j;
          const float u = philox_uniform01(w[size_t(j)]);
          const float N = u < 0.25f ? 0.0f : (u < 0.5f ? 1.0f : I[i]);
          O[i] = std::fma(M[i], N, (1.0f - M[i]) * I[i]);
        }
      }
      break;
    }
    case DamageContent::PATCH: {
      const std::vector<float> N = patch_of(other, H, W, d);
      for (int64_t i = 0; i < n; ++i) O[i] = std::fma(M[i], N[size_t(i)], (1.0f - M[i]) * I[i]);
      break;
    }
  }
  return out;
}

}  // namespace fg::data
