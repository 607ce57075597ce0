// 2-D convolution on the CPU (groups = 1): the direct-loop reference (conv2d_*_plain, the spec) and the
// production paths (conv2d_*_gemm: im2col column tiles times the weight matrix in the CPU GEMM, kernels/cpu/gemm.h;
// conv2d_forward_winograd / conv2d_backward_input_winograd: Winograd F(2x2, 3x3) for 3x3 stride-1 layers, below),
// plus the Tensor-level entry points of kernels/conv2d.h. Every output - y, dx, dw, db - is written (=), never accumulated into what
// the caller passed.
//
// The GEMM path views the convolution as matrices over the flattened output positions j = (n, oh, ow):
//   col (C*KH*KW, N*OH*OW): col[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] (0 outside)
//   forward:         y_j  = W (O, CKK) col_j                         per tile of columns
//   backward-input:  dcol = W^T (CKK, O) dy (O, cols), then col2im    (scatter-add of the rows back onto dx)
//   backward-weight: dW  += dy (O, cols) col^T (cols, CKK)            summed over the tiles
// Columns are processed in tiles of about kColumnBudget / rows columns (never fewer than kMinTileColumns), so the
// column buffer stays bounded however large the image. A tile is either part of one image (then y, dy, and for 1x1
// stride-1 convolutions x and dx, are read and written in place, with a row stride of OH*OW) or a run of whole
// images (then dy/y go through a small gathered buffer). Work is split so no two threads ever write the same memory:
//   forward:         tiles over threads, each owning its output columns; when there are fewer tiles than threads
//                    (the deep layers of small images), the threads build each tile together and split O instead;
//   backward-input:  (image group x channel range) over threads, each owning a block of dx;
//   backward-weight: column ranges of dW over threads (each builds only its rows of col), or row ranges when
//                    O > C*KH*KW (each reads only its rows of dy).
// Threads take contiguous ranges (static schedules), so each writes its own pages of the freshly allocated output.
#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/cpu/gemm.h"
#include "kernels/device_check.h"
#include "kernels/matmul.h"
#include "tensor/error.h"
#ifdef FG_WITH_CUDA
#include "kernels/backend.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/vendor/cudnn_conv2d.h"
#endif

namespace fg::cpu {

// All the sizes of one convolution.
struct Conv2dDims {
  int64_t N, C, H, W;  // x: (N, C, H, W)
  int64_t O, KH, KW;   // w: (O, C, KH, KW)
  int64_t OH, OW;      // y: (N, O, OH, OW)
  int64_t sh, sw, ph, pw, dh, dw;
  int64_t P() const { return OH * OW; }
  int64_t KK() const { return KH * KW; }
  int64_t CKK() const { return C * KH * KW; }
  // A 1x1 stride-1 unpadded convolution: col is x itself (row c = x[n, c], columns = the H*W pixels).
  bool pointwise() const { return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
  // Multiply-adds times 2, in any direction.
  double flops() const { return 2.0 * double(N) * double(O) * double(P()) * double(CKK()); }
};

// Convolutions below this many flops run on one thread: waking the OpenMP team costs more than it saves (and far
// more on a loaded machine).
constexpr double kParallelFlops = 1.0e6;

// The threads a convolution of this size gets.
inline int conv_threads(const Conv2dDims& d) { return d.flops() < kParallelFlops ? 1 : omp_get_max_threads(); }

// ---------------------------------------------------------------------------------------------------------------
// The reference: direct loops.

// x: (N, C, H, W), w: (O, C, KH, KW), b: (O) or null -> y: (N, O, OH, OW), written.
template <typename T>
void conv2d_forward_plain(const Conv2dDims& d, const T* x, const T* w, const T* b, T* y) {
#pragma omp parallel for collapse(2) schedule(static) if (d.flops() > kParallelFlops)
  for (int64_t n = 0; n < d.N; ++n) {
    for (int64_t o = 0; o < d.O; ++o) {
      for (int64_t oh = 0; oh < d.OH; ++oh) {
        for (int64_t ow = 0; ow < d.OW; ++ow) {
          T acc = b ? b[o] : T(0);
          for (int64_t c = 0; c < d.C; ++c) {
            for (int64_t kh = 0; kh < d.KH; ++kh) {
              const int64_t ih = oh * d.sh - d.ph + kh * d.dh;
              if (ih < 0 || ih >= d.H) continue;
              for (int64_t kw = 0; kw < d.KW; ++kw) {
                const int64_t iw = ow * d.sw - d.pw + kw * d.dw;
                if (iw < 0 || iw >= d.W) continue;
                acc += x[((n * d.C + c) * d.H + ih) * d.W + iw] * w[((o * d.C + c) * d.KH + kh) * d.KW + kw];
              }
            }
          }
          y[((n * d.O + o) * d.OH + oh) * d.OW + ow] = acc;
        }
      }
    }
  }
}

// dy: (N, O, OH, OW), w: (O, C, KH, KW) -> dx: (N, C, H, W), written. Gathers, for each input pixel, every
// output position whose window covers it: oh = (ih + ph - kh*dh) / sh when that division is exact.
template <typename T>
void conv2d_backward_input_plain(const Conv2dDims& d, const T* dy, const T* w, T* dx) {
#pragma omp parallel for collapse(2) schedule(static) if (d.flops() > kParallelFlops)
  for (int64_t n = 0; n < d.N; ++n) {
    for (int64_t c = 0; c < d.C; ++c) {
      for (int64_t ih = 0; ih < d.H; ++ih) {
        for (int64_t iw = 0; iw < d.W; ++iw) {
          T acc = 0;
          for (int64_t o = 0; o < d.O; ++o) {
            for (int64_t kh = 0; kh < d.KH; ++kh) {
              const int64_t th = ih + d.ph - kh * d.dh;
              if (th < 0 || th % d.sh != 0 || th / d.sh >= d.OH) continue;
              const int64_t oh = th / d.sh;
              for (int64_t kw = 0; kw < d.KW; ++kw) {
                const int64_t tw = iw + d.pw - kw * d.dw;
                if (tw < 0 || tw % d.sw != 0 || tw / d.sw >= d.OW) continue;
                const int64_t ow = tw / d.sw;
                acc += dy[((n * d.O + o) * d.OH + oh) * d.OW + ow] * w[((o * d.C + c) * d.KH + kh) * d.KW + kw];
              }
            }
          }
          dx[((n * d.C + c) * d.H + ih) * d.W + iw] = acc;
        }
      }
    }
  }
}

// dy: (N, O, OH, OW), x: (N, C, H, W) -> dw: (O, C, KH, KW), written.
template <typename T>
void conv2d_backward_weight_plain(const Conv2dDims& d, const T* dy, const T* x, T* dw) {
#pragma omp parallel for collapse(2) schedule(static) if (d.flops() > kParallelFlops)
  for (int64_t o = 0; o < d.O; ++o) {
    for (int64_t c = 0; c < d.C; ++c) {
      for (int64_t kh = 0; kh < d.KH; ++kh) {
        for (int64_t kw = 0; kw < d.KW; ++kw) {
          T acc = 0;
          for (int64_t n = 0; n < d.N; ++n) {
            for (int64_t oh = 0; oh < d.OH; ++oh) {
              const int64_t ih = oh * d.sh - d.ph + kh * d.dh;
              if (ih < 0 || ih >= d.H) continue;
              for (int64_t ow = 0; ow < d.OW; ++ow) {
                const int64_t iw = ow * d.sw - d.pw + kw * d.dw;
                if (iw < 0 || iw >= d.W) continue;
                acc += dy[((n * d.O + o) * d.OH + oh) * d.OW + ow] * x[((n * d.C + c) * d.H + ih) * d.W + iw];
              }
            }
          }
          dw[((o * d.C + c) * d.KH + kh) * d.KW + kw] = acc;
        }
      }
    }
  }
}

// dy: (N, O, P) with P = OH*OW -> db: (O), written.
template <typename T>
void conv2d_backward_bias(int64_t N, int64_t O, int64_t P, const T* dy, T* db) {
#pragma omp parallel for if (N * O * P > 65536) schedule(static)
  for (int64_t o = 0; o < O; ++o) {
    T acc = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = dy + (n * O + o) * P;
      for (int64_t p = 0; p < P; ++p) acc += row[p];
    }
    db[o] = acc;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The GEMM path.

namespace {

// Column-buffer elements per thread: 1 MiB of f32, one L2 cache here, so the buffer im2col writes is still cached
// when the GEMM packs it (measured best among 512 KiB .. 4 MiB on the benchmark shapes), and bounded for any image.
constexpr int64_t kColumnBudget = int64_t(1) << 18;
// Tiles are never narrower than this, even if the buffer outgrows the budget (up to 128 * C*KH*KW elements): every
// tile's GEMM packs the whole weight matrix again, which must be amortised over enough columns.
constexpr int64_t kMinTileColumns = 128;

// Output positions [0, N*P) cut into tiles: `per_image` > 0 splits each image into that many tiles of at most
// `width` columns; otherwise each tile holds `images` whole images.
struct ColumnTiles {
  int64_t N = 0, P = 0;
  int64_t per_image = 0;
  int64_t images = 1;
  int64_t width = 0;
  int64_t count = 0;

  // Columns [j0, j1) of tile t.
  void range(int64_t t, int64_t& j0, int64_t& j1) const {
    if (per_image > 0) {
      const int64_t n = t / per_image, i = t % per_image;
      j0 = n * P + i * width;
      j1 = n * P + std::min(P, (i + 1) * width);
    } else {
      j0 = t * images * P;
      j1 = std::min(N, (t + 1) * images) * P;
    }
  }
  // Every tile lies inside one image (so y, dy, x and dx blocks can be addressed in place, row stride P).
  bool single_image() const { return per_image > 0 || images == 1; }
  // Image groups: the tiles of one group touch only that group's images; tiles [first, last) of group g.
  int64_t groups() const { return per_image > 0 ? N : count; }
  void group_tiles(int64_t g, int64_t& first, int64_t& last) const {
    if (per_image > 0) {
      first = g * per_image;
      last = first + per_image;
    } else {
      first = g;
      last = g + 1;
    }
  }
};

// Tiles of about `target` columns (at least kMinTileColumns).
ColumnTiles plan_tiles(int64_t N, int64_t P, int64_t target) {
  ColumnTiles t;
  t.N = N;
  t.P = P;
  target = std::max(target, kMinTileColumns);
  if (P >= target) {
    t.per_image = (P + target - 1) / target;
    t.width = (P + t.per_image - 1) / t.per_image;  // equal widths rather than one short remainder
    t.count = N * t.per_image;
  } else {
    t.images = std::max<int64_t>(1, std::min(N, target / P));
    t.count = (N + t.images - 1) / t.images;
    t.images = (N + t.count - 1) / t.count;  // spread the images evenly over the tiles
    t.width = t.images * P;
  }
  return t;
}

int64_t budget_columns(int64_t rows) { return kColumnBudget / std::max<int64_t>(1, rows); }

template <typename T>
std::unique_ptr<T[]> scratch(int64_t n) {
  return std::unique_ptr<T[]>(new T[size_t(std::max<int64_t>(n, 1))]);
}

// Short contiguous runs (one output row, often 2..32 elements) are what im2col and col2im move. The generic loops
// below compile to a vector body plus a scalar tail that dominates at these lengths; for f32 with AVX-512 a run is
// instead whole 16-lane vectors plus one masked vector.
template <typename T>
inline void copy_run(const T* src, T* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}
template <typename T>
inline void zero_run(T* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = T(0);
}
template <typename T>
inline void add_run(const T* src, T* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}
// dst[i] = src[i * stride]: the input row a strided convolution's kernel column reads.
template <typename T>
inline void copy_run_strided(const T* src, int64_t stride, T* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i * stride];
}
#if defined(__AVX512F__)
inline __mmask16 tail_mask(int64_t n) { return __mmask16((1u << n) - 1u); }  // n in [0, 16]
template <>
inline void copy_run<float>(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
  }
}
template <>
inline void zero_run<float>(float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_setzero_ps());
  if (i < n) _mm512_mask_storeu_ps(dst + i, tail_mask(n - i), _mm512_setzero_ps());
}
template <>
inline void add_run<float>(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_add_ps(_mm512_loadu_ps(dst + i), _mm512_loadu_ps(src + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + i), _mm512_maskz_loadu_ps(m, src + i)));
  }
}
// Stride 2 (ResNet's downsampling convolutions): two loads and one even-lane permute per 16 outputs. Loads are
// masked to the 2n - 1 inputs actually read, so nothing past the row's last used element is touched.
template <>
inline void copy_run_strided<float>(const float* src, int64_t stride, float* dst, int64_t n) {
  if (stride != 2) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i * stride];
    return;
  }
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 lo = _mm512_loadu_ps(src + 2 * i);
    const __m512 hi = _mm512_maskz_loadu_ps(tail_mask(15), src + 2 * i + 16);
    _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(lo, even, hi));
  }
  if (i < n) {
    const int64_t needed = 2 * (n - i) - 1;  // inputs read by the last n - i outputs, at most 29
    const __m512 lo = _mm512_maskz_loadu_ps(tail_mask(std::min<int64_t>(needed, 16)), src + 2 * i);
    const __m512 hi = needed > 16 ? _mm512_maskz_loadu_ps(tail_mask(needed - 16), src + 2 * i + 16) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(dst + i, tail_mask(n - i), _mm512_permutex2var_ps(lo, even, hi));
  }
}
#endif

