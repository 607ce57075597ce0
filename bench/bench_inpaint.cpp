// Benchmarks for the classical fills of data/inpaint.h on one thread, on a scan-sized case: a 4000 x 3000 RGB
// image (smooth shading plus grain) with about 3 % of its pixels in the hole: a few thousand round specks of radius
// 1 to 6 and a few long scratches 3 pixels wide, the kind of mask `filmgrad restore --fill classical` fills.
//   InpaintBiharmonic: inpaint_biharmonic (the classical fill), from its harmonic start to the CG stop.
//   InpaintDiffusion:  inpaint_diffusion (the harmonic fill) of the same hole.
// Argument: the image's width (height 3/4 of it; the hole's count scaled with the area). Counter: pixels/s (of
// the whole image) and hole_fraction.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

#include "data/inpaint.h"
#include "tensor/tensor.h"

namespace {

using fg::Tensor;

struct Case {
  Tensor image, mask;
  double hole_fraction = 0.0;
};

Case make_case(int64_t W) {
  const int64_t H = W * 3 / 4;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> grain(-0.02, 0.02);
  Case k;
  k.image = Tensor::empty({3, H, W});
  float* p = k.image.data<float>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        p[(c * H + y) * W + x] =
            float(0.5 + 0.3 * std::sin(double(x) / 300.0 + double(c)) * std::cos(double(y) / 200.0) + grain(rng));
  k.mask = Tensor::zeros({H, W});
  float* m = k.mask.data<float>();
  const double scale = double(H * W) / (4000.0 * 3000.0);
  for (int64_t s = 0; s < int64_t(7000 * scale); ++s) {
    const int64_t r = 1 + int64_t(rng() % 6), cy = int64_t(rng() % uint32_t(H)), cx = int64_t(rng() % uint32_t(W));
    for (int64_t y = std::max<int64_t>(cy - r, 0); y <= std::min(cy + r, H - 1); ++y)
      for (int64_t x = std::max<int64_t>(cx - r, 0); x <= std::min(cx + r, W - 1); ++x)
        if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) m[y * W + x] = 1.0f;
  }
  for (int64_t line = 0; line < 6; ++line) {  // long scratches, 3 px wide, slanted
    const double x0 = double(rng() % uint32_t(W)), slope = (double(rng() % 200) - 100.0) / 400.0;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t d = -1; d <= 1; ++d) {
        const int64_t x = int64_t(std::lround(x0 + slope * double(y))) + d;
        if (x >= 0 && x < W) m[y * W + x] = 1.0f;
      }
  }
  double holes = 0.0;
  for (int64_t i = 0; i < H * W; ++i) holes += m[i];
  k.hole_fraction = holes / double(H * W);
  return k;
}

template <Tensor (*Fill)(const Tensor&, const Tensor&, const fg::data::InpaintOptions&)>
void BM_Fill(benchmark::State& state) {
  const Case k = make_case(state.range(0));
  for (auto _ : state) {
    Tensor out = Fill(k.image, k.mask, {});
    benchmark::DoNotOptimize(out.raw_data());
  }
  state.counters["pixels/s"] =
      benchmark::Counter(double(k.image.numel() / 3), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["hole_fraction"] = k.hole_fraction;
}

void BM_InpaintBiharmonic(benchmark::State& state) {
  BM_Fill<fg::data::inpaint_biharmonic>(state);
}
void BM_InpaintDiffusion(benchmark::State& state) {
  BM_Fill<fg::data::inpaint_diffusion>(state);
}
BENCHMARK(BM_InpaintBiharmonic)->Arg(1000)->Arg(4000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_InpaintDiffusion)->Arg(1000)->Arg(4000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
