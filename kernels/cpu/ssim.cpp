// CPU reference for pytorch-ssim's SSIM (definition in kernels/ssim.h) and its analytic backward, in two variants:
// a separable Gaussian filter (rows then columns) and a direct ws x ws window. Work is split by image channel
// ("plane"); each plane's map sum is kept separately and the plane sums are added in order, so the result does not
// depend on the thread count. All filtering runs in double. Gradients are written (=), never accumulated.
//
// Backward. With A1 = 2 mx my + C1, A2 = 2 cxy + C2, B1 = mx^2 + my^2 + C1, B2 = vx + vy + C2, S = A1 A2 / (B1 B2),
// and the raw moments mx = F(x), my = F(y), Exx = F(x^2), Eyy = F(y^2), Exy = F(xy) (vx = Exx - mx^2, ...):
//   dS/dExx = dS/dEyy = -S / B2,   dS/dExy = 2 A1 / (B1 B2),
//   dS/dmx = 2 my (A2 - A1) / (B1 B2) + 2 mx S (1/B2 - 1/B1)   (mx directly, and through vx and cxy),
//   dS/dmy = 2 mx (A2 - A1) / (B1 B2) + 2 my S (1/B2 - 1/B1).
// Each derivative map (times dL/dS = grad_out / map size) goes through the adjoint F^T of the filter, and
//   dL/dx = F^T(dmx) + 2 x F^T(dExx) + y F^T(dExy),   dL/dy = F^T(dmy) + 2 y F^T(dEyy) + x F^T(dExy).
// F is "zero-pad by p, then correlate with g"; its adjoint is "correlate with the flipped g, keeping only the
// inputs that lie inside the map". g is symmetric for odd ws but not for even ws (its centre is at ws/2), so the
// flip matters there.
#include "kernels/ssim.h"
#include "kernels/device_check.h"

#include <cmath>
#include <sstream>
#include <vector>

#include "kernels/cpu/loops.h"
#include "tensor/error.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/ssim.h"
#endif

