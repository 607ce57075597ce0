// filmgrad's CPU GEMM (contract and selection: kernels/cpu/gemm.h): the run-time choice of kernels, the
// ISA-independent driver (GotoBLAS-style cache blocking and packing), and the generic micro-kernels.
//
// Driver loops, outermost first: columns of C in blocks of nc (jc), k in blocks of kc (pc: pack B's kc x nc panel
// into nr-wide slivers), rows of C in blocks of mc (ic: pack A's mc x kc block into mr-high slivers, scaled by
// alpha), then nr-wide (jr) and mr-high (ir) micro-tiles. Slivers at the right and bottom edges are zero-padded to
// full width, so every micro-kernel call computes a full tile; an edge tile goes through a small buffer and only
// its valid part is copied back. The first k block starts each chain from beta * C (or 0), later blocks continue
// it from the partial sums left in C, so blocking never changes a result.
#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include <omp.h>

#include "kernels/cpu/gemm_kernels.h"
#include "tensor/error.h"

namespace fg::cpu {

namespace gemm_detail {
namespace {

// A vector of W lanes in plain C++: the generic kernels, and the emulation of the AVX-512 ones. std::fma rounds
// once, like the FMA instructions, so these give the same bits as the vector kernels.
template <typename TT, int W>
struct LaneArray {
  using T = TT;
  struct reg {
    TT v[W];
  };
  static constexpr int width = W;
  static reg zero() {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = TT(0);
    return r;
  }
  static reg load(const TT* p) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = p[l];
    return r;
  }
  static void store(TT* p, const reg& r) {
    for (int l = 0; l < W; ++l) p[l] = r.v[l];
  }
  static reg broadcast(TT x) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = x;
    return r;
  }
  static reg fma(const reg& a, const reg& b, const reg& c) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = std::fma(a.v[l], b.v[l], c.v[l]);
    return r;
  }
};

void generic_f32_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool load_c) {
  micro_kernel<LaneArray<float, 8>, 6, 2>(kc, a, b, c, ldc, load_c);
}
void generic_f64_6x8(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, bool load_c) {
  micro_kernel<LaneArray<double, 4>, 6, 2>(kc, a, b, c, ldc, load_c);
}
void emulated_f32_14x32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool load_c) {
  micro_kernel<LaneArray<float, 16>, 14, 2>(kc, a, b, c, ldc, load_c);
}
void emulated_f64_14x16(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, bool load_c) {
  micro_kernel<LaneArray<double, 8>, 14, 2>(kc, a, b, c, ldc, load_c);
}

const IsaKernels& generic_kernels() {
  static const IsaKernels kernels = {
      {6, 16, 144, 384, 4080, generic_f32_6x16, "6x16"},
      {6, 8, 96, 256, 2040, generic_f64_6x8, "6x8"},
  };
  return kernels;
}

// The avx512 kernels' shapes, blocks and packing (the numbers of gemm_avx512.cpp, which has no table off x86),
// with the lane-array micro-kernels; the AVX2 packs when the CPU has AVX2, as the avx512 path uses them.
const IsaKernels& emulated_avx512_kernels() {
  static const IsaKernels kernels = [] {
    IsaKernels k = {
        {14, 32, 168, 192, 4096, emulated_f32_14x32, "14x32"},
        {14, 16, 112, 192, 2048, emulated_f64_14x16, "14x16"},
    };
    if (gemm_isa_supported(GemmIsa::AVX2)) {
      k.f32.pack_transposed = avx2_kernels().f32.pack_transposed;
      k.f32.pack_rows = avx2_kernels().f32.pack_rows;
    }
    return k;
  }();
  return kernels;
}

const IsaKernels& kernels_for(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::AVX512:
      return avx512_kernels();
    case GemmIsa::AVX2:
      return avx2_kernels();
    case GemmIsa::GENERIC:
      break;
  }
  return generic_kernels();
}

// Per-thread, 64-byte aligned packing buffers, grown on demand and kept for the thread's lifetime (the OpenMP
// threads live as long as the program), so a GEMM call allocates nothing in steady state.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

