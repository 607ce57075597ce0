// The non-GEMM kernels of the CUDA self-attention (declared in kernels/cuda/self_attention_steps.h): the fused scores
// and softmax of the forward, the softmax backward with the gamma scale, dgamma with dh = gamma Q, and the sum of the
// per-image weight gradients. Formulas as in kernels/cpu/self_attention.cpp; 16-bit elements are computed in f32.
//
// Bounds: the scores kernel stages only elements with c < Ck and j, i < N (zeros elsewhere) and writes only j, i < N;
// the row kernels touch row * N + i with row < rows and i < N; the elementwise kernels loop over exactly their
// element counts.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/self_attention_steps.h"

namespace fg::kernels::cuda::attention_steps {

namespace {

constexpr int kScoreRows = 32;      // output positions j per block
constexpr int kScoreCols = 64;      // source positions i per chunk
constexpr int kScoreK = 16;         // channels per shared-memory stage
constexpr int kScoreThreads = 256;  // 16 x 16 threads: ty owns rows 2 ty, 2 ty + 1; tx owns columns tx + 16 q, q < 4
static_assert(kScoreThreads == (kScoreRows / 2) * 16 && kScoreCols == 4 * 16, "the thread grid covers the tile");

// The combination of two partial softmax denominators (m, l): l = sum exp(s - m) over a set of scores. An empty set
// has m = -inf and contributes nothing (never exp(-inf - -inf)).
template <typename A>
__device__ inline void merge_softmax(A& m, A& l, A om, A ol) {
  const A nm = om > m ? om : m;
  const A a = m == A(-INFINITY) ? A(0) : l * dev_exp(m - nm);
  const A b = om == A(-INFINITY) ? A(0) : ol * dev_exp(om - nm);
  m = nm;
  l = a + b;
}

// f, g: (B, Ck, N); bt: (B, N, N). Block (x, b): rows j in [x * 32, x * 32 + 32) of image b, every column i.
// Pass 0 computes each row's max and denominator online over the column chunks; pass 1 recomputes the same scores
// (same order of operations, so bit-identical) and writes exp(s - max) / denominator.
template <typename T>
__global__ void __launch_bounds__(kScoreThreads)
    scores_softmax_kernel(const T* __restrict__ f, const T* __restrict__ g, T* __restrict__ bt, int Ck, int N) {
  using A = acc_t<T>;
  __shared__ A gs[kScoreK][kScoreRows];
  __shared__ A fs[kScoreK][kScoreCols];
  const int64_t b = blockIdx.y;
  const int j0 = int(blockIdx.x) * kScoreRows;
  const int tx = int(threadIdx.x) % 16, ty = int(threadIdx.x) / 16;
  const T* fb = f + b * Ck * N;
  const T* gb = g + b * Ck * N;
  T* btb = bt + b * N * N;
  A row_max[2] = {A(-INFINITY), A(-INFINITY)}, row_sum[2] = {A(0), A(0)}, row_inv[2] = {A(0), A(0)};
  for (int pass = 0; pass < 2; ++pass) {
    for (int i0 = 0; i0 < N; i0 += kScoreCols) {
      A s[2][4];
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int q = 0; q < 4; ++q) s[r][q] = A(0);
      for (int c0 = 0; c0 < Ck; c0 += kScoreK) {
        for (int e = int(threadIdx.x); e < kScoreK * kScoreRows; e += int(blockDim.x)) {
          const int cc = e / kScoreRows, jj = e % kScoreRows, c = c0 + cc, j = j0 + jj;
          gs[cc][jj] = c < Ck && j < N ? load(gb + int64_t(c) * N + j) : A(0);
        }
        for (int e = int(threadIdx.x); e < kScoreK * kScoreCols; e += int(blockDim.x)) {
          const int cc = e / kScoreCols, ii = e % kScoreCols, c = c0 + cc, i = i0 + ii;
          fs[cc][ii] = c < Ck && i < N ? load(fb + int64_t(c) * N + i) : A(0);
        }
        __syncthreads();
#pragma unroll
        for (int cc = 0; cc < kScoreK; ++cc) {
          const A g0 = gs[cc][2 * ty], g1 = gs[cc][2 * ty + 1];
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const A fv = fs[cc][tx + 16 * q];
            s[0][q] += g0 * fv;
            s[1][q] += g1 * fv;
          }
        }
        __syncthreads();  // every thread is done with this stage before the next one overwrites it
      }
      if (pass == 0) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          A cmax = A(-INFINITY);
#pragma unroll
          for (int q = 0; q < 4; ++q)
            if (i0 + tx + 16 * q < N && s[r][q] > cmax) cmax = s[r][q];
          A csum = A(0);
#pragma unroll
          for (int q = 0; q < 4; ++q)
            if (i0 + tx + 16 * q < N && cmax != A(-INFINITY)) csum += dev_exp(s[r][q] - cmax);
          merge_softmax(row_max[r], row_sum[r], cmax, csum);
        }
      } else {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int j = j0 + 2 * ty + r;
          if (j >= N) continue;
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const int i = i0 + tx + 16 * q;
            if (i < N) store(btb + int64_t(j) * N + i, dev_exp(s[r][q] - row_max[r]) * row_inv[r]);
          }
        }
      }
    }
    if (pass == 0) {
      // The 16 threads of a row are 16 consecutive lanes of one warp: a butterfly over them leaves every one of them
      // with the row's (max, denominator), the same bits in each (the merge is symmetric).
#pragma unroll
      for (int offset = 8; offset > 0; offset /= 2) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const A om = __shfl_xor_sync(0xffffffffu, row_max[r], offset);
          const A ol = __shfl_xor_sync(0xffffffffu, row_sum[r], offset);
          merge_softmax(row_max[r], row_sum[r], om, ol);
        }
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) row_inv[r] = A(1) / row_sum[r];
    }
  }
}