// For kernel column kw: output columns ow in [lo, hi) read an input column inside [0, W).
inline void valid_ow_range(const Conv2dDims& d, int64_t kw, int64_t& lo, int64_t& hi) {
  const int64_t iw0 = kw * d.dw - d.pw;  // input column of ow = 0
  lo = iw0 >= 0 ? 0 : (-iw0 + d.sw - 1) / d.sw;
  hi = d.W - iw0 <= 0 ? 0 : (d.W - iw0 + d.sw - 1) / d.sw;
  lo = std::min(lo, d.OW);
  hi = std::max(lo, std::min(hi, d.OW));
}

// Output rows shorter than this are moved element by element through a table (below) instead of in runs.
constexpr int64_t kShortRow = 16;

// For small outputs (the deep layers: OW of 2..8), im2col's runs are so short that their bookkeeping costs more
// than the copying. There a table of input offsets replaces them: taps[t * P + p] = ih * W + iw for tap
// t = (kh, kw) at output position p = (oh, ow), or -1 where the tap reads the zero padding. Empty otherwise.
std::vector<int32_t> tap_table(const Conv2dDims& d) {
  if (d.OW >= kShortRow || d.KK() * d.P() > (int64_t(1) << 20)) return {};
  std::vector<int32_t> taps(size_t(d.KK() * d.P()));
  for (int64_t kh = 0; kh < d.KH; ++kh)
    for (int64_t kw = 0; kw < d.KW; ++kw)
      for (int64_t oh = 0; oh < d.OH; ++oh)
        for (int64_t ow = 0; ow < d.OW; ++ow) {
          const int64_t ih = oh * d.sh - d.ph + kh * d.dh, iw = ow * d.sw - d.pw + kw * d.dw;
          const bool inside = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
          taps[size_t(((kh * d.KW + kw) * d.OH + oh) * d.OW + ow)] = inside ? int32_t(ih * d.W + iw) : -1;
        }
  return taps;
}

// x: (N, C, H, W) -> col: rows [r0, r1) of the column matrix, columns [j0, j1), row stride ldcol, written.
// With a tap table (see tap_table), element by element through it.
template <typename T>
void im2col_table(const Conv2dDims& d, const int32_t* taps, const T* x, int64_t r0, int64_t r1, int64_t j0,
                  int64_t j1, T* col, int64_t ldcol) {
  const int64_t P = d.P(), KK = d.KK(), HW = d.H * d.W;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t c = r / KK;
    const int32_t* tap = taps + (r % KK) * P;
    for (int64_t j = j0; j < j1;) {
      const int64_t n = j / P, p0 = j % P, len = std::min(P - p0, j1 - j);
      const T* src = x + (n * d.C + c) * HW;
      const int32_t* t = tap + p0;
      T* out = col + (r - r0) * ldcol + (j - j0);  // out[k] is column (n, p0 + k)
      for (int64_t k = 0; k < len; ++k) out[k] = t[k] >= 0 ? src[t[k]] : T(0);
      j += len;
    }
  }
}

// col: rows [c0*KK, c1*KK), columns [j0, j1) -> dx, accumulated (+=), through a tap table. Within one row the
// taps of different outputs are different pixels, so the row's scatter has no collisions.
template <typename T>
void col2im_table(const Conv2dDims& d, const int32_t* taps, const T* col, int64_t ldcol, int64_t c0, int64_t c1,
                  int64_t j0, int64_t j1, T* dx) {
  const int64_t P = d.P(), KK = d.KK(), HW = d.H * d.W;
  for (int64_t r = c0 * KK; r < c1 * KK; ++r) {
    const int64_t c = r / KK;
    const int32_t* tap = taps + (r % KK) * P;
    for (int64_t j = j0; j < j1;) {
      const int64_t n = j / P, p0 = j % P, len = std::min(P - p0, j1 - j);
      T* dst = dx + (n * d.C + c) * HW;
      const int32_t* t = tap + p0;
      const T* in = col + (r - c0 * KK) * ldcol + (j - j0);  // in[k] is column (n, p0 + k)
      for (int64_t k = 0; k < len; ++k)
        if (t[k] >= 0) dst[t[k]] += in[k];
      j += len;
    }
  }
}

