// Matrix products and the Gram matrix on the GPU, every variant side by side:
//   gram_forward / gram_backward on the VGG16-BN feature maps of the style loss (SPEC.md: the ReLUs before each
//     max-pool, 64/128/256/512/512 channels at S, S/2, S/4, S/8, S/16) at 64 px (batch 32), 128 px (16), 256 px (8);
//   bmm on the Dynamic U-Net's self-attention (UnetBlock 1: 384 channels at S/8, n = (S/8)^2 positions): the scores
//     f^T g (n x n, inner C/8) and the output h beta (C x n, inner n);
//   matmul on square products (1024 .. 8192) in the three layouts training uses (NN, NT = A B^T, TN = A^T B), the
//     shapes on which the "70 % of cuBLAS" target is read.
// Variants: cpu (f32 OpenBLAS; only below kCpuMaxFlops), naive_f32 (only below kNaiveMaxFlops), tiled_f32,
// wmma_bf16, wmma_f16, cublas_f32, cublas_bf16. GPU variants are timed with CUDA events after kWarmup untimed runs,
// into preallocated outputs.
// Counters: FLOP/s (2*M*N*K per product; the Gram forward counts the C(C+1)/2 distinct dot products every variant
// must form, 2*N*C(C+1)/2*H*W, as bench/bench_loss.cpp does), bytes/s (operands read and results written once),
// pct_peak (f32 variants against the FP32-pipe peak, 16-bit against the dense tensor-core peak, cpu against the
// measured CPU FMA peak), pct_bw (against the memory bandwidth). Peaks: bench/cuda_peak.h, recorded in the JSON
// context. Without CUDA or a GPU every GPU benchmark reports the reason through SkipWithError.
// Run: bench_cuda_matmul --benchmark_out=matmul.json --benchmark_out_format=json [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <omp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/peak.h"
#include "kernels/gram.h"
#include "kernels/matmul.h"
#include "tensor/philox.h"
#ifdef FG_WITH_CUDA
#include "bench/cuda_peak.h"
#include "kernels/cuda/matmul.h"
#include "kernels/vendor/cublas_matmul.h"
#include "tensor/cuda/context.h"
#endif

namespace {

using fg::DType;
using fg::Tensor;

constexpr double kCpuMaxFlops = 4.0e9;
constexpr double kNaiveMaxFlops = 2.0e10;
constexpr int kWarmup = 3;

enum class Kind { GRAM_FORWARD, GRAM_BACKWARD, BMM };

struct Problem {
  std::string name;
  Kind kind;
  // Gram: x (batch, C, H, W). bmm: (batch, M, K) x (batch, K, N), with the transposes.
  int64_t batch, C, H, W;
  int64_t M, N, K;
  bool trans_a, trans_b;

  double flops() const {
    if (kind == Kind::GRAM_FORWARD) return double(batch) * double(C) * double(C + 1) * double(H * W);
    if (kind == Kind::GRAM_BACKWARD) return 2.0 * double(batch) * double(C) * double(C) * double(H * W);
    return 2.0 * double(batch) * double(M) * double(N) * double(K);
  }
  std::string shape() const {
    if (kind != Kind::BMM)
      return std::to_string(batch) + "x" + std::to_string(C) + "x" + std::to_string(H) + "x" + std::to_string(W);
    return std::to_string(batch) + "x" + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) +
           (trans_a ? "T" : "N") + (trans_b ? "T" : "N");
  }
};