// One warp per row (the loop bound is uniform over the warp, so the shuffles see every lane).
template <typename T>
__global__ void softmax_backward_kernel(const T* __restrict__ bt, const Wide<T>* __restrict__ d,
                                        const T* __restrict__ gamma, T* __restrict__ ds, int64_t rows, int64_t N) {
  using A = acc_t<T>;
  const int lane = int(threadIdx.x) % 32;
  const int64_t warps = blockDim.x / 32;
  const A gam = load(gamma);
  for (int64_t row = int64_t(blockIdx.x) * warps + threadIdx.x / 32; row < rows; row += int64_t(gridDim.x) * warps) {
    const int64_t base = row * N;
    A dot = 0;
    for (int64_t i = lane; i < N; i += 32) dot += load(bt + base + i) * A(d[base + i]);
    for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    for (int64_t i = lane; i < N; i += 32) store(ds + base + i, gam * load(bt + base + i) * (A(d[base + i]) - dot));
  }
}

// h, q: (B, C, N) = total elements. dh = gamma q into dy_all; partial[block] = the block's sum of h q.
template <typename T>
__global__ void gamma_and_dh_kernel(const T* __restrict__ h, const Wide<T>* __restrict__ q, const T* __restrict__ gamma,
                                    int64_t total, int64_t CN, T* __restrict__ dy_all, int64_t image_stride,
                                    int64_t offset, double* __restrict__ partial) {
  using A = acc_t<T>;
  __shared__ double shared[32];
  const A gam = load(gamma);
  double acc = 0.0;
  FG_CUDA_KERNEL_LOOP(e, total) {
    const A qv = A(q[e]);
    acc += double(load(h + e)) * double(qv);
    const int64_t b = e / CN;
    store(dy_all + b * image_stride + offset + (e - b * CN), gam * qv);
  }
  acc = block_sum_double(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// One block: out[0] = sum of partial[0 .. count), in T.
template <typename T>
__global__ void sum_partials_kernel(const double* __restrict__ partial, int64_t count, T* __restrict__ out) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum_double(acc, shared);
  if (threadIdx.x == 0) out[0] = ::fg::cuda::from_f64<T>(acc);
}

// per_image: (B, Mo, C). One thread per (o, c).
template <typename T>
__global__ void weight_grads_kernel(const Wide<T>* __restrict__ per_image, int64_t B, int64_t Ck, int64_t C,
                                    T* __restrict__ dwq, T* __restrict__ dwk, T* __restrict__ dwv) {
  const int64_t Mo = 2 * Ck + C, plane = Mo * C;
  FG_CUDA_KERNEL_LOOP(e, plane) {
    double acc = 0.0;
    for (int64_t b = 0; b < B; ++b) acc += double(per_image[b * plane + e]);
    const int64_t o = e / C, c = e - o * C;
    T* out = o < Ck ? dwq + o * C : (o < 2 * Ck ? dwk + (o - Ck) * C : dwv + (o - 2 * Ck) * C);
    out[c] = ::fg::cuda::from_f64<T>(acc);
  }
}

constexpr int kGammaBlocks = 1024;  // partial sums of dgamma; the grid-stride loop covers any size

}  // namespace