template <typename T, int Slot>
T* packing_buffer(size_t elements) {
  thread_local std::unique_ptr<void, FreeDeleter> buffer;
  thread_local size_t capacity = 0;
  if (elements > capacity) {
    buffer.reset();
    const size_t bytes = (elements * sizeof(T) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw std::bad_alloc();
    buffer.reset(p);
    capacity = elements;
  }
  return static_cast<T*>(buffer.get());
}

// dst: mc x kc of op(A) starting at (i0, k0), as ceil(mc / MR) slivers of kc x MR (element (k, i) of a sliver at
// k * MR + i), each value multiplied by alpha, rows past mc zero.
template <typename T>
void pack_a(bool trans_a, const T* A, int64_t lda, int64_t i0, int64_t k0, int64_t mc, int64_t kc, T alpha, int MR,
            PackTransposed<T> pack_transposed, PackRows<T> pack_rows, T* dst) {
  const bool scale = alpha != T(1);
  for (int64_t s = 0; s < mc; s += MR, dst += kc * MR) {
    const int rows = int(std::min<int64_t>(MR, mc - s));
    if (!trans_a && pack_transposed) {
      pack_transposed(A + (i0 + s) * lda + k0, lda, rows, kc, alpha, scale, dst, MR);
    } else if (trans_a && pack_rows) {
      pack_rows(A + k0 * lda + i0 + s, lda, rows, kc, alpha, scale, dst, MR);
    } else if (!trans_a) {
      for (int i = 0; i < rows; ++i) {
        const T* src = A + (i0 + s + i) * lda + k0;
        if (scale) {
          for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = alpha * src[k];
        } else {
          for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k];
        }
      }
      for (int i = rows; i < MR; ++i)
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = T(0);
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const T* src = A + (k0 + k) * lda + i0 + s;
        T* d = dst + k * MR;
        if (scale) {
          for (int i = 0; i < rows; ++i) d[i] = alpha * src[i];
        } else {
          for (int i = 0; i < rows; ++i) d[i] = src[i];
        }
        for (int i = rows; i < MR; ++i) d[i] = T(0);
      }
    }
  }
}

// dst: kc x nc of op(B) starting at (k0, j0), as ceil(nc / NR) slivers of kc x NR (element (k, j) of a sliver at
// k * NR + j), columns past nc zero.
template <typename T>
void pack_b(bool trans_b, const T* B, int64_t ldb, int64_t k0, int64_t j0, int64_t kc, int64_t nc, int NR,
            PackTransposed<T> pack_transposed, PackRows<T> pack_rows, T* dst) {
  for (int64_t s = 0; s < nc; s += NR, dst += kc * NR) {
    const int cols = int(std::min<int64_t>(NR, nc - s));
    if (trans_b && pack_transposed) {
      pack_transposed(B + (j0 + s) * ldb + k0, ldb, cols, kc, T(1), false, dst, NR);
    } else if (!trans_b && pack_rows) {
      pack_rows(B + k0 * ldb + j0 + s, ldb, cols, kc, T(1), false, dst, NR);
    } else if (!trans_b) {
      for (int64_t k = 0; k < kc; ++k) {
        const T* src = B + (k0 + k) * ldb + j0 + s;
        T* d = dst + k * NR;
        for (int j = 0; j < cols; ++j) d[j] = src[j];
        for (int j = cols; j < NR; ++j) d[j] = T(0);
      }
    } else {
      for (int j = 0; j < cols; ++j) {
        const T* src = B + (j0 + s + j) * ldb + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
      }
      for (int j = cols; j < NR; ++j)
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = T(0);
    }
  }
}

// C = beta * C over M x N (C = 0 when beta == 0, without reading C).
template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  if (beta == T(1)) return;
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0)) {
      std::fill(c, c + N, T(0));
    } else {
      for (int64_t j = 0; j < N; ++j) c[j] = beta * c[j];
    }
  }
}

// Where op(A) comes from when it was packed before the call (GemmPackedA): the whole M_total x K matrix, k block
// by k block (block p, which starts at k = pc, at pc * Mpad), each block ceil(M_total / MR) slivers of kc x MR;
// the call computes rows [i0, i0 + M) of it, i0 a multiple of MR.
template <typename T>
struct PrePacked {
  const T* data = nullptr;
  int64_t i0 = 0;
  int64_t mpad = 0;  // M_total rounded up to MR
};

// K in equal blocks of at most kern.kc (576 = 2 x 288 for kc = 384, not 384 + 192): a short last block would pay
// the loads and stores of C for little work. The same for the per-call and the pre-packed A.
template <typename T>
int64_t k_block(const MicroKernelInfo<T>& kern, int64_t K) {
  const int64_t k_blocks = (K + kern.kc - 1) / kern.kc;
  return (K + k_blocks - 1) / k_blocks;
}

