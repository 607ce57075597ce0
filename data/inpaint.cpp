// The diffusion and biharmonic inpainting of data/inpaint.h.
#include "data/inpaint.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/error.h"

namespace fg::data {

namespace {

// The mask as a contiguous (H, W) f32 tensor, checked against the expected size (H or W < 0: any).
Tensor mask_plane(const Tensor& mask, int64_t H, int64_t W, const char* op) {
  FG_CHECK(mask.defined() && mask.dtype() == DType::F32 && mask.device().is_cpu() &&
               (mask.dim() == 2 || (mask.dim() == 3 && mask.size(0) == 1)),
           op << ": the mask must be an (H, W) or (1, H, W) f32 CPU tensor, got "
              << (mask.defined() ? shape_str(mask.shape()) + " " + dtype_name(mask.dtype())
                                 : std::string("an undefined tensor")));
  const Tensor m = mask.dim() == 3 ? mask.select(0, 0) : mask;
  FG_CHECK(H < 0 || (m.size(0) == H && m.size(1) == W),
           op << ": the mask is " << m.size(0) << " x " << m.size(1) << " but the image is " << H << " x " << W);
  return m.contiguous();
}

void check_image(const Tensor& image, const char* op) {
  FG_CHECK(image.defined() && image.dim() == 3 && image.dtype() == DType::F32 && image.device().is_cpu() &&
               image.size(0) >= 1 && image.size(1) >= 1 && image.size(2) >= 1,
           op << ": expected a non-empty (C, H, W) f32 CPU image, got "
              << (image.defined() ? shape_str(image.shape()) + " " + dtype_name(image.dtype())
                                  : std::string("an undefined tensor")));
}

// One connected piece of a biharmonic fill's hole (data/inpaint.h), solved on its own.
//   tag: per image pixel, kKnown, kHole (not yet solved), kSolved, or, while this component is solved, its local
//   index: the n hole pixels 0 .. n-1 first, then the known pixels whose stencil holds one of them.
constexpr int32_t kKnown = -1, kHole = -2, kSolved = -3;
constexpr int64_t kStartSweeps = 10;  // Gauss-Seidel sweeps of the harmonic start at most

struct BiharmonicSolver {
  BiharmonicSolver(int64_t C_, int64_t H_, int64_t W_, float* image_, const std::vector<double>& lo_,
                   const std::vector<double>& hi_, const InpaintOptions& options_, std::vector<int32_t>& tag_)
      : C(C_), H(H_), W(W_), image(image_), lo(&lo_), hi(&hi_), options(&options_), tag(&tag_) {}

  int64_t C, H, W;
  float* image;                   // (C, H, W), known pixels read, the hole written
  const std::vector<double>* lo;  // per channel: the clamp range (the known pixels' range)
  const std::vector<double>* hi;
  const InpaintOptions* options;
  std::vector<int32_t>* tag;

  // Scratch, reused from one component to the next. Vectors over the hole hold all channels interleaved
  // (v[k * C + c]) plus a last slot n that stays 0: stencil entries that are known or outside the image point
  // there with coefficient 0, so the inner loops need no branch.
  std::vector<int64_t> sites;
  std::vector<int32_t> idx;   // 5 stencil entries per site: the centre first, then the in-image neighbours
  std::vector<double> coef;   // their coefficients (-count, 1); 0 (and idx n) where the pixel is known or absent
  std::vector<double> known;  // per site and channel: the known pixels' part of L_s
  std::vector<double> diag, x, rhs, r, z, p, q, t, band;
  std::vector<int64_t> pending, ring, rest;
  std::vector<uint8_t> filled;
  std::vector<double> ring_values;

  double value(int64_t c, int64_t i) const { return double(image[c * H * W + i]); }

  // y = L_h^T L_h v over this component's sites, every channel.
  void apply(const std::vector<double>& v, std::vector<double>& y) {
    const size_t S = sites.size(), Cn = size_t(C);
    for (size_t s = 0; s < S; ++s)
      for (size_t c = 0; c < Cn; ++c) {
        double sum = 0.0;
        for (size_t e = 5 * s; e < 5 * s + 5; ++e) sum += coef[e] * v[size_t(idx[e]) * Cn + c];
        t[s * Cn + c] = sum;
      }
    std::fill(y.begin(), y.end(), 0.0);
    for (size_t s = 0; s < S; ++s)
      for (size_t e = 5 * s; e < 5 * s + 5; ++e)
        for (size_t c = 0; c < Cn; ++c) y[size_t(idx[e]) * Cn + c] += coef[e] * t[s * Cn + c];
  }