// x: (N, C, H, W) -> col: rows [r0, r1) of the column matrix, columns [j0, j1), row stride ldcol, written.
// Each row is walked in runs of one output row (n, oh): zeros, a (strided) copy of one input row, zeros. Plain
// loops with running indices rather than memcpy calls and divisions: the runs are short (OW is 2..64 on the
// networks' deep layers), so per-run overhead is what im2col costs.
template <typename T>
void im2col(const Conv2dDims& d, const std::vector<int32_t>& taps, const T* x, int64_t r0, int64_t r1, int64_t j0,
            int64_t j1, T* col, int64_t ldcol) {
  if (!taps.empty()) return im2col_table(d, taps.data(), x, r0, r1, j0, j1, col, ldcol);
  const int64_t P = d.P(), KK = d.KK(), HW = d.H * d.W;
  const int64_t n_first = j0 / P, oh_first = (j0 % P) / d.OW, ow_first = j0 % d.OW;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t c = r / KK, kh = (r % KK) / d.KW, kw = r % d.KW;
    const int64_t iw0 = kw * d.dw - d.pw;  // input column of ow = 0
    int64_t lo, hi;
    valid_ow_range(d, kw, lo, hi);
    T* out = col + (r - r0) * ldcol;
    int64_t n = n_first, oh = oh_first, ow_start = ow_first;
    for (int64_t j = j0; j < j1;) {
      const int64_t ow_end = std::min(d.OW, ow_start + (j1 - j));
      const int64_t ih = oh * d.sh - d.ph + kh * d.dh;
      // out[ow - ow_start] is column (n, oh, ow).
      if (ih < 0 || ih >= d.H) {
        zero_run(out, ow_end - ow_start);
      } else {
        const T* src = x + (n * d.C + c) * HW + ih * d.W;  // x[n, c, ih, :]
        const int64_t a = std::clamp(lo, ow_start, ow_end), b = std::clamp(hi, a, ow_end);
        for (int64_t ow = ow_start; ow < a; ++ow) out[ow - ow_start] = T(0);
        if (d.sw == 1) {
          copy_run(src + (a + iw0), out + (a - ow_start), b - a);
        } else if (b > a) {
          copy_run_strided(src + (a * d.sw + iw0), d.sw, out + (a - ow_start), b - a);
        }
        for (int64_t ow = b; ow < ow_end; ++ow) out[ow - ow_start] = T(0);
      }
      out += ow_end - ow_start;
      j += ow_end - ow_start;
      ow_start = 0;
      if (++oh == d.OH) {
        oh = 0;
        ++n;
      }
    }
  }
}

// col: rows [c0*KK, c1*KK) (channels c0..c1), columns [j0, j1), row stride ldcol -> dx: (N, C, H, W),
// accumulated (+=) into those channels of the images the columns belong to. The same walk as im2col.
template <typename T>
void col2im(const Conv2dDims& d, const std::vector<int32_t>& taps, const T* col, int64_t ldcol, int64_t c0,
            int64_t c1, int64_t j0, int64_t j1, T* dx) {
  if (!taps.empty()) return col2im_table(d, taps.data(), col, ldcol, c0, c1, j0, j1, dx);
  const int64_t P = d.P(), KK = d.KK(), HW = d.H * d.W;
  const int64_t n_first = j0 / P, oh_first = (j0 % P) / d.OW, ow_first = j0 % d.OW;
  for (int64_t r = c0 * KK; r < c1 * KK; ++r) {
    const int64_t c = r / KK, kh = (r % KK) / d.KW, kw = r % d.KW;
    const int64_t iw0 = kw * d.dw - d.pw;
    int64_t lo, hi;
    valid_ow_range(d, kw, lo, hi);
    const T* in = col + (r - c0 * KK) * ldcol;
    int64_t n = n_first, oh = oh_first, ow_start = ow_first;
    for (int64_t j = j0; j < j1;) {
      const int64_t ow_end = std::min(d.OW, ow_start + (j1 - j));
      const int64_t ih = oh * d.sh - d.ph + kh * d.dh;
      if (ih >= 0 && ih < d.H) {
        // in[ow - ow_start] is column (n, oh, ow).
        T* dst = dx + (n * d.C + c) * HW + ih * d.W;  // dx[n, c, ih, :]
        const int64_t a = std::clamp(lo, ow_start, ow_end), b = std::clamp(hi, a, ow_end);
        if (d.sw == 1) {
          add_run(in + (a - ow_start), dst + (a + iw0), b - a);
        } else {
          for (int64_t ow = a; ow < b; ++ow) dst[ow * d.sw + iw0] += in[ow - ow_start];
        }
      }
      in += ow_end - ow_start;
      j += ow_end - ow_start;
      ow_start = 0;
      if (++oh == d.OH) {
        oh = 0;
        ++n;
      }
    }
  }
}

// Rows [0, rows) of an (N, *, P) tensor whose images lie image_stride elements apart (t points at row 0 of image
// 0), for columns [j0, j1): in place when they lie in one image (row stride P), otherwise gathered into buf (row
// stride j1 - j0). Returns the pointer and sets ld.
template <typename T>
const T* gather_columns(const T* t, int64_t rows, int64_t image_stride, int64_t P, int64_t j0, int64_t j1, T* buf,
                        int64_t& ld) {
  const int64_t n0 = j0 / P;
  if ((j1 - 1) / P == n0) {
    ld = P;
    return t + n0 * image_stride + (j0 - n0 * P);
  }
  ld = j1 - j0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = j0; j < j1; j += P) {  // tiles of whole images: j0 and j1 are multiples of P
      copy_run(t + (j / P) * image_stride + r * P, buf + r * ld + (j - j0), P);
    }
  }
  return buf;
}

// The weights as the GEMM's A operand, packed once per convolution call when filmgrad's GEMM runs (null with the
// OpenBLAS twin, which packs per call). Packing per tile cost 10-20 % of the deep layers' time: there the whole
// O x C*KH*KW matrix (up to 9 MiB) was re-packed for every tile of 128 columns.
template <typename T>
std::unique_ptr<GemmPackedA<T>> pack_weights(bool trans, int64_t rows, int64_t depth, const T* w, int64_t ldw,
                                             int threads) {
  if (gemm_backend() != GemmBackend::FILMGRAD || rows == 0 || depth == 0) return nullptr;
  return std::make_unique<GemmPackedA<T>>(gemm_isa(), trans, rows, depth, T(1), w, ldw, threads);
}

// Rows [r0, r1) of C = W B (+ beta C): through the packed weights when there are some, else the plain GEMM call
// on w (row stride ldw).
template <typename T>
void weight_product(const GemmPackedA<T>* packed, const T* w, int64_t ldw, int64_t r0, int64_t r1, int64_t N,
                    int64_t K, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (packed) {
    packed->multiply(r0, r1, false, N, B, ldb, beta, C, ldc);
  } else {
    gemm_blas(false, false, r1 - r0, N, K, T(1), w + r0 * ldw, ldw, B, ldb, beta, C, ldc);
  }
}

// Forward of output channels [o0, o1) for columns [j0, j1): y[n, o, p] = b[o] + W[o, :] B[:, j]. B: the tile's
// column matrix (row stride ldb); ybuf (O, cols) stands in for y when the tile spans several images. pw: the
// weights packed (pack_weights), or null.
template <typename T>
void forward_tile(const Conv2dDims& d, const T* w, const GemmPackedA<T>* pw, const T* b, const T* B, int64_t ldb,
                  int64_t j0, int64_t j1, int64_t o0, int64_t o1, T* ybuf, T* y) {
  const int64_t P = d.P(), CKK = d.CKK(), cols = j1 - j0, n0 = j0 / P;
  const bool one_image = (j1 - 1) / P == n0;
  T* Y = one_image ? y + n0 * d.O * P + (j0 - n0 * P) : ybuf;
  const int64_t ldy = one_image ? P : cols;
  // The bias goes in first and the product accumulates onto it (beta = 1).
  if (b) {
    for (int64_t o = o0; o < o1; ++o) std::fill(Y + o * ldy, Y + o * ldy + cols, b[o]);
  }
  weight_product(pw, w, CKK, o0, o1, cols, CKK, B, ldb, b ? T(1) : T(0), Y + o0 * ldy, ldy);
  if (!one_image) {
    for (int64_t n = n0; n * P < j1; ++n)
      for (int64_t o = o0; o < o1; ++o) copy_run(Y + o * ldy + (n * P - j0), y + (n * d.O + o) * P, P);
  }
}

}  // namespace

