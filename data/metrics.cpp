// PSNR and scikit-image's Gaussian SSIM (definitions in data/metrics.h). Each channel is converted to a contiguous
// double plane, filtered the way scipy.ndimage.gaussian_filter filters it (H first, then W, mode 'reflect'), and
// reduced serially, so the results do not depend on the thread count.
#include "data/metrics.h"

#include <cmath>
#include <limits>
#include <string>

#include "tensor/error.h"

namespace fg::data {

namespace {

// Below this many filtered samples per pass the OpenMP fork costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 15;

// Both images as contiguous f64 CPU tensors of the same (C, H, W) shape; throws fg::Error naming `op` otherwise.
struct Pair {
  Tensor x, y;
  int64_t C, H, W;
};

Pair prepare(const Tensor& x, const Tensor& y, const char* op) {
  FG_CHECK(x.defined() && y.defined(), op << ": both images must be defined tensors");
  FG_CHECK(x.dim() == 3 && y.dim() == 3,
           op << ": images must be (C, H, W), got " << shape_str(x.shape()) << " and " << shape_str(y.shape())
              << " (use unsqueeze(0) for a single-channel (H, W) image, select(0, n) for one image of a batch)");
  FG_CHECK(x.shape() == y.shape(), op << ": the two images must have the same shape, got " << shape_str(x.shape())
                                      << " and " << shape_str(y.shape()));
  FG_CHECK(x.dtype() == y.dtype(), op << ": the two images must have the same dtype, got " << dtype_name(x.dtype())
                                      << " and " << dtype_name(y.dtype()) << " (convert one with .to())");
  FG_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64,
           op << ": images must be f32 or f64 with values in [0, data_range], got " << dtype_name(x.dtype())
              << " (convert with .to(DType::F32), scaling 8-bit data by 1/255)");
  FG_CHECK(x.numel() > 0, op << ": the images are empty, shape " << shape_str(x.shape()));
  Pair p;
  p.x = x.to(Device::cpu()).to(DType::F64).contiguous();
  p.y = y.to(Device::cpu()).to(DType::F64).contiguous();
  p.C = x.size(0);
  p.H = x.size(1);
  p.W = x.size(2);
  return p;
}

void check_data_range(double data_range, const char* op) {
  FG_CHECK(std::isfinite(data_range) && data_range > 0.0,
           op << ": data_range must be a positive finite number (1 for images in [0, 1]), got " << data_range);
}

double psnr_from_sum(double sum_sq, int64_t n, double data_range) {
  const double mse = sum_sq / double(n);
  if (mse == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(data_range * data_range / mse);
}

// x, y: (n) contiguous. The sum of squared differences.
double sum_squared_difference(const double* x, const double* y, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - y[i];
    s += d * d;
  }
  return s;
}

// scipy.ndimage mode 'reflect' (d c b a | a b c d | d c b a): the extension is periodic with period 2n and mirrors
// about the edges, so i folds into [0, 2n) and the upper half maps back.
int64_t reflect_index(int64_t i, int64_t n) {
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

// For each output position i in [0, n) and tap k in [-r, r], the source index: table[i * (2r + 1) + k + r].
std::vector<int64_t> reflect_table(int64_t n, int64_t r) {
  const int64_t taps = 2 * r + 1;
  std::vector<int64_t> t(size_t(n * taps));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = -r; k <= r; ++k) t[size_t(i * taps + k + r)] = reflect_index(i + k, n);
  return t;
}

// scipy.ndimage._gaussian_kernel1d(sigma, 0, r): exp(-0.5 / sigma^2 * k^2), k in [-r, r], normalised.
std::vector<double> gaussian_taps(double sigma, int64_t r) {
  std::vector<double> g(size_t(2 * r + 1));
  double sum = 0.0;
  for (int64_t k = -r; k <= r; ++k) {
    g[size_t(k + r)] = std::exp(-0.5 / (sigma * sigma) * double(k * k));
    sum += g[size_t(k + r)];
  }
  for (double& v : g) v /= sum;
  return g;
}

struct GaussianFilter {
  int64_t H, W, r;
  std::vector<double> taps;
  std::vector<int64_t> rows, cols;  // reflect tables along H and W

  // src, tmp, dst: (H, W) contiguous. dst = src filtered along H (into tmp), then along W.
  void apply(const double* src, double* tmp, double* dst) const {
    const int64_t n_taps = 2 * r + 1;
    const double* g = taps.data();
    const int64_t* ri = rows.data();
    const int64_t* ci = cols.data();
    const int64_t H_ = H, W_ = W;
#pragma omp parallel for if (H_ * W_ * n_taps > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < H_; ++i) {
      double* out = tmp + i * W_;
      for (int64_t j = 0; j < W_; ++j) out[j] = 0.0;
      for (int64_t k = 0; k < n_taps; ++k) {
        const double* in = src + ri[i * n_taps + k] * W_;
        const double w = g[k];
        for (int64_t j = 0; j < W_; ++j) out[j] += w * in[j];
      }
    }
#pragma omp parallel for if (H_ * W_ * n_taps > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < H_; ++i) {
      const double* in = tmp + i * W_;
      double* out = dst + i * W_;
      for (int64_t j = 0; j < W_; ++j) {
        const int64_t* idx = ci + j * n_taps;
        double s = 0.0;
        for (int64_t k = 0; k < n_taps; ++k) s += g[k] * in[idx[k]];
        out[j] = s;
      }
    }
  }
};

