// conv2d forward, backward-input and backward-weight on the GPU, every variant side by side on the layer shapes the
// two networks really run (SPEC.md): the ResNet34 encoder, bridge and Dynamic U-Net decoder, and the cross-channel
// U-Net's convolutions including its dilated blocks, at 64 px (batch 32), 128 px (batch 16) and 256 px (batch 8).
// Variants: cpu (f32, the OpenBLAS path; only below kCpuMaxFlops), direct_f32 (only below kDirectMaxFlops),
// implicit_gemm_f32, wmma_bf16, wmma_f16, cudnn_f32, cudnn_bf16. GPU variants are timed with CUDA events after
// kWarmup untimed runs (which also let cuDNN measure and cache its algorithm); every run includes the variant's own
// layout work (the channels-last copies of the hand-written kernels). Outputs are preallocated.
// Counters: FLOP/s (2*N*O*OH*OW*C*KH*KW per direction, padding taps included), bytes/s (the tensors each direction
// reads and writes once, at the variant's element size), pct_peak (f32 variants against the FP32-pipe peak, 16-bit
// ones against the dense tensor-core peak, cpu against the measured CPU FMA peak) and pct_bw (against the memory
// bandwidth); the peaks are in the JSON context (bench/cuda_peak.h). Without CUDA or without a GPU every GPU
// benchmark reports the reason through SkipWithError.
// Names: conv2d_<direction>/<variant>/<layer>@<px>/<N>x<C>x<H>x<W>-><O>,k<K>s<S>p<P>d<D>.
// Run: bench_cuda_conv2d --benchmark_out=conv.json --benchmark_out_format=json [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <omp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/peak.h"
#include "kernels/conv2d.h"
#include "tensor/philox.h"
#ifdef FG_WITH_CUDA
#include "bench/cuda_peak.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/vendor/cudnn_conv2d.h"
#include "tensor/cuda/context.h"
#endif

