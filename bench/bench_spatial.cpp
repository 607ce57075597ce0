// Google Benchmark of the spatial kernels (CPU reference) on the Dynamic U-Net's real shapes (SPEC.md section B) at
// 64 and 128 px input, batch 8. Shapes scale with the input: the ResNet34 stem and layer1-4 give 64ch at S/2 and
// S/4, 128ch at S/8, 256ch at S/16, 512ch at S/32; the decoder's PixelShuffle_ICNR blocks shuffle 1024ch at S/32,
// 1024ch at S/16, 768ch at S/8, 512ch at S/4 and 384ch at S/2, each followed by the blur (replication pad left/top
// 1, then 2x2 stride-1 average pooling).
// The "bytes" counter is compulsory traffic: every input read once and every output written once, so its rate is
// comparable across implementations whatever they re-read. All timings are wall-clock (UseRealTime).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/pad.h"
#include "kernels/pixel_shuffle.h"
#include "kernels/pool.h"
#include "kernels/upsample.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace {

using fg::Shape;
using fg::Tensor;

constexpr int64_t kBatch = 8;

Tensor random_input(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, fg::DType::F32);
  fg::Generator gen(seed);
  fg::uniform_(t, gen, -1.0, 1.0);
  return t;
}

void set_bytes(benchmark::State& state, double bytes_per_iteration) {
  state.counters["bytes"] =
      benchmark::Counter(bytes_per_iteration * double(state.iterations()), benchmark::Counter::kIsRate);
}

double f32_bytes(int64_t elements) { return double(elements) * 4.0; }

std::string label(int64_t px, int64_t c, int64_t h) {
  return std::to_string(px) + "px " + std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(h);
}

// Args {input px, channels, spatial size} for each (channels, input px / divisor).
void shapes(benchmark::internal::Benchmark* b, const std::vector<std::pair<int64_t, int64_t>>& channel_divisor) {
  for (int64_t px : {64, 128}) {
    for (const auto& [c, div] : channel_divisor) b->Args({px, c, px / div});
  }
}

// Every BatchNorm of the encoder: bn1 at S/2, layer1 at S/4, layer2-4, and the bridge's BatchNorm2d(512).
void encoder_shapes(benchmark::internal::Benchmark* b) {
  shapes(b, {{64, 2}, {64, 4}, {128, 8}, {256, 16}, {512, 32}});
}
// The pixel shuffle inputs of the decoder (conv1x1 outputs, 4 x the shuffled channels).
void shuffle_shapes(benchmark::internal::Benchmark* b) {
  shapes(b, {{1024, 32}, {1024, 16}, {768, 8}, {512, 4}, {384, 2}});
}
// The pixel shuffle outputs, which the blur pads and pools.
void blur_shapes(benchmark::internal::Benchmark* b) { shapes(b, {{256, 16}, {256, 8}, {192, 4}, {128, 2}, {96, 1}}); }

