// Hand-written CUDA SSIM (kernels/cuda/ssim.h): the fused forward and backward, and the five-convolution baseline.
// Definitions and the backward's formulas are those of kernels/ssim.h and kernels/cpu/ssim.cpp:
//   F(s)[i][j] = sum_{a,b} g[a] g[b] s[i + a - p][j + b - p]      (zero outside the image; p = ws / 2)
//   F^T(d)[r][c] = sum_{a,b} g[a] g[b] d[r - a + p][c - b + p]    (only map entries inside (OH, OW))
//   with A1 = 2 mx my + C1, A2 = 2 cxy + C2, B1 = mx^2 + my^2 + C1, B2 = vx + vy + C2, S = A1 A2 / (B1 B2), w = dL/dS:
//   d0 = w (2 my (A2 - A1) / (B1 B2) + 2 mx S (1/B2 - 1/B1)),  d1 = the same with mx and my swapped,
//   d2 = -w S / B2 (for Exx and Eyy),  d3 = 2 w A1 / (B1 B2) (for Exy);
//   dx = F^T(d0) + 2 x F^T(d2) + y F^T(d3),  dy = F^T(d1) + 2 y F^T(d2) + x F^T(d3).
// The adjoint is a correlation with the flipped taps: with a' = ws - 1 - a,
//   F^T(d)[r] = sum_a' g[ws - 1 - a'] d[r - (ws - 1 - p) + a'],
// so the fused backward reads the map region starting (ws - 1 - p) rows and columns before its tile.
//
// Bounds. Fused kernels: a block owns the output tile rows [i0, i0 + 32) and columns [j0, j0 + 32) of one plane; every
// global load is guarded by the image (or map) extent and every store by the output extent, and the shared-memory
// indices are proved in place below. Five-conv kernels: one thread per output element in a grid-stride loop over
// exactly the output's elements, each tap range clipped to the input before the loop.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ssim.h"
#include "tensor/overlap.h"