template <typename T>
void gemm_driver(const MicroKernelInfo<T>& kern, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                 const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
                 const PrePacked<T>& prepacked = {}) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  // The chain starts from beta * c: scaled in place first unless beta is 0 (start from 0) or 1 (start from c).
  const bool start_from_c = beta != T(0);
  if (start_from_c) scale_c(M, N, beta, C, ldc);

  const int MR = kern.mr, NR = kern.nr;
  const int64_t kc_max = k_block(kern, K);
  const int64_t nc_max = std::min(kern.nc, (N + NR - 1) / NR * NR);
  const int64_t mc_max = std::min(kern.mc, (M + MR - 1) / MR * MR);
  // 16 elements of slack: a transposing pack may write 8 past its sliver.
  T* bpack = packing_buffer<T, 0>(size_t(kc_max * nc_max + 16));
  T* apack = prepacked.data ? nullptr : packing_buffer<T, 1>(size_t(kc_max * mc_max + 16));
  alignas(64) T edge[16 * 64];  // one micro-tile (MR * NR <= 14 * 32 elements)
  FG_ASSERT(MR * NR <= 16 * 64, "micro-tile " << MR << "x" << NR << " exceeds the edge buffer");

  for (int64_t jc = 0; jc < N; jc += kern.nc) {
    const int64_t nc = std::min(kern.nc, N - jc);
    for (int64_t pc = 0; pc < K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, K - pc);
      const bool load_c = pc > 0 || start_from_c;
      pack_b(trans_b, B, ldb, pc, jc, kc, nc, NR, kern.pack_transposed, kern.pack_rows, bpack);
      for (int64_t ic = 0; ic < M; ic += kern.mc) {
        const int64_t mc = std::min(kern.mc, M - ic);
        const T* ablock;
        if (prepacked.data) {
          ablock = prepacked.data + pc * prepacked.mpad + ((prepacked.i0 + ic) / MR) * kc * MR;
        } else {
          pack_a(trans_a, A, lda, ic, pc, mc, kc, alpha, MR, kern.pack_transposed, kern.pack_rows, apack);
          ablock = apack;
        }
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = std::min<int64_t>(NR, nc - jr);
          const T* bp = bpack + (jr / NR) * kc * NR;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min<int64_t>(MR, mc - ir);
            const T* ap = ablock + (ir / MR) * kc * MR;
            T* c = C + (ic + ir) * ldc + jc + jr;
            if (mr == MR && nr == NR) {
              kern.run(kc, ap, bp, c, ldc, load_c);
              continue;
            }
            if (load_c)
              for (int64_t i = 0; i < mr; ++i) std::memcpy(edge + i * NR, c + i * ldc, size_t(nr) * sizeof(T));
            kern.run(kc, ap, bp, edge, NR, load_c);
            for (int64_t i = 0; i < mr; ++i) std::memcpy(c + i * ldc, edge + i * NR, size_t(nr) * sizeof(T));
          }
        }
      }
    }
  }
}

// ---- run-time selection ----

bool cpu_has(GemmIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
  // __builtin_cpu_supports reports AVX and AVX-512 features only when the OS also saves their registers (XCR0).
  switch (isa) {
    case GemmIsa::AVX512:
      return avx512_kernels().f32.run != nullptr && __builtin_cpu_supports("avx512f");
    case GemmIsa::AVX2:
      return avx2_kernels().f32.run != nullptr && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GemmIsa::GENERIC:
      return true;
  }
  return false;
#else
  return isa == GemmIsa::GENERIC;
#endif
}

struct Selection {
  std::atomic<int> backend;
  std::atomic<int> isa;
};

Selection& selection() {
  static Selection s{{int(parse_gemm_backend(std::getenv("FG_CPU_GEMM") ? std::getenv("FG_CPU_GEMM") : ""))},
                     {int(parse_gemm_isa(std::getenv("FG_CPU_KERNELS") ? std::getenv("FG_CPU_KERNELS") : ""))}};
  return s;
}

std::string trimmed_lower(const std::string& text) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  std::string out = text.substr(b, e - b);
  for (char& ch : out) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

}  // namespace
}  // namespace gemm_detail