void check_ssim_options(const SsimOptions& o) {
  check_data_range(o.data_range, "ssim");
  FG_CHECK(std::isfinite(o.sigma) && o.sigma > 0.0, "ssim: sigma must be positive and finite, got " << o.sigma);
  FG_CHECK(std::isfinite(o.truncate) && o.truncate >= 0.0,
           "ssim: truncate must be non-negative and finite, got " << o.truncate);
  FG_CHECK(o.truncate * o.sigma <= 1000.0, "ssim: truncate * sigma = " << o.truncate * o.sigma
                                                                       << " gives a filter radius over 1000 pixels; "
                                                                          "the metric uses sigma 1.5");
  FG_CHECK(o.win_size == 0 || (o.win_size >= 1 && o.win_size % 2 == 1),
           "ssim: win_size must be 0 (derived from sigma) or an odd number >= 1, got " << o.win_size);
  FG_CHECK(std::isfinite(o.k1) && o.k1 >= 0.0 && std::isfinite(o.k2) && o.k2 >= 0.0,
           "ssim: k1 and k2 must be non-negative, got " << o.k1 << " and " << o.k2);
}

}  // namespace

double psnr(const Tensor& x, const Tensor& y, double data_range) {
  check_data_range(data_range, "psnr");
  const Pair p = prepare(x, y, "psnr");
  const int64_t n = p.C * p.H * p.W;
  return psnr_from_sum(sum_squared_difference(p.x.data<double>(), p.y.data<double>(), n), n, data_range);
}

std::vector<double> psnr_per_channel(const Tensor& x, const Tensor& y, double data_range) {
  check_data_range(data_range, "psnr_per_channel");
  const Pair p = prepare(x, y, "psnr_per_channel");
  const int64_t plane = p.H * p.W;
  std::vector<double> out(size_t(p.C));
  for (int64_t c = 0; c < p.C; ++c)
    out[size_t(c)] =
        psnr_from_sum(sum_squared_difference(p.x.data<double>() + c * plane, p.y.data<double>() + c * plane, plane),
                      plane, data_range);
  return out;
}

int64_t ssim_radius(const SsimOptions& options) {
  check_ssim_options(options);
  // Python's int() truncates toward zero; the argument is non-negative here, so this is floor.
  return int64_t(options.truncate * options.sigma + 0.5);
}

int64_t ssim_win_size(const SsimOptions& options) {
  const int64_t r = ssim_radius(options);
  return options.win_size != 0 ? options.win_size : 2 * r + 1;
}

std::vector<double> ssim_per_channel(const Tensor& x, const Tensor& y, const SsimOptions& options) {
  const int64_t r = ssim_radius(options);
  const int64_t win = ssim_win_size(options);
  const Pair p = prepare(x, y, "ssim");
  FG_CHECK(p.H >= win && p.W >= win, "ssim: the images are "
                                         << p.H << "x" << p.W << " (H x W), smaller than the " << win
                                         << "-pixel SSIM window; for small images pass an odd SsimOptions::win_size no "
                                            "larger than the smaller side (skimage's win_size)");
  const int64_t H = p.H, W = p.W, plane = H * W;
  const GaussianFilter filter{H, W, r, gaussian_taps(options.sigma, r), reflect_table(H, r), reflect_table(W, r)};
  const double c1 = (options.k1 * options.data_range) * (options.k1 * options.data_range);
  const double c2 = (options.k2 * options.data_range) * (options.k2 * options.data_range);
  const int64_t pad = (win - 1) / 2;

  // Planes: the five signals (x, y, x x, y y, x y), then their filtered moments, then one scratch plane.
  std::vector<double> signals(static_cast<size_t>(5 * plane));
  std::vector<double> moment(static_cast<size_t>(5 * plane));
  std::vector<double> tmp(static_cast<size_t>(plane));
  std::vector<double> out(size_t(p.C));
  for (int64_t c = 0; c < p.C; ++c) {
    const double* xs = p.x.data<double>() + c * plane;
    const double* ys = p.y.data<double>() + c * plane;
    double* s = signals.data();
    for (int64_t i = 0; i < plane; ++i) {
      s[i] = xs[i];
      s[plane + i] = ys[i];
      s[2 * plane + i] = xs[i] * xs[i];
      s[3 * plane + i] = ys[i] * ys[i];
      s[4 * plane + i] = xs[i] * ys[i];
    }
    for (int64_t m = 0; m < 5; ++m) filter.apply(s + m * plane, tmp.data(), moment.data() + m * plane);

    const double* ux = moment.data();
    const double* uy = ux + plane;
    const double* uxx = uy + plane;
    const double* uyy = uxx + plane;
    const double* uxy = uyy + plane;
    double sum = 0.0;
    for (int64_t i = pad; i < H - pad; ++i) {
      for (int64_t j = pad; j < W - pad; ++j) {
        const int64_t q = i * W + j;
        const double vx = uxx[q] - ux[q] * ux[q];
        const double vy = uyy[q] - uy[q] * uy[q];
        const double vxy = uxy[q] - ux[q] * uy[q];
        const double a1 = 2.0 * ux[q] * uy[q] + c1;
        const double a2 = 2.0 * vxy + c2;
        const double b1 = ux[q] * ux[q] + uy[q] * uy[q] + c1;
        const double b2 = vx + vy + c2;
        sum += (a1 * a2) / (b1 * b2);
      }
    }
    out[size_t(c)] = sum / double((H - 2 * pad) * (W - 2 * pad));
  }
  return out;
}

double ssim(const Tensor& x, const Tensor& y, const SsimOptions& options) {
  const std::vector<double> per_channel = ssim_per_channel(x, y, options);
  double sum = 0.0;
  for (double v : per_channel) sum += v;
  return sum / double(per_channel.size());
}

}  // namespace fg::data