namespace fg::kernels::cuda {

namespace {

using ::fg::cuda::from_f64;
using ::fg::cuda::to_f64;

constexpr double kC1 = 0.01 * 0.01;
constexpr double kC2 = 0.03 * 0.03;

constexpr int kTile = 32;                                    // output tile side of the fused kernels (= warp width)
constexpr int kSsimThreads = 256;                            // 8 warps
constexpr int kRowsPerThread = kTile / (kSsimThreads / 32);  // 4: each warp owns 4 tile rows in the last pass
constexpr int kMaxFusedWindow = 31;
constexpr int kMaxWindow = 63;
constexpr size_t kDefaultSharedLimit = 48 * 1024;  // above this a kernel must opt in

static_assert(kTile == 32, "the last pass maps the 32 lanes of a warp onto the 32 tile columns");
static_assert(kRowsPerThread * (kSsimThreads / 32) == kTile, "the warps cover the tile rows");

// The normalised 1-D Gaussian, by value in the kernel parameters. Fused kernels use g[0 .. ws) (ws <= 31).
template <typename A>
struct Window {
  A g[kMaxWindow];
};

struct PlaneGeometry {
  int H, W, OH, OW, ws, p;
  int tiles_x, tiles;  // fused kernels: tiles per row of tiles, and per plane
  int64_t planes;
};

// Shared floats of the fused kernels for window ws: R = 32 + ws - 1 is the side of the staged region.
size_t fused_forward_smem(int ws) {
  const size_t R = size_t(kTile + ws - 1);
  return (2 * R * R + 5 * size_t(kTile) * R) * sizeof(float);
}
size_t fused_backward_smem(int ws) {
  const size_t R = size_t(kTile + ws - 1);
  return (4 * R * R + 4 * size_t(kTile) * R) * sizeof(float);
}

// The map value from the five filtered moments; writes this entry's five statistics when `s` is not null (mu_x at
// s, the others every `stride` elements).
template <typename T, typename A>
__device__ inline A map_entry(const A (&m)[5], T* s, int64_t stride) {
  const A mx = m[0], my = m[1];
  const A vx = m[2] - mx * mx, vy = m[3] - my * my, cxy = m[4] - mx * my;
  if (s) {
    s[0] = from_acc<T>(mx);
    s[stride] = from_acc<T>(my);
    s[2 * stride] = from_acc<T>(vx);
    s[3 * stride] = from_acc<T>(vy);
    s[4 * stride] = from_acc<T>(cxy);
  }
  return ((A(2) * mx * my + A(kC1)) * (A(2) * cxy + A(kC2))) / ((mx * mx + my * my + A(kC1)) * (vx + vy + A(kC2)));
}

// The four derivative values (times w) of one map entry from its statistics (mu_x at s, the others every `stride`).
template <typename T, typename A>
__device__ inline void map_entry_grads(const T* s, int64_t stride, A w, A (&d)[4]) {
  const A mx = to_acc(s[0]), my = to_acc(s[stride]);
  const A vx = to_acc(s[2 * stride]), vy = to_acc(s[3 * stride]), cxy = to_acc(s[4 * stride]);
  const A a1 = A(2) * mx * my + A(kC1), a2 = A(2) * cxy + A(kC2);
  const A b1 = mx * mx + my * my + A(kC1), b2 = vx + vy + A(kC2);
  const A inv_b1 = A(1) / b1, inv_b2 = A(1) / b2;
  const A inv_b = inv_b1 * inv_b2;
  const A s_val = a1 * a2 * inv_b;
  const A shift = s_val * (inv_b2 - inv_b1);
  d[0] = w * (A(2) * my * (a2 - a1) * inv_b + A(2) * mx * shift);
  d[1] = w * (A(2) * mx * (a2 - a1) * inv_b + A(2) * my * shift);
  d[2] = w * (-s_val * inv_b2);
  d[3] = w * (A(2) * a1 * inv_b);
}

// dL/dS for every map entry: grad_out / (number of map entries), formed in double as the CPU forms it.
__device__ inline double map_weight(const double* grad_out, double inv_count) {
  return grad_out[0] * inv_count;
}

// ---- fused forward ----

// x, y: (planes, H, W) contiguous. stats: (5, planes, OH, OW) written, or null. tile_sums: (planes * tiles), the sum
// of each tile's map entries, written. Block b: plane b / tiles, tile b % tiles.
template <typename T, int kWs>
__global__ void __launch_bounds__(kSsimThreads)
    ssim_forward_fused_kernel(const T* __restrict__ x, const T* __restrict__ y, const PlaneGeometry geo,
                              const Window<float> win, T* __restrict__ stats, double* __restrict__ tile_sums) {
  extern __shared__ float smem[];
  __shared__ double reduce_shared[32];
  const int ws = kWs > 0 ? kWs : geo.ws;
  const int R = kTile + ws - 1;
  float* sx = smem;        // [R][R]: x on input rows i0 - p + [0, R), columns j0 - p + [0, R)
  float* sy = sx + R * R;  // [R][R]: y, the same region
  float* sv = sy + R * R;  // [5][kTile][R]: the region filtered along columns
  const int64_t plane = int64_t(blockIdx.x) / geo.tiles;
  const int tile = int(int64_t(blockIdx.x) - plane * geo.tiles);
  const int i0 = (tile / geo.tiles_x) * kTile, j0 = (tile % geo.tiles_x) * kTile;
  const int64_t plane_in = int64_t(geo.H) * geo.W;
  const T* xp = x + plane * plane_in;
  const T* yp = y + plane * plane_in;

  // 1. Stage the region, zeros outside the image (the padding). e < R*R, so r, c < R.
  for (int e = int(threadIdx.x); e < R * R; e += int(blockDim.x)) {
    const int r = e / R, c = e - r * R;
    const int ir = i0 - geo.p + r, ic = j0 - geo.p + c;
    float xv = 0.0f, yv = 0.0f;
    if (ir >= 0 && ir < geo.H && ic >= 0 && ic < geo.W) {
      const int64_t off = int64_t(ir) * geo.W + ic;
      xv = to_acc(xp[off]);
      yv = to_acc(yp[off]);
    }
    sx[e] = xv;
    sy[e] = yv;
  }
  __syncthreads();

  // 2. Along columns: sv[m][i][c] = sum_a g[a] P_m[i + a][c] for the tile's rows i and every region column c, with
  // P = (x, y, x^2, y^2, x y). A thread slides down kRowsPerThread consecutive rows so each staged value is read once
  // for all of them. Rows read: ib + r <= (kTile - kRowsPerThread) + (kRowsPerThread + ws - 2) = R - 1.
  for (int item = int(threadIdx.x); item < R * (kTile / kRowsPerThread); item += int(blockDim.x)) {
    const int c = item % R, ib = (item / R) * kRowsPerThread;
    float acc[kRowsPerThread][5];
#pragma unroll
    for (int k = 0; k < kRowsPerThread; ++k)
#pragma unroll
      for (int m = 0; m < 5; ++m) acc[k][m] = 0.0f;
#pragma unroll
    for (int r = 0; r < kRowsPerThread + ws - 1; ++r) {
      const float xv = sx[(ib + r) * R + c], yv = sy[(ib + r) * R + c];
      const float prod[5] = {xv, yv, xv * xv, yv * yv, xv * yv};
#pragma unroll
      for (int k = 0; k < kRowsPerThread; ++k) {
        const int a = r - k;
        if (a >= 0 && a < ws) {
          const float ga = win.g[a];
#pragma unroll
          for (int m = 0; m < 5; ++m) acc[k][m] = fmaf(ga, prod[m], acc[k][m]);
        }
      }
    }
#pragma unroll
    for (int k = 0; k < kRowsPerThread; ++k)
#pragma unroll
      for (int m = 0; m < 5; ++m) sv[(m * kTile + ib + k) * R + c] = acc[k][m];
  }
  __syncthreads();

  // 3. Along rows, one lane per tile column: the five moments of map entry (i0 + i, j0 + lane), its statistics and
  // its value. Columns read: lane + b <= 31 + ws - 1 = R - 1.
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int oj = j0 + lane;
  const int64_t plane_map = int64_t(geo.OH) * geo.OW, stride = geo.planes * plane_map;
  float map_sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int i = warp * kRowsPerThread + k, oi = i0 + i;
    if (oi >= geo.OH || oj >= geo.OW) continue;
    float m[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int b = 0; b < ws; ++b) {
      const float gb = win.g[b];
#pragma unroll
      for (int mm = 0; mm < 5; ++mm) m[mm] = fmaf(gb, sv[(mm * kTile + i) * R + lane + b], m[mm]);
    }
    T* s = stats ? stats + plane * plane_map + int64_t(oi) * geo.OW + oj : nullptr;
    map_sum += map_entry<T, float>(m, s, stride);
  }
  const double total = block_sum_double(double(map_sum), reduce_shared);
  if (threadIdx.x == 0) tile_sums[blockIdx.x] = total;
}

// ---- fused backward ----

// x, y: (planes, H, W) contiguous; stats: (5, planes, OH, OW) contiguous; grad_out: one double on the device.
// gx, gy: (planes, H, W) written, or null. Block b: plane b / tiles, input tile b % tiles (input rows r0 + [0, 32)).
template <typename T, int kWs>
__global__ void __launch_bounds__(kSsimThreads)
    ssim_backward_fused_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ stats,
                               const PlaneGeometry geo, const Window<float> win, const double* __restrict__ grad_out,
                               double inv_count, T* __restrict__ gx, T* __restrict__ gy) {
  extern __shared__ float smem[];
  const int ws = kWs > 0 ? kWs : geo.ws;
  const int R = kTile + ws - 1;
  float* sd = smem;            // [4][R][R]: derivative maps on map rows mr0 + [0, R), columns mc0 + [0, R)
  float* su = sd + 4 * R * R;  // [4][kTile][R]: after the adjoint along columns
  const int64_t plane = int64_t(blockIdx.x) / geo.tiles;
  const int tile = int(int64_t(blockIdx.x) - plane * geo.tiles);
  const int r0 = (tile / geo.tiles_x) * kTile, c0 = (tile % geo.tiles_x) * kTile;
  const int mr0 = r0 + geo.p - (ws - 1), mc0 = c0 + geo.p - (ws - 1);
  const int64_t plane_map = int64_t(geo.OH) * geo.OW, stride = geo.planes * plane_map;
  const T* sp = stats + plane * plane_map;
  const float w = float(map_weight(grad_out, inv_count));

  // 1. Derivative maps of the region, zeros outside the map. e < R*R.
  for (int e = int(threadIdx.x); e < R * R; e += int(blockDim.x)) {
    const int rr = e / R, cc = e - rr * R;
    const int mr = mr0 + rr, mc = mc0 + cc;
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (mr >= 0 && mr < geo.OH && mc >= 0 && mc < geo.OW)
      map_entry_grads<T, float>(sp + int64_t(mr) * geo.OW + mc, stride, w, d);
#pragma unroll
    for (int k = 0; k < 4; ++k) sd[k * R * R + e] = d[k];
  }
  __syncthreads();

  // 2. Adjoint along columns: su[k][i][cc] = sum_a' g[ws-1-a'] sd[k][i + a'][cc]. Rows read <= R - 1 as in the forward.
  for (int item = int(threadIdx.x); item < R * (kTile / kRowsPerThread); item += int(blockDim.x)) {
    const int cc = item % R, ib = (item / R) * kRowsPerThread;
    float acc[kRowsPerThread][4];
#pragma unroll
    for (int k = 0; k < kRowsPerThread; ++k)
#pragma unroll
      for (int m = 0; m < 4; ++m) acc[k][m] = 0.0f;
#pragma unroll
    for (int r = 0; r < kRowsPerThread + ws - 1; ++r) {
      float v[4];
#pragma unroll
      for (int m = 0; m < 4; ++m) v[m] = sd[m * R * R + (ib + r) * R + cc];
#pragma unroll
      for (int k = 0; k < kRowsPerThread; ++k) {
        const int a = r - k;
        if (a >= 0 && a < ws) {
          const float ga = win.g[ws - 1 - a];
#pragma unroll
          for (int m = 0; m < 4; ++m) acc[k][m] = fmaf(ga, v[m], acc[k][m]);
        }
      }
    }
#pragma unroll
    for (int k = 0; k < kRowsPerThread; ++k)
#pragma unroll
      for (int m = 0; m < 4; ++m) su[(m * kTile + ib + k) * R + cc] = acc[k][m];
  }
  __syncthreads();

  // 3. Adjoint along rows, one lane per tile column, then the combination with x and y. Columns read <= R - 1.
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int c = c0 + lane;
  const int64_t plane_in = int64_t(geo.H) * geo.W;
#pragma unroll
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int i = warp * kRowsPerThread + k, r = r0 + i;
    if (r >= geo.H || c >= geo.W) continue;
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int b = 0; b < ws; ++b) {
      const float gb = win.g[ws - 1 - b];
#pragma unroll
      for (int m = 0; m < 4; ++m) t[m] = fmaf(gb, su[(m * kTile + i) * R + lane + b], t[m]);
    }
    const int64_t off = plane * plane_in + int64_t(r) * geo.W + c;
    const float xv = to_acc(x[off]), yv = to_acc(y[off]);
    if (gx) gx[off] = from_acc<T>(t[0] + 2.0f * xv * t[2] + yv * t[3]);
    if (gy) gy[off] = from_acc<T>(t[1] + 2.0f * yv * t[2] + xv * t[3]);
  }
}