// x: (N, C, H, W), w: (O, C, KH, KW), b: (O) or null -> y: (N, O, OH, OW), written.
template <typename T>
void conv2d_forward_gemm(const Conv2dDims& d, const T* x, const T* w, const T* b, T* y) {
  const int64_t P = d.P(), CKK = d.CKK(), total = d.N * P;
  if (total == 0) return;
  const int threads = conv_threads(d);
  const ColumnTiles tiles = plan_tiles(d.N, P, budget_columns(CKK));
  const bool pointwise = d.pointwise();
  const std::vector<int32_t> taps = tap_table(d);
  const auto packed = pack_weights(false, d.O, CKK, w, CKK, threads);
  const GemmPackedA<T>* pw = packed.get();
  if (tiles.count >= threads) {
    // Enough tiles to go round: each thread builds its own tile's columns and computes all its outputs.
#pragma omp parallel num_threads(threads)
    {
      auto col = scratch<T>(pointwise && tiles.single_image() ? 0 : CKK * tiles.width);
      auto ybuf = scratch<T>(tiles.single_image() ? 0 : d.O * tiles.width);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tiles.count; ++t) {
        int64_t j0, j1;
        tiles.range(t, j0, j1);
        const int64_t n0 = j0 / P;
        if (pointwise && tiles.single_image()) {
          forward_tile(d, w, pw, b, x + n0 * d.C * P + (j0 - n0 * P), P, j0, j1, 0, d.O, ybuf.get(), y);
        } else {
          im2col(d, taps, x, 0, CKK, j0, j1, col.get(), j1 - j0);
          forward_tile(d, w, pw, b, col.get(), j1 - j0, j0, j1, 0, d.O, ybuf.get(), y);
        }
      }
    }
    return;
  }
  // Few output positions (the deep layers of small images): narrow per-thread tiles would make every thread pack
  // the whole weight matrix for a sliver of columns. Instead the threads build each tile's columns together, then
  // split the output channels, so each packs only its rows of W.
  auto col = scratch<T>(pointwise && tiles.single_image() ? 0 : CKK * tiles.width);
  auto ybuf = scratch<T>(tiles.single_image() ? 0 : d.O * tiles.width);
  const int64_t row_block = (CKK + threads - 1) / threads;
  // Blocks of whole micro-tile rows (a packed range must start at a multiple of MR).
  const int64_t o_multiple = pw ? pw->row_multiple() : 16;
  const int64_t o_block = std::min(d.O, ((d.O + threads - 1) / threads + o_multiple - 1) / o_multiple * o_multiple);
  for (int64_t t = 0; t < tiles.count; ++t) {
    int64_t j0, j1;
    tiles.range(t, j0, j1);
    const int64_t n0 = j0 / P;
    const bool direct = pointwise && tiles.single_image();
    const T* B = direct ? x + n0 * d.C * P + (j0 - n0 * P) : col.get();
    const int64_t ldb = direct ? P : j1 - j0;
#pragma omp parallel num_threads(threads)
    {
      if (!direct) {
#pragma omp for schedule(static)
        for (int64_t r0 = 0; r0 < CKK; r0 += row_block)
          im2col(d, taps, x, r0, std::min(CKK, r0 + row_block), j0, j1, col.get() + r0 * ldb, ldb);
      }
#pragma omp for schedule(static)
      for (int64_t o0 = 0; o0 < d.O; o0 += o_block)
        forward_tile(d, w, pw, b, B, ldb, j0, j1, o0, std::min(d.O, o0 + o_block), ybuf.get(), y);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Winograd F(2x2, 3x3) for the forward of 3x3 stride-1 undilated convolutions (nearly every layer of both
// networks). Each 2x2 block of outputs ("tile") comes from a 4x4 block of input:
//   Y = A^T [ sum_c (G g_oc G^T) (.) (B^T d_c B) ] A,   (.) elementwise over the 16 positions e
// so the products become 16 GEMMs, M_e (O, tiles) = U_e (O, C) V_e (C, tiles), with U_e = (G g G^T)_e the
// transformed weights (packed once per call, like the im2col path's W) and V_e = (B^T d B)_e the transformed
// input. 16 multiply-adds per tile and channel pair instead of 36: 2.25x fewer. The transforms are exact in
// binary up to the halvings of G, so the result differs from the direct sum only by rounding (a few ulps more
// than im2col's, from the transforms' additions; tests/ops/test_conv2d.cpp bounds it against the plain loops).
//   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   A^T = [1 1 1 0; 0 1 -1 -1]

namespace {

// Below these channel counts the transforms cost more than the products they save (the first layer, C = 3).
constexpr int64_t kWinogradMinChannels = 16;
// Below this many 2x2 tiles per image, transforming and packing the weights (16 x O x C values, every call) costs
// more than the products it saves (deep layers of small images: 8x8 outputs are 16 tiles). Counted per image, not
// per batch, so that the choice, and with it the rounding, does not depend on how a batch is split (data-parallel
// ranks must compute what one process computes on the whole batch). Production only; Conv2dAlgo::WINOGRAD takes
// any count.
constexpr int64_t kWinogradMinTiles = 64;

inline bool winograd_applies(const Conv2dDims& d) {
  return d.KH == 3 && d.KW == 3 && d.sh == 1 && d.sw == 1 && d.dh == 1 && d.dw == 1 && d.C >= kWinogradMinChannels &&
         d.O >= kWinogradMinChannels;
}
// Production takes Winograd unless FG_CPU_WINOGRAD=0 (the escape hatch: im2col's rounding everywhere). It was opt-in
// for a while because `train --sync-bn` on two MPI ranks ended 1.3e-4 away from one process with it; the cause was
// a ReLU whose input sat within rounding of zero (7.4e-7 one way, -6.3e-7 the other) at one of 32,768 positions,
// which moved one gradient term and, through Adam, every weight upstream by up to 3e-5: any change of rounding can
// do that, im2col's included (docs/cpu_kernels.md), so the test now tells it from a real error.
inline bool winograd_in_production() {
  // A bad value throws at the first convolution (and at `filmgrad version`), before any work: no silent fallback.
  static const bool on = [] {
    const char* v = std::getenv("FG_CPU_WINOGRAD");
    if (v == nullptr || std::string(v).empty() || std::string(v) == "1") return true;
    if (std::string(v) == "0") return false;
    throw Error("FG_CPU_WINOGRAD='" + std::string(v) +
                "' is not 0 or 1; set 0 for im2col everywhere, or unset it (Winograd where it pays)");
  }();
  return on;
}
inline bool winograd_pays(const Conv2dDims& d) {
  return winograd_in_production() && winograd_applies(d) && ((d.OH + 1) / 2) * ((d.OW + 1) / 2) >= kWinogradMinTiles;
}

// w: (O, C, 3, 3) -> U: 16 matrices (O, C), U[(e * O + o) * C + c], e = 4 * row + column of G g G^T. Per output
// channel, the 9 taps of every input channel are first gathered into 9 rows, so the transform runs as unit-stride
// loops over c.
template <typename T>
void winograd_weights(const Conv2dDims& d, const T* w, T* U) {
  const int64_t C = d.C, es = d.O * C;
#pragma omp parallel if (d.O * d.C > 4096)
  {
    std::unique_ptr<T[]> buf(new T[size_t(21 * C)]);
    T* g[9];
    T* t[12];  // G g: 4 rows x 3 columns
    for (int j = 0; j < 9; ++j) g[j] = buf.get() + j * C;
    for (int j = 0; j < 12; ++j) t[j] = buf.get() + (9 + j) * C;
#pragma omp for schedule(static)
    for (int64_t o = 0; o < d.O; ++o) {
      const T* src = w + o * C * 9;
      for (int64_t c = 0; c < C; ++c)
        for (int j = 0; j < 9; ++j) g[j][c] = src[c * 9 + j];
      for (int j = 0; j < 3; ++j) {
        const T *g0 = g[j], *g1 = g[3 + j], *g2 = g[6 + j];
        T *t0 = t[j], *t1 = t[3 + j], *t2 = t[6 + j], *t3 = t[9 + j];
        for (int64_t c = 0; c < C; ++c) {
          t0[c] = g0[c];
          t1[c] = T(0.5) * (g0[c] + g1[c] + g2[c]);
          t2[c] = T(0.5) * (g0[c] - g1[c] + g2[c]);
          t3[c] = g2[c];
        }
      }
      for (int i = 0; i < 4; ++i) {  // (G g) G^T
        const T *a = t[3 * i], *b = t[3 * i + 1], *e = t[3 * i + 2];
        T* u0 = U + int64_t(4 * i) * es + o * C;
        T *u1 = u0 + es, *u2 = u1 + es, *u3 = u2 + es;
        for (int64_t c = 0; c < C; ++c) {
          u0[c] = a[c];
          u1[c] = T(0.5) * (a[c] + b[c] + e[c]);
          u2[c] = T(0.5) * (a[c] - b[c] + e[c]);
          u3[c] = e[c];
        }
      }
    }
  }
}

// The tiles: TH x TW per image, numbered t = (n * TH + th) * TW + tw.
struct WinogradTiles {
  int64_t TH, TW;
  explicit WinogradTiles(const Conv2dDims& d) : TH((d.OH + 1) / 2), TW((d.OW + 1) / 2) {}
  int64_t count(int64_t N) const { return N * TH * TW; }
};

// The run of tiles from t along one tile row (at most to t1), and the outputs it covers: image n, tile row th, cnt
// tiles starting at output column ow0, of which `pairs` have both columns inside OW; two_rows when the tile row's
// second output row is inside OH.
struct OutputRun {
  int64_t n, th, cnt, ow0, pairs;
  bool two_rows;
};
inline OutputRun output_run(const Conv2dDims& d, const WinogradTiles& wt, int64_t t, int64_t t1) {
  OutputRun r;
  const int64_t tw0 = t % wt.TW;
  r.n = t / (wt.TH * wt.TW);
  r.th = (t / wt.TW) % wt.TH;
  r.cnt = std::min(wt.TW, tw0 + (t1 - t)) - tw0;
  r.ow0 = 2 * tw0;
  r.pairs = std::min(r.cnt, (d.OW - r.ow0) / 2);
  r.two_rows = 2 * r.th + 1 < d.OH;
  return r;
}

// dst[k] = row[first + 2 k] for k in [0, n), 0 where that column lies outside [0, W): one parity of a padded row.
template <typename T>
inline void padded_parity(const T* row, int64_t W, int64_t first, int64_t n, T* dst) {
  const int64_t lo = std::clamp<int64_t>(first >= 0 ? 0 : (-first + 1) / 2, 0, n);
  const int64_t hi = std::clamp<int64_t>(W - first <= 0 ? 0 : (W - first + 1) / 2, lo, n);
  for (int64_t k = 0; k < lo; ++k) dst[k] = T(0);
  const T* src = row + first;
  for (int64_t k = lo; k < hi; ++k) dst[k] = src[2 * k];
  for (int64_t k = hi; k < n; ++k) dst[k] = T(0);
}

// Per-thread scratch of the transforms, for runs of up to `run` tiles.
template <typename T>
struct WinogradScratch {
  int64_t stride;  // run + 1
  std::unique_ptr<T[]> buf;
  explicit WinogradScratch(int64_t run) : stride(run + 1), buf(new T[size_t(16 * (run + 1))]) {}
  T* row(int i) { return buf.get() + i * stride; }
};

// d B for one row of n tiles, from its even and odd columns: (d0 - d2, d1 + d2, d2 - d1, d1 - d3) with tile k's
// columns even[k], odd[k], even[k + 1], odd[k + 1]. Restrict-qualified, so that the loop vectorises (with six
// pointers the compiler gave up on proving they do not overlap).
template <typename T>
inline void winograd_input_row(int64_t n, const T* __restrict even, const T* __restrict odd, T* __restrict o0,
                               T* __restrict o1, T* __restrict o2, T* __restrict o3) {
  for (int64_t k = 0; k < n; ++k) {
    o0[k] = even[k] - even[k + 1];
    o1[k] = odd[k] + even[k + 1];
    o2[k] = even[k + 1] - odd[k];
    o3[k] = odd[k] - odd[k + 1];
  }
}

// x -> V: 16 matrices (C, cols) with row stride ldv, V[(e * C + c) * ldv + (t - t0)], for tiles [t0, t1). A run
// of tiles along one tile row reads 4 input rows, split into even and odd columns (with their zero padding), so
// that every step below is a unit-stride loop over the run that the compiler vectorises: B^T d on the rows, then
// d B on the columns, where tile k's 4 columns are even[k], odd[k], even[k + 1], odd[k + 1].
template <typename T>
void winograd_input(const Conv2dDims& d, const WinogradTiles& wt, const T* x, int64_t t0, int64_t t1, T* V,
                    int64_t ldv, WinogradScratch<T>& sc) {
  const int64_t HW = d.H * d.W, es = d.C * ldv;
  for (int64_t t = t0; t < t1;) {
    const int64_t n = t / (wt.TH * wt.TW), th = (t / wt.TW) % wt.TH, tw0 = t % wt.TW;
    const int64_t cnt = std::min(wt.TW, tw0 + (t1 - t)) - tw0;
    const int64_t iw0 = 2 * tw0 - d.pw;
    for (int64_t c = 0; c < d.C; ++c) {
      const T* src = x + (n * d.C + c) * HW;
      T* ev[4];
      T* od[4];
      for (int i = 0; i < 4; ++i) {
        ev[i] = sc.row(i);
        od[i] = sc.row(4 + i);
        const int64_t ih = 2 * th - d.ph + i;
        if (ih < 0 || ih >= d.H) {
          zero_run(ev[i], cnt + 1);
          zero_run(od[i], cnt + 1);
        } else {
          padded_parity(src + ih * d.W, d.W, iw0, cnt + 1, ev[i]);
          padded_parity(src + ih * d.W, d.W, iw0 + 1, cnt + 1, od[i]);
        }
      }
      // B^T d, in place: rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3), for both parities.
      for (T** p : {ev, od}) {
        T *a = p[0], *b = p[1], *e = p[2], *f = p[3];
        for (int64_t k = 0; k <= cnt; ++k) {
          const T d0 = a[k], d1 = b[k], d2 = e[k], d3 = f[k];
          a[k] = d0 - d2;
          b[k] = d1 + d2;
          e[k] = d2 - d1;
          f[k] = d1 - d3;
        }
      }
      T* out = V + c * ldv + (t - t0);
      for (int i = 0; i < 4; ++i) {
        T* o0 = out + int64_t(4 * i) * es;
        winograd_input_row(cnt, ev[i], od[i], o0, o0 + es, o0 + 2 * es, o0 + 3 * es);
      }
    }
    t += cnt;
  }
}

// M: 16 matrices (O, cols), row stride ldm -> y for tiles [t0, t1), plus the bias; outputs past OH/OW (odd sizes)
// are dropped. A^T m A into four unit-stride arrays (the tile's 2x2 outputs), then interleaved into y's rows.
template <typename T>
void winograd_output(const Conv2dDims& d, const WinogradTiles& wt, const T* M, int64_t ldm, const T* b, int64_t t0,
                     int64_t t1, T* y, WinogradScratch<T>& sc) {
  const int64_t P = d.P(), es = d.O * ldm;
  T *y00 = sc.row(0), *y01 = sc.row(1), *y10 = sc.row(2), *y11 = sc.row(3);
  for (int64_t t = t0; t < t1;) {
    const OutputRun r = output_run(d, wt, t, t1);
    const int64_t n = r.n, th = r.th, cnt = r.cnt, ow0 = r.ow0, pairs = r.pairs;
    const bool two_rows = r.two_rows;
    for (int64_t o = 0; o < d.O; ++o) {
      const T bias = b ? b[o] : T(0);
      const T* m = M + o * ldm + (t - t0);
      const T* r[16];
      for (int e = 0; e < 16; ++e) r[e] = m + int64_t(e) * es;
      for (int64_t k = 0; k < cnt; ++k) {
        // A^T m: rows s0 = m0 + m1 + m2, s1 = m1 - m2 - m3 (m_i = row i of the 4x4), then the same on columns.
        const T s00 = r[0][k] + r[4][k] + r[8][k], s01 = r[1][k] + r[5][k] + r[9][k];
        const T s02 = r[2][k] + r[6][k] + r[10][k], s03 = r[3][k] + r[7][k] + r[11][k];
        const T s10 = r[4][k] - r[8][k] - r[12][k], s11 = r[5][k] - r[9][k] - r[13][k];
        const T s12 = r[6][k] - r[10][k] - r[14][k], s13 = r[7][k] - r[11][k] - r[15][k];
        y00[k] = bias + (s00 + s01 + s02);
        y01[k] = bias + (s01 - s02 - s03);
        y10[k] = bias + (s10 + s11 + s12);
        y11[k] = bias + (s11 - s12 - s13);
      }
      T* row0 = y + (n * d.O + o) * P + 2 * th * d.OW + ow0;
      for (int64_t k = 0; k < pairs; ++k) {
        row0[2 * k] = y00[k];
        row0[2 * k + 1] = y01[k];
      }
      if (pairs < cnt) row0[2 * pairs] = y00[pairs];  // the last column of an odd OW
      if (two_rows) {
        T* row1 = row0 + d.OW;
        for (int64_t k = 0; k < pairs; ++k) {
          row1[2 * k] = y10[k];
          row1[2 * k + 1] = y11[k];
        }
        if (pairs < cnt) row1[2 * pairs] = y10[pairs];
      }
    }
    t += cnt;
  }
}

}  // namespace

// x: (N, C, H, W), w: (O, C, 3, 3), b: (O) or null -> y: (N, O, OH, OW), written. Requires winograd_applies(d).
// The tiles are cut into chunks of equal width, at least one per thread; each thread transforms its chunk's input,
// runs the 16 GEMMs against the shared packed U_e and transforms the result back, with no barrier in between.
template <typename T>
void conv2d_forward_winograd(const Conv2dDims& d, const T* x, const T* w, const T* b, T* y) {
  const WinogradTiles wt(d);
  const int64_t tiles = wt.count(d.N);
  if (tiles == 0) return;
  const int threads = conv_threads(d);
  const int64_t OC = d.O * d.C;
  auto U = scratch<T>(16 * OC);
  winograd_weights(d, w, U.get());
  // The 16 packings spread over the threads in one parallel region (not 16): on a busy machine every fork and
  // join can wait for a descheduled thread.
  std::vector<std::unique_ptr<GemmPackedA<T>>> packed(16);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int e = 0; e < 16; ++e) packed[size_t(e)] = pack_weights(false, d.O, d.C, U.get() + e * OC, d.C, 1);
  // Chunks: V and M (16 x C x cols and 16 x O x cols) about 2 MiB each for f32, at least 128 tiles (U_e is read
  // once per chunk), at most an equal share per thread; multiples of 16 (the micro-kernel's widest NR).
  const int64_t target = std::clamp<int64_t>((int64_t(1) << 19) / (16 * std::max(d.C, d.O)), 128, 2048);
  const int64_t share = (tiles + threads - 1) / threads;
  const int64_t width = std::max<int64_t>(16, (std::min(target, share) + 15) / 16 * 16);
  const int64_t chunks = (tiles + width - 1) / width;
#pragma omp parallel num_threads(std::min<int64_t>(threads, chunks))
  {
    auto V = scratch<T>(16 * d.C * width);
    auto M = scratch<T>(16 * d.O * width);
    WinogradScratch<T> sc(std::min(width, wt.TW));
#pragma omp for schedule(static)
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t t0 = ch * width, t1 = std::min(tiles, t0 + width), cols = t1 - t0;
      winograd_input(d, wt, x, t0, t1, V.get(), cols, sc);
      for (int e = 0; e < 16; ++e)
        weight_product(packed[size_t(e)].get(), U.get() + e * OC, d.C, 0, d.O, cols, d.C, V.get() + e * d.C * cols,
                       cols, T(0), M.get() + e * d.O * cols, cols);
      winograd_output(d, wt, M.get(), cols, b, t0, t1, y, sc);
    }
  }
}

// The input gradient of a 3x3 stride-1 undilated convolution with padding at most 2 is itself such a
// convolution: dx = conv(dy, w'), w'[c, o] = w[o, c] turned by 180 degrees, padding 2 - p (the same H x W back).
inline Conv2dDims backward_input_as_forward(const Conv2dDims& d) {
  Conv2dDims t = d;
  t.C = d.O;
  t.H = d.OH;
  t.W = d.OW;
  t.O = d.C;
  t.OH = d.H;
  t.OW = d.W;
  t.ph = 2 - d.ph;
  t.pw = 2 - d.pw;
  return t;
}
inline bool winograd_backward_input_applies(const Conv2dDims& d) {
  return d.KH == 3 && d.KW == 3 && d.ph <= 2 && d.pw <= 2 && winograd_applies(backward_input_as_forward(d));
}

// dy: (N, O, OH, OW), w: (O, C, 3, 3) -> dx: (N, C, H, W), written, through conv2d_forward_winograd. Requires
// winograd_backward_input_applies(d).
template <typename T>
void conv2d_backward_input_winograd(const Conv2dDims& d, const T* dy, const T* w, T* dx) {
  auto turned = scratch<T>(d.O * d.C * 9);
  T* wt = turned.get();
#pragma omp parallel for schedule(static) if (d.O * d.C > 4096)
  for (int64_t c = 0; c < d.C; ++c)
    for (int64_t o = 0; o < d.O; ++o)
      for (int k = 0; k < 9; ++k) wt[(c * d.O + o) * 9 + k] = w[(o * d.C + c) * 9 + (8 - k)];
  conv2d_forward_winograd(backward_input_as_forward(d), dy, static_cast<const T*>(wt), static_cast<const T*>(nullptr),
                          dx);
}

// The weight gradient through the same tiles. The forward is Y = A^T M A per tile, M_e = sum_c U_e[o, c] V_e[c, t]
// and U = G g G^T, so dM = A dY A^T, dU_e[o, c] = sum_t dM_e[o, t] V_e[c, t] (16 GEMMs with the tiles as the long
// reduction) and dg = G^T dU G: 16 O C T multiply-adds where im2col takes 36 O C T (T tiles of 4 outputs).
//   A^T = [1 1 1 0; 0 1 -1 -1]   G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]

// dy -> dM: 16 matrices (O, cols), row stride ldm, dM[(e * O + o) * ldm + (t - t0)], for tiles [t0, t1); outputs past
// OH/OW (odd sizes) count as zero gradient. dY = [a b; c d] gives A dY = rows (a, b), (a + c, b + d), (a - c, b - d),
// (-c, -d), and each row (p, q) times A^T gives (p, p + q, p - q, -q).
// A's combinations of two rows of dY: u + v, u - v and -v, for n tiles.
template <typename T>
inline void winograd_grad_sums(int64_t n, const T* __restrict u, const T* __restrict v, T* __restrict sum,
                               T* __restrict difference, T* __restrict negated) {
  for (int64_t k = 0; k < n; ++k) {
    sum[k] = u[k] + v[k];
    difference[k] = u[k] - v[k];
    negated[k] = -v[k];
  }
}

// One row (P, Q) of A dY times A^T: (P, P + Q, P - Q, -Q), for n tiles.
template <typename T>
inline void winograd_grad_row(int64_t n, const T* __restrict p, const T* __restrict q, T* __restrict o0,
                              T* __restrict o1, T* __restrict o2, T* __restrict o3) {
  for (int64_t k = 0; k < n; ++k) {
    o0[k] = p[k];
    o1[k] = p[k] + q[k];
    o2[k] = p[k] - q[k];
    o3[k] = -q[k];
  }
}

template <typename T>
void winograd_output_grad(const Conv2dDims& d, const WinogradTiles& wt, const T* dy, int64_t t0, int64_t t1, T* dM,
                          int64_t ldm, WinogradScratch<T>& sc) {
  const int64_t P = d.P(), es = d.O * ldm;
  T *a = sc.row(0), *b = sc.row(1), *c = sc.row(2), *e = sc.row(3);
  for (int64_t t = t0; t < t1;) {
    const OutputRun r = output_run(d, wt, t, t1);
    const int64_t n = r.n, th = r.th, cnt = r.cnt, ow0 = r.ow0, pairs = r.pairs;
    const bool two_rows = r.two_rows;
    for (int64_t o = 0; o < d.O; ++o) {
      const T* row0 = dy + (n * d.O + o) * P + 2 * th * d.OW + ow0;
      for (int64_t k = 0; k < pairs; ++k) {
        a[k] = row0[2 * k];
        b[k] = row0[2 * k + 1];
      }
      if (pairs < cnt) {
        a[pairs] = row0[2 * pairs];
        b[pairs] = T(0);
      }
      if (two_rows) {
        const T* row1 = row0 + d.OW;
        for (int64_t k = 0; k < pairs; ++k) {
          c[k] = row1[2 * k];
          e[k] = row1[2 * k + 1];
        }
        if (pairs < cnt) {
          c[pairs] = row1[2 * pairs];
          e[pairs] = T(0);
        }
      } else {
        zero_run(c, cnt);
        zero_run(e, cnt);
      }
      // The rows of A dY (P, Q) = (a, b), (a + c, b + d), (a - c, b - d), (-c, -d), then each times A^T, in unit-
      // stride loops over restrict-qualified rows so that they vectorise.
      T *ac = sc.row(4), *bd = sc.row(5), *amc = sc.row(6), *bmd = sc.row(7), *nc = sc.row(8), *nd = sc.row(9);
      winograd_grad_sums(cnt, a, c, ac, amc, nc);
      winograd_grad_sums(cnt, b, e, bd, bmd, nd);
      T* m = dM + o * ldm + (t - t0);
      const T* prow[4] = {a, ac, amc, nc};
      const T* qrow[4] = {b, bd, bmd, nd};
      for (int i = 0; i < 4; ++i)
        winograd_grad_row(cnt, prow[i], qrow[i], m + int64_t(4 * i) * es, m + int64_t(4 * i + 1) * es,
                          m + int64_t(4 * i + 2) * es, m + int64_t(4 * i + 3) * es);
    }
    t += cnt;
  }
}

// dU: 16 matrices (O, C) as U's layout -> dw: (O, C, 3, 3), written: dg = G^T dU G, rows then columns.
template <typename T>
void winograd_weights_backward(const Conv2dDims& d, const T* dU, T* dw) {
  const int64_t OC = d.O * d.C;
  auto gt = [](T u0, T u1, T u2, T u3, T* out) {  // G^T u for a 4-vector u
    out[0] = u0 + T(0.5) * (u1 + u2);
    out[1] = T(0.5) * (u1 - u2);
    out[2] = T(0.5) * (u1 + u2) + u3;
  };
#pragma omp parallel for schedule(static) if (OC > 4096)
  for (int64_t oc = 0; oc < OC; ++oc) {
    T u[16], rows[12];  // rows: G^T dU, 3 rows x 4 columns
    for (int i = 0; i < 16; ++i) u[i] = dU[int64_t(i) * OC + oc];
    for (int j = 0; j < 4; ++j) {
      T col[3];
      gt(u[j], u[4 + j], u[8 + j], u[12 + j], col);
      for (int i = 0; i < 3; ++i) rows[4 * i + j] = col[i];
    }
    T* g = dw + oc * 9;
    for (int i = 0; i < 3; ++i) gt(rows[4 * i], rows[4 * i + 1], rows[4 * i + 2], rows[4 * i + 3], g + 3 * i);
  }
}

// dy: (N, O, OH, OW), x: (N, C, H, W) -> dw: (O, C, 3, 3), written. Requires winograd_applies(d). Chunk by chunk:
// the threads transform the chunk's tiles (x -> V, dy -> dM), then share out the 16 GEMMs dU_e += dM_e V_e^T. The
// chunk width does not depend on the thread count and each dU_e sums the chunks in order, so the result is the same
// bits at any thread count.
template <typename T>
void conv2d_backward_weight_winograd(const Conv2dDims& d, const T* dy, const T* x, T* dw) {
  const WinogradTiles wt(d);
  const int64_t tiles = wt.count(d.N), OC = d.O * d.C;
  if (tiles == 0) {
    std::fill(dw, dw + OC * 9, T(0));
    return;
  }
  const int threads = conv_threads(d);
  const int64_t target = std::clamp<int64_t>((int64_t(1) << 19) / (16 * std::max(d.C, d.O)), 128, 2048);
  const int64_t width = std::min((target + 15) / 16 * 16, tiles);
  const int64_t chunks = (tiles + width - 1) / width;
  auto dU = scratch<T>(16 * OC);
  auto V = scratch<T>(16 * d.C * width);
  auto M = scratch<T>(16 * d.O * width);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    WinogradScratch<T> sc(std::min(width, wt.TW));
    const int parts = omp_get_num_threads();
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t t0 = ch * width, t1 = std::min(tiles, t0 + width), cols = t1 - t0;
#pragma omp for schedule(static)
      for (int part = 0; part < parts; ++part) {
        const int64_t a = t0 + cols * part / parts, b = t0 + cols * (part + 1) / parts;
        if (a == b) continue;
        winograd_input(d, wt, x, a, b, V.get() + (a - t0), cols, sc);
        winograd_output_grad(d, wt, dy, a, b, M.get() + (a - t0), cols, sc);
      }
#pragma omp for schedule(static)
      for (int e = 0; e < 16; ++e)
        gemm_blas(false, true, d.O, d.C, cols, T(1), M.get() + e * d.O * cols, cols, V.get() + e * d.C * cols, cols,
                  ch == 0 ? T(0) : T(1), dU.get() + e * OC, d.C);
    }
  }
  winograd_weights_backward(d, dU.get(), dw);
}

