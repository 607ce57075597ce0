// The tiled GEMM kernels behind conv2d (all directions), matmul and the Gram matrix, written once over the operand
// and epilogue contract of kernels/cuda/gemm_common.h. Include from .cu files only.
//
// Three engines:
//   NAIVE: one thread per output element, reading elements through the operands (operand_element); any dtype,
//          f64 included. The GPU-side reference and the f64 path.
//   SIMT:  f32 on the FP32 pipes. Output tiles of 128x128 (BIG, 8x8 per thread) or 64x64 (SMALL, 4x4 per thread),
//          256 threads, K steps of 8 / 16, both operands staged in shared memory as [k][m] / [k][n].
//   WMMA:  f16/bf16 on the tensor cores through nvcuda::wmma (16x16x16 fragments, f32 accumulators). Output tiles of
//          128x128 (BIG, 8 warps of 64x32) or 64x64 (SMALL, 4 warps of 32x32), K steps of 32. An operand read along
//          k is staged as [mn][k] (row-major A / col-major B fragments), one read along mn as [k][mn].
// Both tiled engines double-buffer shared memory: the next K tile's global loads are issued into registers before
// the current tile is multiplied, and stored to the other buffer after it, so one __syncthreads per K tile
// separates every write of a buffer from the reads of the same buffer (see the loop below for the argument).
// Every global load goes through the operand, which returns zeros outside the matrix, and every store checks
// m < M and n < N, so no tile size has to divide any extent.
//
// Split-K: blockIdx.z = batch * splits + split. With splits > 1 each block writes its partial tile to a workspace
// (batch * splits, M, N) and splitk_reduce_kernel sums the splits in a fixed order (deterministic) before the
// epilogue. Symmetric problems (the Gram matrix) skip tiles strictly below the diagonal.
#pragma once
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <type_traits>

#include "kernels/cuda/gemm_common.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/tensor.h"

namespace fg::cuda {

// ---- tile configurations ----

template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct SimtTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_;
  static constexpr int TM = TM_, TN = TN_;  // outputs per thread, in groups of 4 rows / columns
  static constexpr int kThreadsN = BN / TN, kThreadsM = BM / TM, kThreads = kThreadsM * kThreadsN;
  static constexpr int kLdA = BM + 4, kLdB = BN + 4;  // [k][mn] rows; +4 keeps float4 alignment, spreads banks
  // A thread's 4-row groups are BM / (TM / 4) apart: neighbouring threads then read neighbouring float4s.
  static constexpr int kGroupStrideM = BM / (TM / 4), kGroupStrideN = BN / (TN / 4);
  static_assert(TM % 4 == 0 && TN % 4 == 0, "threads hold whole float4 groups");
  static_assert(kGroupStrideM == 4 * kThreadsM && kGroupStrideN == 4 * kThreadsN, "groups tile the block");
};
using SimtBig = SimtTile<128, 128, 8, 8, 8>;
using SimtSmall = SimtTile<64, 64, 16, 4, 4>;

template <int BM_, int BN_, int BK_, int WM_, int WN_>
struct WmmaTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_;
  static constexpr int WM = WM_, WN = WN_;  // one warp's part of the output tile
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN, kWarps = kWarpsM * kWarpsN;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int FM = WM / 16, FN = WN / 16;  // 16x16 accumulator fragments per warp
  static_assert(BK % 16 == 0 && WM % 16 == 0 && WN % 16 == 0, "whole 16x16x16 fragments");
};
using WmmaBig = WmmaTile<128, 128, 32, 64, 32>;
using WmmaSmall = WmmaTile<64, 64, 32, 32, 32>;

static_assert(kSplitAlign % SimtBig::BK == 0 && kSplitAlign % SimtSmall::BK == 0 && kSplitAlign % WmmaBig::BK == 0 &&
                  kSplitAlign % WmmaSmall::BK == 0,
              "split boundaries fall on K-tile boundaries");