// ---- sums of the map ----

// tile_sums: (planes, tiles). plane_sums: (planes), each plane's tiles added in order.
__global__ void ssim_tile_sums_kernel(const double* __restrict__ tile_sums, int tiles, int64_t planes,
                                      double* __restrict__ plane_sums) {
  FG_CUDA_KERNEL_LOOP(pl, planes) {
    double s = 0.0;
    for (int t = 0; t < tiles; ++t) s += tile_sums[pl * tiles + t];
    plane_sums[pl] = s;
  }
}

// map: (planes, plane_map). One block per plane (grid-stride over planes): plane_sums written.
template <typename A>
__global__ void ssim_map_plane_sums_kernel(const A* __restrict__ map, int64_t planes, int64_t plane_map,
                                           double* __restrict__ plane_sums) {
  __shared__ double shared[32];
  for (int64_t pl = blockIdx.x; pl < planes; pl += gridDim.x) {
    double s = 0.0;
    for (int64_t e = threadIdx.x; e < plane_map; e += blockDim.x) s += double(map[pl * plane_map + e]);
    s = block_sum_double(s, shared);
    if (threadIdx.x == 0) plane_sums[pl] = s;
  }
}

// One block: per_channel[pl] = plane_sums[pl] / plane_map, value = (sum of plane_sums) / (planes * plane_map), in T.
// planes = 0 gives NaN, as the CPU's (and PyTorch's) mean of an empty map.
template <typename T>
__global__ void ssim_finish_kernel(const double* __restrict__ plane_sums, int64_t planes, double plane_map,
                                   T* __restrict__ per_channel, T* __restrict__ value) {
  __shared__ double shared[32];
  double s = 0.0;
  for (int64_t pl = threadIdx.x; pl < planes; pl += blockDim.x) {
    s += plane_sums[pl];
    per_channel[pl] = from_f64<T>(plane_sums[pl] / plane_map);
  }
  s = block_sum_double(s, shared);
  if (threadIdx.x == 0) value[0] = from_f64<T>(s / (double(planes) * plane_map));
}