void BM_BatchNormTrainForward(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor x = random_input({kBatch, c, h, h}, 1);
  const Tensor w = random_input({c}, 2), b = random_input({c}, 3);
  Tensor running_mean = Tensor::zeros({c}), running_var = Tensor::ones({c});
  for (auto _ : state) {
    const fg::kernels::BatchNormStats stats =
        fg::kernels::batch_norm_batch_stats(x, 1e-5, running_mean, running_var, 0.1);
    Tensor y = fg::kernels::batch_norm_forward(x, stats, w, b);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 2 * f32_bytes(x.numel()));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_BatchNormTrainForward)->Apply(encoder_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_BatchNormEvalForward(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor x = random_input({kBatch, c, h, h}, 1);
  const Tensor w = random_input({c}, 2), b = random_input({c}, 3);
  const Tensor running_mean = Tensor::zeros({c}), running_var = Tensor::ones({c});
  for (auto _ : state) {
    const fg::kernels::BatchNormStats stats = fg::kernels::batch_norm_running_stats(running_mean, running_var, 1e-5);
    Tensor y = fg::kernels::batch_norm_forward(x, stats, w, b);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 2 * f32_bytes(x.numel()));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_BatchNormEvalForward)->Apply(encoder_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_BatchNormTrainBackward(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor x = random_input({kBatch, c, h, h}, 1), dy = random_input({kBatch, c, h, h}, 4);
  const Tensor w = random_input({c}, 2);
  const fg::kernels::BatchNormStats stats = fg::kernels::batch_norm_batch_stats(x, 1e-5, Tensor(), Tensor(), 0.1);
  for (auto _ : state) {
    fg::kernels::BatchNormGrads g = fg::kernels::batch_norm_backward(dy, x, stats, w, true, true, true, true);
    benchmark::DoNotOptimize(g.input.raw_data());
  }
  set_bytes(state, 3 * f32_bytes(x.numel()));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_BatchNormTrainBackward)->Apply(encoder_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The ResNet34 stem's max pool: 3x3, stride 2, padding 1 on 64 channels at S/2.
void BM_MaxPoolForward(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor x = random_input({kBatch, c, h, h}, 1);
  const fg::kernels::Pool2dParams p = fg::kernels::Pool2dParams::square(3, 2, 1);
  Tensor indices;
  int64_t out_numel = 0;
  for (auto _ : state) {
    Tensor y = fg::kernels::max_pool2d_forward(x, p, &indices);
    out_numel = y.numel();
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, f32_bytes(x.numel()) + f32_bytes(out_numel) + 8.0 * double(out_numel));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_MaxPoolForward)
    ->Apply([](benchmark::internal::Benchmark* b) {
      shapes(b, {{64, 2}});
    })
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_MaxPoolBackward(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor x = random_input({kBatch, c, h, h}, 1);
  const fg::kernels::Pool2dParams p = fg::kernels::Pool2dParams::square(3, 2, 1);
  Tensor indices;
  const Tensor y = fg::kernels::max_pool2d_forward(x, p, &indices);
  const Tensor dy = random_input(y.shape(), 2);
  for (auto _ : state) {
    Tensor dx = fg::kernels::max_pool2d_backward(dy, indices, x.shape());
    benchmark::DoNotOptimize(dx.raw_data());
  }
  set_bytes(state, f32_bytes(y.numel()) + 8.0 * double(y.numel()) + f32_bytes(x.numel()));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_MaxPoolBackward)
    ->Apply([](benchmark::internal::Benchmark* b) {
      shapes(b, {{64, 2}});
    })
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The blur's pooling: 2x2, stride 1, on the padded (h + 1) x (h + 1) plane, giving h x h.
void BM_AvgPool2x2Stride1Forward(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor x = random_input({kBatch, c, h + 1, h + 1}, 1);
  const fg::kernels::Pool2dParams p = fg::kernels::Pool2dParams::square(2, 1, 0);
  for (auto _ : state) {
    Tensor y = fg::kernels::avg_pool2d_forward(x, p, true);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, f32_bytes(x.numel()) + f32_bytes(kBatch * c * h * h));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_AvgPool2x2Stride1Forward)->Apply(blur_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_AvgPool2x2Stride1Backward(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Shape in_shape = {kBatch, c, h + 1, h + 1};
  const Tensor dy = random_input({kBatch, c, h, h}, 1);
  const fg::kernels::Pool2dParams p = fg::kernels::Pool2dParams::square(2, 1, 0);
  for (auto _ : state) {
    Tensor dx = fg::kernels::avg_pool2d_backward(dy, in_shape, p, true);
    benchmark::DoNotOptimize(dx.raw_data());
  }
  set_bytes(state, f32_bytes(dy.numel()) + f32_bytes(fg::shape_numel(in_shape)));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_AvgPool2x2Stride1Backward)->Apply(blur_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_ReplicationPadLeftTop(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor x = random_input({kBatch, c, h, h}, 1);
  const fg::kernels::Pad2dParams p{1, 0, 1, 0};
  for (auto _ : state) {
    Tensor y = fg::kernels::replication_pad2d_forward(x, p);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, f32_bytes(x.numel()) + f32_bytes(kBatch * c * (h + 1) * (h + 1)));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_ReplicationPadLeftTop)->Apply(blur_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_ReplicationPadLeftTopBackward(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor dy = random_input({kBatch, c, h + 1, h + 1}, 1);
  const fg::kernels::Pad2dParams p{1, 0, 1, 0};
  for (auto _ : state) {
    Tensor dx = fg::kernels::replication_pad2d_backward(dy, {kBatch, c, h, h}, p);
    benchmark::DoNotOptimize(dx.raw_data());
  }
  set_bytes(state, f32_bytes(dy.numel()) + f32_bytes(kBatch * c * h * h));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_ReplicationPadLeftTopBackward)->Apply(blur_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_PixelShuffle(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor x = random_input({kBatch, c, h, h}, 1);
  for (auto _ : state) {
    Tensor y = fg::kernels::pixel_shuffle(x, 2);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 2 * f32_bytes(x.numel()));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_PixelShuffle)->Apply(shuffle_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The backward of pixel shuffle: unshuffle of the (C / 4, 2h, 2w) gradient.
void BM_PixelUnshuffle(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor dy = random_input({kBatch, c / 4, 2 * h, 2 * h}, 1);
  for (auto _ : state) {
    Tensor dx = fg::kernels::pixel_unshuffle(dy, 2);
    benchmark::DoNotOptimize(dx.raw_data());
  }
  set_bytes(state, 2 * f32_bytes(dy.numel()));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_PixelUnshuffle)->Apply(shuffle_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

// UnetBlock's resize to the skip's size: 2x nearest on the blurred shuffle outputs (the h -> 2h case).
void BM_UpsampleNearest2x(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor x = random_input({kBatch, c, h, h}, 1);
  for (auto _ : state) {
    Tensor y = fg::kernels::upsample_nearest2d_forward(x, 2 * h, 2 * h);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 5 * f32_bytes(x.numel()));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_UpsampleNearest2x)->Apply(blur_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_UpsampleNearest2xBackward(benchmark::State& state) {
  const int64_t c = state.range(1), h = state.range(2);
  const Tensor dy = random_input({kBatch, c, 2 * h, 2 * h}, 1);
  for (auto _ : state) {
    Tensor dx = fg::kernels::upsample_nearest2d_backward(dy, {kBatch, c, h, h});
    benchmark::DoNotOptimize(dx.raw_data());
  }
  set_bytes(state, 1.25 * f32_bytes(dy.numel()));
  state.SetLabel(label(state.range(0), c, h));
}
BENCHMARK(BM_UpsampleNearest2xBackward)->Apply(blur_shapes)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