// ---- one thread's share of loading an operand tile (BMN x BK) ----
// The tile is cut into "lines" along the operand's contiguous index (a line per mn when read along k, a line per
// k when read along mn) and every line into 16-byte vectors. Thread t takes vector t % vectors_per_line of line
// t / vectors_per_line, then the same position kLineStep lines further, kLoads times: consecutive threads read
// consecutive vectors of a line (coalesced), and a thread's position along the line never changes, so the half of
// its address that depends on that position is computed once per kernel (mn) or once per K tile (k).
template <class Op, int BMN, int BK, int kThreads>
struct TileLoader {
  static constexpr int V = Op::kVec;
  static constexpr bool kAlongK = Op::kLayout == OperandLayout::K_CONTIG;
  static constexpr int kVecsPerLine = kAlongK ? BK / V : BMN / V;
  static constexpr int kLoads = BMN * BK / V / kThreads;
  static constexpr int kLineStep = kThreads / kVecsPerLine;
  static_assert((BMN * BK) % (V * kThreads) == 0 && kLoads >= 1, "the tile splits evenly over the threads");
  static_assert(kThreads % kVecsPerLine == 0, "a thread keeps its position along the line in every load");

  int line0 = 0;  // the thread's first line: mn (along k) or k (along mn), within the tile
  int pos = 0;    // its position along the line: k or mn within the tile, a multiple of V
  typename Op::MnState mn[kAlongK ? kLoads : 1];
  Vec16 regs[kLoads];

  __device__ __forceinline__ int tile_mn(int l) const { return kAlongK ? line0 + l * kLineStep : pos; }
  __device__ __forceinline__ int tile_k(int l) const { return kAlongK ? pos : line0 + l * kLineStep; }

  __device__ __forceinline__ void init(const Op& op, int batch, int mn0, int t) {
    line0 = t / kVecsPerLine;
    pos = (t % kVecsPerLine) * V;
    if constexpr (kAlongK) {
#pragma unroll
      for (int l = 0; l < kLoads; ++l) mn[l] = op.mn_state(batch, mn0 + tile_mn(l));
    } else {
      mn[0] = op.mn_state(batch, mn0 + pos);
    }
  }
  // Global loads of the K tile starting at k0 into registers.
  __device__ __forceinline__ void fetch(const Op& op, int k0) {
    if constexpr (kAlongK) {
      const typename Op::KState ks = op.k_state(k0 + pos);
#pragma unroll
      for (int l = 0; l < kLoads; ++l) regs[l] = op.load(mn[l], ks);
    } else {
#pragma unroll
      for (int l = 0; l < kLoads; ++l) regs[l] = op.load(mn[0], op.k_state(k0 + tile_k(l)));
    }
  }
};

// Where element (m, n) of a block's result goes: the workspace (split-K) or the epilogue.
template <class P>
__device__ __forceinline__ void emit(const P& p, int batch, int z, int m, int n, float v) {
  if (!p.epi.keep(m, n)) return;
  if (p.splits > 1)
    p.workspace[(int64_t(z) * p.M + m) * p.N + n] = v;
  else
    p.epi.store(m, p.epi.col(batch, n), v);
}

// The K range of blockIdx.z's split, and its batch index.
struct BlockK {
  int batch, z, k_begin, k_end;
};
template <class P>
__device__ __forceinline__ BlockK block_k(const P& p) {
  BlockK r;
  r.z = int(blockIdx.z);
  r.batch = r.z / p.splits;
  const int split = r.z - r.batch * p.splits;
  r.k_begin = split * p.k_per_split;
  r.k_end = min(p.K, r.k_begin + p.k_per_split);
  return r;
}

// ---- SIMT f32 ----

template <class Cfg, class L>
__device__ __forceinline__ void simt_store_tile(const L& ld, float* S, int ldS) {
#pragma unroll
  for (int l = 0; l < L::kLoads; ++l) {
    const int mn = ld.tile_mn(l), k = ld.tile_k(l);
    const Vec16& v = ld.regs[l];
    if constexpr (L::kAlongK) {  // 4 consecutive k of one mn: a column of the [k][mn] tile
#pragma unroll
      for (int e = 0; e < 4; ++e) S[(k + e) * ldS + mn] = __uint_as_float(v.w[e]);
    } else {  // 4 consecutive mn of one k: one float4
      *reinterpret_cast<float4*>(S + k * ldS + mn) = make_float4(__uint_as_float(v.w[0]), __uint_as_float(v.w[1]),
                                                                 __uint_as_float(v.w[2]), __uint_as_float(v.w[3]));
    }
  }
}

