// The CPU GEMM on the shapes the convolutions really call it with: filmgrad's kernels (every path this CPU runs)
// against OpenBLAS, the twin. One single-threaded call per iteration, as conv2d makes them (each OpenMP thread
// calls the GEMM on its own tile), so the counters compare with the one-thread FMA peak.
//
// Shapes: the (trans_a, trans_b, M, N, K) of the gemm_blas calls that conv2d_forward (W x col: no transposes),
// conv2d_backward_input (W^T x dy: A transposed) and conv2d_backward_weight (dy x col^T: B transposed) make on the
// layers of bench/bench_conv2d.cpp at one thread, recorded by logging gemm_blas's arguments on 2026-12-07 (the
// column tiles come from conv2d's 1 MiB column budget, so N is the tile width, not the image size).
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

#include "bench/peak.h"
#include "kernels/cpu/gemm.h"
#include "kernels/matmul.h"

namespace {

using fg::cpu::GemmBackend;
using fg::cpu::GemmIsa;

struct Shape {
  const char* direction;
  const char* layer;
  bool ta, tb;
  int64_t M, N, K;
};

// The largest or most frequent tile of each layer (bench_conv2d.cpp's names).
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> table = {
      {"forward", "r34.conv1@256", false, false, 64, 1639, 147},
      {"forward", "r34.layer1", false, false, 64, 256, 576},
      {"forward", "r34.layer1@256", false, false, 64, 410, 576},
      {"forward", "r34.layer2", false, false, 128, 192, 1152},
      {"forward", "unet.block2.conv", false, false, 256, 128, 2304},
      {"forward", "xc.block512", false, false, 512, 128, 4608},
      {"forward", "r34.layer4", false, false, 512, 32, 4608},
      {"forward", "unet.block1.conv", false, false, 384, 128, 3456},
      {"forward", "unet.block3.conv1", false, false, 96, 147, 1728},
      {"forward", "unet.res@256", false, false, 99, 294, 891},
      {"forward", "unet.last.shuf", false, false, 384, 2048, 96},
      {"forward", "unet.head", false, false, 3, 2048, 99},
      {"backward_input", "r34.layer1", true, false, 576, 256, 64},
      {"backward_input", "unet.block2.conv", true, false, 2304, 128, 256},
      {"backward_input", "xc.block512", true, false, 4608, 128, 512},
      {"backward_input", "unet.block3.conv1", true, false, 1728, 147, 96},
      {"backward_input", "unet.res@256", true, false, 891, 294, 99},
      {"backward_weight", "r34.layer1", false, true, 64, 576, 256},
      {"backward_weight", "unet.block2.conv", false, true, 256, 2304, 128},
      {"backward_weight", "xc.block512", false, true, 512, 4608, 128},
      {"backward_weight", "unet.block3.conv1", false, true, 96, 1728, 147},
      {"backward_weight", "unet.res@256", false, true, 99, 891, 294},
  };
  return table;
}

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
  for (const Shape& s : shapes()) {
    for (const Impl& impl : impls) {
      const std::string name = "gemm/" + impl.name + "/" + s.direction + "/" + s.layer + "/" + std::to_string(s.M) +
                               "x" + std::to_string(s.N) + "x" + std::to_string(s.K);
      benchmark::RegisterBenchmark(name.c_str(), run, s, impl, peak)->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