namespace {

using fg::DType;
using fg::Tensor;

constexpr double kCpuMaxFlops = 2.0e9;
constexpr double kDirectMaxFlops = 2.0e10;
constexpr int kWarmup = 3;

struct Layer {
  std::string name;  // "<layer>@<px>"
  int64_t N, C, H, W, O, K, stride, pad, dilation;
  double flops() const {
    const int64_t eff = dilation * (K - 1) + 1;
    const int64_t OH = (H + 2 * pad - eff) / stride + 1, OW = (W + 2 * pad - eff) / stride + 1;
    return 2.0 * double(N * O * OH * OW) * double(C * K * K);
  }
};

// The layers of both networks for an input of S x S pixels and batch B (sizes follow SPEC.md sections A and B).
std::vector<Layer> network_layers(int64_t S, int64_t B) {
  const std::string at = "@" + std::to_string(S);
  std::vector<Layer> v;
  const auto add = [&](const char* name, int64_t C, int64_t size, int64_t O, int64_t K, int64_t stride, int64_t pad,
                       int64_t dilation) {
    v.push_back({std::string(name) + at, B, C, size, size, O, K, stride, pad, dilation});
  };
  // ResNet34 encoder: conv1 7x7/2 -> S/2, maxpool -> S/4, layers 1-4 at S/4 .. S/32.
  add("r34.conv1", 3, S, 64, 7, 2, 3, 1);
  add("r34.layer1", 64, S / 4, 64, 3, 1, 1, 1);
  add("r34.layer2.0.conv1", 64, S / 4, 128, 3, 2, 1, 1);
  add("r34.layer2.0.downsample", 64, S / 4, 128, 1, 2, 0, 1);
  add("r34.layer2", 128, S / 8, 128, 3, 1, 1, 1);
  add("r34.layer3.0.conv1", 128, S / 8, 256, 3, 2, 1, 1);
  add("r34.layer3.0.downsample", 128, S / 8, 256, 1, 2, 0, 1);
  add("r34.layer3", 256, S / 16, 256, 3, 1, 1, 1);
  add("r34.layer4.0.conv1", 256, S / 16, 512, 3, 2, 1, 1);
  add("r34.layer4.0.downsample", 256, S / 16, 512, 1, 2, 0, 1);
  add("r34.layer4", 512, S / 32, 512, 3, 1, 1, 1);
  // Bridge and Dynamic U-Net decoder: UnetBlock(up_c, skip_c): shuf 1x1 up_c -> 2 up_c at the lower size, then
  // 3x3 convs of ni = up_c/2 + skip_c channels at twice the size; the last block halves ni.
  add("unet.bridge.conv1", 512, S / 32, 1024, 3, 1, 1, 1);
  add("unet.bridge.conv2", 1024, S / 32, 512, 3, 1, 1, 1);
  add("unet.block0.shuf", 512, S / 32, 1024, 1, 1, 0, 1);
  add("unet.block0.conv", 512, S / 16, 512, 3, 1, 1, 1);
  add("unet.block1.shuf", 512, S / 16, 1024, 1, 1, 0, 1);
  add("unet.block1.conv", 384, S / 8, 384, 3, 1, 1, 1);
  add("unet.block2.shuf", 384, S / 8, 768, 1, 1, 0, 1);
  add("unet.block2.conv", 256, S / 4, 256, 3, 1, 1, 1);
  add("unet.block3.shuf", 256, S / 4, 512, 1, 1, 0, 1);
  add("unet.block3.conv1", 192, S / 2, 96, 3, 1, 1, 1);
  add("unet.block3.conv2", 96, S / 2, 96, 3, 1, 1, 1);
  add("unet.last.shuf", 96, S / 2, 384, 1, 1, 0, 1);
  add("unet.res", 99, S, 99, 3, 1, 1, 1);
  add("unet.head", 99, S, 3, 1, 1, 0, 1);
  // Cross-channel U-Net (models/cross_channel.h): encoder blocks at S .. S/8, dilated blocks at S/16, decoder.
  add("xc.block0.conv1", 3, S, 64, 3, 1, 1, 1);
  add("xc.block0.conv", 64, S, 64, 3, 1, 1, 1);
  add("xc.block1.conv1", 64, S / 2, 128, 3, 1, 1, 1);
  add("xc.block1.conv", 128, S / 2, 128, 3, 1, 1, 1);
  add("xc.block2.conv1", 128, S / 4, 256, 3, 1, 1, 1);
  add("xc.block2.conv", 256, S / 4, 256, 3, 1, 1, 1);
  add("xc.block3.conv1", 256, S / 8, 512, 3, 1, 1, 1);
  add("xc.block3.conv", 512, S / 8, 512, 3, 1, 1, 1);
  add("xc.dilated", 512, S / 16, 512, 3, 1, 2, 2);
  add("xc.block6.conv1", 1024, S / 8, 512, 3, 1, 1, 1);
  add("xc.block6.conv3", 512, S / 8, 256, 3, 1, 1, 1);
  add("xc.block7.conv1", 512, S / 4, 256, 3, 1, 1, 1);
  add("xc.block7.conv3", 256, S / 4, 128, 3, 1, 1, 1);
  add("xc.block8.conv1", 256, S / 2, 128, 3, 1, 1, 1);
  add("xc.block8.conv3", 128, S / 2, 64, 3, 1, 1, 1);
  add("xc.block9.conv1", 128, S, 64, 3, 1, 1, 1);
  add("xc.block9.conv3", 64, S, 32, 3, 1, 1, 1);
  add("xc.out", 32, S, 1, 1, 1, 0, 1);
  return v;
}

enum class Direction { FORWARD, BACKWARD_INPUT, BACKWARD_WEIGHT };
enum class Variant { CPU, DIRECT_F32, IGEMM_F32, WMMA_BF16, WMMA_F16, CUDNN_F32, CUDNN_BF16 };

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::CPU:
      return "cpu";
    case Variant::DIRECT_F32:
      return "direct_f32";
    case Variant::IGEMM_F32:
      return "implicit_gemm_f32";
    case Variant::WMMA_BF16:
      return "wmma_bf16";
    case Variant::WMMA_F16:
      return "wmma_f16";
    case Variant::CUDNN_F32:
      return "cudnn_f32";
    case Variant::CUDNN_BF16:
      return "cudnn_bf16";
  }
  return "?";
}

