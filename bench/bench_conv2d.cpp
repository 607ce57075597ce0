// conv2d forward, backward-input and backward-weight (f32) on the layer shapes the two networks really run:
// ResNet34 encoder, bridge and Dynamic U-Net decoder at 64 px (batch 8) and some of them at 128 and 256 px, and the
// cross-channel U-Net's 3x3 blocks and dilated bottleneck. The GEMM path runs on every shape, the plain loops only
// on the smallest (they are 20-100x slower).
// Counters: FLOP/s (2*N*O*OH*OW*C*KH*KW per direction, padding taps included, as every framework counts them),
// bytes/s (the tensors each direction must read and write once), pct_peak (against the f32 FMA peak of as many
// threads as OMP_NUM_THREADS gives, measured at startup by bench/peak.h and recorded in the context as
// fma_peak_flops). Names: conv2d_<direction>/<algo>/<layer>/<N>x<C>x<H>x<W>-><O>,k<K>s<S>p<P>d<D>.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>
#include <vector>

#include "bench/peak.h"
#include "kernels/conv2d.h"
#include "tensor/philox.h"

namespace {

using fg::Tensor;
using fg::kernels::Conv2dAlgo;

struct Layer {
  const char* name;
  int64_t N, C, H, W, O, K, stride, pad, dilation;
};

// Shapes derived from SPEC.md section B at a 64 px input (the table there is for 256 px; every size is /4):
// encoder 64 -> conv1 32 -> maxpool 16 (layer1) -> 8 (layer2) -> 4 (layer3) -> 2 (layer4, bridge); UnetBlock i
// takes up_c channels at the lower size, PixelShuffle_ICNR's 1x1 conv makes 2*up_c there, the shuffle doubles
// the size with up_c/2 channels, the skip adds skip_c: ni = up_c/2 + skip_c, two 3x3 convs ni -> ni (the last
// block ni -> ni/2).
const std::vector<Layer>& layers() {
  static const std::vector<Layer> table = {
      // ResNet34 encoder, 64 px, batch 8
      {"r34.conv1", 8, 3, 64, 64, 64, 7, 2, 3, 1},
      {"r34.layer1", 8, 64, 16, 16, 64, 3, 1, 1, 1},
      {"r34.layer2.0.conv1", 8, 64, 16, 16, 128, 3, 2, 1, 1},
      {"r34.layer2.0.downsample", 8, 64, 16, 16, 128, 1, 2, 0, 1},
      {"r34.layer2", 8, 128, 8, 8, 128, 3, 1, 1, 1},
      {"r34.layer3.0.conv1", 8, 128, 8, 8, 256, 3, 2, 1, 1},
      {"r34.layer3", 8, 256, 4, 4, 256, 3, 1, 1, 1},
      {"r34.layer4.0.conv1", 8, 256, 4, 4, 512, 3, 2, 1, 1},
      {"r34.layer4", 8, 512, 2, 2, 512, 3, 1, 1, 1},
      // bridge
      {"unet.bridge.conv1", 8, 512, 2, 2, 1024, 3, 1, 1, 1},
      {"unet.bridge.conv2", 8, 1024, 2, 2, 512, 3, 1, 1, 1},
      // decoder: UnetBlock(up_c, skip_c) = shuf 1x1 up_c -> 2 up_c, then 3x3 ni -> ni (twice)
      {"unet.block0.shuf", 8, 512, 2, 2, 1024, 1, 1, 0, 1},
      {"unet.block0.conv", 8, 512, 4, 4, 512, 3, 1, 1, 1},
      {"unet.block1.shuf", 8, 512, 4, 4, 1024, 1, 1, 0, 1},
      {"unet.block1.conv", 8, 384, 8, 8, 384, 3, 1, 1, 1},
      {"unet.block2.shuf", 8, 384, 8, 8, 768, 1, 1, 0, 1},
      {"unet.block2.conv", 8, 256, 16, 16, 256, 3, 1, 1, 1},
      {"unet.block3.shuf", 8, 256, 16, 16, 512, 1, 1, 0, 1},
      {"unet.block3.conv1", 8, 192, 32, 32, 96, 3, 1, 1, 1},
      {"unet.block3.conv2", 8, 96, 32, 32, 96, 3, 1, 1, 1},
      {"unet.last.shuf", 8, 96, 32, 32, 384, 1, 1, 0, 1},
      {"unet.res", 8, 99, 64, 64, 99, 3, 1, 1, 1},
      {"unet.head", 8, 99, 64, 64, 3, 1, 1, 0, 1},
      // cross-channel U-Net (SPEC.md section A), 64 px: encoder blocks halve the size and double the channels
      {"xc.block64", 8, 64, 32, 32, 64, 3, 1, 1, 1},
      {"xc.block128", 8, 128, 16, 16, 128, 3, 1, 1, 1},
      {"xc.block256", 8, 256, 8, 8, 256, 3, 1, 1, 1},
      {"xc.block512", 8, 512, 4, 4, 512, 3, 1, 1, 1},
      {"xc.dilated", 8, 512, 4, 4, 512, 3, 1, 2, 2},
      // larger inputs: 128 px and 256 px (batch 8)
      {"r34.layer1@128", 8, 64, 32, 32, 64, 3, 1, 1, 1},
      {"r34.layer4@128", 8, 512, 4, 4, 512, 3, 1, 1, 1},
      {"unet.block2.conv@128", 8, 256, 32, 32, 256, 3, 1, 1, 1},
      {"unet.block3.conv1@128", 8, 192, 64, 64, 96, 3, 1, 1, 1},
      {"r34.conv1@256", 8, 3, 256, 256, 64, 7, 2, 3, 1},
      {"r34.layer1@256", 8, 64, 64, 64, 64, 3, 1, 1, 1},
      {"unet.res@256", 8, 99, 256, 256, 99, 3, 1, 1, 1},
      {"xc.dilated@256", 8, 512, 16, 16, 512, 3, 1, 2, 2},
  };
  return table;
}

// The plain loops run only below this many flops per direction.
constexpr double kPlainMaxFlops = 2.0e8;

enum class Direction { FORWARD, BACKWARD_INPUT, BACKWARD_WEIGHT };

struct Prepared {
  Tensor x, w, b, grad_out;
  fg::kernels::Conv2dGeometry g;
  int64_t OH, OW;
};

Prepared prepare(const Layer& l) {
  Prepared p;
  p.g = {l.stride, l.stride, l.pad, l.pad, l.dilation, l.dilation};
  const auto out = fg::kernels::conv2d_output_size(l.H, l.W, l.K, l.K, p.g);
  p.OH = out.first;
  p.OW = out.second;
  fg::Generator gen(7);
  p.x = Tensor::empty({l.N, l.C, l.H, l.W});
  p.w = Tensor::empty({l.O, l.C, l.K, l.K});
  p.b = Tensor::empty({l.O});
  p.grad_out = Tensor::empty({l.N, l.O, p.OH, p.OW});
  for (Tensor* t : {&p.x, &p.w, &p.b, &p.grad_out}) fg::uniform_(*t, gen, -1.0, 1.0);
  return p;
}

void run(benchmark::State& state, const Layer& l, Direction dir, Conv2dAlgo algo, double peak) {
  const Prepared p = prepare(l);
  const double flops = 2.0 * double(l.N * l.O * p.OH * p.OW) * double(l.C * l.K * l.K);
  const double x_bytes = 4.0 * double(p.x.numel()), w_bytes = 4.0 * double(p.w.numel());
  const double y_bytes = 4.0 * double(p.grad_out.numel());
  double bytes = 0;
  switch (dir) {
    case Direction::FORWARD:
      for (auto _ : state) benchmark::DoNotOptimize(fg::kernels::conv2d_forward(p.x, p.w, p.b, p.g, algo));
      bytes = x_bytes + w_bytes + y_bytes + 4.0 * double(l.O);
      break;
    case Direction::BACKWARD_INPUT:
      for (auto _ : state)
        benchmark::DoNotOptimize(fg::kernels::conv2d_backward_input(p.grad_out, p.w, p.x.shape(), p.g, algo));
      bytes = y_bytes + w_bytes + x_bytes;
      break;
    case Direction::BACKWARD_WEIGHT:
      for (auto _ : state)
        benchmark::DoNotOptimize(fg::kernels::conv2d_backward_weight(p.grad_out, p.x, p.w.shape(), p.g, algo));
      bytes = y_bytes + x_bytes + w_bytes;
      break;
  }
  fg::bench::report_rates(state, flops, bytes, peak);
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
  const int threads = omp_get_max_threads();
  const double peak = fg::bench::measure_fma_peak(threads);
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("fma_peak_flops", std::to_string(peak));
  benchmark::AddCustomContext("fma_isa", fg::bench::kFmaIsa);
  const struct {
    Direction dir;
    const char* name;
  } directions[] = {{Direction::FORWARD, "conv2d_forward"},
                    {Direction::BACKWARD_INPUT, "conv2d_backward_input"},
                    {Direction::BACKWARD_WEIGHT, "conv2d_backward_weight"}};
  for (const auto& d : directions) {
    for (const Layer& l : layers()) {
      const double flops = 2.0 * double(l.N * l.O * l.C * l.K * l.K) *
                           double(((l.H + 2 * l.pad - l.dilation * (l.K - 1) - 1) / l.stride + 1) *
                                  ((l.W + 2 * l.pad - l.dilation * (l.K - 1) - 1) / l.stride + 1));
      for (Conv2dAlgo algo : {Conv2dAlgo::GEMM, Conv2dAlgo::PLAIN}) {
        if (algo == Conv2dAlgo::PLAIN && flops > kPlainMaxFlops) continue;
        const std::string name = std::string(d.name) + (algo == Conv2dAlgo::GEMM ? "/gemm/" : "/plain/") + l.name +
                                 "/" + shape_name(l);
        benchmark::RegisterBenchmark(name.c_str(), run, l, d.dir, algo, peak)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