  // The normal equations factorised (Cholesky) in the hole's row-major order, where a matrix row couples only pixels
  // up to two image rows apart: a band as wide as about two rows of the component (a few pixels for a scratch, twice
  // the width of a blob), so the cost is n b^2 / 2 and the memory n (b + 1). Exact to rounding in one pass, where CG
  // needs thousands of iterations on a blob (its condition number grows with the fourth power of the width). False
  // (nothing written) when the band would hold more than options->direct_max_doubles values, or a pivot is not
  // positive; CG then takes over.
  bool solve_direct(size_t n, size_t S) {
    const size_t Cn = size_t(C);
    size_t b = 0;
    for (size_t s = 0; s < S; ++s) {
      size_t first = n, last = 0;
      for (size_t e = 5 * s; e < 5 * s + 5; ++e)
        if (size_t(idx[e]) < n) first = std::min(first, size_t(idx[e])), last = std::max(last, size_t(idx[e]));
      if (first < n) b = std::max(b, last - first);
    }
    const size_t w = b + 1;
    if (double(n) * double(w) > double(options->direct_max_doubles)) return false;
    // Row i holds A(i, k) for k = i - b .. i at band[i * w + k + b - i]: a row's entries in increasing k, so the
    // factorisation's inner products run over contiguous memory.
    band.assign(n * w, 0.0);
    for (size_t s = 0; s < S; ++s)
      for (size_t e1 = 5 * s; e1 < 5 * s + 5; ++e1) {
        const size_t i1 = size_t(idx[e1]);
        if (i1 >= n) continue;
        for (size_t e2 = 5 * s; e2 <= e1; ++e2) {
          const size_t i2 = size_t(idx[e2]);
          if (i2 >= n) continue;
          const size_t i = std::max(i1, i2), k = std::min(i1, i2);
          band[i * w + k + b - i] += coef[e1] * coef[e2];
        }
      }
    for (size_t i = 0; i < n; ++i) {
      const size_t j0 = i > b ? i - b : 0;
      double* row_i = band.data() + i * w + b - i;  // row_i[k] = L(i, k)
      for (size_t j = j0; j <= i; ++j) {
        const double* row_j = band.data() + j * w + b - j;
        double sum = row_i[j];
        for (size_t k = std::max(j0, j > b ? j - b : 0); k < j; ++k) sum -= row_i[k] * row_j[k];
        if (j < i) {
          row_i[j] = sum / row_j[j];
        } else {
          if (!(sum > 0.0) || !std::isfinite(sum)) return false;
          row_i[i] = std::sqrt(sum);
        }
      }
    }
    // L y = rhs, then L^T x = y, every channel.
    x.assign((n + 1) * Cn, 0.0);
    for (size_t s = 0; s < S; ++s)
      for (size_t e = 5 * s; e < 5 * s + 5; ++e)
        for (size_t c = 0; c < Cn; ++c) x[size_t(idx[e]) * Cn + c] -= coef[e] * known[s * Cn + c];
    for (size_t c = 0; c < Cn; ++c) x[n * Cn + c] = 0.0;  // the slot of known and absent entries
    for (size_t i = 0; i < n; ++i) {
      const double* row_i = band.data() + i * w + b - i;
      for (size_t c = 0; c < Cn; ++c) {
        double sum = x[i * Cn + c];
        for (size_t k = i > b ? i - b : 0; k < i; ++k) sum -= row_i[k] * x[k * Cn + c];
        x[i * Cn + c] = sum / row_i[i];
      }
    }
    for (size_t i = n; i-- > 0;) {
      const double pivot = band[i * w + b];
      for (size_t c = 0; c < Cn; ++c) {
        double sum = x[i * Cn + c];
        for (size_t k = i + 1; k < std::min(n, i + b + 1); ++k) sum -= band[k * w + i + b - k] * x[k * Cn + c];
        x[i * Cn + c] = sum / pivot;
      }
    }
    return true;
  }