#ifdef FG_WITH_CUDA
DType variant_dtype(Variant v) {
  if (v == Variant::WMMA_BF16 || v == Variant::CUDNN_BF16) return DType::BF16;
  if (v == Variant::WMMA_F16) return DType::F16;
  return DType::F32;
}
#endif

// Inputs and preallocated outputs of one layer in one dtype on one device.
struct Prepared {
  Tensor x, w, b, dy, y, dx, dw;
  fg::kernels::Conv2dGeometry g;
};

// The last layer's tensors, by dtype and device: benchmarks are registered layer by layer, so each layer's tensors
// are made once and dropped when the next layer starts (the 256 px layers are hundreds of MB each).
Prepared& prepared(const Layer& l, DType dt, fg::Device device) {
  static std::string current;
  static std::map<std::string, std::unique_ptr<Prepared>> cache;
  if (current != l.name) {
    cache.clear();
    current = l.name;
  }
  const std::string key = std::string(fg::dtype_name(dt)) + device.str();
  auto& slot = cache[key];
  if (!slot) {
    auto p = std::make_unique<Prepared>();
    p->g = {l.stride, l.stride, l.pad, l.pad, l.dilation, l.dilation};
    const auto [OH, OW] = fg::kernels::conv2d_output_size(l.H, l.W, l.K, l.K, p->g);
    fg::Generator gen(7);
    p->x = Tensor::empty({l.N, l.C, l.H, l.W}, dt, device);
    p->w = Tensor::empty({l.O, l.C, l.K, l.K}, dt, device);
    p->b = Tensor::empty({l.O}, dt, device);
    p->dy = Tensor::empty({l.N, l.O, OH, OW}, dt, device);
    for (Tensor* t : {&p->x, &p->w, &p->b, &p->dy}) fg::uniform_(*t, gen, -1.0, 1.0);
    p->y = Tensor::empty(p->dy.shape(), dt, device);
    p->dx = Tensor::empty(p->x.shape(), dt, device);
    p->dw = Tensor::empty(p->w.shape(), dt, device);
    slot = std::move(p);
  }
  return *slot;
}

double direction_bytes(const Prepared& p, Direction dir) {
  const double x = double(p.x.nbytes()), w = double(p.w.nbytes()), y = double(p.dy.nbytes());
  return dir == Direction::FORWARD ? x + w + y + double(p.b.nbytes()) : x + w + y;
}

void run_cpu(benchmark::State& state, const Layer& l, Direction dir) {
  static const double cpu_peak = fg::bench::measure_fma_peak(omp_get_max_threads());
  const Prepared& p = prepared(l, DType::F32, fg::Device::cpu());
  for (auto _ : state) {
    switch (dir) {
      case Direction::FORWARD:
        benchmark::DoNotOptimize(fg::kernels::conv2d_forward(p.x, p.w, p.b, p.g));
        break;
      case Direction::BACKWARD_INPUT:
        benchmark::DoNotOptimize(fg::kernels::conv2d_backward_input(p.dy, p.w, p.x.shape(), p.g));
        break;
      case Direction::BACKWARD_WEIGHT:
        benchmark::DoNotOptimize(fg::kernels::conv2d_backward_weight(p.dy, p.x, p.w.shape(), p.g));
        break;
    }
  }
  fg::bench::report_rates(state, l.flops(), direction_bytes(p, dir), cpu_peak);
}

