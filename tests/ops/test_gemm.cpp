// filmgrad's CPU GEMM (kernels/cpu/gemm.h): every kernel path this CPU can run (avx512, avx2, generic) plus the
// avx512 path's code on emulated 16-lane vectors, each also with A packed beforehand (GemmPackedA), against a triple loop in double over a case table (sizes 0, 1,
// 2, odd, tile multiples and one past them, both transposes, alpha/beta including beta = 0 over a NaN-filled C,
// strided lda/ldb/ldc with NaN in the gaps so a stray read shows); the bit-identity of all paths (the contract
// that makes results the same on Intel and AMD); OpenBLAS, the twin, within the same bound; thread-count
// independence of gemm_parallel; and the run-time selection's errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/matmul.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using cpu::GemmBackend;
using cpu::GemmIsa;

template <typename T>
using GemmFn =
    std::function<void(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*, int64_t)>;

template <typename T>
struct Path {
  std::string name;
  GemmFn<T> run;
};

// Every filmgrad path this CPU can run, generic first (the one every other is compared to bit for bit).
template <typename T>
std::vector<Path<T>> filmgrad_paths() {
  std::vector<Path<T>> paths;
  for (GemmIsa isa : {GemmIsa::GENERIC, GemmIsa::AVX2, GemmIsa::AVX512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    paths.push_back({cpu::gemm_isa_name(isa),
                     [isa](bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                           const T* B, int64_t ldb, T beta, T* C,
                           int64_t ldc) { cpu::gemm(isa, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); }});
  }
  paths.push_back({"avx512-emulated", [](bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                                         int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
                     cpu::gemm_avx512_emulated(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
                   }});
  // A packed once (GemmPackedA, what conv2d uses for its weights), C computed in two row ranges split at a
  // multiple of the kernel's MR, so a range that does not start at row 0 is covered too.
  auto split_multiply = [](const cpu::GemmPackedA<T>& packed, bool tb, int64_t N, const T* B, int64_t ldb, T beta, T* C,
                           int64_t ldc) {
    const int64_t M = packed.rows(), mr = packed.row_multiple(), split = (M / 2) / mr * mr;
    packed.multiply(0, split, tb, N, B, ldb, beta, C, ldc);
    packed.multiply(split, M, tb, N, B, ldb, beta, C + split * ldc, ldc);
  };
  for (GemmIsa isa : {GemmIsa::GENERIC, GemmIsa::AVX2, GemmIsa::AVX512}) {
    if (!cpu::gemm_isa_supported(isa)) continue;
    paths.push_back({std::string(cpu::gemm_isa_name(isa)) + "-prepacked-a",
                     [isa, split_multiply](bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                                           int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
                       // 2 threads: the parallel packing, when the matrix is large enough to take it.
                       const cpu::GemmPackedA<T> packed(isa, ta, M, K, alpha, A, lda, 2);
                       split_multiply(packed, tb, N, B, ldb, beta, C, ldc);
                     }});
  }
  paths.push_back({"avx512-emulated-prepacked-a",
                   [split_multiply](bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                                    int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
                     const auto packed = cpu::GemmPackedA<T>::avx512_emulated(ta, M, K, alpha, A, lda);
                     split_multiply(packed, tb, N, B, ldb, beta, C, ldc);
                   }});
  return paths;
}

// Deterministic values in [-1, 1).
struct Lcg {
  uint64_t s;
  double next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return double(s >> 11) * (2.0 / 9007199254740992.0) - 1.0;
  }
};

struct Case {
  int64_t M, N, K;
  bool ta, tb;
  double alpha, beta;
  int64_t pad;  // extra elements at the end of every row of A, B and C (lda = cols + pad)
};

const int64_t kSizes[] = {0, 1, 2, 7, 13, 16, 17, 31, 33, 64, 100, 257};

// alpha/beta pairs: beta = 0 (C must be overwritten, it holds NaN), beta = 1 (accumulate), general values, and
// alpha = 0 (C = beta C, A and B not read).
const double kAlphaBeta[][2] = {{1.0, 0.0}, {1.0, 1.0}, {0.5, -1.5}, {-2.0, 0.0}, {1.0, 0.25}, {0.0, 2.0}};

// The full cross product of kSizes for M, N, K up to 40k multiply-adds, plus the large corners; each case gets
// the next transpose pair, alpha/beta pair and row padding in turn, so every combination occurs many times.
std::vector<Case> cases() {
  std::vector<Case> out;
  int64_t n = 0;
  for (int64_t M : kSizes)
    for (int64_t N : kSizes)
      for (int64_t K : kSizes) {
        const bool big = M * N * K > 40000;
        const bool corner = (M == 257 || M == 0) && (N == 257 || N == 100) && (K == 257 || K == 33 || K == 1);
        if (big && !corner) continue;
        const auto& ab = kAlphaBeta[n % 6];
        out.push_back({M, N, K, (n & 1) != 0, (n & 2) != 0, ab[0], ab[1], (n / 4) % 3 == 0 ? 0 : 3 + n % 5});
        ++n;
      }
  return out;
}

template <typename T>
struct Operands {
  int64_t lda, ldb, ldc;
  std::vector<T> A, B, C0;  // C0: C before the call
};

template <typename T>
Operands<T> make_operands(const Case& c, uint64_t seed) {
  Operands<T> op;
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  op.lda = a_cols + c.pad;
  op.ldb = b_cols + c.pad;
  op.ldc = c.N + c.pad;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  Lcg rng{seed};
  // The gaps between rows hold NaN: a kernel that read past a row's end would spread it into C.
  auto fill = [&](std::vector<T>& v, int64_t rows, int64_t cols, int64_t ld) {
    v.assign(size_t(std::max<int64_t>(1, rows * ld)), nan);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t q = 0; q < cols; ++q) v[size_t(r * ld + q)] = T(rng.next());
  };
  fill(op.A, a_rows, a_cols, op.lda);
  fill(op.B, b_rows, b_cols, op.ldb);
  fill(op.C0, c.M, c.N, op.ldc);
  if (c.beta == 0.0) std::fill(op.C0.begin(), op.C0.end(), nan);  // never read: must be overwritten
  return op;
}

