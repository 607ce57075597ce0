// The plain-C++ half of the hand-written CUDA GEMM-shaped kernels (conv2d in all three directions, matmul, Gram):
// everything that decides *which* element a kernel reads or writes, written once as __host__ __device__ code so
// that the CPU test tests/ops/test_cuda_indexing.cpp runs exactly this arithmetic on the host, against the CPU
// reference, on machines without a GPU. The tiled kernels themselves are in kernels/cuda/gemm_core.cuh.
//
// The model every kernel shares: C[b][m][n] = sum_k A[b][m][k] * B[b][k][n] for b < batch, where A and B are
// "operands" (anything that can hand out 16-byte vectors of elements, zero outside the matrix: a strided matrix,
// the implicit im2col of a convolution input, ...) and the result goes through an "epilogue" (scaling, bias, the
// NCHW layout of a convolution output, Gram symmetry) instead of a plain store.
//
// An operand is a struct with
//   using T = element type (float, double, half_t, bf16_t); static constexpr int kVec = 16 / sizeof(T);
//   static constexpr OperandLayout kLayout;  // which index a vector runs along
//   struct MnState; struct KState;           // precomputed halves of an element address
//   MnState mn_state(int batch, int mn) const;  // K_CONTIG: any mn; MN_CONTIG: mn a multiple of kVec
//   KState k_state(int k) const;                // K_CONTIG: k a multiple of kVec; MN_CONTIG: any k
//   Vec16 load(const MnState&, const KState&) const;  // kVec elements, zeros outside the matrix
// For A the "mn" index is m; for B it is n. Splitting the address into an mn half and a k half lets a kernel
// compute the half that stays fixed across its K loop once (a thread's row, or its output pixel) and only the other
// half per tile.
//
// An epilogue is a struct with
//   struct Col;  Col col(int batch, int n) const;     // the column's half of the output address
//   bool keep(int m, int n) const;                    // false: this element is not written (Gram's lower half)
//   template <typename Acc> void store(int m, const Col&, Acc v) const;  // v: the f32 (f64) sum for (b, m, n)
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "tensor/dtype.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define FG_HD __host__ __device__ __forceinline__
#else
#define FG_HD inline
#endif

namespace fg::cuda {

// ---- 16-byte vectors: every operand load moves one (4 f32, 8 f16/bf16, 2 f64) ----

struct alignas(16) Vec16 {
  uint32_t w[4];
};

FG_HD Vec16 zero_vec() {
  Vec16 v;
  v.w[0] = v.w[1] = v.w[2] = v.w[3] = 0u;  // all-zero bits are +0.0 in every float type
  return v;
}

// p must be 16-byte aligned (one 128-bit load on the GPU).
FG_HD Vec16 load_vec(const void* p) {
#if defined(__CUDA_ARCH__)
  return *static_cast<const Vec16*>(p);
#else
  Vec16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
#endif
}

template <typename T>
FG_HD T vec_get(const Vec16& v, int i) {
  T t;
  memcpy(&t, reinterpret_cast<const char*>(&v) + i * int(sizeof(T)), sizeof(T));
  return t;
}
template <typename T>
FG_HD void vec_set(Vec16& v, int i, T t) {
  memcpy(reinterpret_cast<char*>(&v) + i * int(sizeof(T)), &t, sizeof(T));
}

// ---- element conversions: loads become f32 (f64 for f64), results are rounded once on store ----

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};
template <typename T>
using acc_t = typename Acc<T>::type;

FG_HD float to_acc(float v) {
  return v;
}
FG_HD double to_acc(double v) {
  return v;
}
FG_HD float to_acc(half_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h.bits));
#else
  return half_to_float(h);
#endif
}
FG_HD float to_acc(bf16_t h) {
#if defined(__CUDA_ARCH__)
  return __bfloat162float(__ushort_as_bfloat16(h.bits));
#else
  return bf16_to_float(h);
#endif
}

template <typename T>
struct FromAcc {
  template <typename A>
  static FG_HD T convert(A v) {
    return T(v);
  }
};
template <>
struct FromAcc<half_t> {
  static FG_HD half_t convert(float v) {
    half_t h;
#if defined(__CUDA_ARCH__)
    h.bits = __half_as_ushort(__float2half_rn(v));
#else
    h = float_to_half(v);
#endif
    return h;
  }
};
template <>
struct FromAcc<bf16_t> {
  static FG_HD bf16_t convert(float v) {
    bf16_t h;
#if defined(__CUDA_ARCH__)
    h.bits = __bfloat16_as_ushort(__float2bfloat16_rn(v));
#else
    h = float_to_bf16(v);
#endif
    return h;
  }
};
template <typename T, typename A>
FG_HD T from_acc(A v) {
  return FromAcc<T>::convert(v);
}

// ---- integer division by a divisor fixed at launch: one multiply and one shift instead of ~20 instructions ----
// For 1 <= d < 2^31 and 0 <= n < 2^31: with p = 31 + ceil(log2 d) and m = ceil(2^p / d) (which fits in 32 bits),
// floor(n / d) = floor(n * m / 2^p). Proof sketch: m d = 2^p + e with 0 <= e < d, so n m / 2^p = n/d + n e/(d 2^p),
// and n e < 2^31 * 2^ceil(log2 d) = 2^p makes the second term smaller than 1/d, too little to reach the next
// integer. tests/ops/test_cuda_indexing.cpp checks it against '/' over many divisors and numerators.
struct FastDivmod {
  uint32_t divisor = 1;
  uint32_t multiplier = 1u << 31;
  uint32_t shift = 31;

