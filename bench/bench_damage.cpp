// Benchmarks for damage synthesis (data/damage.h), one image per call on one thread (the data loader runs one
// sample per worker), at the training sizes 64, 128 and 256. Each iteration draws new damage (a new Generator
// seed and, for dust, a new pattern seed, as the dataset does per sample), so no sheet is ever reused.
//   DustApply:      DustSynthesizer::apply on an RGB image (two overlays: draw a sheet window, warp, blend).
//   DustSheet:      make_dust_overlay of a whole S x S sheet (every element rasterised).
//   NegativeDamage: damage_negative with the default options (strokes or circles, any content).
//   StrokeMask, CircleMask: the masks alone (drawn to coverage, smoothed).
// Counter: pixels/s (of the image made).
#include <benchmark/benchmark.h>

#include <cstdint>

#include "data/damage.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace {

using fg::Generator;
using fg::Tensor;

Tensor random_image(int64_t C, int64_t S, uint64_t seed) {
  Tensor t = Tensor::empty({C, S, S});
  Generator gen(seed);
  fg::uniform_(t, gen, 0.0, 1.0);
  return t;
}

void set_pixels(benchmark::State& state, int64_t S) {
  state.counters["pixels/s"] = benchmark::Counter(double(S * S), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_DustApply(benchmark::State& state) {
  const int64_t S = state.range(0);
  const Tensor clean = random_image(3, S, 1);
  const fg::data::DustSynthesizer dust;
  uint64_t seed = 0;
  for (auto _ : state) {
    Generator gen(++seed);
    fg::data::DustDamage d = dust.apply(clean, seed, gen);
    benchmark::DoNotOptimize(d.damaged.raw_data());
  }
  set_pixels(state, S);
}
BENCHMARK(BM_DustApply)->Arg(64)->Arg(128)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_DustSheet(benchmark::State& state) {
  const int64_t S = state.range(0);
  uint64_t seed = 0;
  for (auto _ : state) {
    Generator gen(++seed);
    fg::data::Overlay o = fg::data::make_dust_overlay(S, S, gen);
    benchmark::DoNotOptimize(o.alpha.raw_data());
  }
  set_pixels(state, S);
}
BENCHMARK(BM_DustSheet)->Arg(256)->Arg(512)->Unit(benchmark::kMillisecond);

void BM_NegativeDamage(benchmark::State& state) {
  const int64_t S = state.range(0);
  const Tensor clean = random_image(3, S, 1), other = random_image(3, S, 2);
  uint64_t seed = 0;
  for (auto _ : state) {
    Generator gen(++seed);
    fg::data::NegativeDamage d = fg::data::damage_negative(clean, other, gen);
    benchmark::DoNotOptimize(d.damaged_blue.raw_data());
  }
  set_pixels(state, S);
}
BENCHMARK(BM_NegativeDamage)->Arg(64)->Arg(128)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_StrokeMask(benchmark::State& state) {
  const int64_t S = state.range(0);
  uint64_t seed = 0;
  for (auto _ : state) {
    Generator gen(++seed);
    Tensor m = fg::data::make_stroke_mask(S, S, gen);
    benchmark::DoNotOptimize(m.raw_data());
  }
  set_pixels(state, S);
}
BENCHMARK(BM_StrokeMask)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_CircleMask(benchmark::State& state) {
  const int64_t S = state.range(0);
  uint64_t seed = 0;
  for (auto _ : state) {
    Generator gen(++seed);
    Tensor m = fg::data::make_circle_mask(S, S, gen);
    benchmark::DoNotOptimize(m.raw_data());
  }
  set_pixels(state, S);
}
BENCHMARK(BM_CircleMask)->Arg(256)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
