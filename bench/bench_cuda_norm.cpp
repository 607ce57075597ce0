// Batch normalisation on the GPU, every variant side by side on the BatchNorm layers the two networks really run
// (SPEC.md): ResNet34's (bn1, and one per stage), the Dynamic U-Net's bridge and skip BatchNorms, and the
// cross-channel U-Net's per-block BatchNorms, at 64 px (batch 32), 128 px (batch 16) and 256 px (batch 8).
// Directions: training forward (statistics, running update, normalisation), eval forward (normalisation from the
// running statistics) and training backward (dx, dweight, dbias).
// Variants: cpu (f32, only below kCpuMaxElements), cuda_f32 / cuda_bf16 / cuda_f16 (kernels/cuda/batch_norm.h),
// cudnn_f32 / cudnn_bf16 / cudnn_f16 (kernels/vendor/cudnn_batch_norm.h: the training forward is cuDNN's single
// ForwardTraining call). GPU variants are timed with CUDA events after kWarmup untimed runs; outputs are preallocated.
// Counters: bytes/s over the passes the algorithm must make over the tensor (training forward: x read for the
// statistics, then x read and y written = 3 tensors; eval forward: 2; training backward: dy and x read for the sums,
// then dy and x read and dx written = 5), at the variant's element size, and pct_bw against the memory bandwidth
// (the issue's target: >= 85 % on an H100); FLOP/s counts the arithmetic per element (training forward 7, eval 3,
// backward 9; small by design: this op is memory-bound). The peaks are in the JSON context (bench/cuda_peak.h).
// Without CUDA or without a GPU every GPU benchmark reports the reason through SkipWithError.
// Names: bn_<direction>/<variant>/<layer>@<px>/<N>x<C>x<H>x<W>.
// Run: bench_cuda_norm --benchmark_out=norm.json --benchmark_out_format=json [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <omp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/peak.h"
#include "kernels/batch_norm.h"
#include "tensor/philox.h"
#ifdef FG_WITH_CUDA
#include "bench/cuda_peak.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/vendor/cudnn_batch_norm.h"
#include "kernels/vendor/cudnn_conv2d.h"
#include "tensor/cuda/context.h"
#endif

namespace {

using fg::DType;
using fg::Tensor;
using fg::kernels::BatchNormGrads;
using fg::kernels::BatchNormStats;

constexpr int64_t kCpuMaxElements = 4 << 20;
constexpr int kWarmup = 3;
constexpr double kEps = 1e-5, kMomentum = 0.1;

struct Layer {
  std::string name;  // "<layer>@<px>"
  int64_t N, C, H, W;
  int64_t numel() const { return N * C * H * W; }
};

// The BatchNorm layers of both networks for an input of S x S pixels and batch B.
std::vector<Layer> network_layers(int64_t S, int64_t B) {
  const std::string at = "@" + std::to_string(S);
  std::vector<Layer> v;
  const auto add = [&](const char* name, int64_t C, int64_t size) {
    v.push_back({std::string(name) + at, B, C, size, size});
  };
  // ResNet34: bn1 after the 7x7/2 conv, then the BatchNorms of layers 1-4.
  add("r34.bn1", 64, S / 2);
  add("r34.layer1.bn", 64, S / 4);
  add("r34.layer2.bn", 128, S / 8);
  add("r34.layer3.bn", 256, S / 16);
  add("r34.layer4.bn", 512, S / 32);
  // Dynamic U-Net: the bridge's BatchNorm and the skip connections' BatchNorms of UnetBlocks 0-3.
  add("unet.bridge.bn", 512, S / 32);
  add("unet.block0.skip_bn", 256, S / 16);
  add("unet.block1.skip_bn", 128, S / 8);
  add("unet.block2.skip_bn", 64, S / 4);
  add("unet.block3.skip_bn", 64, S / 2);
  // Cross-channel U-Net: one BatchNorm per block, encoder, dilated blocks and decoder.
  add("xc.block0.bn", 64, S);
  add("xc.block1.bn", 128, S / 2);
  add("xc.block2.bn", 256, S / 4);
  add("xc.block3.bn", 512, S / 8);
  add("xc.dilated.bn", 512, S / 16);
  add("xc.block6.bn", 256, S / 8);
  add("xc.block7.bn", 128, S / 4);
  add("xc.block8.bn", 64, S / 2);
  add("xc.block9.bn", 32, S);
  return v;
}

enum class Direction { FORWARD_TRAIN, FORWARD_EVAL, BACKWARD_TRAIN };
enum class Variant { CPU, CUDA_F32, CUDA_BF16, CUDA_F16, CUDNN_F32, CUDNN_BF16, CUDNN_F16 };

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::CPU:
      return "cpu";
    case Variant::CUDA_F32:
      return "cuda_f32";
    case Variant::CUDA_BF16:
      return "cuda_bf16";
    case Variant::CUDA_F16:
      return "cuda_f16";
    case Variant::CUDNN_F32:
      return "cudnn_f32";
    case Variant::CUDNN_BF16:
      return "cudnn_bf16";
    case Variant::CUDNN_F16:
      return "cudnn_f16";
  }
  return "?";
}