  FastDivmod() = default;
  explicit FastDivmod(int64_t d) {
    // Callers validate sizes first (the host checks every extent against INT32_MAX); this is a programmer error.
    if (d < 1 || d > INT32_MAX) d = 1;
    uint32_t log2_ceil = 0;
    while ((uint64_t(1) << log2_ceil) < uint64_t(d)) ++log2_ceil;
    shift = 31 + log2_ceil;
    multiplier = uint32_t(((uint64_t(1) << shift) + uint64_t(d) - 1) / uint64_t(d));
    divisor = uint32_t(d);
  }
  FG_HD int div(int n) const { return int((uint64_t(uint32_t(n)) * multiplier) >> shift); }
  FG_HD void divmod(int n, int& q, int& r) const {
    q = div(n);
    r = n - q * int(divisor);
  }
};

// ---- operands, problems, and the element a naive kernel reads ----

enum class OperandLayout {
  K_CONTIG,   // a vector holds kVec consecutive k of one mn (row-major A, or B stored as (N, K))
  MN_CONTIG,  // a vector holds kVec consecutive mn of one k (A stored as (K, M), or row-major B)
};

// One GEMM-shaped launch: the operands, the epilogue, and how the K range is split over blockIdx.z.
template <class A, class B, class E>
struct GemmProblem {
  using AOp = A;
  using BOp = B;
  using Epi = E;
  A a;
  B b;
  E epi;
  int M = 0, N = 0, K = 0;
  int batch = 1;               // blockIdx.z = batch index * splits + split index
  int splits = 1;              // split-K: each split sums k in [split * k_per_split, (split + 1) * k_per_split)
  int k_per_split = 0;         // a multiple of kSplitAlign, so no K tile of any kernel straddles two splits
  float* workspace = nullptr;  // splits > 1: partial sums, (batch * splits, M, N) f32, then reduced in order
  bool symmetric = false;      // C is symmetric and only m <= n is wanted: skip tiles strictly below the diagonal
};

// Element (mn, k) of an operand, through its vector loads. The naive kernel and the host check use it; the tiled
// kernels load whole vectors.
template <class Op>
FG_HD acc_t<typename Op::T> operand_element(const Op& op, int batch, int mn, int k) {
  using T = typename Op::T;
  constexpr int V = Op::kVec;
  if constexpr (Op::kLayout == OperandLayout::K_CONTIG) {
    const int k0 = k - k % V;
    const Vec16 v = op.load(op.mn_state(batch, mn), op.k_state(k0));
    return to_acc(vec_get<T>(v, k - k0));
  } else {
    const int mn0 = mn - mn % V;
    const Vec16 v = op.load(op.mn_state(batch, mn0), op.k_state(k));
    return to_acc(vec_get<T>(v, mn - mn0));
  }
}

// ---- launch planning: tile size and split-K ----

// Every tile kernel's K step (8, 16 or 32) divides this, so split boundaries fall on tile boundaries.
constexpr int kSplitAlign = 32;
// A split sums at least this many k: fewer and the partial sums cost more traffic than the split saves.
constexpr int kMinKPerSplit = 256;
constexpr int kMaxSplits = 32;
// Split-K partial sums never take more than this (bytes); the split count shrinks to fit.
constexpr int64_t kMaxWorkspaceBytes = int64_t(256) << 20;

enum class GemmTile {
  AUTO,   // BIG when it gives every SM a block, SMALL otherwise
  BIG,    // 128x128 output tiles
  SMALL,  // 64x64 output tiles
};

// Overrides for tests and benchmarks; production passes the defaults.
struct GemmTuning {
  GemmTile tile = GemmTile::AUTO;
  int split_k = 0;  // 0: automatic; n >= 1: exactly n splits (fewer if K is too short to give each one a tile)
};

struct GemmPlan {
  bool big = true;
  int splits = 1;
  int k_per_split = 0;
};

inline int64_t ceil_div64(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Chooses the tile size and the K split of a (batch, M, N, K) product on a GPU with sm_count SMs.
inline GemmPlan plan_gemm(int64_t M, int64_t N, int64_t K, int64_t batch, int sm_count, const GemmTuning& tuning,
                          int big_tile = 128, int small_tile = 64) {
  GemmPlan plan;
  const auto blocks = [&](int tile) { return ceil_div64(M, tile) * ceil_div64(N, tile) * batch; };
  const int64_t sms = sm_count > 0 ? sm_count : 1;
  plan.big = tuning.tile == GemmTile::BIG || (tuning.tile == GemmTile::AUTO && blocks(big_tile) >= sms);
  const int64_t tiles = blocks(plan.big ? big_tile : small_tile);
  int64_t splits = 1;
  if (tuning.split_k > 0) {
    splits = tuning.split_k;
  } else if (tiles < 2 * sms) {
    // Too few output tiles to fill the GPU twice over: cut K so that about 2 blocks per SM run.
    splits = ceil_div64(2 * sms, tiles);
    splits = std::min<int64_t>(splits, std::max<int64_t>(1, K / kMinKPerSplit));
    splits = std::min<int64_t>(splits, kMaxSplits);
  }
  const int64_t bytes_per_split = 4 * M * N * batch;
  while (splits > 1 && splits * bytes_per_split > kMaxWorkspaceBytes) --splits;
  while (splits > 1 && splits * batch > 65535) --splits;  // gridDim.z
  const int64_t per_split = ceil_div64(ceil_div64(std::max<int64_t>(K, 1), splits), kSplitAlign) * kSplitAlign;
  plan.k_per_split = int(std::min<int64_t>(per_split, INT32_MAX / 2));
  plan.splits = int(std::max<int64_t>(1, ceil_div64(K, plan.k_per_split)));  // no empty split
  return plan;
}

}  // namespace fg::cuda
