// The CPU's f32 FMA peak, measured rather than looked up: the ceiling every CPU benchmark (bench/ and `filmgrad
// bench`) reports its percent of peak against. Shared by both, so it has no Google Benchmark dependency.
//
// How the peak is derived: fma_chains() runs kFmaChains independent accumulators, each a vector register updated
// by acc = acc * m + c (one fused multiply-add = 2 flops per lane), for a given number of rounds. The chains do not
// depend on each other, so the core can keep every FMA pipe busy: a chain's next FMA waits only for its own
// previous one, and kFmaChains (16) exceeds latency x pipes on current x86 cores (4 cycles x 2 pipes = 8 in
// flight). The accumulators never leave the registers (no loads or stores in the loop), m and c keep them near 1
// (no overflow, no denormals), and their sum is returned so the compiler cannot drop the work. The rate is
//   flops / s = rounds * kFmaChains * kFmaLanes * 2 / elapsed seconds,
// the best of a few timed runs of about 0.1 s each. Instruction set by compile-time flags (-march=native is on):
// AVX-512 (16 f32 lanes) when __AVX512F__, else AVX2+FMA (8 lanes), else scalar std::fma. On cores that execute
// 512-bit FMAs as two 256-bit halves (AMD Zen 4) the AVX-512 and AVX2 peaks are the same, and the GEMMs reach it
// either way. measure_fma_peak(threads) runs the same chains on `threads` OpenMP threads at once and divides the
// total flops by the wall time, so the all-core peak includes any clock drop under full load.
#pragma once
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace fg::bench {

constexpr int kFmaChains = 16;
#if defined(__AVX512F__)
constexpr int kFmaLanes = 16;
constexpr const char* kFmaIsa = "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kFmaLanes = 8;
constexpr const char* kFmaIsa = "avx2";
#else
constexpr int kFmaLanes = 1;
constexpr const char* kFmaIsa = "scalar";
#endif

// Flops of one round of fma_chains.
constexpr double kFlopsPerRound = 2.0 * kFmaChains * kFmaLanes;

// Runs `rounds` rounds of kFmaChains independent FMA chains held in registers; returns their sum.
__attribute__((noinline)) inline float fma_chains(long rounds) {
#if defined(__AVX512F__)
  __m512 acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm512_set1_ps(1.0f + 0.001f * float(i));
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  for (long r = 0; r < rounds; ++r) {
#pragma GCC unroll 16
    for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kFmaChains; ++i) s = _mm512_add_ps(s, acc[i]);
  // Stored and summed by hand: GCC 12 warns (falsely) inside _mm512_reduce_add_ps.
  float lanes[16];
  _mm512_storeu_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
#elif defined(__AVX2__) && defined(__FMA__)
  __m256 acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm256_set1_ps(1.0f + 0.001f * float(i));
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (long r = 0; r < rounds; ++r) {
#pragma GCC unroll 16
    for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  }
  float lanes[8];
  __m256 s = acc[0];
  for (int i = 1; i < kFmaChains; ++i) s = _mm256_add_ps(s, acc[i]);
  _mm256_storeu_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
#else
  float acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = 1.0f + 0.001f * float(i);
  for (long r = 0; r < rounds; ++r) {
#pragma GCC unroll 16
    for (int i = 0; i < kFmaChains; ++i) acc[i] = std::fma(acc[i], 0.9999999f, 1e-7f);
  }
  float total = 0;
  for (float v : acc) total += v;
  return total;
#endif
}

// Runs fma_chains(rounds) on `threads` threads at once; returns the wall time in seconds.
inline double time_fma_chains(int threads, long rounds) {
  float sink = 0;
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  sink += fma_chains(rounds);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Published through a volatile store so the compiler cannot drop the chains.
  volatile float keep = sink;
  (void)keep;
  return seconds;
}

// The f32 FMA peak, in flop/s, of `threads` threads running together: best of 5 runs of about 0.1 s.
inline double measure_fma_peak(int threads) {
  long rounds = 1 << 20;
  double seconds = time_fma_chains(threads, rounds);  // also wakes the threads and the clocks
  rounds = std::max(1L, long(double(rounds) * 0.1 / std::max(seconds, 1e-6)));
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    seconds = time_fma_chains(threads, rounds);
    best = std::max(best, double(rounds) * kFlopsPerRound * threads / seconds);
  }
  return best;
}

}  // namespace fg::bench