template <typename T>
void scores_softmax(const T* f, const T* g, T* bt, int64_t B, int64_t Ck, int64_t N, cudaStream_t stream) {
  if (B == 0 || N == 0) return;
  const dim3 grid(unsigned((N + kScoreRows - 1) / kScoreRows), unsigned(B));
  scores_softmax_kernel<T><<<grid, kScoreThreads, 0, stream>>>(f, g, bt, int(Ck), int(N));
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void softmax_backward(const T* bt, const Wide<T>* d, const T* gamma, T* ds, int64_t rows, int64_t N,
                      cudaStream_t stream) {
  if (rows == 0 || N == 0) return;
  const int64_t warps = kThreads / 32;
  const int64_t blocks = std::min<int64_t>((rows + warps - 1) / warps, int64_t(1) << 20);
  softmax_backward_kernel<T><<<unsigned(blocks), kThreads, 0, stream>>>(bt, d, gamma, ds, rows, N);
  CUDA_CHECK_LAUNCH();
}

int64_t gamma_workspace_doubles(int64_t total) {
  return std::max<int64_t>(1, std::min<int64_t>(kGammaBlocks, (total + kThreads - 1) / kThreads));
}

template <typename T>
void gamma_and_dh(const T* h, const Wide<T>* q, const T* gamma, int64_t B, int64_t C, int64_t N, T* dy_all,
                  int64_t rows_all, int64_t row_offset, T* dgamma, double* workspace, cudaStream_t stream) {
  const int64_t total = B * C * N;
  const int64_t blocks = gamma_workspace_doubles(total);
  if (total > 0) {
    gamma_and_dh_kernel<T><<<unsigned(blocks), kThreads, 0, stream>>>(h, q, gamma, total, C * N, dy_all, rows_all * N,
                                                                      row_offset * N, workspace);
    CUDA_CHECK_LAUNCH();
  }
  sum_partials_kernel<T><<<1, kThreads, 0, stream>>>(workspace, total > 0 ? blocks : 0, dgamma);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void weight_grads(const Wide<T>* per_image, int64_t B, int64_t Ck, int64_t C, T* dwq, T* dwk, T* dwv,
                  cudaStream_t stream) {
  const int64_t plane = (2 * Ck + C) * C;
  if (plane == 0) return;
  weight_grads_kernel<T><<<grid_for(plane, kThreads), kThreads, 0, stream>>>(per_image, B, Ck, C, dwq, dwk, dwv);
  CUDA_CHECK_LAUNCH();
}

#define FG_ATTENTION_STEPS_INSTANTIATE(T)                                                                            \
  template void scores_softmax<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, cudaStream_t);                  \
  template void softmax_backward<T>(const T*, const Wide<T>*, const T*, T*, int64_t, int64_t, cudaStream_t);         \
  template void gamma_and_dh<T>(const T*, const Wide<T>*, const T*, int64_t, int64_t, int64_t, T*, int64_t, int64_t, \
                                T*, double*, cudaStream_t);                                                          \
  template void weight_grads<T>(const Wide<T>*, int64_t, int64_t, int64_t, T*, T*, T*, cudaStream_t);

FG_ATTENTION_STEPS_INSTANTIATE(float)
FG_ATTENTION_STEPS_INSTANTIATE(double)
FG_ATTENTION_STEPS_INSTANTIATE(half_t)
FG_ATTENTION_STEPS_INSTANTIATE(bf16_t)

#undef FG_ATTENTION_STEPS_INSTANTIATE

}  // namespace fg::kernels::cuda::attention_steps