void run_gpu(benchmark::State& state, const Layer& l, Direction dir, Variant v) {
#ifdef FG_WITH_CUDA
  if (fg::cuda::device_count() == 0) {
    state.SkipWithError("no CUDA device present");
    return;
  }
  const bool cudnn = v == Variant::CUDNN_F32 || v == Variant::CUDNN_BF16;
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
  using K = fg::cuda::Conv2dKernel;
  const K kernel = v == Variant::DIRECT_F32  ? K::CONV_DIRECT
                   : v == Variant::IGEMM_F32 ? K::CONV_IMPLICIT_GEMM_F32
                                             : K::CONV_WMMA;
  const auto op = [&] {
    switch (dir) {
      case Direction::FORWARD:
        if (cudnn)
          fg::vendor::conv2d_forward_into(p.y, p.x, p.w, p.b, p.g);
        else
          fg::cuda::conv2d_forward_into(p.y, p.x, p.w, p.b, p.g, kernel);
        break;
      case Direction::BACKWARD_INPUT:
        if (cudnn)
          fg::vendor::conv2d_backward_input_into(p.dx, p.dy, p.w, p.g);
        else
          fg::cuda::conv2d_backward_input_into(p.dx, p.dy, p.w, p.g, kernel);
        break;
      case Direction::BACKWARD_WEIGHT:
        if (cudnn)
          fg::vendor::conv2d_backward_weight_into(p.dw, p.dy, p.x, p.g);
        else
          fg::cuda::conv2d_backward_weight_into(p.dw, p.dy, p.x, p.g, kernel);
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
  fg::bench::report_gpu_rates(state, l.flops(), direction_bytes(p, dir), peak, peaks.bytes);
#else
  (void)l;
  (void)dir;
  (void)v;
  state.SkipWithError("filmgrad was built without CUDA");
#endif
}

std::string shape_name(const Layer& l) {
  return std::to_string(l.N) + "x" + std::to_string(l.C) + "x" + std::to_string(l.H) + "x" + std::to_string(l.W) +
         "->" + std::to_string(l.O) + ",k" + std::to_string(l.K) + "s" + std::to_string(l.stride) + "p" +
         std::to_string(l.pad) + "d" + std::to_string(l.dilation);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
  const struct {
    Direction dir;
    const char* name;
  } directions[] = {{Direction::FORWARD, "conv2d_forward"},
                    {Direction::BACKWARD_INPUT, "conv2d_backward_input"},
                    {Direction::BACKWARD_WEIGHT, "conv2d_backward_weight"}};
  const Variant variants[] = {Variant::CPU,      Variant::DIRECT_F32, Variant::IGEMM_F32, Variant::WMMA_BF16,
                              Variant::WMMA_F16, Variant::CUDNN_F32,  Variant::CUDNN_BF16};
  // 64 px at batch 32, 128 px at 16, 256 px at 8: the progressive-resizing schedule's shrinking batches.
  for (const auto& [size, batch] : {std::pair<int64_t, int64_t>{64, 32}, {128, 16}, {256, 8}}) {
    for (const Layer& l : network_layers(size, batch)) {
      for (const auto& d : directions) {
        for (Variant v : variants) {
          if (v == Variant::CPU && l.flops() > kCpuMaxFlops) continue;
          if (v == Variant::DIRECT_F32 && l.flops() > kDirectMaxFlops) continue;
          const std::string name = std::string(d.name) + "/" + variant_name(v) + "/" + l.name + "/" + shape_name(l);
          if (v == Variant::CPU) {
            benchmark::RegisterBenchmark(name.c_str(), run_cpu, l, d.dir)
                ->UseRealTime()
                ->MinTime(0.1)
                ->Unit(benchmark::kMillisecond);
          } else {
            benchmark::RegisterBenchmark(name.c_str(), run_gpu, l, d.dir, v)
                ->UseManualTime()
                ->MinTime(0.05)
                ->Unit(benchmark::kMillisecond);
          }
        }
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