// ---- the five-convolution baseline ----

// sq: x^2, y^2, x y (each (n), A) from x, y (n, T).
template <typename T>
__global__ void ssim_products_kernel(const T* __restrict__ x, const T* __restrict__ y, int64_t n,
                                     acc_t<T>* __restrict__ xx, acc_t<T>* __restrict__ yy, acc_t<T>* __restrict__ xy) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(i, n) {
    const A xv = to_acc(x[i]), yv = to_acc(y[i]);
    xx[i] = xv * xv;
    yy[i] = yv * yv;
    xy[i] = xv * yv;
  }
}

// A depthwise correlation of every (in_h, in_w) plane with the ws x ws window w2[a][b] = g[a] g[b] (flipped when
// `flip`), zeros outside the input: out[pl][i][j] = sum_{a,b} w2[a][b] in[pl][i + a - pad][j + b - pad], one thread
// per output. The forward's F is (pad p, no flip); its adjoint F^T is (pad ws - 1 - p, flip).
template <typename In, typename A>
__global__ void depthwise_window_kernel(const In* __restrict__ in, A* __restrict__ out, int64_t planes, int in_h,
                                        int in_w, int out_h, int out_w, int ws, int pad, bool flip,
                                        const Window<A> win) {
  const int64_t total = planes * out_h * out_w;
  FG_CUDA_KERNEL_LOOP(idx, total) {
    const int j = int(idx % out_w);
    const int i = int((idx / out_w) % out_h);
    const int64_t pl = idx / (int64_t(out_h) * out_w);
    const In* ip = in + pl * in_h * in_w;
    // Taps whose input row i + a - pad lies in [0, in_h), and likewise for columns.
    const int a_lo = max(0, pad - i), a_hi = min(ws, in_h + pad - i);
    const int b_lo = max(0, pad - j), b_hi = min(ws, in_w + pad - j);
    A acc = 0;
    for (int a = a_lo; a < a_hi; ++a) {
      const A ga = win.g[flip ? ws - 1 - a : a];
      const int64_t row = int64_t(i + a - pad) * in_w + (j - pad);  // + b lies in [0, in_w) for b in [b_lo, b_hi)
      for (int b = b_lo; b < b_hi; ++b) acc += ga * win.g[flip ? ws - 1 - b : b] * A(to_acc(ip[row + b]));
    }
    out[idx] = acc;
  }
}