[[maybe_unused]] DType variant_dtype(Variant v) {
  if (v == Variant::CUDA_BF16 || v == Variant::CUDNN_BF16) return DType::BF16;
  if (v == Variant::CUDA_F16 || v == Variant::CUDNN_F16) return DType::F16;
  return DType::F32;
}

[[maybe_unused]] bool is_cudnn(Variant v) {
  return v == Variant::CUDNN_F32 || v == Variant::CUDNN_BF16 || v == Variant::CUDNN_F16;
}

double tensors_moved(Direction d) {
  return d == Direction::FORWARD_TRAIN ? 3.0 : d == Direction::FORWARD_EVAL ? 2.0 : 5.0;
}
double flops_per_element(Direction d) {
  return d == Direction::FORWARD_TRAIN ? 7.0 : d == Direction::FORWARD_EVAL ? 3.0 : 9.0;
}

// Inputs and preallocated outputs of one layer in one dtype on one device.
struct Prepared {
  Tensor x, dy, y, dx, w, b, running_mean, running_var, dw, db;
  BatchNormStats stats;
};

// The last layer's tensors, by dtype and device (made once per layer; the 256 px layers are large).
Prepared& prepared(const Layer& l, DType dt, fg::Device device) {
  static std::string current;
  static std::map<std::string, std::unique_ptr<Prepared>> cache;
  if (current != l.name) {
    cache.clear();
    current = l.name;
  }
  auto& slot = cache[std::string(fg::dtype_name(dt)) + device.str()];
  if (!slot) {
    auto p = std::make_unique<Prepared>();
    fg::Generator gen(11);
    const fg::Shape shape = {l.N, l.C, l.H, l.W};
    p->x = Tensor::empty(shape, dt, device);
    p->dy = Tensor::empty(shape, dt, device);
    p->w = Tensor::empty({l.C}, dt, device);
    p->b = Tensor::empty({l.C}, dt, device);
    for (Tensor* t : {&p->x, &p->dy, &p->w, &p->b}) fg::uniform_(*t, gen, -1.0, 1.0);
    p->running_mean = Tensor::zeros({l.C}, dt, device);
    p->running_var = Tensor::ones({l.C}, dt, device);
    p->y = Tensor::empty(shape, dt, device);
    p->dx = Tensor::empty(shape, dt, device);
    p->dw = Tensor::empty({l.C}, dt, device);
    p->db = Tensor::empty({l.C}, dt, device);
    p->stats = {Tensor::empty({l.C}, dt, device), Tensor::empty({l.C}, dt, device)};
    slot = std::move(p);
  }
  return *slot;
}

void run_cpu(benchmark::State& state, const Layer& l, Direction dir) {
  static const double cpu_peak = fg::bench::measure_fma_peak(omp_get_max_threads());
  Prepared& p = prepared(l, DType::F32, fg::Device::cpu());
  p.stats = fg::kernels::batch_norm_batch_stats(p.x, kEps, Tensor(), Tensor(), kMomentum);
  for (auto _ : state) {
    switch (dir) {
      case Direction::FORWARD_TRAIN: {
        const BatchNormStats st =
            fg::kernels::batch_norm_batch_stats(p.x, kEps, p.running_mean, p.running_var, kMomentum);
        benchmark::DoNotOptimize(fg::kernels::batch_norm_forward(p.x, st, p.w, p.b));
        break;
      }
      case Direction::FORWARD_EVAL:
        benchmark::DoNotOptimize(fg::kernels::batch_norm_forward(p.x, p.stats, p.w, p.b));
        break;
      case Direction::BACKWARD_TRAIN:
        benchmark::DoNotOptimize(fg::kernels::batch_norm_backward(p.dy, p.x, p.stats, p.w, true, true, true, true));
        break;
    }
  }
  const double n = double(l.numel());
  fg::bench::report_rates(state, n * flops_per_element(dir), n * 4.0 * tensors_moved(dir), cpu_peak);
}