namespace fg::cpu {

namespace {

constexpr double kC1 = 0.01 * 0.01;
constexpr double kC2 = 0.03 * 0.03;

// Signals filtered in the forward, in this order: x, y, x^2, y^2, x y.
constexpr int kMoments = 5;
// Derivative maps in the backward, in this order: d/dmx, d/dmy, d/dExx (= d/dEyy), d/dExy.
constexpr int kMomentGrads = 4;

struct Geometry {
  int64_t H, W;    // input plane
  int64_t ws, p;   // window size, zero padding
  int64_t OH, OW;  // map
};

// From the five filtered moments of one map entry: writes the stats (when kept) and returns the map value.
// m: mx, my, Exx, Eyy, Exy. stats: this entry's mu_x (the other stats follow every `stride` elements) or null.
template <typename T>
double map_entry(const double* m, T* stats, int64_t stride) {
  const double mx = m[0], my = m[1];
  const double vx = m[2] - mx * mx, vy = m[3] - my * my, cxy = m[4] - mx * my;
  if (stats) {
    stats[0] = T(mx);
    stats[stride] = T(my);
    stats[2 * stride] = T(vx);
    stats[3 * stride] = T(vy);
    stats[4 * stride] = T(cxy);
  }
  return ((2.0 * mx * my + kC1) * (2.0 * cxy + kC2)) / ((mx * mx + my * my + kC1) * (vx + vy + kC2));
}

// From one map entry's stats (mu_x first, the others every `stride` elements) and dL/dS = w: the four derivative
// values d: dmx, dmy, dExx (= dEyy), dExy, each times w.
template <typename T>
void map_entry_grads(const T* stats, int64_t stride, double w, double* d) {
  const double mx = double(stats[0]), my = double(stats[stride]);
  const double vx = double(stats[2 * stride]), vy = double(stats[3 * stride]), cxy = double(stats[4 * stride]);
  const double a1 = 2.0 * mx * my + kC1, a2 = 2.0 * cxy + kC2;
  const double b1 = mx * mx + my * my + kC1, b2 = vx + vy + kC2;
  const double b = b1 * b2;
  const double s = a1 * a2 / b;
  const double shift = s * (1.0 / b2 - 1.0 / b1);
  d[0] = w * (2.0 * my * (a2 - a1) / b + 2.0 * mx * shift);
  d[1] = w * (2.0 * mx * (a2 - a1) / b + 2.0 * my * shift);
  d[2] = w * (-s / b2);
  d[3] = w * (2.0 * a1 / b);
}

// The last step of the backward for one pixel: t = F^T of dmx, dmy, dExx, dExy at this pixel.
template <typename T>
void combine_grads(const double* t, T xv, T yv, T* gx, T* gy) {
  const double xd = double(xv), yd = double(yv);
  if (gx) *gx = T(t[0] + 2.0 * xd * t[2] + yd * t[3]);
  if (gy) *gy = T(t[1] + 2.0 * yd * t[2] + xd * t[3]);
}

}  // namespace

// ---- forward, one plane ----
// x, y: (H, W) contiguous; g: (ws); stats: this plane's mu_x map (OH, OW), the other four every `stride` elements,
// or null. Returns the sum of the plane's SSIM map. scratch: reused between calls.
// Input rows are filtered along W as the column pass first needs them, into a ring of ws rows, so the working set
// is O(ws W) and stays in cache whatever the image height.
template <typename T>
double ssim_plane_forward_separable(const T* x, const T* y, const Geometry& geo, const double* g, T* stats,
                                    int64_t stride, std::vector<double>& scratch) {
  const int64_t H = geo.H, W = geo.W, ws = geo.ws, p = geo.p, OH = geo.OH, OW = geo.OW;
  const int64_t row_len = W + 2 * p;  // a zero-padded input row; the last tap of the last output reads row_len - 1
  scratch.assign(size_t(kMoments * (row_len + ws * OW + OW)), 0.0);
  double* rows = scratch.data();             // (5, row_len): x, y, x^2, y^2, xy of one input row, padded
  double* ring = rows + kMoments * row_len;  // (ws, 5, OW): input row r filtered along W, in slot r % ws
  double* acc = ring + kMoments * ws * OW;   // (5, OW): one map row

  int64_t next_row = 0;  // the next input row to filter along W
  double sum = 0.0;
  for (int64_t i = 0; i < OH; ++i) {
    // Taps a reading input row i + a - p inside [0, H); the rest fall on the zero padding.
    const int64_t a_lo = p - i > 0 ? p - i : 0;
    const int64_t a_hi = H + p - i < ws ? H + p - i : ws;
    for (; next_row <= i + a_hi - 1 - p; ++next_row) {
      const T* xr = x + next_row * W;
      const T* yr = y + next_row * W;
      for (int64_t j = 0; j < W; ++j) {
        const double xv = double(xr[j]), yv = double(yr[j]);
        rows[0 * row_len + p + j] = xv;
        rows[1 * row_len + p + j] = yv;
        rows[2 * row_len + p + j] = xv * xv;
        rows[3 * row_len + p + j] = yv * yv;
        rows[4 * row_len + p + j] = xv * yv;
      }
      for (int k = 0; k < kMoments; ++k) {
        const double* in = rows + k * row_len;
        double* out = ring + ((next_row % ws) * kMoments + k) * OW;
        for (int64_t j = 0; j < OW; ++j) out[j] = 0.0;
        for (int64_t a = 0; a < ws; ++a) {
          const double ga = g[a];
          for (int64_t j = 0; j < OW; ++j) out[j] += ga * in[j + a];
        }
      }
    }
    for (int k = 0; k < kMoments; ++k) {
      double* out = acc + k * OW;
      for (int64_t j = 0; j < OW; ++j) out[j] = 0.0;
      for (int64_t a = a_lo; a < a_hi; ++a) {
        const double ga = g[a];
        const double* in = ring + (((i + a - p) % ws) * kMoments + k) * OW;
        for (int64_t j = 0; j < OW; ++j) out[j] += ga * in[j];
      }
    }
    for (int64_t j = 0; j < OW; ++j) {
      const double m[kMoments] = {acc[j], acc[OW + j], acc[2 * OW + j], acc[3 * OW + j], acc[4 * OW + j]};
      sum += map_entry(m, stats ? stats + i * OW + j : static_cast<T*>(nullptr), stride);
    }
  }
  return sum;
}

// Same contract as ssim_plane_forward_separable, with the ws x ws window applied directly.
template <typename T>
double ssim_plane_forward_direct(const T* x, const T* y, const Geometry& geo, const double* g, T* stats,
                                 int64_t stride) {
  const int64_t H = geo.H, W = geo.W, ws = geo.ws, p = geo.p, OH = geo.OH, OW = geo.OW;
  double sum = 0.0;
  for (int64_t i = 0; i < OH; ++i) {
    for (int64_t j = 0; j < OW; ++j) {
      double m[kMoments] = {0.0, 0.0, 0.0, 0.0, 0.0};
      for (int64_t a = 0; a < ws; ++a) {
        const int64_t r = i + a - p;
        if (r < 0 || r >= H) continue;
        for (int64_t b = 0; b < ws; ++b) {
          const int64_t c = j + b - p;
          if (c < 0 || c >= W) continue;
          const double wgt = g[a] * g[b];
          const double xv = double(x[r * W + c]), yv = double(y[r * W + c]);
          m[0] += wgt * xv;
          m[1] += wgt * yv;
          m[2] += wgt * xv * xv;
          m[3] += wgt * yv * yv;
          m[4] += wgt * xv * yv;
        }
      }
      sum += map_entry(m, stats ? stats + i * OW + j : static_cast<T*>(nullptr), stride);
    }
  }
  return sum;
}

// ---- backward, one plane ----
// x, y: (H, W) contiguous; stats: this plane's mu_x map (OH, OW), the other four every `stride` elements;
// g: (ws); w: dL/dS for every map entry. gx, gy: (H, W), written, or null when not wanted.
// Input row r gathers from map rows r + p - ws + 1 .. r + p, so the derivative rows are made as they are first
// needed, into a ring of ws rows (O(ws W) working set, as in the forward).
template <typename T>
void ssim_plane_backward_separable(const T* x, const T* y, const T* stats, int64_t stride, const Geometry& geo,
                                   const double* g, double w, T* gx, T* gy, std::vector<double>& scratch) {
  const int64_t H = geo.H, W = geo.W, ws = geo.ws, p = geo.p, OH = geo.OH, OW = geo.OW;
  // A column-adjoint row, placed at offset q in a zero-filled buffer, so that the flipped-kernel correlation
  // t[l] = sum_b g[ws - 1 - b] buf[l + b] reads map column l + b + p - (ws - 1) (or a zero) for every tap.
  const int64_t q = ws - 1 - p;
  const int64_t buf_len = W + ws - 1;
  scratch.assign(size_t(kMomentGrads * (ws * OW + OW + W) + buf_len), 0.0);
  double* ring = scratch.data();                 // (ws, 4, OW): derivative map row m in slot m % ws
  double* vrow = ring + kMomentGrads * ws * OW;  // (4, OW): one input row after the adjoint along columns
  double* trow = vrow + kMomentGrads * OW;       // (4, W): the same row after the adjoint along rows too
  double* buf = trow + kMomentGrads * W;         // (buf_len), zero outside [q, q + OW)
  const bool active[kMomentGrads] = {gx != nullptr, gy != nullptr, true, true};

  int64_t next_row = 0;  // the next map row whose derivatives are to be made
  for (int64_t r = 0; r < H; ++r) {
    // Taps a for which input row r lands in the map, at map row r - a + p.
    const int64_t a_lo = r + p - OH + 1 > 0 ? r + p - OH + 1 : 0;
    const int64_t a_hi = r + p + 1 < ws ? r + p + 1 : ws;
    for (; next_row <= r + p - a_lo; ++next_row) {
      double* slot = ring + (next_row % ws) * kMomentGrads * OW;
      for (int64_t j = 0; j < OW; ++j) {
        double d[kMomentGrads];
        map_entry_grads(stats + next_row * OW + j, stride, w, d);
        for (int k = 0; k < kMomentGrads; ++k) slot[k * OW + j] = d[k];
      }
    }
    for (int k = 0; k < kMomentGrads; ++k) {
      if (!active[k]) continue;
      double* out = vrow + k * OW;
      for (int64_t j = 0; j < OW; ++j) out[j] = 0.0;
      for (int64_t a = a_lo; a < a_hi; ++a) {
        const double ga = g[a];
        const double* in = ring + (((r - a + p) % ws) * kMomentGrads + k) * OW;
        for (int64_t j = 0; j < OW; ++j) out[j] += ga * in[j];
      }
      for (int64_t j = 0; j < OW; ++j) buf[q + j] = out[j];
      double* t = trow + k * W;
      for (int64_t l = 0; l < W; ++l) t[l] = 0.0;
      for (int64_t b = 0; b < ws; ++b) {
        const double gb = g[ws - 1 - b];
        for (int64_t l = 0; l < W; ++l) t[l] += gb * buf[l + b];
      }
    }
    for (int64_t l = 0; l < W; ++l) {
      const double t[kMomentGrads] = {trow[l], trow[W + l], trow[2 * W + l], trow[3 * W + l]};
      combine_grads(t, x[r * W + l], y[r * W + l], gx ? gx + r * W + l : nullptr, gy ? gy + r * W + l : nullptr);
    }
  }
}

// Same contract as ssim_plane_backward_separable: the adjoint of the direct window as a scatter, each map entry
// sending g[a] g[b] times its derivatives back to the input pixel it read.
template <typename T>
void ssim_plane_backward_direct(const T* x, const T* y, const T* stats, int64_t stride, const Geometry& geo,
                                const double* g, double w, T* gx, T* gy, std::vector<double>& scratch) {
  const int64_t H = geo.H, W = geo.W, ws = geo.ws, p = geo.p, OH = geo.OH, OW = geo.OW;
  scratch.assign(size_t(kMomentGrads * H * W), 0.0);
  double* tmap = scratch.data();  // (4, H, W)
  for (int64_t i = 0; i < OH; ++i) {
    for (int64_t j = 0; j < OW; ++j) {
      double d[kMomentGrads];
      map_entry_grads(stats + i * OW + j, stride, w, d);
      for (int64_t a = 0; a < ws; ++a) {
        const int64_t r = i + a - p;
        if (r < 0 || r >= H) continue;
        for (int64_t b = 0; b < ws; ++b) {
          const int64_t c = j + b - p;
          if (c < 0 || c >= W) continue;
          const double wgt = g[a] * g[b];
          for (int k = 0; k < kMomentGrads; ++k) tmap[(k * H + r) * W + c] += wgt * d[k];
        }
      }
    }
  }
  for (int64_t e = 0; e < H * W; ++e) {
    const double t[kMomentGrads] = {tmap[e], tmap[H * W + e], tmap[2 * H * W + e], tmap[3 * H * W + e]};
    combine_grads(t, x[e], y[e], gx ? gx + e : nullptr, gy ? gy + e : nullptr);
  }
}

// ---- all planes ----
// x, y: (planes, H, W) contiguous; stats: (5, planes, OH, OW), written, or null; plane_sums: (planes), written.
template <typename T>
void ssim_forward(const T* x, const T* y, int64_t planes, const Geometry& geo, const double* g, bool separable,
                  T* stats, double* plane_sums) {
  const int64_t plane_in = geo.H * geo.W, plane_map = geo.OH * geo.OW, stride = planes * plane_map;
#pragma omp parallel if (planes > 1 && stride * geo.ws > kParallelGrain)
  {
    std::vector<double> scratch;
#pragma omp for schedule(dynamic)
    for (int64_t pl = 0; pl < planes; ++pl) {
      const T* xp = x + pl * plane_in;
      const T* yp = y + pl * plane_in;
      T* sp = stats ? stats + pl * plane_map : nullptr;
      plane_sums[pl] = separable ? ssim_plane_forward_separable(xp, yp, geo, g, sp, stride, scratch)
                                 : ssim_plane_forward_direct(xp, yp, geo, g, sp, stride);
    }
  }
}

// x, y: (planes, H, W) contiguous; stats: (5, planes, OH, OW); w: dL/dS for every map entry;
// gx, gy: (planes, H, W), written, or null when not wanted.
template <typename T>
void ssim_backward(const T* x, const T* y, const T* stats, int64_t planes, const Geometry& geo, const double* g,
                   double w, bool separable, T* gx, T* gy) {
  const int64_t plane_in = geo.H * geo.W, plane_map = geo.OH * geo.OW, stride = planes * plane_map;
#pragma omp parallel if (planes > 1 && stride * geo.ws > kParallelGrain)
  {
    std::vector<double> scratch;
#pragma omp for schedule(dynamic)
    for (int64_t pl = 0; pl < planes; ++pl) {
      const int64_t in = pl * plane_in;
      T* gxp = gx ? gx + in : nullptr;
      T* gyp = gy ? gy + in : nullptr;
      if (separable)
        ssim_plane_backward_separable(x + in, y + in, stats + pl * plane_map, stride, geo, g, w, gxp, gyp, scratch);
      else
        ssim_plane_backward_direct(x + in, y + in, stats + pl * plane_map, stride, geo, g, w, gxp, gyp, scratch);
    }
  }
}

}  // namespace fg::cpu