// The map from the five filtered moments (each (planes * plane_map), A): map written, stats written or null.
template <typename T>
__global__ void ssim_map_kernel(const acc_t<T>* __restrict__ mu_x, const acc_t<T>* __restrict__ mu_y,
                                const acc_t<T>* __restrict__ e_xx, const acc_t<T>* __restrict__ e_yy,
                                const acc_t<T>* __restrict__ e_xy, int64_t n, T* __restrict__ stats,
                                acc_t<T>* __restrict__ map) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(i, n) {
    const A m[5] = {mu_x[i], mu_y[i], e_xx[i], e_yy[i], e_xy[i]};
    map[i] = map_entry<T, A>(m, stats ? stats + i : static_cast<T*>(nullptr), n);
  }
}

// The four derivative maps (each (n), A) from the statistics (5, n).
template <typename T>
__global__ void ssim_map_grads_kernel(const T* __restrict__ stats, int64_t n, const double* __restrict__ grad_out,
                                      double inv_count, acc_t<T>* __restrict__ d0, acc_t<T>* __restrict__ d1,
                                      acc_t<T>* __restrict__ d2, acc_t<T>* __restrict__ d3) {
  using A = acc_t<T>;
  const A w = A(map_weight(grad_out, inv_count));
  FG_CUDA_KERNEL_LOOP(i, n) {
    A d[4];
    map_entry_grads<T, A>(stats + i, n, w, d);
    d0[i] = d[0];
    d1[i] = d[1];
    d2[i] = d[2];
    d3[i] = d[3];
  }
}

// gx, gy (n, T, each or null) from the adjoint-filtered derivative maps t0..t3 (n, A) and x, y.
template <typename T>
__global__ void ssim_combine_kernel(const T* __restrict__ x, const T* __restrict__ y, const acc_t<T>* __restrict__ t0,
                                    const acc_t<T>* __restrict__ t1, const acc_t<T>* __restrict__ t2,
                                    const acc_t<T>* __restrict__ t3, int64_t n, T* __restrict__ gx,
                                    T* __restrict__ gy) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(i, n) {
    const A xv = to_acc(x[i]), yv = to_acc(y[i]);
    if (gx) gx[i] = from_acc<T>(t0[i] + A(2) * xv * t2[i] + yv * t3[i]);
    if (gy) gy[i] = from_acc<T>(t1[i] + A(2) * yv * t2[i] + xv * t3[i]);
  }
}

// ---- host side ----

bool fused_dtype(DType dt) {
  return dt == DType::F32 || dt == DType::F16 || dt == DType::BF16;
}

SsimKernel resolve(SsimKernel k, DType dt, int64_t ws) {
  if (k != SsimKernel::SSIM_DEFAULT) return k;
  return fused_dtype(dt) && ws <= kMaxFusedWindow ? SsimKernel::SSIM_FUSED : SsimKernel::SSIM_FIVE_CONVS;
}

void check_images(const char* op, const Tensor& x, const Tensor& y, const SsimParams& params, SsimKernel kernel) {
  check_same(x, "x", y, "y", op);
  FG_CHECK(x.dim() == 4, op << ": expected x of shape (N, C, H, W), got " << shape_str(x.shape())
                            << "; add the missing dimensions with unsqueeze");
  FG_CHECK(x.size(2) >= 1 && x.size(3) >= 1,
           op << ": the images of shape " << shape_str(x.shape()) << " have no pixels");
  FG_CHECK(params.window_size >= 1 && params.window_size <= kMaxWindow,
           op << ": window_size must be in [1, " << kMaxWindow << "] on CUDA, got " << params.window_size);
  FG_CHECK(std::isfinite(params.sigma) && params.sigma > 0.0,
           op << ": sigma must be a positive number, got " << params.sigma);
  FG_CHECK(x.size(2) < (int64_t(1) << 30) && x.size(3) < (int64_t(1) << 30),
           op << ": images of " << x.size(2) << "x" << x.size(3) << " pixels are too large for the CUDA kernels");
  FG_CHECK(ssim_kernel_supports(kernel, x.dtype(), params.window_size),
           op << ": the " << ssim_kernel_name(kernel) << " kernel does not support " << dtype_name(x.dtype())
              << " with window_size " << params.window_size << "; use SSIM_DEFAULT");
}

PlaneGeometry geometry_of(const Tensor& x, const SsimParams& params) {
  PlaneGeometry g;
  g.H = int(x.size(2));
  g.W = int(x.size(3));
  g.ws = int(params.window_size);
  g.p = g.ws / 2;
  g.OH = int(ssim_map_size(x.size(2), params.window_size));
  g.OW = int(ssim_map_size(x.size(3), params.window_size));
  g.planes = x.size(0) * x.size(1);
  g.tiles_x = 0;
  g.tiles = 0;
  return g;
}

template <typename A>
Window<A> window_of(const SsimParams& params) {
  const std::vector<double> g = ssim_gaussian_window(params.window_size, params.sigma);
  Window<A> w{};
  for (size_t i = 0; i < g.size() && i < size_t(kMaxWindow); ++i) w.g[i] = A(g[i]);
  return w;
}