template <class Cfg, class P>
__global__ void __launch_bounds__(Cfg::kThreads) simt_gemm_kernel(const P p) {
  using AOp = typename P::AOp;
  using BOp = typename P::BOp;
  static_assert(std::is_same<typename AOp::T, float>::value && std::is_same<typename BOp::T, float>::value,
                "the SIMT engine computes f32");
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int kThreads = Cfg::kThreads;
  __shared__ __align__(16) float As[2][BK * Cfg::kLdA];
  __shared__ __align__(16) float Bs[2][BK * Cfg::kLdB];

  const int t = int(threadIdx.x);
  const int m0 = int(blockIdx.y) * BM, n0 = int(blockIdx.x) * BN;
  if (p.symmetric && m0 >= n0 + BN) return;  // every element below the diagonal: the whole block leaves together
  const BlockK bk = block_k(p);
  const int k_tiles = bk.k_end > bk.k_begin ? (bk.k_end - bk.k_begin + BK - 1) / BK : 0;

  TileLoader<AOp, BM, BK, kThreads> la;
  TileLoader<BOp, BN, BK, kThreads> lb;
  la.init(p.a, bk.batch, m0, t);
  lb.init(p.b, bk.batch, n0, t);

  const int ty = t / Cfg::kThreadsN, tx = t % Cfg::kThreadsN;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  if (k_tiles > 0) {
    la.fetch(p.a, bk.k_begin);
    lb.fetch(p.b, bk.k_begin);
    simt_store_tile<Cfg>(la, As[0], Cfg::kLdA);
    simt_store_tile<Cfg>(lb, Bs[0], Cfg::kLdB);
    __syncthreads();
    // Iteration kt reads buffer kt&1 and writes buffer (kt+1)&1. The sync ending iteration kt-1 comes after every
    // thread's reads of buffer (kt+1)&1 in iteration kt-1, so the writes here cannot overtake them; the sync ending
    // iteration kt comes after these writes, so iteration kt+1 reads complete data.
    for (int kt = 0; kt < k_tiles; ++kt) {
      const int cur = kt & 1;
      const bool more = kt + 1 < k_tiles;
      if (more) {
        la.fetch(p.a, bk.k_begin + (kt + 1) * BK);
        lb.fetch(p.b, bk.k_begin + (kt + 1) * BK);
      }
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        float a[TM], b[TN];
#pragma unroll
        for (int g = 0; g < TM / 4; ++g) {
          const float4 v = *reinterpret_cast<const float4*>(&As[cur][kk * Cfg::kLdA + g * Cfg::kGroupStrideM + ty * 4]);
          a[g * 4 + 0] = v.x;
          a[g * 4 + 1] = v.y;
          a[g * 4 + 2] = v.z;
          a[g * 4 + 3] = v.w;
        }
#pragma unroll
        for (int g = 0; g < TN / 4; ++g) {
          const float4 v = *reinterpret_cast<const float4*>(&Bs[cur][kk * Cfg::kLdB + g * Cfg::kGroupStrideN + tx * 4]);
          b[g * 4 + 0] = v.x;
          b[g * 4 + 1] = v.y;
          b[g * 4 + 2] = v.z;
          b[g * 4 + 3] = v.w;
        }
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
      if (more) {
        simt_store_tile<Cfg>(la, As[cur ^ 1], Cfg::kLdA);
        simt_store_tile<Cfg>(lb, Bs[cur ^ 1], Cfg::kLdB);
      }
      __syncthreads();
    }
  }

#pragma unroll
  for (int j = 0; j < TN; ++j) {
    const int n = n0 + (j / 4) * Cfg::kGroupStrideN + tx * 4 + (j % 4);
    if (n >= p.N) continue;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int m = m0 + (i / 4) * Cfg::kGroupStrideM + ty * 4 + (i % 4);
      if (m < p.M) emit(p, bk.batch, bk.z, m, n, acc[i][j]);
    }
  }
}

