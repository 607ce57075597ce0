// filmgrad's own CPU GEMM (sgemm and dgemm, row-major), the production path behind fg::cpu::gemm_blas
// (kernels/matmul.h), which conv2d, matmul/bmm/linear, the Gram matrix and self-attention all call. OpenBLAS stays
// as the twin, selectable at run time, as cuDNN/cuBLAS are on the GPU (kernels/backend.h).
//
// Why: OpenBLAS picks its kernels from a table of CPU models; on a CPU the table does not know (Debian's 0.3.21 on
// Intel Sapphire Rapids) it falls back to SSE3 "Prescott" kernels, 4-5x slower. filmgrad picks its micro-kernel
// from the CPU's features (cpuid), never its model name:
//   avx512   AVX-512F:  14x32 f32 / 14x16 f64 micro-tiles (28 zmm accumulators)
//   avx2     AVX2+FMA:  6x16 f32 / 6x8 f64 (12 ymm accumulators)
//   generic  portable C++ (std::fma on lane arrays the compiler may vectorise), 6x16 f32 / 6x8 f64
// The ISA-specific kernels are compiled with target pragmas (kernels/cpu/gemm_avx2.cpp, gemm_avx512.cpp), so the
// build needs no -march flag, and a kernel runs only after cpuid (and the OS's saved register state) says the CPU
// has it.
//
// Result contract, identical in every path: each element is
//   c_ij = fma chain over k = 0, 1, ..., K-1 of (alpha * a_ik) * b_kj, started from beta * c_ij (from 0 when
//   beta == 0, when C is never read, so NaN in C is overwritten),
// with alpha * a_ik rounded once to T (exact when alpha == 1) and beta * c_ij rounded once (exact when beta == 1).
// Cache blocking, micro-tile shape, edge padding and the OpenMP split of gemm_parallel change only which element is
// computed where, never the chain, so results are bit-identical across avx512, avx2 and generic, across CPUs
// (Intel, AMD) and across thread counts. K == 0 or alpha == 0 gives C = beta * C (0 when beta == 0); A and B are
// then not read.
//
// Run-time selection, read once from the environment on first use (a bad value throws fg::Error naming it):
//   FG_CPU_GEMM     filmgrad (default) | openblas
//   FG_CPU_KERNELS  auto (default: the widest the CPU has) | avx512 | avx2 | generic; one the CPU lacks is an error
// set_gemm_backend()/set_gemm_isa() override them afterwards (tests, benchmarks).
#pragma once
#include <cstdint>
#include <string>

namespace fg::cpu {

enum class GemmBackend { FILMGRAD, OPENBLAS };
enum class GemmIsa { GENERIC, AVX2, AVX512 };

const char* gemm_isa_name(GemmIsa isa);  // "generic", "avx2", "avx512"
bool gemm_isa_supported(GemmIsa isa);    // the CPU (and OS) can run it
GemmIsa gemm_best_isa();                 // the widest supported one

// The current selection (environment on first use, then the setters). Thread-safe.
GemmBackend gemm_backend();
GemmIsa gemm_isa();
void set_gemm_backend(GemmBackend backend);
void set_gemm_isa(GemmIsa isa);  // throws fg::Error when the CPU lacks it

// Parsers for the two variables, exposed for tests: throw fg::Error with a one-line message on a bad value.
GemmBackend parse_gemm_backend(const std::string& text);
GemmIsa parse_gemm_isa(const std::string& text);  // "" and "auto" give gemm_best_isa()

// What runs now, for `filmgrad version` and benchmark contexts, e.g. "filmgrad avx2 (6x16 f32, 6x8 f64)" or
// "openblas (OpenBLAS 0.3.21 ... core Zen)".
std::string gemm_kernel_name();

// C (M, N) = alpha op(A) op(B) + beta C, row-major, with the contract above. A: (M, K) with row stride lda, or
// (K, M) when trans_a; B: (K, N) with row stride ldb, or (N, K) when trans_b; C: (M, N) with row stride ldc.
// Single-threaded (safe inside an OpenMP region); `isa` must be supported.
void gemm(GemmIsa isa, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(GemmIsa isa, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// For tests on CPUs without AVX-512: the avx512 path's driver and micro-kernel code (14x32 f32, 14x16 f64) run on
// 16- and 8-lane arrays of std::fma instead of zmm registers, so its blocking, packing and edge handling are
// checked everywhere; only the intrinsic wrappers differ from the real thing. Slow; never picked at run time.
void gemm_avx512_emulated(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm_avx512_emulated(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

}  // namespace fg::cpu