// The fused launch grid: tiles over the map (forward) or over the image (backward), for every plane.
void set_tiles(PlaneGeometry& g, int rows, int cols, const char* op) {
  g.tiles_x = (cols + kTile - 1) / kTile;
  g.tiles = g.tiles_x * ((rows + kTile - 1) / kTile);
  FG_CHECK(g.planes * g.tiles < INT32_MAX, op << ": " << g.planes << " planes of " << rows << "x" << cols
                                              << " need more thread blocks than one launch allows; split the batch");
}

// Opts a kernel into more than 48 KiB of shared memory when it needs it (windows above 15 forward, above 9
// backward), then launches it.
template <typename Kernel, typename... Args>
void launch_fused(Kernel kernel, unsigned blocks, size_t smem, cudaStream_t stream, Args... args) {
  // The margin covers the kernel's static shared memory (the forward's 256-byte reduction buffer), which counts
  // against the same default limit.
  if (smem + 1024 > kDefaultSharedLimit)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<blocks, kSsimThreads, smem, stream>>>(args...);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void forward_fused(const Tensor& x, const Tensor& y, PlaneGeometry geo, const SsimParams& params, T* stats,
                   double* plane_sums, cudaStream_t stream) {
  set_tiles(geo, geo.OH, geo.OW, "ssim (CUDA)");
  const Tensor tile_sums = Tensor::empty({geo.planes * geo.tiles}, DType::F64, x.device());
  const Window<float> win = window_of<float>(params);
  const unsigned blocks = unsigned(geo.planes * geo.tiles);
  const size_t smem = fused_forward_smem(geo.ws);
  const T* xp = x.data<T>();
  const T* yp = y.data<T>();
  double* ts = tile_sums.data<double>();
  if (geo.ws == 11)
    launch_fused(ssim_forward_fused_kernel<T, 11>, blocks, smem, stream, xp, yp, geo, win, stats, ts);
  else if (geo.ws == 5)
    launch_fused(ssim_forward_fused_kernel<T, 5>, blocks, smem, stream, xp, yp, geo, win, stats, ts);
  else
    launch_fused(ssim_forward_fused_kernel<T, 0>, blocks, smem, stream, xp, yp, geo, win, stats, ts);
  ssim_tile_sums_kernel<<<grid_for(geo.planes, kThreads), kThreads, 0, stream>>>(ts, geo.tiles, geo.planes, plane_sums);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void forward_five_convs(const Tensor& x, const Tensor& y, const PlaneGeometry& geo, const SsimParams& params, T* stats,
                        double* plane_sums, cudaStream_t stream) {
  using A = acc_t<T>;
  const DType at = sizeof(A) == 8 ? DType::F64 : DType::F32;
  const int64_t n_in = geo.planes * geo.H * geo.W, n_map = geo.planes * geo.OH * geo.OW;
  const Tensor products = Tensor::empty({3, n_in}, at, x.device());
  const Tensor moments = Tensor::empty({6, n_map}, at, x.device());  // mu_x, mu_y, E[xx], E[yy], E[xy], the map
  A* sq = products.data<A>();
  A* mom = moments.data<A>();
  const Window<A> win = window_of<A>(params);
  ssim_products_kernel<T>
      <<<grid_for(n_in, kThreads), kThreads, 0, stream>>>(x.data<T>(), y.data<T>(), n_in, sq, sq + n_in, sq + 2 * n_in);
  CUDA_CHECK_LAUNCH();
  const unsigned blocks = grid_for(n_map, kThreads);
  depthwise_window_kernel<T, A><<<blocks, kThreads, 0, stream>>>(x.data<T>(), mom, geo.planes, geo.H, geo.W, geo.OH,
                                                                 geo.OW, geo.ws, geo.p, false, win);
  CUDA_CHECK_LAUNCH();
  depthwise_window_kernel<T, A><<<blocks, kThreads, 0, stream>>>(y.data<T>(), mom + n_map, geo.planes, geo.H, geo.W,
                                                                 geo.OH, geo.OW, geo.ws, geo.p, false, win);
  CUDA_CHECK_LAUNCH();
  for (int k = 0; k < 3; ++k) {
    depthwise_window_kernel<A, A><<<blocks, kThreads, 0, stream>>>(
        sq + k * n_in, mom + (2 + k) * n_map, geo.planes, geo.H, geo.W, geo.OH, geo.OW, geo.ws, geo.p, false, win);
    CUDA_CHECK_LAUNCH();
  }
  ssim_map_kernel<T><<<blocks, kThreads, 0, stream>>>(mom, mom + n_map, mom + 2 * n_map, mom + 3 * n_map,
                                                      mom + 4 * n_map, n_map, stats, mom + 5 * n_map);
  CUDA_CHECK_LAUNCH();
  const int64_t plane_map = int64_t(geo.OH) * geo.OW;
  ssim_map_plane_sums_kernel<A><<<unsigned(std::min<int64_t>(geo.planes, 65535 * 32)), kThreads, 0, stream>>>(
      mom + 5 * n_map, geo.planes, plane_map, plane_sums);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void backward_fused(const Tensor& x, const Tensor& y, const Tensor& stats, PlaneGeometry geo, const SsimParams& params,
                    const double* grad, double inv_count, T* gx, T* gy, cudaStream_t stream) {
  set_tiles(geo, geo.H, geo.W, "ssim_backward (CUDA)");
  const Window<float> win = window_of<float>(params);
  const unsigned blocks = unsigned(geo.planes * geo.tiles);
  const size_t smem = fused_backward_smem(geo.ws);
  const T* xp = x.data<T>();
  const T* yp = y.data<T>();
  const T* sp = stats.data<T>();
  if (geo.ws == 11)
    launch_fused(ssim_backward_fused_kernel<T, 11>, blocks, smem, stream, xp, yp, sp, geo, win, grad, inv_count, gx,
                 gy);
  else if (geo.ws == 5)
    launch_fused(ssim_backward_fused_kernel<T, 5>, blocks, smem, stream, xp, yp, sp, geo, win, grad, inv_count, gx, gy);
  else
    launch_fused(ssim_backward_fused_kernel<T, 0>, blocks, smem, stream, xp, yp, sp, geo, win, grad, inv_count, gx, gy);
}

template <typename T>
void backward_five_convs(const Tensor& x, const Tensor& y, const Tensor& stats, const PlaneGeometry& geo,
                         const SsimParams& params, const double* grad, double inv_count, T* gx, T* gy,
                         cudaStream_t stream) {
  using A = acc_t<T>;
  const DType at = sizeof(A) == 8 ? DType::F64 : DType::F32;
  const int64_t n_in = geo.planes * geo.H * geo.W, n_map = geo.planes * geo.OH * geo.OW;
  const Tensor derivs = Tensor::empty({4, n_map}, at, x.device());
  const Tensor adjoint = Tensor::empty({4, n_in}, at, x.device());
  A* d = derivs.data<A>();
  A* t = adjoint.data<A>();
  const Window<A> win = window_of<A>(params);
  ssim_map_grads_kernel<T><<<grid_for(n_map, kThreads), kThreads, 0, stream>>>(
      stats.data<T>(), n_map, grad, inv_count, d, d + n_map, d + 2 * n_map, d + 3 * n_map);
  CUDA_CHECK_LAUNCH();
  const unsigned blocks = grid_for(n_in, kThreads);
  for (int k = 0; k < 4; ++k) {
    depthwise_window_kernel<A, A><<<blocks, kThreads, 0, stream>>>(
        d + k * n_map, t + k * n_in, geo.planes, geo.OH, geo.OW, geo.H, geo.W, geo.ws, geo.ws - 1 - geo.p, true, win);
    CUDA_CHECK_LAUNCH();
  }
  ssim_combine_kernel<T><<<blocks, kThreads, 0, stream>>>(x.data<T>(), y.data<T>(), t, t + n_in, t + 2 * n_in,
                                                          t + 3 * n_in, n_in, gx, gy);
  CUDA_CHECK_LAUNCH();
}

void check_output(const Tensor& out, const Shape& shape, const Tensor& x, const char* op, const char* name) {
  FG_CHECK(out.defined() && out.shape() == shape && out.dtype() == x.dtype() && out.device() == x.device() &&
               out.is_contiguous(),
           op << ": the output " << name << " must be a contiguous " << dtype_name(x.dtype()) << shape_str(shape)
              << " tensor on " << x.device().str() << ", got " << (out.defined() ? out.str() : "undefined"));
}

}  // namespace

const char* ssim_kernel_name(SsimKernel k) {
  switch (k) {
    case SsimKernel::SSIM_DEFAULT:
      return "default";
    case SsimKernel::SSIM_FUSED:
      return "fused";
    case SsimKernel::SSIM_FIVE_CONVS:
      return "five_convs";
  }
  return "?";
}

bool ssim_kernel_supports(SsimKernel k, DType dtype, int64_t window_size) {
  if (window_size < 1 || window_size > kMaxWindow || !dtype_is_floating(dtype)) return false;
  if (k == SsimKernel::SSIM_FUSED) return fused_dtype(dtype) && window_size <= kMaxFusedWindow;
  return true;
}

void ssim_into(SsimResult& out, const Tensor& x_in, const Tensor& y_in, const SsimParams& params, SsimKernel kernel) {
  const char* op = "ssim (CUDA)";
  check_images(op, x_in, y_in, params, kernel);
  const SsimKernel k = resolve(kernel, x_in.dtype(), params.window_size);
  const PlaneGeometry geo = geometry_of(x_in, params);
  const int64_t N = x_in.size(0), C = x_in.size(1);
  check_output(out.value, {}, x_in, op, "value");
  check_output(out.per_channel, {N, C}, x_in, op, "per_channel");
  if (out.stats.defined()) check_output(out.stats.moments, {5, N, C, geo.OH, geo.OW}, x_in, op, "stats");
  check_outputs_separate({&out.value, &out.per_channel, &out.stats.moments}, {&x_in, &y_in}, op);  // tensor/overlap.h
  out.stats.params = params;  // what the backward checks its parameters against
  const Tensor x = x_in.contiguous(), y = y_in.contiguous();
  DeviceGuard guard(x.device().index);
  const cudaStream_t stream = stream_of(x);
  const Tensor plane_sums = Tensor::empty({std::max<int64_t>(geo.planes, 1)}, DType::F64, x.device());
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    T* stats = out.stats.defined() ? out.stats.moments.data<T>() : nullptr;
    if (geo.planes > 0) {
      if constexpr (std::is_same_v<T, double>) {
        forward_five_convs<T>(x, y, geo, params, stats, plane_sums.data<double>(), stream);
      } else {
        if (k == SsimKernel::SSIM_FUSED)
          forward_fused<T>(x, y, geo, params, stats, plane_sums.data<double>(), stream);
        else
          forward_five_convs<T>(x, y, geo, params, stats, plane_sums.data<double>(), stream);
      }
    }
    ssim_finish_kernel<T><<<1, kThreads, 0, stream>>>(plane_sums.data<double>(), geo.planes,
                                                      double(int64_t(geo.OH) * geo.OW), out.per_channel.data<T>(),
                                                      out.value.data<T>());
    CUDA_CHECK_LAUNCH();
  });
}

