// The CPU GEMM on the shapes the convolutions really call it with: filmgrad's kernels (every path this CPU runs)
// against OpenBLAS, the twin. One single-threaded call per iteration, as conv2d makes them (each OpenMP thread
// calls the GEMM on its own tile), so the counters compare with the one-thread FMA peak.
//
// Shapes: the gemm_blas calls conv2d makes on the layers of bench/bench_conv2d.cpp (apps/bench_suite.cpp's table,
// shared with `filmgrad bench`, says how they were recorded).
//
// Names: gemm/<impl>/<direction>/<layer>/<M>x<N>x<K>, impl = filmgrad-<isa> or openblas. The context records which
// core OpenBLAS picked (openblas_core); run with OPENBLAS_CORETYPE=Prescott to time the SSE3 kernels OpenBLAS
// falls back to on CPUs its table does not know (Debian's 0.3.21 on Sapphire Rapids).
// Counters: FLOP/s (2 M N K), bytes/s (A, B read and C written once), pct_peak (against the one-thread f32 FMA
// peak of bench/peak.h; f32 only).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <string>
#include <vector>

#include "apps/bench_suite.h"
#include "bench/peak.h"
#include "kernels/cpu/gemm.h"
#include "kernels/matmul.h"

namespace {

using fg::cpu::GemmBackend;
using fg::cpu::GemmIsa;

using Shape = fg::bench::GemmShape;

struct Impl {
  std::string name;
  GemmBackend backend;
  GemmIsa isa;
};

void run(benchmark::State& state, const Shape& s, const Impl& impl, double peak) {
  fg::cpu::set_gemm_backend(impl.backend);
  if (impl.backend == GemmBackend::FILMGRAD) fg::cpu::set_gemm_isa(impl.isa);
  const int64_t a_size = s.M * s.K, b_size = s.K * s.N, c_size = s.M * s.N;
  std::vector<float> A(static_cast<size_t>(a_size)), B(static_cast<size_t>(b_size)), C(static_cast<size_t>(c_size));
  for (int64_t i = 0; i < a_size; ++i) A[size_t(i)] = float((i * 7919) % 2003) / 1001.0f - 1.0f;
  for (int64_t i = 0; i < b_size; ++i) B[size_t(i)] = float((i * 104729) % 1999) / 999.0f - 1.0f;
  const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
  for (auto _ : state) {
    fg::cpu::gemm_blas(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), s.N);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
  fg::bench::report_rates(state, flops, 4.0 * double(a_size + b_size + c_size), peak);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const double peak = fg::bench::measure_fma_peak(1);
  benchmark::AddCustomContext("threads", "1");
  benchmark::AddCustomContext("fma_peak_flops", std::to_string(peak));
  benchmark::AddCustomContext("fma_isa", fg::bench::kFmaIsa);
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
  std::vector<Impl> impls;
  for (GemmIsa isa : {GemmIsa::AVX512, GemmIsa::AVX2, GemmIsa::GENERIC})
    if (fg::cpu::gemm_isa_supported(isa))
      impls.push_back({std::string("filmgrad-") + fg::cpu::gemm_isa_name(isa), GemmBackend::FILMGRAD, isa});
  impls.push_back({"openblas", GemmBackend::OPENBLAS, GemmIsa::GENERIC});
  for (const Shape& s : fg::bench::gemm_shapes()) {
    for (const Impl& impl : impls) {
      const std::string name = "gemm/" + impl.name + "/" + fg::bench::gemm_shape_name(s);
      benchmark::RegisterBenchmark(name.c_str(), run, s, impl, peak)->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