// dy: (N, O, OH, OW), w: (O, C, KH, KW) -> dx: (N, C, H, W), written.
template <typename T>
void conv2d_backward_input_gemm(const Conv2dDims& d, const T* dy, const T* w, T* dx) {
  const int64_t P = d.P(), KK = d.KK(), CKK = d.CKK(), HW = d.H * d.W;
  if (d.N * P == 0) {
    std::fill(dx, dx + d.N * d.C * HW, T(0));
    return;
  }
  const int threads = conv_threads(d);
  // Work items own disjoint blocks of dx: (image group, channel range). Channels are split only when there are
  // fewer image groups than threads.
  const ColumnTiles probe = plan_tiles(d.N, P, budget_columns(CKK));
  const int64_t channel_splits =
      probe.groups() >= threads ? 1 : std::min<int64_t>(d.C, (threads + probe.groups() - 1) / probe.groups());
  const int64_t channels_per_item = (d.C + channel_splits - 1) / channel_splits;
  const ColumnTiles tiles = plan_tiles(d.N, P, budget_columns(channels_per_item * KK));
  const int64_t items = tiles.groups() * channel_splits;
  const bool pointwise = d.pointwise();
  const std::vector<int32_t> taps = tap_table(d);
  // W^T packed once: shared when every item covers all channels, else each item packs its own rows (disjoint, so
  // the whole matrix is still packed once in all).
  const auto shared = channel_splits == 1 ? pack_weights(true, CKK, d.O, w, CKK, threads) : nullptr;
#pragma omp parallel num_threads(std::min<int64_t>(threads, items))
  {
    auto dcol = scratch<T>(pointwise && tiles.single_image() ? 0 : channels_per_item * KK * tiles.width);
    auto dybuf = scratch<T>(tiles.single_image() ? 0 : d.O * tiles.width);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t g = item / channel_splits;
      const int64_t c0 = (item % channel_splits) * channels_per_item;
      const int64_t c1 = std::min(d.C, c0 + channels_per_item);
      if (c0 >= c1) continue;
      int64_t first, last;
      tiles.group_tiles(g, first, last);
      int64_t gj0, gj1, unused;
      tiles.range(first, gj0, unused);
      tiles.range(last - 1, unused, gj1);
      for (int64_t n = gj0 / P; n * P < gj1; ++n)
        std::fill(dx + (n * d.C + c0) * HW, dx + (n * d.C + c1) * HW, T(0));
      // W[:, c0*KK : c1*KK] transposed: rows (c, kh, kw) of this item's channels.
      const T* Wt = w + c0 * KK;
      const auto own = channel_splits == 1 ? nullptr : pack_weights(true, (c1 - c0) * KK, d.O, Wt, CKK, 1);
      const GemmPackedA<T>* pwt = shared ? shared.get() : own.get();  // rows 0.. are this item's (c0 = 0 if shared)
      for (int64_t t = first; t < last; ++t) {
        int64_t j0, j1;
        tiles.range(t, j0, j1);
        const int64_t cols = j1 - j0, n0 = j0 / P;
        int64_t lddy;
        const T* DY = gather_columns(dy, d.O, d.O * P, P, j0, j1, dybuf.get(), lddy);
        const int64_t rows = (c1 - c0) * KK;
        if (pointwise && tiles.single_image()) {
          T* DX = dx + (n0 * d.C + c0) * HW + (j0 - n0 * P);
          if (pwt) {
            pwt->multiply(0, rows, false, cols, DY, lddy, T(0), DX, HW);
          } else {
            gemm_blas(true, false, rows, cols, d.O, T(1), Wt, CKK, DY, lddy, T(0), DX, HW);
          }
        } else {
          if (pwt) {
            pwt->multiply(0, rows, false, cols, DY, lddy, T(0), dcol.get(), cols);
          } else {
            gemm_blas(true, false, rows, cols, d.O, T(1), Wt, CKK, DY, lddy, T(0), dcol.get(), cols);
          }
          col2im(d, taps, dcol.get(), cols, c0, c1, j0, j1, dx);
        }
      }
    }
  }
}

