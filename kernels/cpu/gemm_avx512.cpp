// The AVX-512F micro-kernels of the CPU GEMM (kernels/cpu/gemm.h): 14x32 f32 and 14x16 f64 tiles, 28 zmm
// accumulators, 2 loads of B and 14 broadcasts of A per k (31 of the 32 zmm registers live). 28 independent FMA
// chains cover the FMA latency of two 512-bit pipes (Intel server cores) and of Zen 4's double-pumped ones.
// Compiled for AVX-512F by the target pragma below, whatever the build's -march, and run only when cpuid says the
// CPU has it and the OS saves the zmm state.
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#endif

#include "kernels/cpu/gemm_kernels.h"

namespace fg::cpu::gemm_detail {
namespace {

struct Avx512F32 {
  using T = float;
  using reg = __m512;
  static constexpr int width = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg r) { _mm512_storeu_ps(p, r); }
  static reg broadcast(float x) { return _mm512_set1_ps(x); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
};

struct Avx512F64 {
  using T = double;
  using reg = __m512d;
  static constexpr int width = 8;
  static reg zero() { return _mm512_setzero_pd(); }
  static reg load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, reg r) { _mm512_storeu_pd(p, r); }
  static reg broadcast(double x) { return _mm512_set1_pd(x); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
};

void avx512_f32_14x32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool load_c) {
  micro_kernel<Avx512F32, 14, 2>(kc, a, b, c, ldc, load_c);
}
void avx512_f64_14x16(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, bool load_c) {
  micro_kernel<Avx512F64, 14, 2>(kc, a, b, c, ldc, load_c);
}

}  // namespace
}  // namespace fg::cpu::gemm_detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace fg::cpu::gemm_detail {

// Blocks: a 192 x 32 f32 panel of B (24 KiB) fits the 32 KiB L1 of Zen 4 and the 48 KiB of Sapphire Rapids;
// 168 x 192 of A (126 KiB) sits in L2. The packs are the AVX2 ones (every AVX-512F CPU has AVX2). The same
// numbers serve the emulated path (gemm.cpp).
const IsaKernels& avx512_kernels() {
  static const IsaKernels kernels = {
      {14, 32, 168, 192, 4096, avx512_f32_14x32, "14x32", avx2_pack_transposed_f32, avx2_pack_rows_f32},
      {14, 16, 112, 192, 2048, avx512_f64_14x16, "14x16"},
  };
  return kernels;
}

}  // namespace fg::cpu::gemm_detail

#else  // not x86: no AVX-512 kernels

#include "kernels/cpu/gemm_kernels.h"

namespace fg::cpu::gemm_detail {
const IsaKernels& avx512_kernels() {
  static const IsaKernels none{};
  return none;
}
}  // namespace fg::cpu::gemm_detail

#endif
