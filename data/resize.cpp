// Resizing, cropping and the small random draws of the data pipeline (data/resize.h).
//
// Every resize here is separable: along each dimension an output index is a weighted sum of a few input indices
// (its "taps"), so an image is resized by one pass along H and one along W. Area taps are computed in integer
// arithmetic (the footprint of output i is [i * in, (i + 1) * in) in units of 1 / out, input pixel k covers
// [k * out, (k + 1) * out)), so the fractional weights at a footprint's edges are exact and there is no tolerance
// deciding whether a sliver counts. The pass order (H then W, or W then H) is chosen by the number of
// multiply-adds, and the H pass adds whole input rows into an output row, which the compiler vectorises.
// Serial on purpose: the loader already runs one sample per worker thread.
#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "tensor/error.h"

namespace fg::data {

namespace {

// The taps of a 1-D resampling: output i = sum over k in [start[i], start[i + 1]) of weight[k] * input[index[k]].
struct Taps {
  std::vector<int64_t> start{0};
  std::vector<int64_t> index;
  std::vector<float> weight;
  bool identity = false;  // out == in and every output is its input: the pass can be skipped

  void add(int64_t i, double w) {
    index.push_back(i);
    weight.push_back(float(w));
  }
  void end_output() { start.push_back(int64_t(index.size())); }
  int64_t outputs() const { return int64_t(start.size()) - 1; }
  int64_t total() const { return int64_t(index.size()); }
};

Taps identity_taps(int64_t n) {
  Taps t;
  for (int64_t i = 0; i < n; ++i) {
    t.add(i, 1.0);
    t.end_output();
  }
  t.identity = true;
  return t;
}

// Exact box averaging: output i is the mean of the input over [i * in / out, (i + 1) * in / out).
Taps area_taps(int64_t in, int64_t out) {
  if (in == out) return identity_taps(in);
  Taps t;
  for (int64_t i = 0; i < out; ++i) {
    const int64_t lo = i * in, hi = (i + 1) * in;  // the footprint, in units of 1 / out
    const int64_t first = lo / out, last = (hi - 1) / out;
    for (int64_t k = first; k <= last; ++k) {
      const int64_t overlap = std::min(hi, (k + 1) * out) - std::max(lo, k * out);
      if (overlap > 0) t.add(k, double(overlap) / double(in));
    }
    t.end_output();
  }
  return t;
}

// PyTorch's bilinear (align_corners=False, no antialias) along one dimension.
Taps bilinear_taps(int64_t in, int64_t out) {
  if (in == out) return identity_taps(in);
  Taps t;
  const double scale = double(in) / double(out);
  for (int64_t i = 0; i < out; ++i) {
    const double src = std::max(0.0, (double(i) + 0.5) * scale - 0.5);
    const int64_t i0 = std::min(int64_t(src), in - 1);
    const int64_t i1 = std::min(i0 + 1, in - 1);
    const double l1 = src - double(i0);
    if (i1 == i0 || l1 == 0.0) {
      t.add(i0, 1.0);
    } else {
      t.add(i0, 1.0 - l1);
      t.add(i1, l1);
    }
    t.end_output();
  }
  return t;
}

// A planar view of (C, H, W) f32 data with unit stride along W.
struct Planes {
  const float* data;
  int64_t C, H, W;
  int64_t sc, sh;  // strides of C and H, in elements
};

// H pass: out (C, h, W) contiguous, out row r = sum of taps-weighted input rows.
void h_pass(const Planes& in, const Taps& taps, float* out) {
  const int64_t h = taps.outputs(), W = in.W;
  for (int64_t c = 0; c < in.C; ++c) {
    for (int64_t r = 0; r < h; ++r) {
      float* o = out + (c * h + r) * W;
      std::fill(o, o + W, 0.0f);
      for (int64_t k = taps.start[size_t(r)]; k < taps.start[size_t(r) + 1]; ++k) {
        const float w = taps.weight[size_t(k)];
        const float* s = in.data + c * in.sc + taps.index[size_t(k)] * in.sh;
        for (int64_t x = 0; x < W; ++x) o[x] += w * s[x];
      }
    }
  }
}

// W pass: out (C, H, w) contiguous, out[c, y, x] = sum of taps-weighted input[c, y, index].
void w_pass(const Planes& in, const Taps& taps, float* out) {
  const int64_t w = taps.outputs();
  const int64_t* start = taps.start.data();
  const int64_t* index = taps.index.data();
  const float* weight = taps.weight.data();
  for (int64_t c = 0; c < in.C; ++c) {
    for (int64_t y = 0; y < in.H; ++y) {
      const float* s = in.data + c * in.sc + y * in.sh;
      float* o = out + (c * in.H + y) * w;
      for (int64_t x = 0; x < w; ++x) {
        float acc = 0.0f;
        for (int64_t k = start[x]; k < start[x + 1]; ++k) acc += weight[k] * s[index[k]];
        o[x] = acc;
      }
    }
  }
}

// Checks the image and returns it as f32 CPU with unit stride along W (a copy only when needed).
Tensor prepare_image(const Tensor& chw, const char* op) {
  FG_CHECK(chw.defined(), op << ": the image is an undefined tensor");
  FG_CHECK(chw.dim() == 3, op << ": expected a (C, H, W) image, got shape " << shape_str(chw.shape())
                              << " (use unsqueeze(0) for a single-channel (H, W) image)");
  FG_CHECK(chw.dtype() == DType::F32,
           op << ": expected an f32 image, got " << dtype_name(chw.dtype()) << " (convert with .to(DType::F32))");
  FG_CHECK(chw.device().is_cpu(), op << ": the image is on " << chw.device().str()
                                     << "; resize works on CPU images (copy with .to(Device::cpu()))");
  FG_CHECK(chw.size(0) >= 1 && chw.size(1) >= 1 && chw.size(2) >= 1,
           op << ": the image is empty, shape " << shape_str(chw.shape()));
  if (chw.stride(2) == 1) return chw;
  return chw.contiguous();
}

Planes planes_of(const Tensor& t) {
  return {t.data<float>(), t.size(0), t.size(1), t.size(2), t.stride(0), t.stride(1)};
}

void check_out_size(int64_t out_h, int64_t out_w, const char* op) {
  FG_CHECK(out_h >= 1 && out_w >= 1, op << ": the output size must be at least 1x1, got " << out_h << "x" << out_w);
  constexpr int64_t kLargest = int64_t(1) << 20;  // keeps i * in within int64 in area_taps, with a wide margin
  FG_CHECK(out_h <= kLargest && out_w <= kLargest,
           op << ": the output size " << out_h << "x" << out_w << " is larger than " << kLargest << " per side");
}

// Applies taps along H and W to a prepared image.
Tensor apply_separable(const Tensor& image, const Taps& th, const Taps& tw) {
  const Planes in = planes_of(image);
  const int64_t C = in.C, H = in.H, W = in.W, h = th.outputs(), w = tw.outputs();
  Tensor out = Tensor::empty({C, h, w});
  float* o = out.data<float>();
  if (th.identity && tw.identity) {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        std::memcpy(o + (c * H + y) * W, in.data + c * in.sc + y * in.sh, sizeof(float) * size_t(W));
    return out;
  }
  if (th.identity) {
    w_pass(in, tw, o);
    return out;
  }
  if (tw.identity) {
    h_pass(in, th, o);
    return out;
  }
  // Multiply-adds of each order; the intermediate is (C, h, W) or (C, H, w).
  const double h_first = double(th.total()) * double(W) + double(h) * double(tw.total());
  const double w_first = double(H) * double(tw.total()) + double(th.total()) * double(w);
  if (h_first <= w_first) {
    std::vector<float> mid(size_t(C * h * W));
    h_pass(in, th, mid.data());
    w_pass({mid.data(), C, h, W, h * W, W}, tw, o);
  } else {
    std::vector<float> mid(size_t(C * H * w));
    w_pass(in, tw, mid.data());
    h_pass({mid.data(), C, H, w, H * w, w}, th, o);
  }
  return out;
}

// area when shrinking, bilinear when growing, identity when equal.
Taps mixed_taps(int64_t in, int64_t out) {
  if (out < in) return area_taps(in, out);
  if (out > in) return bilinear_taps(in, out);
  return identity_taps(in);
}

// Two Philox words as one 64-bit value (for draws that need more than 24 bits).
uint64_t draw_u64(Generator& gen) {
  const uint64_t first = gen.reserve(2);
  return (uint64_t(gen.word(first, 0)) << 32) | uint64_t(gen.word(first, 1));
}

}  // namespace

Tensor resize_area(const Tensor& chw, int64_t out_h, int64_t out_w) {
  const Tensor image = prepare_image(chw, "resize_area");
  check_out_size(out_h, out_w, "resize_area");
  return apply_separable(image, area_taps(image.size(1), out_h), area_taps(image.size(2), out_w));
}

Tensor resize_bilinear(const Tensor& chw, int64_t out_h, int64_t out_w) {
  const Tensor image = prepare_image(chw, "resize_bilinear");
  check_out_size(out_h, out_w, "resize_bilinear");
  return apply_separable(image, bilinear_taps(image.size(1), out_h), bilinear_taps(image.size(2), out_w));
}

Tensor resize(const Tensor& chw, int64_t out_h, int64_t out_w) {
  const Tensor image = prepare_image(chw, "resize");
  check_out_size(out_h, out_w, "resize");
  return apply_separable(image, mixed_taps(image.size(1), out_h), mixed_taps(image.size(2), out_w));
}

Tensor resize_short_side(const Tensor& chw, int64_t short_side) {
  const Tensor image = prepare_image(chw, "resize_short_side");
  FG_CHECK(short_side >= 1, "resize_short_side: the short side must be at least 1 pixel, got " << short_side);
  const int64_t H = image.size(1), W = image.size(2);
  const int64_t s = std::min(H, W), l = std::max(H, W);
  if (s == short_side) return chw;
  // round(l * short_side / s), half up, in integers.
  const int64_t long_side = std::max(short_side, (2 * l * short_side + s) / (2 * s));
  check_out_size(long_side, short_side, "resize_short_side");
  return H <= W ? resize(image, short_side, long_side) : resize(image, long_side, short_side);
}

CropBox center_crop_box(int64_t H, int64_t W, int64_t h, int64_t w) {
  FG_CHECK(h >= 1 && w >= 1, "center_crop_box: the crop must be at least 1x1, got " << h << "x" << w);
  FG_CHECK(h <= H && w <= W, "center_crop_box: a " << h << "x" << w << " crop does not fit in a " << H << "x" << W
                                                   << " image (resize the image first, e.g. resize_short_side)");
  return {(H - h) / 2, (W - w) / 2, h, w};
}

CropBox random_crop_box(int64_t H, int64_t W, int64_t h, int64_t w, Generator& gen) {
  FG_CHECK(h >= 1 && w >= 1, "random_crop_box: the crop must be at least 1x1, got " << h << "x" << w);
  FG_CHECK(h <= H && w <= W, "random_crop_box: a " << h << "x" << w << " crop does not fit in a " << H << "x" << W
                                                   << " image (resize the image first, e.g. resize_short_side)");
  const int64_t top = uniform_int(gen, 0, H - h);
  const int64_t left = uniform_int(gen, 0, W - w);
  return {top, left, h, w};
}

Tensor crop(const Tensor& chw, const CropBox& box) {
  FG_CHECK(chw.defined() && chw.dim() == 3, "crop: expected a (C, H, W) image, got "
                                                << (chw.defined() ? shape_str(chw.shape()) : "an undefined tensor"));
  const int64_t H = chw.size(1), W = chw.size(2);
  FG_CHECK(box.height >= 1 && box.width >= 1,
           "crop: the box must be at least 1x1, got " << box.height << "x" << box.width);
  FG_CHECK(box.top >= 0 && box.left >= 0 && box.top + box.height <= H && box.left + box.width <= W,
           "crop: the box (top " << box.top << ", left " << box.left << ", " << box.height << "x" << box.width
                                 << ") does not lie inside the " << H << "x" << W << " image");
  return chw.slice(1, box.top, box.top + box.height).slice(2, box.left, box.left + box.width).clone();
}

double uniform(Generator& gen, double lo, double hi) {
  FG_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi,
           "uniform: the range must be finite and ordered, got [" << lo << ", " << hi << ")");
  const uint64_t first = gen.reserve(1);
  const double u = double(philox_uniform01(gen.word(first, 0)));
  const double v = lo + (hi - lo) * u;
  // Rounding can land on hi when |lo| is much larger than hi - lo; keep the promise of a half-open range.
  return (v < hi || lo == hi) ? v : std::nextafter(hi, lo);
}