// dy: (N, O, OH, OW), x: (N, C, H, W) -> dw: (O, C, KH, KW), written.
template <typename T>
void conv2d_backward_weight_gemm(const Conv2dDims& d, const T* dy, const T* x, T* dw) {
  const int64_t P = d.P(), CKK = d.CKK();
  if (d.N * P == 0) {
    std::fill(dw, dw + d.O * CKK, T(0));
    return;
  }
  const int threads = conv_threads(d);
  // Each item owns a block of dW (O, CKK), so no reduction is needed: a range of its columns when CKK >= O (the
  // item then builds only those rows of col), otherwise a range of its rows (the item builds all of col but reads
  // only its rows of dy). Either way the per-item duplicated work - packing all of dy, or building all of col - is
  // on the smaller side. Ranges are multiples of 16 so the GEMM sees whole micro-tiles.
  const bool split_outputs = d.O > CKK;
  const int64_t extent = split_outputs ? d.O : CKK;
  const int64_t splits = std::max<int64_t>(1, std::min<int64_t>(threads, extent / 16));
  const int64_t per_item = std::min(extent, ((extent + splits - 1) / splits + 15) / 16 * 16);
  const int64_t items = (extent + per_item - 1) / per_item;
  const int64_t col_rows = split_outputs ? CKK : per_item;
  const ColumnTiles tiles = plan_tiles(d.N, P, budget_columns(col_rows));
  const bool pointwise = d.pointwise();
  const std::vector<int32_t> taps = tap_table(d);
#pragma omp parallel num_threads(std::min<int64_t>(threads, items))
  {
    auto col = scratch<T>(pointwise && tiles.single_image() ? 0 : col_rows * tiles.width);
    auto dybuf = scratch<T>(tiles.single_image() ? 0 : (split_outputs ? per_item : d.O) * tiles.width);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t start = item * per_item, end = std::min(extent, start + per_item);
      const int64_t o0 = split_outputs ? start : 0, o1 = split_outputs ? end : d.O;
      const int64_t r0 = split_outputs ? 0 : start, r1 = split_outputs ? CKK : end;
      for (int64_t t = 0; t < tiles.count; ++t) {
        int64_t j0, j1;
        tiles.range(t, j0, j1);
        const int64_t cols = j1 - j0, n0 = j0 / P;
        int64_t lddy;
        const T* DY = gather_columns(dy + o0 * P, o1 - o0, d.O * P, P, j0, j1, dybuf.get(), lddy);
        const T* B = col.get();
        int64_t ldb = cols;
        if (pointwise && tiles.single_image()) {
          B = x + (n0 * d.C + r0) * P + (j0 - n0 * P);
          ldb = P;
        } else {
          im2col(d, taps, x, r0, r1, j0, j1, col.get(), cols);
        }
        gemm_blas(false, true, o1 - o0, r1 - r0, cols, T(1), DY, lddy, B, ldb, t == 0 ? T(0) : T(1),
                  dw + o0 * CKK + r0, CKK);
      }
    }
  }
}

}  // namespace fg::cpu