// ---- WMMA f16/bf16 ----

template <typename E>
struct WmmaElement;
template <>
struct WmmaElement<half_t> {
  using type = __half;
};
template <>
struct WmmaElement<bf16_t> {
  using type = __nv_bfloat16;
};

// One operand's tile in shared memory: [mn][k] when read along k, [k][mn] when read along mn, so a loaded vector is
// one 16-byte store. Rows are padded by 8 elements (16 bytes): wmma needs ldm % 8 == 0 and 32-byte aligned
// fragment starts (16 * ldm * 2 bytes and 16-element column offsets are multiples of 32 for every ld below), and
// the padding staggers rows across the shared-memory banks.
template <class Op, int BMN, int BK>
struct WmmaSmemLayout {
  static constexpr bool kAlongK = Op::kLayout == OperandLayout::K_CONTIG;
  static constexpr int kLd = kAlongK ? BK + 8 : BMN + 8;
  static constexpr int kElems = (kAlongK ? BMN : BK) * kLd;  // one buffer
  static_assert(kLd % 8 == 0 && (kElems * 2) % 32 == 0, "wmma alignment");
  __device__ static __forceinline__ int offset(int mn, int k) { return kAlongK ? mn * kLd + k : k * kLd + mn; }
};

template <class SL, class L, typename E>
__device__ __forceinline__ void wmma_store_tile(const L& ld, E* S) {
#pragma unroll
  for (int l = 0; l < L::kLoads; ++l)
    *reinterpret_cast<Vec16*>(S + SL::offset(ld.tile_mn(l), ld.tile_k(l))) = ld.regs[l];
}