const char* gemm_isa_name(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::AVX512:
      return "avx512";
    case GemmIsa::AVX2:
      return "avx2";
    case GemmIsa::GENERIC:
      break;
  }
  return "generic";
}

bool gemm_isa_supported(GemmIsa isa) {
  static const bool supported[3] = {gemm_detail::cpu_has(GemmIsa::GENERIC), gemm_detail::cpu_has(GemmIsa::AVX2),
                                    gemm_detail::cpu_has(GemmIsa::AVX512)};
  return supported[int(isa)];
}

GemmIsa gemm_best_isa() {
  if (gemm_isa_supported(GemmIsa::AVX512)) return GemmIsa::AVX512;
  if (gemm_isa_supported(GemmIsa::AVX2)) return GemmIsa::AVX2;
  return GemmIsa::GENERIC;
}

GemmBackend parse_gemm_backend(const std::string& text) {
  const std::string t = gemm_detail::trimmed_lower(text);
  if (t.empty() || t == "filmgrad") return GemmBackend::FILMGRAD;
  if (t == "openblas") return GemmBackend::OPENBLAS;
  throw Error("FG_CPU_GEMM='" + text + "' is not a CPU GEMM; use filmgrad (the default) or openblas, or unset it");
}

GemmIsa parse_gemm_isa(const std::string& text) {
  const std::string t = gemm_detail::trimmed_lower(text);
  if (t.empty() || t == "auto") return gemm_best_isa();
  GemmIsa isa;
  if (t == "avx512") {
    isa = GemmIsa::AVX512;
  } else if (t == "avx2") {
    isa = GemmIsa::AVX2;
  } else if (t == "generic") {
    isa = GemmIsa::GENERIC;
  } else {
    throw Error("FG_CPU_KERNELS='" + text + "' is not a kernel set; use auto, avx512, avx2 or generic, or unset it");
  }
  if (!gemm_isa_supported(isa))
    throw Error(std::string("FG_CPU_KERNELS=") + gemm_isa_name(isa) + ": this CPU cannot run the " +
                gemm_isa_name(isa) + " kernels (its widest is " + gemm_isa_name(gemm_best_isa()) +
                "); pick that or unset FG_CPU_KERNELS");
  return isa;
}

GemmBackend gemm_backend() {
  return GemmBackend(gemm_detail::selection().backend.load(std::memory_order_relaxed));
}

GemmIsa gemm_isa() {
  return GemmIsa(gemm_detail::selection().isa.load(std::memory_order_relaxed));
}

void set_gemm_backend(GemmBackend backend) {
  gemm_detail::selection().backend.store(int(backend), std::memory_order_relaxed);
}

void set_gemm_isa(GemmIsa isa) {
  FG_CHECK(gemm_isa_supported(isa), "set_gemm_isa: this CPU cannot run the " << gemm_isa_name(isa) << " kernels");
  gemm_detail::selection().isa.store(int(isa), std::memory_order_relaxed);
}

std::string gemm_kernel_name() {
  if (gemm_backend() == GemmBackend::OPENBLAS) {
    std::string config = openblas_get_config();
    while (!config.empty() && config.back() == ' ') config.pop_back();
    return std::string("openblas (") + config + ", core " + openblas_get_corename() + ")";
  }
  const GemmIsa isa = gemm_isa();
  const gemm_detail::IsaKernels& k = gemm_detail::kernels_for(isa);
  return std::string("filmgrad ") + gemm_isa_name(isa) + " (" + k.f32.shape + " f32, " + k.f64.shape + " f64)";
}

void gemm(GemmIsa isa, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  FG_ASSERT(gemm_isa_supported(isa), "the " << gemm_isa_name(isa) << " GEMM kernels do not run on this CPU");
  gemm_detail::gemm_driver(gemm_detail::kernels_for(isa).f32, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                           ldc);
}

void gemm(GemmIsa isa, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  FG_ASSERT(gemm_isa_supported(isa), "the " << gemm_isa_name(isa) << " GEMM kernels do not run on this CPU");
  gemm_detail::gemm_driver(gemm_detail::kernels_for(isa).f64, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                           ldc);
}

void gemm_avx512_emulated(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_detail::gemm_driver(gemm_detail::emulated_avx512_kernels().f32, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                           beta, C, ldc);
}

void gemm_avx512_emulated(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  gemm_detail::gemm_driver(gemm_detail::emulated_avx512_kernels().f64, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                           beta, C, ldc);
}

