// Self-attention on the GPU (kernels/cuda/self_attention.h), forward and backward, every variant side by side on
// the shapes the networks use: the Dynamic U-Net's attention after UnetBlock 1 (384 channels, Ck = 48, at 1/8 of
// the input size: N = 8x8 at 64 px with batch 32, 16x16 at 128 px with batch 16, 32x32 at 256 px with batch 8) and
// the NoGAN critic's (1024 channels, Ck = 128, after the 4x4 stride-1 pad-1 conv on ResNet34's output: N = 3x3 at
// 128 px, 7x7 at 256 px, batch 8).
// Variants: cpu (f32, the OpenBLAS path; only below kCpuMaxFlops), default_f32 (the fused family on the SIMT GEMMs),
// default_bf16 and default_f16 (on the tensor-core GEMMs), naive_gemm_f32 (every GEMM one thread per output; only
// below kNaiveMaxFlops). GPU variants are timed with CUDA events after kWarmup untimed runs; outputs are
// preallocated.
// Counters: FLOP/s (multiply-adds count 2: the projections, the scores - twice, as the fused softmax recomputes them
// -, the weighted sum; backward: Q, D, df, dg, the weight gradients and dX; the softmax's exp and divide are not
// counted), pct_peak against the FP32-pipe peak (f32) or the dense tensor-core peak (16-bit), bytes/s over the
// tensors each direction reads and writes once (x, the weights, out, f, g, h, beta; backward also dO and dx), and
// pct_bw. Without CUDA or without a GPU every GPU benchmark reports the reason through SkipWithError.
// Names: attention_<direction>/<variant>/<use>@<px>/B<B>,C<C>,Ck<Ck>,N<H>x<W>.
// Run: bench_cuda_attention --benchmark_out=attention.json --benchmark_out_format=json [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <omp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/peak.h"
#include "kernels/self_attention.h"
#include "tensor/philox.h"
#ifdef FG_WITH_CUDA
#include "bench/cuda_peak.h"
#include "kernels/cuda/self_attention.h"
#include "tensor/cuda/context.h"
#endif

namespace {

using fg::DType;
using fg::Tensor;
using fg::kernels::SelfAttentionForward;
using fg::kernels::SelfAttentionGrads;

constexpr double kCpuMaxFlops = 2.0e9;
constexpr double kNaiveMaxFlops = 2.0e10;
constexpr int kWarmup = 3;

struct AttentionShape {
  std::string name;  // "<use>@<px>"
  int64_t B, C, Ck, H, W;
  int64_t N() const { return H * W; }
};

std::vector<AttentionShape> network_shapes() {
  return {{"unet.block1.attention@64", 32, 384, 48, 8, 8},
          {"unet.block1.attention@128", 16, 384, 48, 16, 16},
          {"unet.block1.attention@256", 8, 384, 48, 32, 32},
          {"critic.attention@128", 8, 1024, 128, 3, 3},
          {"critic.attention@256", 8, 1024, 128, 7, 7}};
}

enum class Direction { FORWARD, BACKWARD };
enum class Variant { CPU, DEFAULT_F32, DEFAULT_BF16, DEFAULT_F16, NAIVE_GEMM_F32 };

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::CPU:
      return "cpu";
    case Variant::DEFAULT_F32:
      return "default_f32";
    case Variant::DEFAULT_BF16:
      return "default_bf16";
    case Variant::DEFAULT_F16:
      return "default_f16";
    case Variant::NAIVE_GEMM_F32:
      return "naive_gemm_f32";
  }
  return "?";
}

[[maybe_unused]] DType variant_dtype(Variant v) {
  if (v == Variant::DEFAULT_BF16) return DType::BF16;
  if (v == Variant::DEFAULT_F16) return DType::F16;
  return DType::F32;
}

double flops_of(const AttentionShape& s, Direction d) {
  const double B = double(s.B), C = double(s.C), Ck = double(s.Ck), N = double(s.N());
  if (d == Direction::FORWARD) return 2 * B * N * C * (2 * Ck + C) + 2 * 2 * B * N * N * Ck + 2 * B * C * N * N;
  return 2 * 2 * B * C * N * N + 2 * 2 * B * Ck * N * N + 2 * 2 * B * N * C * (2 * Ck + C);
}

double bytes_of(const AttentionShape& s, Direction d, DType dt) {
  const double B = double(s.B), C = double(s.C), Ck = double(s.Ck), N = double(s.N());
  const double weights = (2 * Ck + C) * C, saved = B * ((2 * Ck + C) * N + N * N);
  const double x = B * C * N;
  const double elements = d == Direction::FORWARD ? x + weights + x + saved : 3 * x + 2 * weights + saved + 1;
  return elements * double(fg::dtype_size(dt));
}

struct Prepared {
  Tensor x, wq, wk, wv, gamma, dout;
  SelfAttentionForward fw;
  SelfAttentionGrads grads;
};