template <class Cfg, class P>
__device__ __forceinline__ void wmma_gemm_body(const P& p) {
  namespace wmma = nvcuda::wmma;
  using AOp = typename P::AOp;
  using BOp = typename P::BOp;
  using E = typename AOp::T;
  static_assert(std::is_same<E, typename BOp::T>::value, "one element type");
  using Tw = typename WmmaElement<E>::type;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, FM = Cfg::FM, FN = Cfg::FN;
  constexpr int kThreads = Cfg::kThreads;
  using SA = WmmaSmemLayout<AOp, BM, BK>;
  using SB = WmmaSmemLayout<BOp, BN, BK>;
  using LayoutA = typename std::conditional<SA::kAlongK, wmma::row_major, wmma::col_major>::type;
  using LayoutB = typename std::conditional<SB::kAlongK, wmma::col_major, wmma::row_major>::type;
  constexpr int kTileBytes = 2 * (SA::kElems + SB::kElems) * int(sizeof(E));
  constexpr int kScratchBytes = Cfg::kWarps * 256 * int(sizeof(float));  // one 16x16 f32 tile per warp
  __shared__ __align__(128) unsigned char smem[kTileBytes > kScratchBytes ? kTileBytes : kScratchBytes];
  E* As = reinterpret_cast<E*>(smem);  // [2][SA::kElems]
  E* Bs = As + 2 * SA::kElems;         // [2][SB::kElems]

  const int t = int(threadIdx.x), warp = t / 32, lane = t % 32;
  const int wm0 = (warp % Cfg::kWarpsM) * Cfg::WM, wn0 = (warp / Cfg::kWarpsM) * Cfg::WN;
  const int m0 = int(blockIdx.y) * BM, n0 = int(blockIdx.x) * BN;
  if (p.symmetric && m0 >= n0 + BN) return;
  const BlockK bk = block_k(p);
  const int k_tiles = bk.k_end > bk.k_begin ? (bk.k_end - bk.k_begin + BK - 1) / BK : 0;

  TileLoader<AOp, BM, BK, kThreads> la;
  TileLoader<BOp, BN, BK, kThreads> lb;
  la.init(p.a, bk.batch, m0, t);
  lb.init(p.b, bk.batch, n0, t);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  if (k_tiles > 0) {
    la.fetch(p.a, bk.k_begin);
    lb.fetch(p.b, bk.k_begin);
    wmma_store_tile<SA>(la, As);
    wmma_store_tile<SB>(lb, Bs);
    __syncthreads();
    // The same double-buffering argument as in simt_gemm_kernel.
    for (int kt = 0; kt < k_tiles; ++kt) {
      const int cur = kt & 1;
      const bool more = kt + 1 < k_tiles;
      if (more) {
        la.fetch(p.a, bk.k_begin + (kt + 1) * BK);
        lb.fetch(p.b, bk.k_begin + (kt + 1) * BK);
      }
      const E* Ac = As + cur * SA::kElems;
      const E* Bc = Bs + cur * SB::kElems;
#pragma unroll
      for (int ks = 0; ks < BK; ks += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, Tw, LayoutA> fa[FM];
        wmma::fragment<wmma::matrix_b, 16, 16, 16, Tw, LayoutB> fb[FN];
#pragma unroll
        for (int i = 0; i < FM; ++i)
          wmma::load_matrix_sync(fa[i], reinterpret_cast<const Tw*>(Ac + SA::offset(wm0 + i * 16, ks)), SA::kLd);
#pragma unroll
        for (int j = 0; j < FN; ++j)
          wmma::load_matrix_sync(fb[j], reinterpret_cast<const Tw*>(Bc + SB::offset(wn0 + j * 16, ks)), SB::kLd);
#pragma unroll
        for (int i = 0; i < FM; ++i)
#pragma unroll
          for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      }
      if (more) {
        wmma_store_tile<SA>(la, As + (cur ^ 1) * SA::kElems);
        wmma_store_tile<SB>(lb, Bs + (cur ^ 1) * SB::kElems);
      }
      __syncthreads();
    }
  }

  // The loop's last __syncthreads has every warp done with the tile buffers: each warp now reuses 1 KiB of them to
  // turn its fragments (whose element-to-lane mapping is unspecified) into plain rows, then writes them out with
  // lanes along n.
  float* scratch = reinterpret_cast<float*>(smem) + warp * 256;
#pragma unroll
  for (int i = 0; i < FM; ++i) {
#pragma unroll
    for (int j = 0; j < FN; ++j) {
      wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int idx = e * 32 + lane, r = idx >> 4, c = idx & 15;
        const int m = m0 + wm0 + i * 16 + r, n = n0 + wn0 + j * 16 + c;
        if (m < p.M && n < p.N) emit(p, bk.batch, bk.z, m, n, scratch[idx]);
      }
      __syncwarp();  // every lane has read the scratch tile before the next fragment overwrites it
    }
  }
}

template <class Cfg, class P>
__global__ void __launch_bounds__(Cfg::kThreads) wmma_gemm_kernel(const P p) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  wmma_gemm_body<Cfg>(p);
#else
  __trap();  // bf16 fragments need sm_80; the launcher refuses older devices before getting here
#endif
}

// ---- naive and split-K reduction ----

template <class P>
__global__ void naive_gemm_kernel(const P p) {
  using Acc = acc_t<typename P::AOp::T>;
  const int64_t total = int64_t(p.batch) * p.M * p.N;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int n = int(idx % p.N), m = int((idx / p.N) % p.M), b = int(idx / (int64_t(p.M) * p.N));
    if (!p.epi.keep(m, n)) continue;
    Acc acc = 0;
    for (int k = 0; k < p.K; ++k) acc += operand_element(p.a, b, m, k) * operand_element(p.b, b, n, k);
    p.epi.store(m, p.epi.col(b, n), acc);
  }
}

// Sums the splits of every (b, m, n) in split order and hands the total to the epilogue.
template <class Epi>
__global__ void splitk_reduce_kernel(const float* __restrict__ workspace, int batch, int splits, int M, int N,
                                     const Epi epi) {
  const int64_t total = int64_t(batch) * M * N, plane = int64_t(M) * N;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int n = int(idx % N), m = int((idx / N) % M), b = int(idx / plane);
    if (!epi.keep(m, n)) continue;  // never written by the GEMM either
    const float* partial = workspace + int64_t(b) * splits * plane + int64_t(m) * N + n;
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum += partial[s * plane];
    epi.store(m, epi.col(b, n), sum);
  }
}

