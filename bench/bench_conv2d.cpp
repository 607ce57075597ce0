// conv2d forward, backward-input and backward-weight (f32) on the layer shapes the two networks really run (the
// table is apps/bench_suite.cpp's, shared with `filmgrad bench`):
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

#include "apps/bench_suite.h"
#include "bench/peak.h"
#include "kernels/conv2d.h"
#include "tensor/philox.h"

namespace {

using fg::Tensor;
using fg::kernels::Conv2dAlgo;

using Layer = fg::bench::ConvLayer;

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
    for (const Layer& l : fg::bench::conv_layers()) {
      const double flops = fg::bench::conv_flops(l);
      // im2col beside production where production may take Winograd (3x3 stride 1), so the two can be compared.
      const bool winograd_shape = l.K == 3 && l.stride == 1 && l.dilation == 1;
      for (Conv2dAlgo algo : {Conv2dAlgo::GEMM, Conv2dAlgo::IM2COL, Conv2dAlgo::PLAIN}) {
        if (algo == Conv2dAlgo::PLAIN && flops > kPlainMaxFlops) continue;
        if (algo == Conv2dAlgo::IM2COL && !winograd_shape) continue;
        const char* algo_name = algo == Conv2dAlgo::GEMM ? "/gemm/" : algo == Conv2dAlgo::IM2COL ? "/im2col/" : "/plain/";
        const std::string name = std::string(d.name) + algo_name + l.name + "/" + fg::bench::conv_shape_name(l);
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
