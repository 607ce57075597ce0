// Benchmarks for the loss kernels on the shapes training uses, f32, wall-clock time (UseRealTime: the kernels run
// OpenMP/OpenBLAS threads). Counters: bytes/s (the tensors each call must read and write once) and FLOP/s.
//   SSIM: separable forward, separable forward + backward, and the direct 2-D window for comparison, on
//         8x3x64x64 and 8x3x256x256 with windows 5 (the dissertation's) and 11 (pytorch-ssim's default).
//         FLOPs are the separable algorithm's count for every variant, so the direct variant's FLOP/s is an
//         effective rate that shows how much the separable filter saves.
//   Gram: both variants, forward and backward, on the VGG16 feature maps of a 128 px batch of 8 (64x64x64,
//         128x32x32, 256x16x16, 512x8x8). Forward FLOPs: the C(C+1)/2 dot products of length H*W both variants
//         compute; backward: one (C x C)(C x HW) product per image.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "kernels/gram.h"
#include "kernels/ssim.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace {

using fg::DType;
using fg::Tensor;

Tensor random_image(const fg::Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::F32);
  fg::Generator gen(seed);
  fg::uniform_(t, gen, 0.0, 1.0);
  return t;
}

void set_counters(benchmark::State& state, double bytes, double flops) {
  state.counters["bytes/s"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::OneK::kIs1024);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- SSIM ----
// Arguments: N, C, H (= W), window size, variant (0 separable, 1 direct), with backward (0/1).

// Per map pixel: 5 signals x ws taps x (mul + add), twice (rows, columns), plus ~25 for the products and the map.
double ssim_forward_flops(int64_t pixels, int64_t ws) {
  return double(pixels) * (5.0 * 2 * ws * 2 + 25);
}
// Per pixel: ~45 for the derivatives, 4 maps x ws taps x 2 flops x 2 passes, ~8 to combine.
double ssim_backward_flops(int64_t pixels, int64_t ws) {
  return double(pixels) * (45 + 4.0 * 2 * ws * 2 + 8);
}

void BM_Ssim(benchmark::State& state) {
  const int64_t N = state.range(0), C = state.range(1), S = state.range(2), ws = state.range(3);
  const auto variant = state.range(4) == 0 ? fg::kernels::SsimVariant::SEPARABLE : fg::kernels::SsimVariant::DIRECT_2D;
  const bool backward = state.range(5) != 0;
  const Tensor x = random_image({N, C, S, S}, 1), y = random_image({N, C, S, S}, 2);
  const fg::kernels::SsimParams params{ws, 1.5};
  const Tensor grad_out = Tensor::scalar(1.0);
  for (auto _ : state) {
    fg::kernels::SsimResult r = fg::kernels::ssim(x, y, params, backward, variant);
    benchmark::DoNotOptimize(r.value.raw_data());
    if (backward) {
      fg::kernels::SsimGrads g = fg::kernels::ssim_backward(grad_out, x, y, r.stats, params, true, true, variant);
      benchmark::DoNotOptimize(g.x.raw_data());
      benchmark::DoNotOptimize(g.y.raw_data());
    }
  }
  const int64_t pixels = N * C * S * S;  // the map is the image's size for odd windows
  const double image_bytes = double(pixels) * 4;
  double bytes = 2 * image_bytes, flops = ssim_forward_flops(pixels, ws);
  if (backward) {
    bytes += 5 * image_bytes + 2 * image_bytes + 2 * image_bytes;  // stats written, x and y reread, gx and gy written
    bytes += 5 * image_bytes;                                      // stats reread
    flops += ssim_backward_flops(pixels, ws);
  }
  set_counters(state, bytes, flops);
  state.SetLabel(std::string(state.range(4) == 0 ? "separable" : "direct") + (backward ? " fwd+bwd" : " fwd"));
}

void ssim_args(benchmark::internal::Benchmark* b) {
  for (int64_t size : {64, 256})
    for (int64_t ws : {5, 11}) {
      b->Args({8, 3, size, ws, 0, 0});
      b->Args({8, 3, size, ws, 0, 1});
      // The direct window costs ws^2 per pixel: timed on the small images only.
      if (size == 64) b->Args({8, 3, size, ws, 1, 1});
    }
}
BENCHMARK(BM_Ssim)
    ->Apply(ssim_args)
    ->ArgNames({"N", "C", "HW", "ws", "direct", "bwd"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- Gram ----
// Arguments: N, C, H (= W), variant (0 BLAS, 1 loops).

void BM_GramForward(benchmark::State& state) {
  const int64_t N = state.range(0), C = state.range(1), S = state.range(2);
  const auto variant = state.range(3) == 0 ? fg::kernels::GramVariant::BLAS : fg::kernels::GramVariant::LOOPS;
  const Tensor x = random_image({N, C, S, S}, 3);
  for (auto _ : state) {
    Tensor g = fg::kernels::gram_matrix(x, variant);
    benchmark::DoNotOptimize(g.raw_data());
  }
  const double L = double(S * S);
  set_counters(state, 4.0 * (double(N * C) * L + double(N * C * C)), double(N) * double(C * (C + 1)) * L);
  state.SetLabel(state.range(3) == 0 ? "blas" : "loops");
}

void BM_GramBackward(benchmark::State& state) {
  const int64_t N = state.range(0), C = state.range(1), S = state.range(2);
  const auto variant = state.range(3) == 0 ? fg::kernels::GramVariant::BLAS : fg::kernels::GramVariant::LOOPS;
  const Tensor x = random_image({N, C, S, S}, 4);
  const Tensor grad = random_image({N, C, C}, 5);
  for (auto _ : state) {
    Tensor gx = fg::kernels::gram_matrix_backward(grad, x, variant);
    benchmark::DoNotOptimize(gx.raw_data());
  }
  const double L = double(S * S);
  set_counters(state, 4.0 * (2.0 * double(N * C) * L + double(N * C * C)), 2.0 * double(N * C * C) * L);
  state.SetLabel(state.range(3) == 0 ? "blas" : "loops");
}

void gram_args(benchmark::internal::Benchmark* b) {
  for (int64_t variant : {0, 1}) {
    b->Args({8, 64, 64, variant});
    b->Args({8, 128, 32, variant});
    b->Args({8, 256, 16, variant});
    b->Args({8, 512, 8, variant});
  }
}
BENCHMARK(BM_GramForward)
    ->Apply(gram_args)
    ->ArgNames({"N", "C", "HW", "loops"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GramBackward)
    ->Apply(gram_args)
    ->ArgNames({"N", "C", "HW", "loops"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