  // Conjugate gradients for a component too large for solve_direct.
  void solve_cg(const std::vector<int64_t>& hole, size_t n, size_t S) {
    const std::vector<int32_t>& tg = *tag;
    const size_t Cn = size_t(C);
    // The start: the harmonic fill of the component. Onion peel first (the mean of the known or already filled
    // 8-neighbours, ring by ring from the outside in), as inpaint_diffusion does.
    x.assign((n + 1) * Cn, 0.0);
    filled.assign(n, 0);
    pending.resize(n);
    for (size_t k = 0; k < n; ++k) pending[k] = int64_t(k);
    std::vector<double> sums(Cn);
    while (!pending.empty()) {
      ring.clear();
      rest.clear();
      ring_values.clear();
      for (int64_t k : pending) {
        const int64_t i = hole[size_t(k)], y = i / W, xx = i % W;
        int count = 0;
        std::fill(sums.begin(), sums.end(), 0.0);
        for (int64_t yy = std::max<int64_t>(y - 1, 0); yy <= std::min(y + 1, H - 1); ++yy)
          for (int64_t x2 = std::max<int64_t>(xx - 1, 0); x2 <= std::min(xx + 1, W - 1); ++x2) {
            const int64_t j = yy * W + x2;
            const int32_t local = tg[size_t(j)];
            // An 8-neighbour in the hole is in this component (two pixels apart at most), so the rest is known.
            const bool hole_pixel = local >= 0 && size_t(local) < n;
            if (hole_pixel && !filled[size_t(local)]) continue;
            ++count;
            for (size_t c = 0; c < Cn; ++c) sums[c] += hole_pixel ? x[size_t(local) * Cn + c] : value(int64_t(c), j);
          }
        if (count == 0) {
          rest.push_back(k);
          continue;
        }
        ring.push_back(k);
        for (size_t c = 0; c < Cn; ++c) ring_values.push_back(sums[c] / count);
      }
      FG_ASSERT(!ring.empty(), "inpaint_biharmonic: a hole pixel unreachable from the known ones");
      for (size_t r2 = 0; r2 < ring.size(); ++r2) {
        filled[size_t(ring[r2])] = 1;
        for (size_t c = 0; c < Cn; ++c) x[size_t(ring[r2]) * Cn + c] = ring_values[r2 * Cn + c];
      }
      pending.swap(rest);
    }
    // Gauss-Seidel on L_k u = 0 at the hole pixels (a hole pixel's site k is its own index) towards the harmonic
    // fill. A few sweeps smooth the onion peel's rings; sweeping to convergence costs more than the CG iterations
    // it saves (bench_inpaint's 4000 x 3000 case with CG for every component, one run each: no sweeps 3.1 s, 10
    // sweeps 2.8 s, converged 3.9 s).
    for (int64_t sweep = 0; sweep < std::min(options->max_sweeps, kStartSweeps); ++sweep) {
      double largest = 0.0;
      for (size_t k = 0; k < n; ++k)
        for (size_t c = 0; c < Cn; ++c) {
          double sum = known[k * Cn + c];
          for (size_t e = 5 * k + 1; e < 5 * k + 5; ++e) sum += x[size_t(idx[e]) * Cn + c];  // slot n is 0
          const double next = sum / -coef[5 * k];
          largest = std::max(largest, std::fabs(next - x[k * Cn + c]));
          x[k * Cn + c] = next;
        }
      if (largest <= options->tolerance) break;
    }

    // Conjugate gradients on L_h^T L_h u = -L_h^T known, preconditioned by the diagonal, each channel with its own
    // step sizes and stop, the stencils read once for all of them.
    const size_t N = (n + 1) * Cn;
    r.assign(N, 0.0);
    z.assign(N, 0.0);
    p.assign(N, 0.0);
    q.resize(N);
    rhs.assign(N, 0.0);
    t.resize(S * Cn);
    for (size_t s = 0; s < S; ++s)
      for (size_t e = 5 * s; e < 5 * s + 5; ++e)
        for (size_t c = 0; c < Cn; ++c) rhs[size_t(idx[e]) * Cn + c] -= coef[e] * known[s * Cn + c];
    apply(x, q);
    std::vector<double> rz(Cn, 0.0), rr(Cn, 0.0), stop(Cn, 0.0), pq(Cn), alpha(Cn), rz_next(Cn);
    for (size_t k = 0; k < n; ++k)
      for (size_t c = 0; c < Cn; ++c) {
        const size_t i = k * Cn + c;
        r[i] = rhs[i] - q[i];
        z[i] = r[i] / diag[k];
        p[i] = z[i];
        rz[c] += r[i] * z[i];
        rr[c] += r[i] * r[i];
        stop[c] += rhs[i] * rhs[i];
      }
    std::vector<uint8_t> active(Cn);
    for (size_t c = 0; c < Cn; ++c) {
      stop[c] = options->cg_tolerance * std::sqrt(stop[c]);
      active[c] = std::sqrt(rr[c]) > stop[c];
    }
    for (int64_t it = 0; it < options->cg_max_iterations; ++it) {
      bool any = false;
      for (size_t c = 0; c < Cn; ++c) any = any || active[c];
      if (!any) break;
      apply(p, q);
      std::fill(pq.begin(), pq.end(), 0.0);
      for (size_t k = 0; k < n; ++k)
        for (size_t c = 0; c < Cn; ++c) pq[c] += p[k * Cn + c] * q[k * Cn + c];
      for (size_t c = 0; c < Cn; ++c) {
        if (!(pq[c] > 0.0)) active[c] = 0;  // p is 0 to rounding: nothing left to gain
        alpha[c] = active[c] ? rz[c] / pq[c] : 0.0;
        rz_next[c] = rr[c] = 0.0;
      }
      for (size_t k = 0; k < n; ++k)
        for (size_t c = 0; c < Cn; ++c) {
          const size_t i = k * Cn + c;
          x[i] += alpha[c] * p[i];
          r[i] -= alpha[c] * q[i];
          z[i] = r[i] / diag[k];
          rz_next[c] += r[i] * z[i];
          rr[c] += r[i] * r[i];
        }
      for (size_t c = 0; c < Cn; ++c) {
        // A channel that has stopped keeps p, r and x as they are (alpha 0).
        const double beta = active[c] ? rz_next[c] / rz[c] : 0.0;
        if (active[c]) rz[c] = rz_next[c];
        for (size_t k = 0; k < n && active[c]; ++k) p[k * Cn + c] = z[k * Cn + c] + beta * p[k * Cn + c];
        active[c] = active[c] && std::sqrt(rr[c]) > stop[c];
      }
    }
  }