namespace fg::kernels {

std::vector<double> ssim_gaussian_window(int64_t window_size, double sigma) {
  FG_CHECK(window_size >= 1, "ssim: window_size must be at least 1, got " << window_size);
  FG_CHECK(std::isfinite(sigma) && sigma > 0.0, "ssim: sigma must be a positive number, got " << sigma);
  const int64_t centre = window_size / 2;
  std::vector<double> g(static_cast<size_t>(window_size));
  double total = 0.0;
  for (int64_t i = 0; i < window_size; ++i) {
    const double d = double(i - centre);
    g[size_t(i)] = std::exp(-d * d / (2.0 * sigma * sigma));
    total += g[size_t(i)];
  }
  for (double& v : g) v /= total;
  return g;
}

int64_t ssim_map_size(int64_t size, int64_t window_size) {
  return size + 2 * (window_size / 2) - window_size + 1;
}

namespace {

void check_images(const char* op, const Tensor& x, const Tensor& y, const SsimParams& params) {
  FG_CHECK(x.defined() && y.defined(), op << ": x and y must both be defined");
  FG_CHECK(x.dim() == 4, op << ": expected x of shape (N, C, H, W), got " << shape_str(x.shape())
                            << "; add the missing dimensions with unsqueeze");
  FG_CHECK(x.shape() == y.shape(), op << ": x has shape " << shape_str(x.shape()) << " but y has shape "
                                      << shape_str(y.shape()) << "; the two images must have the same shape");
  FG_CHECK(x.dtype() == y.dtype(), op << ": x is " << dtype_name(x.dtype()) << " but y is " << dtype_name(y.dtype())
                                      << "; cast one so they match");
  FG_CHECK(x.device() == y.device(),
           op << ": x is on " << x.device().str() << " but y is on " << y.device().str() << "; move one so they match");
  require_cpu(x, op, "x");
  FG_CHECK(x.size(2) >= 1 && x.size(3) >= 1,
           op << ": the images of shape " << shape_str(x.shape()) << " have no pixels");
  FG_CHECK(params.window_size >= 1, op << ": window_size must be at least 1, got " << params.window_size);
  FG_CHECK(std::isfinite(params.sigma) && params.sigma > 0.0,
           op << ": sigma must be a positive number, got " << params.sigma);
}

cpu::Geometry geometry_of(const Tensor& x, const SsimParams& params) {
  const int64_t ws = params.window_size;
  return {x.size(2), x.size(3), ws, ws / 2, ssim_map_size(x.size(2), ws), ssim_map_size(x.size(3), ws)};
}

}  // namespace

SsimResult ssim(const Tensor& x, const Tensor& y, const SsimParams& params, bool keep_stats, SsimVariant variant) {
#ifdef FG_WITH_CUDA
  // `variant` chooses among the CPU versions; CUDA tensors run the fused kernel (kernels/cuda/ssim.h).
  if ((x.defined() && x.device().is_cuda()) || (y.defined() && y.device().is_cuda()))
    return cuda::ssim(x, y, params, keep_stats);
#endif
  check_images("ssim", x, y, params);
  const std::vector<double> g = ssim_gaussian_window(params.window_size, params.sigma);
  const cpu::Geometry geo = geometry_of(x, params);
  const int64_t N = x.size(0), C = x.size(1), planes = N * C;
  const int64_t plane_map = geo.OH * geo.OW;
  const Tensor xc = x.contiguous(), yc = y.contiguous();

  SsimResult result;
  if (keep_stats) result.stats = {Tensor::empty({5, N, C, geo.OH, geo.OW}, x.dtype()), params};
  std::vector<double> plane_sums(size_t(planes), 0.0);
  // N*C = 0 leaves nothing to filter; the value below is then NaN, as PyTorch's mean of an empty map is.
  if (planes > 0) {
    FG_DISPATCH_FLOATING(x.dtype(), "ssim", [&] {
      cpu::ssim_forward(xc.data<scalar_t>(), yc.data<scalar_t>(), planes, geo, g.data(),
                        variant == SsimVariant::SEPARABLE, keep_stats ? result.stats.moments.data<scalar_t>() : nullptr,
                        plane_sums.data());
    });
  }

  double total = 0.0;
  std::vector<double> channel_means(static_cast<size_t>(planes));
  for (int64_t pl = 0; pl < planes; ++pl) {
    total += plane_sums[size_t(pl)];
    channel_means[size_t(pl)] = plane_sums[size_t(pl)] / double(plane_map);
  }
  result.value = Tensor::scalar(total / double(planes * plane_map), x.dtype());
  result.per_channel = Tensor::from_vector(channel_means, {N, C}, x.dtype());
  return result;
}

void check_ssim_stats(const SsimStats& stats, const Tensor& x, const SsimParams& params, const char* op) {
  const auto params_str = [](const SsimParams& p) {
    std::ostringstream os;
    os << "window " << p.window_size << ", sigma " << p.sigma;
    return os.str();
  };
  FG_CHECK(stats.defined(), op << ": the forward's statistics are undefined; run ssim(..., keep_stats = true) first");
  FG_CHECK(stats.params.window_size == params.window_size && stats.params.sigma == params.sigma,
           op << ": the statistics were made with " << params_str(stats.params) << " but the backward was given "
              << params_str(params) << "; pass the forward's parameters (SsimResult::stats.params)");
  const Shape want = {5, x.size(0), x.size(1), ssim_map_size(x.size(2), params.window_size),
                      ssim_map_size(x.size(3), params.window_size)};
  FG_CHECK(stats.moments.shape() == want && stats.moments.dtype() == x.dtype() && stats.moments.device() == x.device(),
           op << ": expected the forward's stats, " << dtype_name(x.dtype()) << shape_str(want) << " on "
              << x.device().str() << ", got " << stats.moments.str()
              << "; run ssim(..., keep_stats = true) on the same images and window first");
}

SsimGrads ssim_backward(const Tensor& grad_out, const Tensor& x, const Tensor& y, const SsimStats& stats,
                        const SsimParams& params, bool need_x, bool need_y, SsimVariant variant) {
#ifdef FG_WITH_CUDA
  if ((x.defined() && x.device().is_cuda()) || (y.defined() && y.device().is_cuda()))
    return cuda::ssim_backward(grad_out, x, y, stats, params, need_x, need_y);
#endif
  check_images("ssim_backward", x, y, params);
  const std::vector<double> g = ssim_gaussian_window(params.window_size, params.sigma);
  const cpu::Geometry geo = geometry_of(x, params);
  const int64_t N = x.size(0), C = x.size(1), planes = N * C;
  check_ssim_stats(stats, x, params, "ssim_backward");
  FG_CHECK(grad_out.defined() && grad_out.numel() == 1,
           "ssim_backward: the output gradient must hold one element, got " << shape_str(grad_out.shape()));
  require_cpu(grad_out, "ssim_backward", "the output gradient");
  // dL/dS for every map entry: the gradient of the mean spreads evenly over the map.
  const double w = grad_out.item() / double(planes * geo.OH * geo.OW);
  const Tensor xc = x.contiguous(), yc = y.contiguous(), sc = stats.moments.contiguous();

  SsimGrads grads;
  if (need_x) grads.x = Tensor::empty(x.shape(), x.dtype());
  if (need_y) grads.y = Tensor::empty(x.shape(), x.dtype());
  if ((!need_x && !need_y) || planes == 0) return grads;
  FG_DISPATCH_FLOATING(x.dtype(), "ssim_backward", [&] {
    cpu::ssim_backward(xc.data<scalar_t>(), yc.data<scalar_t>(), sc.data<scalar_t>(), planes, geo, g.data(), w,
                       variant == SsimVariant::SEPARABLE, need_x ? grads.x.data<scalar_t>() : nullptr,
                       need_y ? grads.y.data<scalar_t>() : nullptr);
  });
  return grads;
}

}  // namespace fg::kernels