namespace {

template <typename T>
const gemm_detail::MicroKernelInfo<T>& kernel_info(int kind);
template <>
const gemm_detail::MicroKernelInfo<float>& kernel_info<float>(int kind) {
  return kind < 0 ? gemm_detail::emulated_avx512_kernels().f32 : gemm_detail::kernels_for(GemmIsa(kind)).f32;
}
template <>
const gemm_detail::MicroKernelInfo<double>& kernel_info<double>(int kind) {
  return kind < 0 ? gemm_detail::emulated_avx512_kernels().f64 : gemm_detail::kernels_for(GemmIsa(kind)).f64;
}

}  // namespace

template <typename T>
GemmPackedA<T>::GemmPackedA(GemmIsa isa, bool trans_a, int64_t M, int64_t K, T alpha, const T* A, int64_t lda,
                            int threads)
    : kind_(int(isa)), M_(M), K_(K), alpha_(alpha) {
  FG_ASSERT(gemm_isa_supported(isa), "the " << gemm_isa_name(isa) << " GEMM kernels do not run on this CPU");
  pack(trans_a, A, lda, threads);
}

template <typename T>
GemmPackedA<T> GemmPackedA<T>::avx512_emulated(bool trans_a, int64_t M, int64_t K, T alpha, const T* A, int64_t lda) {
  GemmPackedA p;
  p.kind_ = -1;
  p.M_ = M;
  p.K_ = K;
  p.alpha_ = alpha;
  p.pack(trans_a, A, lda, 1);
  return p;
}

template <typename T>
int64_t GemmPackedA<T>::row_multiple() const {
  return kernel_info<T>(kind_).mr;
}

// Sliver by sliver through a small buffer: the vector packs may write a few elements past a sliver's end, which in
// place would race with the thread packing the next sliver.
template <typename T>
void GemmPackedA<T>::pack(bool trans_a, const T* A, int64_t lda, int threads) {
  if (M_ <= 0 || K_ <= 0) return;
  const gemm_detail::MicroKernelInfo<T>& kern = kernel_info<T>(kind_);
  const int MR = kern.mr;
  const int64_t slivers = (M_ + MR - 1) / MR, mpad = slivers * MR;
  const int64_t kc_max = gemm_detail::k_block(kern, K_);
  const int64_t k_blocks = (K_ + kc_max - 1) / kc_max;
  data_.reset(new T[size_t(mpad * K_)]);
  T* data = data_.get();
  const int64_t units = k_blocks * slivers;
  const bool parallel = threads > 1 && !omp_in_parallel() && double(mpad) * double(K_) > 65536.0;
#pragma omp parallel num_threads(threads) if (parallel)
  {
    std::unique_ptr<T[]> tmp(new T[size_t(kc_max * MR + 16)]);
#pragma omp for schedule(static)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t pc = (u / slivers) * kc_max, s = u % slivers;
      const int64_t kc = std::min(kc_max, K_ - pc);
      gemm_detail::pack_a(trans_a, A, lda, s * MR, pc, std::min<int64_t>(MR, M_ - s * MR), kc, alpha_, MR,
                          kern.pack_transposed, kern.pack_rows, tmp.get());
      std::memcpy(data + pc * mpad + s * kc * MR, tmp.get(), size_t(kc * MR) * sizeof(T));
    }
  }
}

template <typename T>
void GemmPackedA<T>::multiply(int64_t i0, int64_t i1, bool trans_b, int64_t N, const T* B, int64_t ldb, T beta, T* C,
                              int64_t ldc) const {
  const gemm_detail::MicroKernelInfo<T>& kern = kernel_info<T>(kind_);
  FG_ASSERT(i0 >= 0 && i0 <= i1 && i1 <= M_ && i0 % kern.mr == 0,
            "GemmPackedA::multiply: rows [" << i0 << ", " << i1 << ") of " << M_ << " (start a multiple of " << kern.mr
                                            << ")");
  const gemm_detail::PrePacked<T> pre{data_.get(), i0, (M_ + kern.mr - 1) / kern.mr * kern.mr};
  gemm_detail::gemm_driver(kern, false, trans_b, i1 - i0, N, K_, alpha_, static_cast<const T*>(nullptr), 0, B, ldb,
                           beta, C, ldc, pre);
}

template class GemmPackedA<float>;
template class GemmPackedA<double>;

}  // namespace fg::cpu