SsimResult ssim(const Tensor& x, const Tensor& y, const SsimParams& params, bool keep_stats, SsimKernel kernel) {
  check_images("ssim (CUDA)", x, y, params, kernel);
  const int64_t N = x.size(0), C = x.size(1);
  SsimResult r;
  r.value = Tensor::empty({}, x.dtype(), x.device());
  r.per_channel = Tensor::empty({N, C}, x.dtype(), x.device());
  if (keep_stats)
    r.stats.moments = Tensor::empty(
        {5, N, C, ssim_map_size(x.size(2), params.window_size), ssim_map_size(x.size(3), params.window_size)},
        x.dtype(), x.device());
  ssim_into(r, x, y, params, kernel);
  return r;
}

void ssim_backward_into(SsimGrads& out, const Tensor& grad_out, const Tensor& x_in, const Tensor& y_in,
                        const SsimStats& stats_in, const SsimParams& params, SsimKernel kernel) {
  const char* op = "ssim_backward (CUDA)";
  check_images(op, x_in, y_in, params, kernel);
  const SsimKernel k = resolve(kernel, x_in.dtype(), params.window_size);
  const PlaneGeometry geo = geometry_of(x_in, params);
  const int64_t N = x_in.size(0), C = x_in.size(1);
  check_ssim_stats(stats_in, x_in, params, op);  // kernels/ssim.h, the CPU's check
  FG_CHECK(grad_out.defined() && grad_out.numel() == 1,
           op << ": the output gradient must hold one element, got "
              << (grad_out.defined() ? shape_str(grad_out.shape()) : std::string("undefined")));
  FG_CHECK(dtype_is_floating(grad_out.dtype()),
           op << ": the output gradient has dtype " << dtype_name(grad_out.dtype()) << "; use a float dtype");
  if (out.x.defined()) check_output(out.x, x_in.shape(), x_in, op, "x gradient");
  if (out.y.defined()) check_output(out.y, x_in.shape(), x_in, op, "y gradient");
  check_outputs_separate({&out.x, &out.y}, {&grad_out, &x_in, &y_in, &stats_in.moments}, op);  // tensor/overlap.h
  if ((!out.x.defined() && !out.y.defined()) || geo.planes == 0) return;
  // grad_out as one f64 on the device: read there by the kernels, so nothing waits for the host.
  const Tensor grad = grad_out.reshape({1}).to(x_in.device()).to(DType::F64).contiguous();
  const double inv_count = 1.0 / (double(geo.planes) * double(geo.OH) * double(geo.OW));
  const Tensor x = x_in.contiguous(), y = y_in.contiguous(), stats = stats_in.moments.contiguous();
  DeviceGuard guard(x.device().index);
  const cudaStream_t stream = stream_of(x);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    T* gx = out.x.defined() ? out.x.data<T>() : nullptr;
    T* gy = out.y.defined() ? out.y.data<T>() : nullptr;
    if constexpr (std::is_same_v<T, double>) {
      backward_five_convs<T>(x, y, stats, geo, params, grad.data<double>(), inv_count, gx, gy, stream);
    } else {
      if (k == SsimKernel::SSIM_FUSED)
        backward_fused<T>(x, y, stats, geo, params, grad.data<double>(), inv_count, gx, gy, stream);
      else
        backward_five_convs<T>(x, y, stats, geo, params, grad.data<double>(), inv_count, gx, gy, stream);
    }
  });
}

SsimGrads ssim_backward(const Tensor& grad_out, const Tensor& x, const Tensor& y, const SsimStats& stats,
                        const SsimParams& params, bool need_x, bool need_y, SsimKernel kernel) {
  check_images("ssim_backward (CUDA)", x, y, params, kernel);
  SsimGrads g;
  if (need_x) g.x = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (need_y) g.y = Tensor::empty(x.shape(), x.dtype(), x.device());
  ssim_backward_into(g, grad_out, x, y, stats, params, kernel);
  return g;
}

}  // namespace fg::kernels::cuda
