// The hand-written CUDA spatial kernels on the Dynamic U-Net's shapes (the shapes of bench_spatial.cpp, batch 8,
// 64 and 128 px inputs): the stem max pool (3x3, stride 2, pad 1) forward and backward, the decoder's pixel shuffles,
// the blur after each (replication pad left/top 1, then 2x2 stride-1 average pooling) forward and backward, the
// nearest 2x upsampling of the cross-channel network, and the skip concatenations. f32; GPU time from CUDA events
// with bytes/s (compulsory traffic) and pct_bw (percent of the HBM bandwidth) counters (bench/cuda_timing.h).
// Skipped with the reason without a GPU.
#include <benchmark/benchmark.h>

#include <cstdint>

#ifdef FG_WITH_CUDA
#include "bench/cuda_timing.h"
#include "kernels/concat.h"
#include "kernels/pad.h"
#include "kernels/pixel_shuffle.h"
#include "kernels/pool.h"
#include "kernels/upsample.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace {

using fg::DType;
using fg::Shape;
using fg::Tensor;

constexpr int64_t kBatch = 8;

Tensor gpu_random(const Shape& shape, uint64_t seed = 1) {
  Tensor t = Tensor::empty(shape, DType::F32, fg::Device::cuda(0));
  fg::Generator gen(seed);
  fg::uniform_(t, gen, -1.0, 1.0);
  return t;
}

double f32_bytes(int64_t elements) { return double(elements) * 4.0; }

// Args: input px, channels, spatial size of the tensor the op sees.
Shape input_shape(const benchmark::State& state) { return {kBatch, state.range(1), state.range(2), state.range(2)}; }

void decoder_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t px : {64, 128})
    for (auto [c, div] : {std::pair<int64_t, int64_t>{1024, 32}, {1024, 16}, {768, 8}, {512, 4}, {384, 2}})
      b->Args({px, c, px / div});
}

// The stem max pool of ResNet34: 64 channels at S/2.
void BM_CudaMaxPoolStem(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(input_shape(state));
  const auto p = fg::kernels::Pool2dParams::square(3, 2, 1);
  Tensor indices;
  const Tensor y = fg::kernels::max_pool2d_forward(x, p, &indices);
  fg::bench::time_memory_bound(state, f32_bytes(x.numel()) + 3.0 * f32_bytes(y.numel()), [&] {
    Tensor ind;
    Tensor out = fg::kernels::max_pool2d_forward(x, p, &ind);
  });
}
void BM_CudaMaxPoolStemBackward(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(input_shape(state));
  Tensor indices;
  const Tensor y = fg::kernels::max_pool2d_forward(x, fg::kernels::Pool2dParams::square(3, 2, 1), &indices);
  const Tensor g = gpu_random(y.shape());
  fg::bench::time_memory_bound(state, f32_bytes(x.numel()) + 3.0 * f32_bytes(y.numel()),
                               [&] { Tensor gx = fg::kernels::max_pool2d_backward(g, indices, x.shape()); });
}
BENCHMARK(BM_CudaMaxPoolStem)->Args({64, 64, 32})->Args({128, 64, 64})->Args({256, 64, 128})->UseManualTime();
BENCHMARK(BM_CudaMaxPoolStemBackward)->Args({64, 64, 32})->Args({128, 64, 64})->Args({256, 64, 128})->UseManualTime();

// PixelShuffle(2) of the decoder's conv outputs.
void BM_CudaPixelShuffle(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(input_shape(state));
  fg::bench::time_memory_bound(state, 2.0 * f32_bytes(x.numel()), [&] { Tensor y = fg::kernels::pixel_shuffle(x, 2); });
}
BENCHMARK(BM_CudaPixelShuffle)->Apply(decoder_shapes)->UseManualTime();

// The blur on the shuffled output (C / 4 channels at twice the size): replication pad then 2x2 average.
void BM_CudaBlur(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random({kBatch, state.range(1) / 4, 2 * state.range(2), 2 * state.range(2)});
  const fg::kernels::Pad2dParams pad{1, 0, 1, 0};
  const auto pool = fg::kernels::Pool2dParams::square(2, 1, 0);
  fg::bench::time_memory_bound(state, 4.0 * f32_bytes(x.numel()), [&] {
    Tensor y = fg::kernels::avg_pool2d_forward(fg::kernels::replication_pad2d_forward(x, pad), pool, true);
  });
}
void BM_CudaBlurBackward(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Shape in = {kBatch, state.range(1) / 4, 2 * state.range(2), 2 * state.range(2)};
  const fg::kernels::Pad2dParams pad{1, 0, 1, 0};
  const auto pool = fg::kernels::Pool2dParams::square(2, 1, 0);
  const Shape padded = {in[0], in[1], in[2] + 1, in[3] + 1};
  const Tensor g = gpu_random(in);
  fg::bench::time_memory_bound(state, 4.0 * f32_bytes(g.numel()), [&] {
    Tensor gp = fg::kernels::avg_pool2d_backward(g, padded, pool, true);
    Tensor gx = fg::kernels::replication_pad2d_backward(gp, in, pad);
  });
}
BENCHMARK(BM_CudaBlur)->Apply(decoder_shapes)->UseManualTime();
BENCHMARK(BM_CudaBlurBackward)->Apply(decoder_shapes)->UseManualTime();

// Nearest 2x upsampling forward and backward.
void BM_CudaUpsample2x(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(input_shape(state));
  const int64_t s = 2 * state.range(2);
  fg::bench::time_memory_bound(state, 5.0 * f32_bytes(x.numel()),
                               [&] { Tensor y = fg::kernels::upsample_nearest2d_forward(x, s, s); });
}
void BM_CudaUpsample2xBackward(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Shape in = input_shape(state);
  const Tensor g = gpu_random({in[0], in[1], 2 * in[2], 2 * in[3]});
  fg::bench::time_memory_bound(state, 5.0 * f32_bytes(fg::shape_numel(in)),
                               [&] { Tensor gx = fg::kernels::upsample_nearest2d_backward(g, in); });
}
BENCHMARK(BM_CudaUpsample2x)->Args({128, 64, 32})->Args({128, 32, 64})->UseManualTime();
BENCHMARK(BM_CudaUpsample2xBackward)->Args({128, 64, 32})->Args({128, 32, 64})->UseManualTime();

// A decoder skip concatenation: (8, C, S, S) with (8, C / 2, S, S) along channels.
void BM_CudaConcatSkip(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor a = gpu_random(input_shape(state));
  const Tensor b = gpu_random({kBatch, state.range(1) / 2, state.range(2), state.range(2)});
  fg::bench::time_memory_bound(state, 2.0 * f32_bytes(a.numel() + b.numel()),
                               [&] { Tensor y = fg::kernels::concat({a, b}, 1); });
}
BENCHMARK(BM_CudaConcatSkip)->Args({128, 256, 16})->Args({128, 128, 32})->Args({128, 64, 64})->UseManualTime();

}  // namespace

#else  // FG_WITH_CUDA

namespace {
void BM_CudaSpatial(benchmark::State& state) {
  state.SkipWithError("filmgrad was built without CUDA (nvcc not found): GPU benchmarks skipped");
}
BENCHMARK(BM_CudaSpatial);
}  // namespace

#endif  // FG_WITH_CUDA

BENCHMARK_MAIN();