  void solve(const std::vector<int64_t>& hole) {
    std::vector<int32_t>& tg = *tag;
    const size_t n = hole.size(), Cn = size_t(C);
    sites.assign(hole.begin(), hole.end());
    for (size_t k = 0; k < n; ++k) tg[size_t(hole[k])] = int32_t(k);
    for (size_t k = 0; k < n; ++k) {
      const int64_t i = hole[k], y = i / W, xx = i % W;
      for (int64_t j : {y > 0 ? i - W : -1, y + 1 < H ? i + W : -1, xx > 0 ? i - 1 : -1, xx + 1 < W ? i + 1 : -1})
        if (j >= 0 && tg[size_t(j)] == kKnown) {
          tg[size_t(j)] = int32_t(sites.size());
          sites.push_back(j);
        }
    }
    const size_t S = sites.size();

    // The stencils: L_s u = sum of the in-image neighbours - their count * u_s.
    idx.assign(5 * S, int32_t(n));
    coef.assign(5 * S, 0.0);
    known.assign(S * Cn, 0.0);
    diag.assign(n, 0.0);
    for (size_t s = 0; s < S; ++s) {
      const int64_t i = sites[s], y = i / W, xx = i % W;
      const int64_t neighbours[4] = {y > 0 ? i - W : -1, y + 1 < H ? i + W : -1, xx > 0 ? i - 1 : -1,
                                     xx + 1 < W ? i + 1 : -1};
      int count = 0;
      for (int64_t j : neighbours) count += j >= 0;
      for (int e = 0; e < 5; ++e) {
        const int64_t j = e == 0 ? i : neighbours[e - 1];
        if (j < 0) continue;
        const double a = e == 0 ? -double(count) : 1.0;
        const int32_t local = tg[size_t(j)];
        if (local >= 0 && size_t(local) < n) {
          idx[5 * s + size_t(e)] = local;
          coef[5 * s + size_t(e)] = a;
          diag[size_t(local)] += a * a;
        } else {
          for (size_t c = 0; c < Cn; ++c) known[s * Cn + c] += a * value(int64_t(c), j);
        }
      }
    }

    // x: the solution, every channel (interleaved, slot n 0).
    if (!solve_direct(n, S)) solve_cg(hole, n, S);
    for (size_t c = 0; c < Cn; ++c) {
      float* out = image + int64_t(c) * H * W;
      for (size_t k = 0; k < n; ++k) out[hole[k]] = float(std::clamp(x[k * Cn + c], (*lo)[c], (*hi)[c]));
    }

    for (size_t k = 0; k < n; ++k) tg[size_t(hole[k])] = kSolved;
    for (size_t s = n; s < S; ++s) tg[size_t(sites[s])] = kKnown;
  }
};

}  // namespace

Tensor inpaint_diffusion(const Tensor& image, const Tensor& mask, const InpaintOptions& options) {
  check_image(image, "inpaint_diffusion");
  FG_CHECK(options.max_sweeps >= 0 && options.tolerance >= 0,
           "inpaint_diffusion: max_sweeps and tolerance must not be negative");
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  const Tensor m = mask_plane(mask, H, W, "inpaint_diffusion");
  Tensor out = image.contiguous().clone();
  const float* mp = m.data<float>();

  std::vector<int64_t> hole;  // pixel indices y * W + x to fill
  std::vector<uint8_t> known(size_t(H * W));
  for (int64_t i = 0; i < H * W; ++i) {
    known[size_t(i)] = !(mp[i] > 0.5f);
    if (!known[size_t(i)]) hole.push_back(i);
  }
  if (hole.empty() || int64_t(hole.size()) == H * W) return out;

  // 1. Onion peel, in rings: a ring's values are computed from what was known before it, then marked known.
  std::vector<int64_t> pending = hole, ring, rest;
  std::vector<uint8_t> filled = known;
  std::vector<std::vector<double>> values(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    values[size_t(c)].resize(size_t(H * W));
    const float* p = out.data<float>() + c * H * W;
    for (int64_t i = 0; i < H * W; ++i) values[size_t(c)][size_t(i)] = double(p[i]);
  }
  std::vector<double> ring_values, sums(static_cast<size_t>(C));
  while (!pending.empty()) {
    ring.clear();
    rest.clear();
    ring_values.clear();
    for (int64_t i : pending) {
      const int64_t y = i / W, x = i % W;
      int n = 0;
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t yy = std::max<int64_t>(y - 1, 0); yy <= std::min(y + 1, H - 1); ++yy)
        for (int64_t xx = std::max<int64_t>(x - 1, 0); xx <= std::min(x + 1, W - 1); ++xx) {
          const int64_t j = yy * W + xx;
          if (!filled[size_t(j)]) continue;
          ++n;
          for (int64_t c = 0; c < C; ++c) sums[size_t(c)] += values[size_t(c)][size_t(j)];
        }
      if (n == 0) {
        rest.push_back(i);
        continue;
      }
      ring.push_back(i);
      for (int64_t c = 0; c < C; ++c) ring_values.push_back(sums[size_t(c)] / n);
    }
    FG_ASSERT(!ring.empty(), "inpaint_diffusion: a hole pixel unreachable from the known ones");
    for (size_t k = 0; k < ring.size(); ++k) {
      filled[size_t(ring[k])] = 1;
      for (int64_t c = 0; c < C; ++c) values[size_t(c)][size_t(ring[k])] = ring_values[k * size_t(C) + size_t(c)];
    }
    pending.swap(rest);
  }

