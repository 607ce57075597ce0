// Internal to the CPU GEMM (kernels/cpu/gemm.h): the interface between the ISA-independent driver (gemm.cpp:
// cache blocking, packing, edge tiles) and the per-ISA micro-kernels (gemm_avx2.cpp, gemm_avx512.cpp, and the
// generic ones in gemm.cpp), and the one micro-kernel template they all instantiate.
//
// A micro-kernel computes one full MR x NR tile of C from packed panels:
//   a: kc x MR, element (k, i) at a[k * MR + i], already multiplied by alpha;
//   b: kc x NR, element (k, j) at b[k * NR + j];
//   c: row stride ldc; each c[i][j] = fma chain over k = 0..kc-1 of a(k, i) * b(k, j), started from c[i][j] when
//      load_c, else from 0. The chain order is the contract that keeps every ISA bit-identical (gemm.h).
#pragma once
#include <cstdint>

namespace fg::cpu::gemm_detail {

template <typename T>
using MicroKernel = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool load_c);

// A transposing pack: dst[k * stride + r] = alpha * src[r * ld + k] (a plain copy when !scale) for r < rows and
// k < kc, and 0 for rows <= r < stride. It may write up to 8 elements past dst + kc * stride (the driver's buffers
// have the room, and later slivers overwrite them). Copies and one IEEE multiply, so any ISA gives the same bits.
template <typename T>
using PackTransposed = void (*)(const T* src, int64_t ld, int rows, int64_t kc, T alpha, bool scale, T* dst,
                                int stride);

// A straight pack: dst[k * stride + r] = alpha * src[k * ld + r] (a plain copy when !scale) for r < rows and
// k < kc, and 0 for rows <= r < stride; the same room past the end as PackTransposed.
template <typename T>
using PackRows = void (*)(const T* src, int64_t ld, int rows, int64_t kc, T alpha, bool scale, T* dst, int stride);

// One micro-kernel and the cache blocks the driver uses with it: a kc x nr panel of B stays in L1 while the
// mc x kc block of A streams from L2, and the kc x nc panel of B is reused from L3/L2 for every block of A.
template <typename T>
struct MicroKernelInfo {
  int mr = 0, nr = 0;
  int64_t mc = 0, kc = 0, nc = 0;  // mc a multiple of mr, nc a multiple of nr
  MicroKernel<T> run = nullptr;
  const char* shape = "";  // "14x32"
  // Packs A (not transposed) and B (transposed), whose slivers are transposes of the stored rows; null: the
  // driver's scalar loops.
  PackTransposed<T> pack_transposed = nullptr;
  // Packs A (transposed) and B (not transposed), whose slivers are runs of the stored rows; null: scalar loops.
  PackRows<T> pack_rows = nullptr;
};

struct IsaKernels {
  MicroKernelInfo<float> f32;
  MicroKernelInfo<double> f64;
};

// gemm_avx2.cpp's 8 x 8 register-transpose pack (a PackTransposed<float>), for strides up to 32; AVX2 code.
void avx2_pack_transposed_f32(const float* src, int64_t ld, int rows, int64_t kc, float alpha, bool scale, float* dst,
                              int stride);

// gemm_avx2.cpp's masked-load row pack (a PackRows<float>), for strides up to 32; AVX2 code.
void avx2_pack_rows_f32(const float* src, int64_t ld, int rows, int64_t kc, float alpha, bool scale, float* dst,
                        int stride);

// Defined in gemm_avx2.cpp / gemm_avx512.cpp; their `run` is null when the build target is not x86-64. Call a
// kernel only after cpuid said the CPU has the ISA.
const IsaKernels& avx2_kernels();
const IsaKernels& avx512_kernels();

}  // namespace fg::cpu::gemm_detail

// The micro-kernel template. Each ISA file includes this after switching its target on (#pragma GCC target), so
// the instantiations are compiled for that ISA and nothing else is; the anonymous namespace keeps every
// instantiation private to its file (no inline function compiled for AVX-512 can be picked by the linker for code
// that runs on a CPU without it).
//
// V is a vector type's traits: T (element), reg, width (lanes), zero(), load(p), store(p, r), broadcast(x),
// fma(a, b, c) = a * b + c rounded once. acc[i][v] holds c[i][v*width .. v*width+width); after full unrolling
// the compiler keeps all MR * NV of them in registers.
namespace fg::cpu::gemm_detail {
namespace {

template <class V, int MR, int NV>
void micro_kernel(int64_t kc, const typename V::T* a, const typename V::T* b, typename V::T* c, int64_t ldc,
                  bool load_c) {
  using reg = typename V::reg;
  constexpr int W = V::width;
  reg acc[MR][NV];
  // The tile's rows are fetched while the first products are computed, not on the final store.
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) __builtin_prefetch(c + i * ldc, 1, 3);
  if (load_c) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = V::load(c + i * ldc + v * W);
  } else {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    reg bk[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bk[v] = V::load(b + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const reg ai = V::broadcast(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(ai, bk[v], acc[i][v]);
    }
    a += MR;
    b += NV * W;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) V::store(c + i * ldc + v * W, acc[i][v]);
}

}  // namespace
}  // namespace fg::cpu::gemm_detail
