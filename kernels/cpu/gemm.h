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
#include <memory>
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

// op(A) packed once for many products that share it: conv2d multiplies the same weights by every column tile
// of an image, and packing them per tile (the plain gemm() does, per call) cost as much as a tenth of a
// convolution. Holds op(A) (M x K) times alpha in the layout the driver packs per call, for every k block and
// every sliver of MR rows (the kernels of `isa`), so multiply() gives the same bits as gemm(isa, trans_a, ...)
// with the same A, alpha, B, beta and C: only where the packed values come from differs.
template <typename T>
class GemmPackedA {
 public:
  // Packs op(A) (M x K; A is (K, M) when trans_a) for `isa` (must be supported), with up to `threads` OpenMP
  // threads (one when called inside a parallel region).
  GemmPackedA(GemmIsa isa, bool trans_a, int64_t M, int64_t K, T alpha, const T* A, int64_t lda, int threads = 1);
  // The same for the avx512 path's shapes and blocks run on lane arrays (gemm_avx512_emulated), for tests.
  static GemmPackedA avx512_emulated(bool trans_a, int64_t M, int64_t K, T alpha, const T* A, int64_t lda);
  GemmPackedA(GemmPackedA&&) noexcept = default;
  GemmPackedA& operator=(GemmPackedA&&) noexcept = default;

  int64_t rows() const { return M_; }
  int64_t depth() const { return K_; }
  // A row range given to multiply() must start at a multiple of this (the micro-kernel's MR).
  int64_t row_multiple() const;

  // Rows [i0, i1) of C (M x N; C points at row i0) = op(A)[i0:i1] op(B) + beta C, with op(B) (K x N), B (N, K)
  // when trans_b. Single-threaded, safe inside a parallel region; const, so threads may share one packing.
  void multiply(int64_t i0, int64_t i1, bool trans_b, int64_t N, const T* B, int64_t ldb, T beta, T* C,
                int64_t ldc) const;

 private:
  GemmPackedA() = default;
  void pack(bool trans_a, const T* A, int64_t lda, int threads);
  int kind_ = 0;  // int(GemmIsa), or -1 for the emulated avx512 kernels
  int64_t M_ = 0, K_ = 0;
  T alpha_ = T(1);
  std::unique_ptr<T[]> data_;
};

// For tests on CPUs without AVX-512: the avx512 path's driver and micro-kernel code (14x32 f32, 14x16 f64) run on
// 16- and 8-lane arrays of std::fma instead of zmm registers, so its blocking, packing and edge handling are
// checked everywhere; only the intrinsic wrappers differ from the real thing. Slow; never picked at run time.
void gemm_avx512_emulated(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm_avx512_emulated(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

}  // namespace fg::cpu