  // 2. Gauss-Seidel on the 4-neighbour Laplacian over the hole pixels (known pixels are the boundary values).
  for (int64_t c = 0; c < C; ++c) {
    std::vector<double>& v = values[size_t(c)];
    for (int64_t sweep = 0; sweep < options.max_sweeps; ++sweep) {
      double largest = 0.0;
      for (int64_t i : hole) {
        const int64_t y = i / W, x = i % W;
        double sum = 0.0;
        int n = 0;
        if (y > 0) sum += v[size_t(i - W)], ++n;
        if (y + 1 < H) sum += v[size_t(i + W)], ++n;
        if (x > 0) sum += v[size_t(i - 1)], ++n;
        if (x + 1 < W) sum += v[size_t(i + 1)], ++n;
        if (n == 0) continue;  // a 1 x 1 image (then it is all hole, handled above)
        const double next = sum / n;
        largest = std::max(largest, std::fabs(next - v[size_t(i)]));
        v[size_t(i)] = next;
      }
      if (largest <= options.tolerance) break;
    }
    float* p = out.data<float>() + c * H * W;
    for (int64_t i : hole) p[i] = float(v[size_t(i)]);
  }
  return out;
}

Tensor inpaint_biharmonic(const Tensor& image, const Tensor& mask, const InpaintOptions& options) {
  check_image(image, "inpaint_biharmonic");
  FG_CHECK(options.max_sweeps >= 0 && options.tolerance >= 0 && options.direct_max_doubles >= 0 &&
               options.cg_max_iterations >= 0 && options.cg_tolerance >= 0,
           "inpaint_biharmonic: max_sweeps, tolerance, direct_max_doubles, cg_max_iterations and cg_tolerance must "
           "not be negative");
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  const Tensor m = mask_plane(mask, H, W, "inpaint_biharmonic");
  Tensor out = image.contiguous().clone();
  const float* mp = m.data<float>();
  float* op = out.data<float>();

  std::vector<int32_t> tag(size_t(H * W));
  int64_t holes = 0;
  for (int64_t i = 0; i < H * W; ++i) {
    const bool hole = mp[i] > 0.5f;
    tag[size_t(i)] = hole ? kHole : kKnown;
    holes += hole;
  }
  if (holes == 0 || holes == H * W) return out;

  std::vector<double> lo(size_t(C), std::numeric_limits<double>::infinity());
  std::vector<double> hi(size_t(C), -std::numeric_limits<double>::infinity());
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < H * W; ++i)
      if (tag[size_t(i)] == kKnown) {
        lo[size_t(c)] = std::min(lo[size_t(c)], double(op[c * H * W + i]));
        hi[size_t(c)] = std::max(hi[size_t(c)], double(op[c * H * W + i]));
      }

  BiharmonicSolver solver(C, H, W, op, lo, hi, options, tag);
  // The components: hole pixels joined when one site's stencil can hold both (|dy| + |dx| <= 2).
  static constexpr int kOffsets[12][2] = {{-2, 0}, {-1, -1}, {-1, 0}, {-1, 1}, {0, -2}, {0, -1},
                                          {0, 1},  {0, 2},   {1, -1}, {1, 0},  {1, 1},  {2, 0}};
  std::vector<int64_t> component, stack;
  for (int64_t seed = 0; seed < H * W; ++seed) {
    if (tag[size_t(seed)] != kHole) continue;
    component.clear();
    stack.assign(1, seed);
    tag[size_t(seed)] = kSolved;  // "queued" while the component is gathered; solve() sets its own tags
    while (!stack.empty()) {
      const int64_t i = stack.back();
      stack.pop_back();
      component.push_back(i);
      const int64_t y = i / W, x = i % W;
      for (const auto& o : kOffsets) {
        const int64_t yy = y + o[0], xx = x + o[1];
        if (yy < 0 || yy >= H || xx < 0 || xx >= W || tag[size_t(yy * W + xx)] != kHole) continue;
        tag[size_t(yy * W + xx)] = kSolved;
        stack.push_back(yy * W + xx);
      }
    }
    std::sort(component.begin(), component.end());  // row-major: the Gauss-Seidel order of inpaint_diffusion
    solver.solve(component);
  }
  return out;
}

Tensor hole_from_mask(const Tensor& mask, double threshold, int64_t dilate) {
  FG_CHECK(dilate >= 0, "hole_from_mask: the dilation must not be negative, got " << dilate);
  const Tensor m = mask_plane(mask, -1, -1, "hole_from_mask");
  const int64_t H = m.size(0), W = m.size(1);
  const float* mp = m.data<float>();
  Tensor out = Tensor::zeros({1, H, W});
  float* o = out.data<float>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      if (!(double(mp[y * W + x]) > threshold)) continue;
      for (int64_t yy = std::max<int64_t>(y - dilate, 0); yy <= std::min(y + dilate, H - 1); ++yy)
        for (int64_t xx = std::max<int64_t>(x - dilate, 0); xx <= std::min(x + dilate, W - 1); ++xx)
          o[yy * W + xx] = 1.0f;
    }
  return out;
}

}  // namespace fg::data