std::vector<Problem> problems() {
  std::vector<Problem> v;
  for (const auto& [S, B] : {std::pair<int64_t, int64_t>{64, 32}, {128, 16}, {256, 8}}) {
    const std::string at = "@" + std::to_string(S);
    const struct {
      const char* name;
      int64_t C, size;
    } vgg[] = {{"vgg.relu1_2", 64, S},
               {"vgg.relu2_2", 128, S / 2},
               {"vgg.relu3_3", 256, S / 4},
               {"vgg.relu4_3", 512, S / 8},
               {"vgg.relu5_3", 512, S / 16}};
    for (const auto& l : vgg) {
      v.push_back({std::string("gram_forward/") + l.name + at, Kind::GRAM_FORWARD, B, l.C, l.size, l.size, 0, 0, 0,
                   false, false});
      v.push_back({std::string("gram_backward/") + l.name + at, Kind::GRAM_BACKWARD, B, l.C, l.size, l.size, 0, 0, 0,
                   false, false});
    }
    // Self-attention of UnetBlock 1 (C = 384 at S/8): scores (n x n) = f^T g with f, g (C/8, n); out (C, n) = h beta.
    const int64_t n = (S / 8) * (S / 8), C = 384;
    v.push_back({"bmm/attention.scores" + at, Kind::BMM, B, 0, 0, 0, n, n, C / 8, true, false});
    v.push_back({"bmm/attention.out" + at, Kind::BMM, B, 0, 0, 0, C, n, n, false, false});
  }
  for (int64_t s : {1024, 2048, 4096, 8192}) {
    v.push_back({"matmul/square", Kind::BMM, 1, 0, 0, 0, s, s, s, false, false});
    if (s == 4096) {
      v.push_back({"matmul/square", Kind::BMM, 1, 0, 0, 0, s, s, s, false, true});
      v.push_back({"matmul/square", Kind::BMM, 1, 0, 0, 0, s, s, s, true, false});
    }
  }
  return v;
}

enum class Variant { CPU, NAIVE_F32, TILED_F32, WMMA_BF16, WMMA_F16, CUBLAS_F32, CUBLAS_BF16 };

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::CPU:
      return "cpu";
    case Variant::NAIVE_F32:
      return "naive_f32";
    case Variant::TILED_F32:
      return "tiled_f32";
    case Variant::WMMA_BF16:
      return "wmma_bf16";
    case Variant::WMMA_F16:
      return "wmma_f16";
    case Variant::CUBLAS_F32:
      return "cublas_f32";
    case Variant::CUBLAS_BF16:
      return "cublas_bf16";
  }
  return "?";
}

#ifdef FG_WITH_CUDA
DType variant_dtype(Variant v) {
  if (v == Variant::WMMA_BF16 || v == Variant::CUBLAS_BF16) return DType::BF16;
  if (v == Variant::WMMA_F16) return DType::F16;
  return DType::F32;
}
#endif

// Inputs and preallocated outputs of one problem in one dtype on one device: a, b, out for bmm; x, grad (the
// Gram gradient), out for the Gram matrix.
struct Prepared {
  Tensor a, b, out;
};

Prepared& prepared(const Problem& p, DType dt, fg::Device device) {
  static std::string current;
  static std::map<std::string, std::unique_ptr<Prepared>> cache;
  const std::string problem_key = p.name + p.shape();
  if (current != problem_key) {
    cache.clear();
    current = problem_key;
  }
  auto& slot = cache[std::string(fg::dtype_name(dt)) + device.str()];
  if (!slot) {
    auto t = std::make_unique<Prepared>();
    fg::Generator gen(11);
    if (p.kind == Kind::BMM) {
      t->a = Tensor::empty(p.trans_a ? fg::Shape{p.batch, p.K, p.M} : fg::Shape{p.batch, p.M, p.K}, dt, device);
      t->b = Tensor::empty(p.trans_b ? fg::Shape{p.batch, p.N, p.K} : fg::Shape{p.batch, p.K, p.N}, dt, device);
      t->out = Tensor::empty({p.batch, p.M, p.N}, dt, device);
    } else {
      t->a = Tensor::empty({p.batch, p.C, p.H, p.W}, dt, device);
      t->b = Tensor::empty({p.batch, p.C, p.C}, dt, device);
      t->out = p.kind == Kind::GRAM_FORWARD ? Tensor::empty({p.batch, p.C, p.C}, dt, device)
                                            : Tensor::empty({p.batch, p.C, p.H, p.W}, dt, device);
    }
    fg::uniform_(t->a, gen, -1.0, 1.0);
    fg::uniform_(t->b, gen, -1.0, 1.0);
    slot = std::move(t);
  }
  return *slot;
}

double problem_bytes(const Problem& p, const Prepared& t) {
  const double a = double(t.a.nbytes()), b = double(t.b.nbytes()), out = double(t.out.nbytes());
  if (p.kind == Kind::GRAM_FORWARD) return a + out;
  return a + b + out;
}