// Checks got against the double-precision definition, element by element, with the error bound of a K-term FMA
// chain plus the two roundings of alpha*a and beta*c: |err| <= (K + 2) u (|alpha| sum_k |a_ik b_kj| + |beta c_ij|)
// to first order, u = eps / 2; the test allows (K + 3) eps (twice that) plus one denormal's worth. The row gaps of
// C must still hold what they held.
template <typename T>
void expect_matches_definition(const Case& c, const Operands<T>& op, const std::vector<T>& got,
                               const std::string& what) {
  const double eps = std::numeric_limits<T>::epsilon();
  int reported = 0;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < c.N; ++j) {
      double sum = 0, sum_abs = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double a = c.ta ? op.A[size_t(k * op.lda + i)] : op.A[size_t(i * op.lda + k)];
        const double b = c.tb ? op.B[size_t(j * op.ldb + k)] : op.B[size_t(k * op.ldb + j)];
        sum += a * b;
        sum_abs += std::abs(a * b);
      }
      const double c0 = c.beta == 0.0 ? 0.0 : double(op.C0[size_t(i * op.ldc + j)]);
      const double ref = c.alpha * sum + c.beta * c0;
      const double bound = double(c.K + 3) * eps * (std::abs(c.alpha) * sum_abs + std::abs(c.beta * c0)) + 1e-300;
      const double v = double(got[size_t(i * op.ldc + j)]);
      if (!(std::abs(v - ref) <= bound) && reported++ < 5)
        ADD_FAILURE() << what << ": C[" << i << "][" << j << "] = " << v << ", expected " << ref << " (bound " << bound
                      << ")";
    }
    for (int64_t j = c.N; j < op.ldc; ++j) {
      const T before = op.C0[size_t(i * op.ldc + j)], after = got[size_t(i * op.ldc + j)];
      if (std::memcmp(&before, &after, sizeof(T)) != 0 && reported++ < 5)
        ADD_FAILURE() << what << ": the gap C[" << i << "][" << j << "] past the row's end was written";
    }
  }
}

