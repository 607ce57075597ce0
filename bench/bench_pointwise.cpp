// Pointwise kernels on the shapes the networks really use: activations, softmax, dropout and casts, forward and
// backward, with bytes/s counters (every byte read and written once). Shapes: the Dynamic U-Net at 64 and 128 px,
// batch 8 (stem and layer1 ReLUs, the 99-channel res block at the last cross, the 3-channel sigmoid-range head),
// the self-attention softmax over dim 1 of (B, N, N) at 16x16 (N = 256) and 32x32 (N = 1024), and the NoGAN
// critic's LeakyReLU and Dropout2d. Wall-clock time (UseRealTime) because the kernels use OpenMP threads.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "kernels/activation.h"
#include "kernels/dropout.h"
#include "kernels/softmax.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace {

using fg::Tensor;

Tensor random_input(const fg::Shape& shape, uint64_t seed, double lo = -3.0, double hi = 3.0) {
  Tensor t = Tensor::empty(shape);
  fg::Generator gen(seed);
  fg::uniform_(t, gen, lo, hi);
  return t;
}

fg::Shape nchw(const benchmark::State& state) {
  return {state.range(0), state.range(1), state.range(2), state.range(3)};
}

void set_bytes(benchmark::State& state, int64_t bytes_per_iteration) {
  state.SetBytesProcessed(int64_t(state.iterations()) * bytes_per_iteration);
}

// ---- activations: read x, write y ----

template <Tensor (*Forward)(const Tensor&)>
void BM_ActivationForward(benchmark::State& state) {
  const Tensor x = random_input(nchw(state), 1);
  for (auto _ : state) {
    Tensor y = Forward(x);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 2 * int64_t(x.nbytes()));
}

// read grad_out and the saved tensor, write grad_in
template <Tensor (*Forward)(const Tensor&), Tensor (*Backward)(const Tensor&, const Tensor&)>
void BM_ActivationBackward(benchmark::State& state) {
  const Tensor x = random_input(nchw(state), 2);
  const Tensor y = Forward(x);
  const Tensor g = random_input(nchw(state), 3);
  for (auto _ : state) {
    Tensor gx = Backward(g, y);
    benchmark::DoNotOptimize(gx.raw_data());
  }
  set_bytes(state, 3 * int64_t(x.nbytes()));
}

Tensor leaky_relu_02(const Tensor& x) { return fg::kernels::leaky_relu(x, 0.2); }
Tensor leaky_relu_02_backward(const Tensor& g, const Tensor& x) { return fg::kernels::leaky_relu_backward(g, x, 0.2); }
Tensor sigmoid_range_head(const Tensor& x) { return fg::kernels::sigmoid_range(x, -3.0, 3.0); }
Tensor sigmoid_range_head_backward(const Tensor& g, const Tensor& x) {
  return fg::kernels::sigmoid_range_backward(g, x, -3.0, 3.0);
}
Tensor identity(const Tensor& x) { return x; }

// Encoder stem ReLU at 64 px (64x32x32; also layer1 at 128 px) and 128 px (64x64x64), the 99-channel res block
// at 64 and 128 px.
#define UNET_RELU_SHAPES \
  Args({8, 64, 32, 32})->Args({8, 64, 64, 64})->Args({8, 99, 64, 64})->Args({8, 99, 128, 128})

BENCHMARK(BM_ActivationForward<fg::kernels::relu>)->UNET_RELU_SHAPES->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ActivationBackward<fg::kernels::relu, fg::kernels::relu_backward>)
    ->UNET_RELU_SHAPES->UseRealTime()->Unit(benchmark::kMicrosecond);
// Critic head after conv 512 -> 1024 (4x4 kernel, padding 1) at 128 px, and a large activation for bandwidth.
BENCHMARK(BM_ActivationForward<leaky_relu_02>)
    ->Args({8, 1024, 3, 3})->Args({8, 64, 32, 32})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ActivationBackward<identity, leaky_relu_02_backward>)
    ->Args({8, 1024, 3, 3})->Args({8, 64, 32, 32})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ActivationForward<fg::kernels::sigmoid>)
    ->Args({8, 1, 64, 64})->Args({8, 64, 32, 32})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ActivationBackward<fg::kernels::sigmoid, fg::kernels::sigmoid_backward>)
    ->Args({8, 64, 32, 32})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ActivationForward<fg::kernels::tanh>)
    ->Args({8, 64, 32, 32})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ActivationBackward<fg::kernels::tanh, fg::kernels::tanh_backward>)
    ->Args({8, 64, 32, 32})->UseRealTime()->Unit(benchmark::kMicrosecond);