void run_gpu(benchmark::State& state, const Layer& l, Direction dir, Variant v) {
#ifdef FG_WITH_CUDA
  if (fg::cuda::device_count() == 0) {
    state.SkipWithError("no CUDA device present");
    return;
  }
  const bool cudnn = is_cudnn(v);
  if (cudnn && !fg::vendor::cudnn_available()) {
    state.SkipWithError("filmgrad was built without cuDNN");
    return;
  }
  static const fg::bench::GpuPeaks peaks = [] {
    const fg::bench::GpuPeaks g = fg::bench::gpu_peaks(0);
    fg::bench::add_gpu_context(g);
    return g;
  }();
  const DType dt = variant_dtype(v);
  Prepared& p = prepared(l, dt, fg::Device::cuda(0));
  namespace fk = fg::kernels::cuda;
  BatchNormGrads grads;
  grads.input = p.dx;
  grads.weight = p.dw;
  grads.bias = p.db;
  const auto op = [&] {
    switch (dir) {
      case Direction::FORWARD_TRAIN:
        if (cudnn) {
          fg::vendor::batch_norm_forward_training_into(p.y, p.stats, p.x, p.w, p.b, kEps, p.running_mean, p.running_var,
                                                       kMomentum);
        } else {
          fk::batch_norm_batch_stats_into(p.stats, p.x, kEps, p.running_mean, p.running_var, kMomentum);
          fk::batch_norm_forward_into(p.y, p.x, p.stats, p.w, p.b);
        }
        break;
      case Direction::FORWARD_EVAL:
        if (cudnn)
          fg::vendor::batch_norm_forward_into(p.y, p.x, p.stats, p.w, p.b);
        else
          fk::batch_norm_forward_into(p.y, p.x, p.stats, p.w, p.b);
        break;
      case Direction::BACKWARD_TRAIN:
        if (cudnn)
          fg::vendor::batch_norm_backward_into(grads, p.dy, p.x, p.stats, p.w);
        else
          fk::batch_norm_backward_into(grads, p.dy, p.x, p.stats, p.w, true);
        break;
    }
  };
  try {
    // Statistics to normalise and differentiate with, from one training step.
    fk::batch_norm_batch_stats_into(p.stats, p.x, kEps, Tensor(), Tensor(), kMomentum);
    fg::bench::time_with_events(state, 0, kWarmup, op);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  const double n = double(l.numel()), bytes = n * double(fg::dtype_size(dt)) * tensors_moved(dir);
  fg::bench::report_gpu_rates(state, n * flops_per_element(dir), bytes, peaks.f32_flops, peaks.bytes);
#else
  (void)l;
  (void)dir;
  (void)v;
  state.SkipWithError("filmgrad was built without CUDA");
#endif
}

std::string shape_name(const Layer& l) {
  return std::to_string(l.N) + "x" + std::to_string(l.C) + "x" + std::to_string(l.H) + "x" + std::to_string(l.W);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
  const struct {
    Direction dir;
    const char* name;
  } directions[] = {{Direction::FORWARD_TRAIN, "bn_forward_train"},
                    {Direction::FORWARD_EVAL, "bn_forward_eval"},
                    {Direction::BACKWARD_TRAIN, "bn_backward_train"}};
  const Variant variants[] = {Variant::CPU,       Variant::CUDA_F32,   Variant::CUDA_BF16, Variant::CUDA_F16,
                              Variant::CUDNN_F32, Variant::CUDNN_BF16, Variant::CUDNN_F16};
  for (const auto& [size, batch] : {std::pair<int64_t, int64_t>{64, 32}, {128, 16}, {256, 8}}) {
    for (const Layer& l : network_layers(size, batch)) {
      for (const auto& d : directions) {
        for (Variant v : variants) {
          if (v == Variant::CPU && l.numel() > kCpuMaxElements) continue;
          const std::string name = std::string(d.name) + "/" + variant_name(v) + "/" + l.name + "/" + shape_name(l);
          if (v == Variant::CPU) {
            benchmark::RegisterBenchmark(name.c_str(), run_cpu, l, d.dir)->UseRealTime()->Unit(benchmark::kMicrosecond);
          } else {
            benchmark::RegisterBenchmark(name.c_str(), run_gpu, l, d.dir, v)
                ->UseManualTime()
                ->MinTime(0.05)
                ->Unit(benchmark::kMicrosecond);
          }
        }
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