std::string describe(const Case& c) {
  return "M=" + std::to_string(c.M) + " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) + (c.ta ? " A^T" : "") +
         (c.tb ? " B^T" : "") + " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) +
         " pad=" + std::to_string(c.pad);
}

template <typename T>
void check_all_paths() {
  const auto paths = filmgrad_paths<T>();
  uint64_t seed = 1;
  for (const Case& c : cases()) {
    const Operands<T> op = make_operands<T>(c, seed++);
    std::vector<T> first;
    for (const auto& p : paths) {
      std::vector<T> C = op.C0;
      p.run(c.ta, c.tb, c.M, c.N, c.K, T(c.alpha), op.A.data(), op.lda, op.B.data(), op.ldb, T(c.beta), C.data(),
            op.ldc);
      const std::string what = p.name + " " + describe(c);
      expect_matches_definition(c, op, C, what);
      if (first.empty()) {
        first = C;
      } else if (std::memcmp(first.data(), C.data(), C.size() * sizeof(T)) != 0) {
        ADD_FAILURE() << what << ": not bit-identical to " << paths[0].name;
      }
    }
    if (::testing::Test::HasFailure()) return;  // one failing case says enough
  }
}

TEST(Gemm, EveryPathMatchesTheDefinitionAndEachOtherBitForBitF32) {
  check_all_paths<float>();
}
TEST(Gemm, EveryPathMatchesTheDefinitionAndEachOtherBitForBitF64) {
  check_all_paths<double>();
}

TEST(Gemm, ReportsThePathsItRuns) {
  std::string paths;
  for (const auto& p : filmgrad_paths<float>()) paths += p.name + " ";
  std::printf("filmgrad GEMM paths tested on this CPU: %s\n", paths.c_str());
  EXPECT_TRUE(cpu::gemm_isa_supported(GemmIsa::GENERIC));
  EXPECT_TRUE(cpu::gemm_isa_supported(cpu::gemm_best_isa()));
}

// OpenBLAS, the twin, obeys the same error bound (not the same bits: its order of summation is its own).
TEST(Gemm, OpenBlasTwinMatchesTheDefinition) {
  const GemmBackend saved = cpu::gemm_backend();
  cpu::set_gemm_backend(GemmBackend::OPENBLAS);
  uint64_t seed = 1000;
  for (const Case& c : cases()) {
    if (c.alpha == 0.0) continue;  // BLAS leaves C = beta C too, but NaN * 0 handling of A, B is its own business
    const Operands<float> op = make_operands<float>(c, seed++);
    std::vector<float> C = op.C0;
    cpu::gemm_blas(c.ta, c.tb, c.M, c.N, c.K, float(c.alpha), op.A.data(), op.lda, op.B.data(), op.ldb, float(c.beta),
                   C.data(), op.ldc);
    expect_matches_definition(c, op, C, "openblas " + describe(c));
    if (::testing::Test::HasFailure()) break;
  }
  cpu::set_gemm_backend(saved);
}

// gemm_parallel splits C over the OpenMP threads; with filmgrad's GEMM every element is the same chain however
// it is split, so 1, 2 and 3 threads give the same bits as one call.
TEST(Gemm, ParallelSplitsGiveTheSameBits) {
  const GemmBackend saved = cpu::gemm_backend();
  cpu::set_gemm_backend(GemmBackend::FILMGRAD);
  const int saved_threads = omp_get_max_threads();
  for (const Case& c : {Case{300, 97, 211, false, false, 1.0, 1.0, 0}, Case{61, 400, 129, true, true, 0.5, 0.0, 2}}) {
    const Operands<float> op = make_operands<float>(c, 77);
    std::vector<float> one = op.C0;
    cpu::gemm(cpu::gemm_isa(), c.ta, c.tb, c.M, c.N, c.K, float(c.alpha), op.A.data(), op.lda, op.B.data(), op.ldb,
              float(c.beta), one.data(), op.ldc);
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      std::vector<float> C = op.C0;
      cpu::gemm_parallel<float>(c.ta, c.tb, c.M, c.N, c.K, float(c.alpha), op.A.data(), op.lda, op.B.data(), op.ldb,
                                float(c.beta), C.data(), op.ldc);
      EXPECT_EQ(std::memcmp(one.data(), C.data(), C.size() * sizeof(float)), 0)
          << describe(c) << " at " << threads << " threads";
    }
  }
  omp_set_num_threads(saved_threads);
  cpu::set_gemm_backend(saved);
}