Prepared& prepared(const AttentionShape& s, DType dt, fg::Device device) {
  static std::string current;
  static std::map<std::string, std::unique_ptr<Prepared>> cache;
  if (current != s.name) {
    cache.clear();
    current = s.name;
  }
  auto& slot = cache[std::string(fg::dtype_name(dt)) + device.str()];
  if (!slot) {
    auto p = std::make_unique<Prepared>();
    fg::Generator gen(42);
    const int64_t N = s.N();
    p->x = Tensor::empty({s.B, s.C, N}, dt, device);
    p->dout = Tensor::empty({s.B, s.C, N}, dt, device);
    p->wq = Tensor::empty({s.Ck, s.C}, dt, device);
    p->wk = Tensor::empty({s.Ck, s.C}, dt, device);
    p->wv = Tensor::empty({s.C, s.C}, dt, device);
    fg::uniform_(p->x, gen, -1.0, 1.0);
    fg::uniform_(p->dout, gen, -1.0, 1.0);
    for (Tensor* w : {&p->wq, &p->wk, &p->wv}) fg::normal_(*w, gen, 0.0, 0.05);
    p->gamma = Tensor::full({1}, 0.5, dt, device);
    p->fw.out = Tensor::empty({s.B, s.C, N}, dt, device);
    p->fw.f = Tensor::empty({s.B, s.Ck, N}, dt, device);
    p->fw.g = Tensor::empty({s.B, s.Ck, N}, dt, device);
    p->fw.h = Tensor::empty({s.B, s.C, N}, dt, device);
    p->fw.beta = Tensor::empty({s.B, N, N}, dt, device).transpose(1, 2);
    p->grads.dx = Tensor::empty({s.B, s.C, N}, dt, device);
    p->grads.dwq = Tensor::empty({s.Ck, s.C}, dt, device);
    p->grads.dwk = Tensor::empty({s.Ck, s.C}, dt, device);
    p->grads.dwv = Tensor::empty({s.C, s.C}, dt, device);
    p->grads.dgamma = Tensor::empty({1}, dt, device);
    slot = std::move(p);
  }
  return *slot;
}

void run_cpu(benchmark::State& state, const AttentionShape& s, Direction dir) {
  static const double cpu_peak = fg::bench::measure_fma_peak(omp_get_max_threads());
  Prepared& p = prepared(s, DType::F32, fg::Device::cpu());
  const SelfAttentionForward fw = fg::kernels::self_attention_forward(p.x, p.wq, p.wk, p.wv, p.gamma);
  for (auto _ : state) {
    if (dir == Direction::FORWARD)
      benchmark::DoNotOptimize(fg::kernels::self_attention_forward(p.x, p.wq, p.wk, p.wv, p.gamma));
    else
      benchmark::DoNotOptimize(fg::kernels::self_attention_backward(p.dout, p.x, p.wq, p.wk, p.wv, p.gamma, fw));
  }
  fg::bench::report_rates(state, flops_of(s, dir), bytes_of(s, dir, DType::F32), cpu_peak);
}

void run_gpu(benchmark::State& state, const AttentionShape& s, Direction dir, Variant v) {
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
  using fg::kernels::cuda::AttentionKernel;
  const DType dt = variant_dtype(v);
  Prepared& p = prepared(s, dt, fg::Device::cuda(0));
  const AttentionKernel kernel =
      v == Variant::NAIVE_GEMM_F32 ? AttentionKernel::ATTENTION_NAIVE_GEMM : AttentionKernel::ATTENTION_DEFAULT;
  try {
    fg::kernels::cuda::self_attention_forward_into(p.fw, p.x, p.wq, p.wk, p.wv, p.gamma, kernel);
    fg::bench::time_with_events(state, 0, kWarmup, [&] {
      if (dir == Direction::FORWARD)
        fg::kernels::cuda::self_attention_forward_into(p.fw, p.x, p.wq, p.wk, p.wv, p.gamma, kernel);
      else
        fg::kernels::cuda::self_attention_backward_into(p.grads, p.dout, p.x, p.wq, p.wk, p.wv, p.gamma, p.fw, kernel);
    });
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  const double peak = dt == DType::F32 ? peaks.f32_flops : peaks.tensor_flops;
  fg::bench::report_gpu_rates(state, flops_of(s, dir), bytes_of(s, dir, dt), peak, peaks.bytes);
#else
  (void)s;
  (void)dir;
  (void)v;
  state.SkipWithError("filmgrad was built without CUDA");
#endif
}

std::string shape_name(const AttentionShape& s) {
  return "B" + std::to_string(s.B) + ",C" + std::to_string(s.C) + ",Ck" + std::to_string(s.Ck) + ",N" +
         std::to_string(s.H) + "x" + std::to_string(s.W);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
  const struct {
    Direction dir;
    const char* name;
  } directions[] = {{Direction::FORWARD, "attention_forward"}, {Direction::BACKWARD, "attention_backward"}};
  const Variant variants[] = {Variant::CPU, Variant::DEFAULT_F32, Variant::DEFAULT_BF16, Variant::DEFAULT_F16,
                              Variant::NAIVE_GEMM_F32};
  for (const AttentionShape& s : network_shapes()) {
    for (const auto& d : directions) {
      for (Variant v : variants) {
        const double flops = flops_of(s, d.dir);
        if (v == Variant::CPU && flops > kCpuMaxFlops) continue;
        if (v == Variant::NAIVE_GEMM_F32 && flops > kNaiveMaxFlops) continue;
        const std::string name = std::string(d.name) + "/" + variant_name(v) + "/" + s.name + "/" + shape_name(s);
        if (v == Variant::CPU) {
          benchmark::RegisterBenchmark(name.c_str(), run_cpu, s, d.dir)->UseRealTime()->Unit(benchmark::kMillisecond);
        } else {
          benchmark::RegisterBenchmark(name.c_str(), run_gpu, s, d.dir, v)
              ->UseManualTime()
              ->MinTime(0.05)
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