namespace fg::kernels {

namespace {

void check_geometry(const Conv2dGeometry& g) {
  FG_CHECK(g.stride_h >= 1 && g.stride_w >= 1,
           "conv2d: stride (" << g.stride_h << ", " << g.stride_w << ") must be at least 1");
  FG_CHECK(g.dilation_h >= 1 && g.dilation_w >= 1,
           "conv2d: dilation (" << g.dilation_h << ", " << g.dilation_w << ") must be at least 1");
  FG_CHECK(g.pad_h >= 0 && g.pad_w >= 0, "conv2d: padding (" << g.pad_h << ", " << g.pad_w << ") must not be negative");
}

void check_cpu(const Tensor& t, const char* what) {
  require_cpu(t, "conv2d", what);
}

cpu::Conv2dDims make_dims(const Shape& xs, const Shape& ws, const Conv2dGeometry& g) {
  FG_CHECK(xs.size() == 4, "conv2d: x must be (N, C, H, W), got " << shape_str(xs));
  FG_CHECK(ws.size() == 4, "conv2d: w must be (O, C, KH, KW), got " << shape_str(ws));
  FG_CHECK(xs[1] == ws[1], "conv2d: x " << shape_str(xs) << " has " << xs[1] << " channels but w " << shape_str(ws)
                                        << " expects " << ws[1] << " (groups = 1)");
  FG_CHECK(ws[0] >= 1 && ws[1] >= 1 && ws[2] >= 1 && ws[3] >= 1,
           "conv2d: w " << shape_str(ws) << " is empty; every dim of (O, C, KH, KW) must be at least 1");
  const auto [OH, OW] = conv2d_output_size(xs[2], xs[3], ws[2], ws[3], g);
  return {xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], OH, OW,
          g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h, g.dilation_w};
}

void check_grad_out(const Tensor& grad_out, const cpu::Conv2dDims& d) {
  const Shape expected{d.N, d.O, d.OH, d.OW};
  FG_CHECK(grad_out.shape() == expected,
           "conv2d backward: grad_out is " << shape_str(grad_out.shape()) << " but the output is " << shape_str(expected));
}

void check_dtypes(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  FG_CHECK(a.dtype() == b.dtype(), "conv2d: " << an << " is " << dtype_name(a.dtype()) << " but " << bn << " is "
                                             << dtype_name(b.dtype()) << "; cast them to the same dtype");
}

}  // namespace