void run_cpu(benchmark::State& state, const Problem& p) {
  static const double cpu_peak = fg::bench::measure_fma_peak(omp_get_max_threads());
  Prepared& t = prepared(p, DType::F32, fg::Device::cpu());
  for (auto _ : state) {
    switch (p.kind) {
      case Kind::GRAM_FORWARD:
        benchmark::DoNotOptimize(fg::kernels::gram_matrix(t.a));
        break;
      case Kind::GRAM_BACKWARD:
        benchmark::DoNotOptimize(fg::kernels::gram_matrix_backward(t.b, t.a));
        break;
      case Kind::BMM:
        benchmark::DoNotOptimize(fg::kernels::bmm(t.a, t.b, p.trans_a, p.trans_b));
        break;
    }
  }
  fg::bench::report_rates(state, p.flops(), problem_bytes(p, t), cpu_peak);
}

void run_gpu(benchmark::State& state, const Problem& p, Variant v) {
#ifdef FG_WITH_CUDA
  if (fg::cuda::device_count() == 0) {
    state.SkipWithError("no CUDA device present");
    return;
  }
  static const fg::bench::GpuPeaks peaks = [] {
    const fg::bench::GpuPeaks g = fg::bench::gpu_peaks(0);
    fg::bench::add_gpu_context(g);
    return g;
  }();
  const DType dt = variant_dtype(v);
  Prepared& t = prepared(p, dt, fg::Device::cuda(0));
  const bool cublas = v == Variant::CUBLAS_F32 || v == Variant::CUBLAS_BF16;
  using K = fg::cuda::MatmulKernel;
  const K kernel = v == Variant::NAIVE_F32   ? K::MATMUL_NAIVE
                   : v == Variant::TILED_F32 ? K::MATMUL_TILED_F32
                                             : K::MATMUL_WMMA;
  const auto op = [&] {
    switch (p.kind) {
      case Kind::GRAM_FORWARD:
        if (cublas)
          fg::vendor::gram_matrix_into(t.out, t.a);
        else
          fg::cuda::gram_matrix_into(t.out, t.a, kernel);
        break;
      case Kind::GRAM_BACKWARD:
        if (cublas)
          fg::vendor::gram_matrix_backward_into(t.out, t.b, t.a);
        else
          fg::cuda::gram_matrix_backward_into(t.out, t.b, t.a, kernel);
        break;
      case Kind::BMM:
        if (cublas)
          fg::vendor::bmm_into(t.out, t.a, t.b, p.trans_a, p.trans_b);
        else
          fg::cuda::bmm_into(t.out, t.a, t.b, p.trans_a, p.trans_b, kernel);
        break;
    }
  };
  try {
    fg::bench::time_with_events(state, 0, kWarmup, op);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  const double peak = dt == DType::F32 ? peaks.f32_flops : peaks.tensor_flops;
  fg::bench::report_gpu_rates(state, p.flops(), problem_bytes(p, t), peak, peaks.bytes);
#else
  (void)p;
  (void)v;
  state.SkipWithError("filmgrad was built without CUDA");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
  const Variant variants[] = {Variant::CPU,      Variant::NAIVE_F32,  Variant::TILED_F32,  Variant::WMMA_BF16,
                              Variant::WMMA_F16, Variant::CUBLAS_F32, Variant::CUBLAS_BF16};
  for (const Problem& p : problems()) {
    for (Variant v : variants) {
      if (v == Variant::CPU && p.flops() > kCpuMaxFlops) continue;
      if (v == Variant::NAIVE_F32 && p.flops() > kNaiveMaxFlops) continue;
      // "<op>/<layer>" then the variant, then the shape: gram_forward/wmma_bf16/vgg.relu1_2@64/32x64x64x64.
      const size_t slash = p.name.find('/');
      const std::string name =
          p.name.substr(0, slash) + "/" + variant_name(v) + "/" + p.name.substr(slash + 1) + "/" + p.shape();
      if (v == Variant::CPU) {
        benchmark::RegisterBenchmark(name.c_str(), run_cpu, p)
            ->UseRealTime()
            ->MinTime(0.1)
            ->Unit(benchmark::kMillisecond);
      } else {
        benchmark::RegisterBenchmark(name.c_str(), run_gpu, p, v)
            ->UseManualTime()
            ->MinTime(0.05)
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
