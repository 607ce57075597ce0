// Batched f32 matrix products on the shapes the networks run: the SAGAN self-attention of UnetBlock 1 (384 channels,
// N = H*W positions; 32x32 at a 256 px input, 8x8 at 64 px) and the Gram matrices of the style loss on VGG16-BN's
// five feature layers (X X^T / chw with X = (c, h*w)), batch 8. BLAS on every shape, the plain loop on the small ones.
// Counters as in bench_conv2d: FLOP/s (2*B*M*N*K), bytes/s (operands read once, result written once), pct_peak
// against the startup-measured FMA peak of OMP_NUM_THREADS threads (bench/peak.h).
// Names: bmm/<algo>/<use>/B<b>_M<m>_K<k>_N<n>[_ta][_tb][_shared_a].
#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>
#include <vector>

#include "bench/peak.h"
#include "kernels/matmul.h"
#include "tensor/philox.h"

namespace {

using fg::Tensor;
using fg::kernels::MatmulAlgo;

struct Product {
  const char* name;
  int64_t B, M, K, N;
  bool trans_a, trans_b;
  bool shared_a;  // one (M, K) weight matrix expanded over the batch (a 1x1 projection)
};

const std::vector<Product>& products() {
  static const std::vector<Product> table = {
      // self-attention, C = 384, C/8 = 48, N = 32*32 = 1024 (256 px input)
      {"attn.query_key_proj", 8, 48, 384, 1024, false, false, true},  // f = Wq x: (C/8, C) (C, N)
      {"attn.value_proj", 8, 384, 384, 1024, false, false, true},     // h = Wv x: (C, C) (C, N)
      {"attn.scores", 8, 1024, 48, 1024, true, false, false},         // f^T g: (N, C/8) (C/8, N)
      {"attn.apply", 8, 384, 1024, 1024, false, false, false},        // h beta: (C, N) (N, N)
      {"attn.apply_grad_beta", 8, 1024, 384, 1024, true, false, false},  // h^T dout: (N, C) (C, N)
      {"attn.apply_grad_h", 8, 384, 1024, 1024, false, true, false},     // dout beta^T: (C, N) (N, N)
      // the same at 64 px (N = 8*8 = 64)
      {"attn.scores@64", 8, 64, 48, 64, true, false, false},
      {"attn.apply@64", 8, 384, 64, 64, false, false, false},
      // Gram matrices of VGG16-BN features at 256 px: X (c, h*w) times X^T
      {"gram.relu1_2", 8, 64, 65536, 64, false, true, false},
      {"gram.relu2_2", 8, 128, 16384, 128, false, true, false},
      {"gram.relu3_3", 8, 256, 4096, 256, false, true, false},
      {"gram.relu4_3", 8, 512, 1024, 512, false, true, false},
      {"gram.relu5_3", 8, 512, 256, 512, false, true, false},
      // and at 64 px
      {"gram.relu3_3@64", 8, 256, 256, 256, false, true, false},
      {"gram.relu5_3@64", 8, 512, 16, 512, false, true, false},
  };
  return table;
}

constexpr double kPlainMaxFlops = 2.0e8;

double flops_of(const Product& p) { return 2.0 * double(p.B) * double(p.M) * double(p.N) * double(p.K); }

void run(benchmark::State& state, const Product& p, MatmulAlgo algo, double peak) {
  fg::Generator gen(11);
  Tensor a = p.shared_a ? Tensor::empty({1, p.M, p.K})
                        : (p.trans_a ? Tensor::empty({p.B, p.K, p.M}) : Tensor::empty({p.B, p.M, p.K}));
  Tensor b = p.trans_b ? Tensor::empty({p.B, p.N, p.K}) : Tensor::empty({p.B, p.K, p.N});
  fg::uniform_(a, gen, -1.0, 1.0);
  fg::uniform_(b, gen, -1.0, 1.0);
  if (p.shared_a) a = a.expand({p.B, p.M, p.K});
  for (auto _ : state) benchmark::DoNotOptimize(fg::kernels::bmm(a, b, p.trans_a, p.trans_b, algo));
  const double bytes = 4.0 * (double((p.shared_a ? 1 : p.B) * p.M * p.K) + double(p.B * p.K * p.N) +
                              double(p.B * p.M * p.N));
  fg::bench::report_rates(state, flops_of(p), bytes, peak);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const int threads = omp_get_max_threads();
  const double peak = fg::bench::measure_fma_peak(threads);
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("fma_peak_flops", std::to_string(peak));
  benchmark::AddCustomContext("fma_isa", fg::bench::kFmaIsa);
  for (const Product& p : products()) {
    for (MatmulAlgo algo : {MatmulAlgo::BLAS, MatmulAlgo::PLAIN}) {
      if (algo == MatmulAlgo::PLAIN && flops_of(p) > kPlainMaxFlops) continue;
      const std::string name = std::string("bmm/") + (algo == MatmulAlgo::BLAS ? "blas/" : "plain/") + p.name + "/B" +
                               std::to_string(p.B) + "_M" + std::to_string(p.M) + "_K" + std::to_string(p.K) + "_N" +
                               std::to_string(p.N) + (p.trans_a ? "_ta" : "") + (p.trans_b ? "_tb" : "") +
                               (p.shared_a ? "_shared_a" : "");
      benchmark::RegisterBenchmark(name.c_str(), run, p, algo, peak)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