bool conv2d_cpu_winograd() { return cpu::winograd_in_production(); }

const char* conv2d_cpu_algorithms() {
  return cpu::winograd_in_production()
             ? "winograd F(2x2,3x3) for 3x3 stride-1 layers (>= 16 channels, >= 16x16 outputs; forward, input and "
               "weight gradients; FG_CPU_WINOGRAD=0 turns it off), im2col + gemm otherwise"
             : "im2col + gemm (winograd turned off by FG_CPU_WINOGRAD=0)";
}

std::pair<int64_t, int64_t> conv2d_output_size(int64_t H, int64_t W, int64_t KH, int64_t KW, const Conv2dGeometry& g) {
  check_geometry(g);
  const int64_t eff_h = g.dilation_h * (KH - 1) + 1, eff_w = g.dilation_w * (KW - 1) + 1;
  FG_CHECK(H + 2 * g.pad_h >= eff_h && W + 2 * g.pad_w >= eff_w,
           "conv2d: the input " << H << "x" << W << " padded by (" << g.pad_h << ", " << g.pad_w
                                << ") is smaller than the dilated kernel " << eff_h << "x" << eff_w
                                << "; use a larger input, more padding or a smaller kernel/dilation");
  return {(H + 2 * g.pad_h - eff_h) / g.stride_h + 1, (W + 2 * g.pad_w - eff_w) / g.stride_w + 1};
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g, Conv2dAlgo algo) {
#ifdef FG_WITH_CUDA
  if (x.defined() && x.device().is_cuda())
    return use_vendor(OpFamily::CONV2D) ? vendor::conv2d_forward(x, w, b, g) : cuda::conv2d_forward(x, w, b, g);
#endif
  FG_CHECK(x.defined() && w.defined(), "conv2d: x and w must be defined");
  const cpu::Conv2dDims d = make_dims(x.shape(), w.shape(), g);
  check_dtypes(x, "x", w, "w");
  check_cpu(x, "x");
  check_cpu(w, "w");
  if (b.defined()) {
    FG_CHECK(b.dim() == 1 && b.size(0) == d.O, "conv2d: bias " << shape_str(b.shape()) << " should be (" << d.O << ")");
    check_dtypes(x, "x", b, "bias");
    check_cpu(b, "bias");
  }
  Tensor out = Tensor::empty({d.N, d.O, d.OH, d.OW}, x.dtype());
  const Tensor xc = x.contiguous(), wc = w.contiguous(), bc = b.defined() ? b.contiguous() : Tensor();
  FG_DISPATCH_FLOATING(x.dtype(), "conv2d", [&] {
    const scalar_t* pb = bc.defined() ? bc.data<scalar_t>() : nullptr;
    const scalar_t *px = xc.data<scalar_t>(), *pw = wc.data<scalar_t>();
    scalar_t* py = out.data<scalar_t>();
    if (algo == Conv2dAlgo::PLAIN) {
      cpu::conv2d_forward_plain(d, px, pw, pb, py);
    } else if (algo == Conv2dAlgo::WINOGRAD || (algo == Conv2dAlgo::GEMM && cpu::winograd_pays(d))) {
      FG_CHECK(cpu::winograd_applies(d), "conv2d: Winograd F(2x2, 3x3) needs a 3x3 kernel, stride 1, dilation 1 and "
                                             "at least " << cpu::kWinogradMinChannels << " input and output channels");
      cpu::conv2d_forward_winograd(d, px, pw, pb, py);
    } else {
      cpu::conv2d_forward_gemm(d, px, pw, pb, py);
    }
  });
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& x_shape, const Conv2dGeometry& g,
                             Conv2dAlgo algo) {
#ifdef FG_WITH_CUDA
  if (grad_out.defined() && grad_out.device().is_cuda())
    return use_vendor(OpFamily::CONV2D) ? vendor::conv2d_backward_input(grad_out, w, x_shape, g)
                                        : cuda::conv2d_backward_input(grad_out, w, x_shape, g);
#endif
  FG_CHECK(grad_out.defined() && w.defined(), "conv2d backward: grad_out and w must be defined");
  const cpu::Conv2dDims d = make_dims(x_shape, w.shape(), g);
  check_grad_out(grad_out, d);
  check_dtypes(grad_out, "grad_out", w, "w");
  check_cpu(grad_out, "grad_out");
  check_cpu(w, "w");
  Tensor dx = Tensor::empty(x_shape, w.dtype());
  const Tensor dyc = grad_out.contiguous(), wc = w.contiguous();
  FG_DISPATCH_FLOATING(w.dtype(), "conv2d", [&] {
    const scalar_t *pdy = dyc.data<scalar_t>(), *pw = wc.data<scalar_t>();
    scalar_t* pdx = dx.data<scalar_t>();
    if (algo == Conv2dAlgo::PLAIN) {
      cpu::conv2d_backward_input_plain(d, pdy, pw, pdx);
    } else if (algo == Conv2dAlgo::WINOGRAD ||
               (algo == Conv2dAlgo::GEMM && cpu::winograd_backward_input_applies(d) &&
                cpu::winograd_pays(cpu::backward_input_as_forward(d)))) {
      FG_CHECK(cpu::winograd_backward_input_applies(d),
               "conv2d backward: Winograd F(2x2, 3x3) needs a 3x3 kernel, stride 1, dilation 1, padding at most 2 "
               "and at least "
                   << cpu::kWinogradMinChannels << " input and output channels");
      cpu::conv2d_backward_input_winograd(d, pdy, pw, pdx);
    } else {
      cpu::conv2d_backward_input_gemm(d, pdy, pw, pdx);
    }
  });
  return dx;
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& w_shape,
                              const Conv2dGeometry& g, Conv2dAlgo algo) {
#ifdef FG_WITH_CUDA
  if (grad_out.defined() && grad_out.device().is_cuda())
    return use_vendor(OpFamily::CONV2D) ? vendor::conv2d_backward_weight(grad_out, x, w_shape, g)
                                        : cuda::conv2d_backward_weight(grad_out, x, w_shape, g);
#endif
  FG_CHECK(grad_out.defined() && x.defined(), "conv2d backward: grad_out and x must be defined");
  const cpu::Conv2dDims d = make_dims(x.shape(), w_shape, g);
  check_grad_out(grad_out, d);
  check_dtypes(grad_out, "grad_out", x, "x");
  check_cpu(grad_out, "grad_out");
  check_cpu(x, "x");
  Tensor dw = Tensor::empty(w_shape, x.dtype());
  const Tensor dyc = grad_out.contiguous(), xc = x.contiguous();
  FG_DISPATCH_FLOATING(x.dtype(), "conv2d", [&] {
    const scalar_t *pdy = dyc.data<scalar_t>(), *px = xc.data<scalar_t>();
    scalar_t* pdw = dw.data<scalar_t>();
    if (algo == Conv2dAlgo::PLAIN) {
      cpu::conv2d_backward_weight_plain(d, pdy, px, pdw);
    } else if (algo == Conv2dAlgo::WINOGRAD || (algo == Conv2dAlgo::GEMM && cpu::winograd_pays(d))) {
      FG_CHECK(cpu::winograd_applies(d), "conv2d backward: Winograd F(2x2, 3x3) needs a 3x3 kernel, stride 1, "
                                         "dilation 1 and at least "
                                             << cpu::kWinogradMinChannels << " input and output channels");
      cpu::conv2d_backward_weight_winograd(d, pdy, px, pdw);
    } else {
      cpu::conv2d_backward_weight_gemm(d, pdy, px, pdw);
    }
  });
  return dw;
}

Tensor conv2d_backward_bias(const Tensor& grad_out) {
#ifdef FG_WITH_CUDA
  if (grad_out.defined() && grad_out.device().is_cuda()) return cuda::conv2d_backward_bias(grad_out);  // no twin
#endif
  FG_CHECK(grad_out.defined() && grad_out.dim() == 4,
           "conv2d backward: grad_out must be (N, O, OH, OW), got "
               << (grad_out.defined() ? shape_str(grad_out.shape()) : std::string("undefined")));
  check_cpu(grad_out, "grad_out");
  const int64_t N = grad_out.size(0), O = grad_out.size(1), P = grad_out.size(2) * grad_out.size(3);
  Tensor db = Tensor::empty({O}, grad_out.dtype());
  const Tensor dyc = grad_out.contiguous();
  FG_DISPATCH_FLOATING(grad_out.dtype(), "conv2d", [&] {
    cpu::conv2d_backward_bias(N, O, P, dyc.data<scalar_t>(), db.data<scalar_t>());
  });
  return db;
}

}  // namespace fg::kernels