// ---- launchers ----

enum class GemmEngine { SIMT, WMMA };

inline unsigned grid_stride_blocks(int64_t total, int threads) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(ceil_div64(total, threads), int64_t(65535) * 8)));
}

template <class P>
void run_naive_gemm(const P& p, int device) {
  const int64_t total = int64_t(p.batch) * p.M * p.N;
  if (total == 0) return;
  naive_gemm_kernel<P><<<grid_stride_blocks(total, 256), 256, 0, stream(device)>>>(p);
  CUDA_CHECK_LAUNCH();
}

template <class Cfg, class Kernel, class P>
void launch_tiles(Kernel kernel, const P& p, cudaStream_t s) {
  const int64_t grid_x = ceil_div64(p.N, Cfg::BN), grid_y = ceil_div64(p.M, Cfg::BM);
  const int64_t grid_z = int64_t(p.batch) * p.splits;
  FG_CHECK(grid_y <= 65535 && grid_z <= 65535 && grid_x <= INT32_MAX,
           "CUDA GEMM: a (" << p.batch << " x " << p.M << " x " << p.N
                            << ") result needs more thread blocks than a launch allows; split the batch");
  kernel<<<dim3(unsigned(grid_x), unsigned(grid_y), unsigned(grid_z)), Cfg::kThreads, 0, s>>>(p);
  CUDA_CHECK_LAUNCH();
}

// Runs problem p (splits and workspace are filled in here) on `device`'s stream with the SIMT (f32) or WMMA
// (f16/bf16) kernels. Extents must be non-negative; K = 0 writes the epilogue of zero sums.
template <class P>
void run_tiled_gemm(P p, GemmEngine engine, const GemmTuning& tuning, int device) {
  using E = typename P::AOp::T;
  if (int64_t(p.M) * p.N * p.batch == 0) return;
  const cudaStream_t s = stream(device);
  const GemmPlan plan = plan_gemm(p.M, p.N, p.K, p.batch, properties(device).sm_count, tuning);
  p.splits = plan.splits;
  p.k_per_split = plan.k_per_split;
  Tensor workspace;  // released after the launches are queued: the caching allocator orders its reuse on s
  if (p.splits > 1) {
    workspace = Tensor::empty(Shape{int64_t(p.batch) * p.splits * p.M * p.N}, DType::F32, Device::cuda(device));
    p.workspace = workspace.data<float>();
  }
  if constexpr (std::is_same<E, float>::value) {
    FG_CHECK(engine == GemmEngine::SIMT, "CUDA GEMM: f32 runs on the SIMT kernels");
    if (plan.big)
      launch_tiles<SimtBig>(simt_gemm_kernel<SimtBig, P>, p, s);
    else
      launch_tiles<SimtSmall>(simt_gemm_kernel<SimtSmall, P>, p, s);
  } else if constexpr (std::is_same<E, half_t>::value || std::is_same<E, bf16_t>::value) {
    FG_CHECK(engine == GemmEngine::WMMA, "CUDA GEMM: f16/bf16 run on the WMMA kernels");
    FG_CHECK(properties(device).major >= 8, "CUDA GEMM: the WMMA kernels need compute capability 8.0 or newer; cuda:"
                                                << device << " is " << properties(device).major << "."
                                                << properties(device).minor);
    if (plan.big)
      launch_tiles<WmmaBig>(wmma_gemm_kernel<WmmaBig, P>, p, s);
    else
      launch_tiles<WmmaSmall>(wmma_gemm_kernel<WmmaSmall, P>, p, s);
  } else {
    static_assert(std::is_same<E, float>::value, "the tiled kernels take f32, f16 or bf16");
  }
  if (p.splits > 1) {
    const int64_t total = int64_t(p.batch) * p.M * p.N;
    splitk_reduce_kernel<typename P::Epi>
        <<<grid_stride_blocks(total, 256), 256, 0, s>>>(p.workspace, p.batch, p.splits, p.M, p.N, p.epi);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace fg::cuda