TEST(Gemm, SelectionParsesTheEnvironmentValues) {
  EXPECT_EQ(cpu::parse_gemm_backend(""), GemmBackend::FILMGRAD);
  EXPECT_EQ(cpu::parse_gemm_backend("filmgrad"), GemmBackend::FILMGRAD);
  EXPECT_EQ(cpu::parse_gemm_backend(" OpenBLAS "), GemmBackend::OPENBLAS);
  EXPECT_EQ(cpu::parse_gemm_isa(""), cpu::gemm_best_isa());
  EXPECT_EQ(cpu::parse_gemm_isa("auto"), cpu::gemm_best_isa());
  EXPECT_EQ(cpu::parse_gemm_isa("generic"), GemmIsa::GENERIC);
  const std::string bad_backend = test::error_of([] { cpu::parse_gemm_backend("mkl"); });
  EXPECT_NE(bad_backend.find("FG_CPU_GEMM='mkl'"), std::string::npos) << bad_backend;
  EXPECT_NE(bad_backend.find("openblas"), std::string::npos) << bad_backend;
  const std::string bad_isa = test::error_of([] { cpu::parse_gemm_isa("sse9"); });
  EXPECT_NE(bad_isa.find("FG_CPU_KERNELS='sse9'"), std::string::npos) << bad_isa;
  EXPECT_EQ(bad_isa.find('\n'), std::string::npos) << "one line: " << bad_isa;
  // A path the CPU lacks is refused by name, never run.
  for (GemmIsa isa : {GemmIsa::AVX2, GemmIsa::AVX512}) {
    if (cpu::gemm_isa_supported(isa)) {
      EXPECT_EQ(cpu::parse_gemm_isa(cpu::gemm_isa_name(isa)), isa);
    } else {
      const std::string err = test::error_of([isa] { cpu::parse_gemm_isa(cpu::gemm_isa_name(isa)); });
      EXPECT_NE(err.find("this CPU cannot run the " + std::string(cpu::gemm_isa_name(isa))), std::string::npos) << err;
      EXPECT_NE(test::error_of([isa] { cpu::set_gemm_isa(isa); }), "");
    }
  }
}

TEST(Gemm, KernelNameSaysWhatRuns) {
  const GemmBackend saved_backend = cpu::gemm_backend();
  const GemmIsa saved_isa = cpu::gemm_isa();
  cpu::set_gemm_backend(GemmBackend::FILMGRAD);
  cpu::set_gemm_isa(GemmIsa::GENERIC);
  EXPECT_EQ(cpu::gemm_kernel_name(), "filmgrad generic (6x16 f32, 6x8 f64)");
  if (cpu::gemm_isa_supported(GemmIsa::AVX2)) {
    cpu::set_gemm_isa(GemmIsa::AVX2);
    EXPECT_EQ(cpu::gemm_kernel_name(), "filmgrad avx2 (6x16 f32, 6x8 f64)");
  }
  if (cpu::gemm_isa_supported(GemmIsa::AVX512)) {
    cpu::set_gemm_isa(GemmIsa::AVX512);
    EXPECT_EQ(cpu::gemm_kernel_name(), "filmgrad avx512 (14x32 f32, 14x16 f64)");
  }
  cpu::set_gemm_backend(GemmBackend::OPENBLAS);
  EXPECT_EQ(cpu::gemm_kernel_name().rfind("openblas (", 0), 0u) << cpu::gemm_kernel_name();
  cpu::set_gemm_backend(saved_backend);
  cpu::set_gemm_isa(saved_isa);
}

}  // namespace
}  // namespace fg