int64_t uniform_int(Generator& gen, int64_t lo, int64_t hi) {
  FG_CHECK(lo <= hi, "uniform_int: the range must be ordered, got [" << lo << ", " << hi << "]");
  const uint64_t x = draw_u64(gen);
  const uint64_t span = uint64_t(hi) - uint64_t(lo) + 1;  // 0 when the range is all of int64
  if (span == 0) return int64_t(x);
  // Lemire's multiply-shift: floor(x * span / 2^64), bias below span / 2^64.
  const uint64_t k = uint64_t((static_cast<unsigned __int128>(x) * span) >> 64);
  return int64_t(uint64_t(lo) + k);
}

bool bernoulli(Generator& gen, double p) {
  FG_CHECK(p >= 0.0 && p <= 1.0, "bernoulli: p must be a probability in [0, 1], got " << p);
  const uint64_t first = gen.reserve(1);
  return double(philox_uniform01(gen.word(first, 0))) < p;
}

double normal(Generator& gen, double mean, double stddev) {
  FG_CHECK(std::isfinite(mean) && std::isfinite(stddev) && stddev >= 0.0,
           "normal: mean must be finite and stddev finite and non-negative, got " << mean << ", " << stddev);
  // Element 0 of philox.h's Box-Muller pair.
  const uint64_t first = gen.reserve(2);
  const double u1 = 1.0 - double(philox_uniform01(gen.word(first, 0)));
  const double u2 = double(philox_uniform01(gen.word(first, 1)));
  return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

}  // namespace fg::data