// The head: 3 x 64 x 64 and 3 x 128 x 128.
BENCHMARK(BM_ActivationForward<sigmoid_range_head>)
    ->Args({8, 3, 64, 64})->Args({8, 3, 128, 128})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ActivationBackward<identity, sigmoid_range_head_backward>)
    ->Args({8, 3, 64, 64})->Args({8, 3, 128, 128})->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---- softmax over (B, N, N): args B, N, dim ----

void BM_SoftmaxForward(benchmark::State& state) {
  const int64_t b = state.range(0), n = state.range(1), dim = state.range(2);
  // Attention logits of a freshly initialised layer are O(1); a wider range exercises the max subtraction.
  const Tensor x = random_input({b, n, n}, 4, -10.0, 10.0);
  for (auto _ : state) {
    Tensor y = fg::kernels::softmax(x, dim);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 2 * int64_t(x.nbytes()));
}

void BM_SoftmaxBackward(benchmark::State& state) {
  const int64_t b = state.range(0), n = state.range(1), dim = state.range(2);
  const Tensor y = fg::kernels::softmax(random_input({b, n, n}, 5, -10.0, 10.0), dim);
  const Tensor g = random_input({b, n, n}, 6);
  for (auto _ : state) {
    Tensor gx = fg::kernels::softmax_backward(g, y, dim);
    benchmark::DoNotOptimize(gx.raw_data());
  }
  set_bytes(state, 3 * int64_t(y.nbytes()));
}

// dim 1 is the self-attention softmax (column blocks); dim 2 (contiguous rows) for comparison.
BENCHMARK(BM_SoftmaxForward)
    ->Args({8, 256, 1})->Args({8, 256, 2})->Args({8, 1024, 1})->Args({8, 1024, 2})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SoftmaxBackward)
    ->Args({8, 256, 1})->Args({8, 256, 2})->Args({8, 1024, 1})->Args({8, 1024, 2})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---- dropout: drawing the mask (write), applying it (read x and mask, write y) ----

void BM_DropoutForward(benchmark::State& state) {
  const Tensor x = random_input(nchw(state), 7);
  fg::Generator gen(8);
  for (auto _ : state) {
    Tensor mask = fg::kernels::dropout_mask(x.shape(), 0.5, gen, fg::DType::F32, fg::Device::cpu());
    Tensor y = fg::kernels::apply_dropout_mask(x, mask);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 4 * int64_t(x.nbytes()));
}

// Dropout2d draws one value per (n, c); the cost is the multiply over the planes.
void BM_Dropout2dForward(benchmark::State& state) {
  const Tensor x = random_input(nchw(state), 9);
  fg::Generator gen(10);
  for (auto _ : state) {
    Tensor mask = fg::kernels::dropout_mask({x.size(0), x.size(1)}, 0.15, gen, fg::DType::F32, fg::Device::cpu());
    Tensor y = fg::kernels::apply_dropout_mask(x, mask);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 2 * int64_t(x.nbytes()));
}

BENCHMARK(BM_DropoutForward)->Args({8, 64, 32, 32})->Args({8, 64, 64, 64})->UseRealTime()->Unit(benchmark::kMicrosecond);
// The critic's Dropout2d inputs: the ResNet body output (512 x 2 x 2 at 64 px, 4 x 4 at 128 px), the
// 1024-channel conv output at 128 px, and a large tensor where the multiply dominates.
BENCHMARK(BM_Dropout2dForward)
    ->Args({8, 512, 2, 2})->Args({8, 512, 4, 4})->Args({8, 1024, 3, 3})->Args({8, 64, 64, 64})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---- casts (mixed precision): args N, C, H, W, target dtype ----

void BM_Cast(benchmark::State& state, fg::DType from, fg::DType to) {
  const Tensor x = random_input(nchw(state), 11).to(from);
  for (auto _ : state) {
    Tensor y = x.to(to);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, x.numel() * int64_t(fg::dtype_size(from) + fg::dtype_size(to)));
}

BENCHMARK_CAPTURE(BM_Cast, f32_to_f16, fg::DType::F32, fg::DType::F16)
    ->Args({8, 64, 32, 32})->Args({8, 64, 64, 64})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Cast, f16_to_f32, fg::DType::F16, fg::DType::F32)
    ->Args({8, 64, 32, 32})->Args({8, 64, 64, 64})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Cast, f32_to_bf16, fg::DType::F32, fg::DType::BF16)
    ->Args({8, 64, 32, 32})->Args({8, 64, 64, 64})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Cast, bf16_to_f32, fg::DType::BF16, fg::DType::F32)
    ->Args({8, 64, 32, 32})->Args({8, 64, 64, 64})->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
