// The AVX2+FMA micro-kernels of the CPU GEMM (kernels/cpu/gemm.h): 6x16 f32 and 6x8 f64 tiles, 12 ymm
// accumulators, 2 loads of B and 6 broadcasts of A per k. Twelve independent FMA chains cover the 4-5 cycle FMA
// latency of two FMA pipes (Haswell and later, AMD Zen). Compiled for AVX2+FMA by the target pragma below, whatever
// the build's -march, and run only when cpuid says the CPU has both.
#include <algorithm>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#include "kernels/cpu/gemm_kernels.h"

namespace fg::cpu::gemm_detail {
namespace {

struct Avx2F32 {
  using T = float;
  using reg = __m256;
  static constexpr int width = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg r) { _mm256_storeu_ps(p, r); }
  static reg broadcast(float x) { return _mm256_set1_ps(x); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
};

struct Avx2F64 {
  using T = double;
  using reg = __m256d;
  static constexpr int width = 4;
  static reg zero() { return _mm256_setzero_pd(); }
  static reg load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, reg r) { _mm256_storeu_pd(p, r); }
  static reg broadcast(double x) { return _mm256_set1_pd(x); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
};

void avx2_f32_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool load_c) {
  micro_kernel<Avx2F32, 6, 2>(kc, a, b, c, ldc, load_c);
}
void avx2_f64_6x8(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, bool load_c) {
  micro_kernel<Avx2F64, 6, 2>(kc, a, b, c, ldc, load_c);
}

}  // namespace

// 8 x 8 blocks: rows r0..r0+7 of src (zero vectors past `rows`) at columns k0..k0+7 are loaded, transposed in
// registers and stored as 8 runs of 8 at dst + k * stride + r0. When stride is not a multiple of 8 a run spills
// into the next k's first elements; storing every group of one k before the next k rewrites them in time.
void avx2_pack_transposed_f32(const float* src, int64_t ld, int rows, int64_t kc, float alpha, bool scale, float* dst,
                              int stride) {
  const int groups = (stride + 7) / 8;  // <= 4 (stride <= 32)
  const __m256 va = _mm256_set1_ps(alpha);
  const int64_t kc8 = kc / 8 * 8;
  for (int64_t k0 = 0; k0 < kc8; k0 += 8) {
    __m256 out[4][8];
    for (int g = 0; g < groups; ++g) {
      __m256 v[8];
      for (int r = 0; r < 8; ++r) {
        const int row = g * 8 + r;
        v[r] = row < rows ? _mm256_loadu_ps(src + row * ld + k0) : _mm256_setzero_ps();
      }
      const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
      const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
      const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
      const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      out[g][0] = _mm256_permute2f128_ps(u0, u4, 0x20);
      out[g][1] = _mm256_permute2f128_ps(u1, u5, 0x20);
      out[g][2] = _mm256_permute2f128_ps(u2, u6, 0x20);
      out[g][3] = _mm256_permute2f128_ps(u3, u7, 0x20);
      out[g][4] = _mm256_permute2f128_ps(u0, u4, 0x31);
      out[g][5] = _mm256_permute2f128_ps(u1, u5, 0x31);
      out[g][6] = _mm256_permute2f128_ps(u2, u6, 0x31);
      out[g][7] = _mm256_permute2f128_ps(u3, u7, 0x31);
      if (scale)
        for (int k = 0; k < 8; ++k) out[g][k] = _mm256_mul_ps(va, out[g][k]);
    }
    for (int k = 0; k < 8; ++k)
      for (int g = 0; g < groups; ++g) _mm256_storeu_ps(dst + (k0 + k) * stride + g * 8, out[g][k]);
  }
  for (int64_t k = kc8; k < kc; ++k) {
    float* d = dst + k * stride;
    for (int r = 0; r < rows; ++r) d[r] = scale ? alpha * src[r * ld + k] : src[r * ld + k];
    for (int r = rows; r < stride; ++r) d[r] = 0.0f;
  }
}

// Runs of 8: a full load where the run lies inside the row, a masked load (which never touches the lanes it
// leaves out) at its end, zeros past it; stored at dst + k * stride + g * 8, spilling into the next k as above.
void avx2_pack_rows_f32(const float* src, int64_t ld, int rows, int64_t kc, float alpha, bool scale, float* dst,
                        int stride) {
  const int groups = (stride + 7) / 8;  // <= 4 (stride <= 32)
  const __m256 va = _mm256_set1_ps(alpha);
  __m256i mask[4];
  for (int g = 0; g < groups; ++g) {
    const int valid = std::clamp(rows - g * 8, 0, 8);
    mask[g] = _mm256_setr_epi32(valid > 0 ? -1 : 0, valid > 1 ? -1 : 0, valid > 2 ? -1 : 0, valid > 3 ? -1 : 0,
                                valid > 4 ? -1 : 0, valid > 5 ? -1 : 0, valid > 6 ? -1 : 0, valid > 7 ? -1 : 0);
  }
  for (int64_t k = 0; k < kc; ++k) {
    const float* s = src + k * ld;
    float* d = dst + k * stride;
    for (int g = 0; g < groups; ++g) {
      __m256 v = g * 8 + 8 <= rows ? _mm256_loadu_ps(s + g * 8) : _mm256_maskload_ps(s + g * 8, mask[g]);
      if (scale) v = _mm256_mul_ps(va, v);
      _mm256_storeu_ps(d + g * 8, v);
    }
  }
}

}  // namespace fg::cpu::gemm_detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace fg::cpu::gemm_detail {

// Blocks: a 384 x 16 f32 panel of B (24 KiB) fits the 32 KiB L1 of Haswell and later; 144 x 384 of A (216 KiB)
// sits in L2. kc = 384 beat 256 and 512 by 5-15 % on the conv shapes of bench/bench_gemm.cpp (AMD EPYC Zen 3,
// 2026-12-07; docs/cpu_kernels.md).
const IsaKernels& avx2_kernels() {
  static const IsaKernels kernels = {
      {6, 16, 144, 384, 4080, avx2_f32_6x16, "6x16", avx2_pack_transposed_f32, avx2_pack_rows_f32},
      {6, 8, 96, 256, 2040, avx2_f64_6x8, "6x8"},
  };
  return kernels;
}

}  // namespace fg::cpu::gemm_detail

#else  // not x86: no AVX2 kernels

#include "kernels/cpu/gemm_kernels.h"

namespace fg::cpu::gemm_detail {
const IsaKernels& avx2_kernels() {
  static const IsaKernels none{};
  return none;
}
}  // namespace fg::cpu::gemm_detail

#endif
