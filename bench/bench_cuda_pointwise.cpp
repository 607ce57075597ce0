// The hand-written CUDA pointwise kernels on the shapes the networks use (the shapes of bench_pointwise.cpp, batch
// 8): activations forward and backward (the Dynamic U-Net's ReLUs at 64 and 128 px, the critic's LeakyReLU, the
// sigmoid-range head), the self-attention softmax over dim 1 and 2 of (B, N, N), dropout and dropout2d, the casts of
// mixed precision, the residual add, gradient accumulation (add_), the bias-gradient sum over (N, H, W), the pixel
// losses, and the fused Adam step over every parameter of the Dynamic U-Net at once (41.4 M). f32 unless the
// arguments end in 16 (f16). GPU time from CUDA events with bytes/s and pct_bw (percent of the HBM bandwidth)
// counters (bench/cuda_timing.h). Without a GPU, or without CUDA, every benchmark is skipped with the reason.
#include <benchmark/benchmark.h>

#include <cstdint>

#ifdef FG_WITH_CUDA
#include "bench/cuda_timing.h"
#include "kernels/activation.h"
#include "kernels/cuda/adam.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/softmax.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace {

using fg::DType;
using fg::Shape;
using fg::Tensor;

Tensor gpu_random(const Shape& shape, uint64_t seed, DType dt = DType::F32, double lo = -3.0, double hi = 3.0) {
  Tensor t = Tensor::empty(shape, dt, fg::Device::cuda(0));
  fg::Generator gen(seed);
  fg::uniform_(t, gen, lo, hi);
  return t;
}

Shape nchw(const benchmark::State& state) { return {state.range(0), state.range(1), state.range(2), state.range(3)}; }

DType dtype_arg(const benchmark::State& state) { return state.range(4) == 16 ? DType::F16 : DType::F32; }

// ---- activations: read x, write y / read grad_out and the saved tensor, write grad_in ----

template <Tensor (*Forward)(const Tensor&)>
void BM_CudaActivationForward(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(nchw(state), 1, dtype_arg(state));
  fg::bench::time_memory_bound(state, 2.0 * double(x.nbytes()), [&] { Tensor y = Forward(x); });
}

template <Tensor (*Forward)(const Tensor&), Tensor (*Backward)(const Tensor&, const Tensor&)>
void BM_CudaActivationBackward(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(nchw(state), 2, dtype_arg(state));
  const Tensor y = Forward(x);
  const Tensor g = gpu_random(nchw(state), 3, dtype_arg(state));
  fg::bench::time_memory_bound(state, 3.0 * double(x.nbytes()), [&] { Tensor gx = Backward(g, y); });
}

Tensor leaky_relu_02(const Tensor& x) { return fg::kernels::leaky_relu(x, 0.2); }
Tensor leaky_relu_02_backward(const Tensor& g, const Tensor& x) { return fg::kernels::leaky_relu_backward(g, x, 0.2); }
Tensor sigmoid_range_head(const Tensor& x) { return fg::kernels::sigmoid_range(x, -3.0, 3.0); }
Tensor sigmoid_range_head_backward(const Tensor& g, const Tensor& x) {
  return fg::kernels::sigmoid_range_backward(g, x, -3.0, 3.0);
}
Tensor identity(const Tensor& x) { return x; }

// Args: N, C, H, W, bits (32 or 16). The U-Net encoder stem / layer1 ReLUs and the 99-channel res block.
#define UNET_RELU_SHAPES                                                                           \
  Args({8, 64, 32, 32, 32})->Args({8, 64, 64, 64, 32})->Args({8, 99, 64, 64, 32})->Args({8, 99, 128, 128, 32}) \
      ->Args({8, 64, 64, 64, 16})->Args({8, 99, 128, 128, 16})

BENCHMARK(BM_CudaActivationForward<fg::kernels::relu>)->UNET_RELU_SHAPES->UseManualTime();
BENCHMARK(BM_CudaActivationBackward<fg::kernels::relu, fg::kernels::relu_backward>)->UNET_RELU_SHAPES->UseManualTime();
BENCHMARK(BM_CudaActivationForward<leaky_relu_02>)
    ->Args({8, 1024, 3, 3, 32})->Args({8, 64, 32, 32, 32})->UseManualTime();
BENCHMARK(BM_CudaActivationBackward<identity, leaky_relu_02_backward>)
    ->Args({8, 1024, 3, 3, 32})->Args({8, 64, 32, 32, 32})->UseManualTime();
BENCHMARK(BM_CudaActivationForward<fg::kernels::sigmoid>)->Args({8, 64, 32, 32, 32})->UseManualTime();
BENCHMARK(BM_CudaActivationForward<fg::kernels::tanh>)->Args({8, 64, 32, 32, 32})->UseManualTime();
BENCHMARK(BM_CudaActivationForward<sigmoid_range_head>)
    ->Args({8, 3, 64, 64, 32})->Args({8, 3, 128, 128, 32})->UseManualTime();
BENCHMARK(BM_CudaActivationBackward<identity, sigmoid_range_head_backward>)
    ->Args({8, 3, 64, 64, 32})->Args({8, 3, 128, 128, 32})->UseManualTime();

// ---- softmax over (B, N, N): args B, N, dim ----

void BM_CudaSoftmaxForward(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const int64_t b = state.range(0), n = state.range(1), dim = state.range(2);
  const Tensor x = gpu_random({b, n, n}, 4, DType::F32, -10.0, 10.0);
  fg::bench::time_memory_bound(state, 2.0 * double(x.nbytes()), [&] { Tensor y = fg::kernels::softmax(x, dim); });
}

void BM_CudaSoftmaxBackward(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const int64_t b = state.range(0), n = state.range(1), dim = state.range(2);
  const Tensor y = fg::kernels::softmax(gpu_random({b, n, n}, 5, DType::F32, -10.0, 10.0), dim);
  const Tensor g = gpu_random({b, n, n}, 6);
  fg::bench::time_memory_bound(state, 3.0 * double(y.nbytes()),
                               [&] { Tensor gx = fg::kernels::softmax_backward(g, y, dim); });
}

// dim 1: the self-attention softmax (the column kernel); dim 2: contiguous rows (the row kernel).
BENCHMARK(BM_CudaSoftmaxForward)->Args({8, 256, 1})->Args({8, 256, 2})->Args({8, 1024, 1})->Args({8, 1024, 2})
    ->UseManualTime();
BENCHMARK(BM_CudaSoftmaxBackward)->Args({8, 256, 1})->Args({8, 256, 2})->Args({8, 1024, 1})->Args({8, 1024, 2})
    ->UseManualTime();

// ---- dropout: the mask (write), applying it (read x and mask, write y) ----

void BM_CudaDropout(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(nchw(state), 7);
  fg::Generator gen(8);
  fg::bench::time_memory_bound(state, 4.0 * double(x.nbytes()), [&] {
    Tensor mask = fg::kernels::dropout_mask(x.shape(), 0.5, gen, DType::F32, x.device());
    Tensor y = fg::kernels::apply_dropout_mask(x, mask);
  });
}

void BM_CudaDropout2d(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(nchw(state), 9);
  fg::Generator gen(10);
  fg::bench::time_memory_bound(state, 2.0 * double(x.nbytes()), [&] {
    Tensor mask = fg::kernels::dropout_mask({x.size(0), x.size(1)}, 0.15, gen, DType::F32, x.device());
    Tensor y = fg::kernels::apply_dropout_mask(x, mask);
  });
}

BENCHMARK(BM_CudaDropout)->Args({8, 64, 32, 32})->Args({8, 64, 64, 64})->UseManualTime();
BENCHMARK(BM_CudaDropout2d)->Args({8, 512, 4, 4})->Args({8, 1024, 3, 3})->Args({8, 64, 64, 64})->UseManualTime();

// ---- casts (mixed precision) and strided copies ----

void BM_CudaCast(benchmark::State& state, DType from, DType to) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(nchw(state), 11).to(from);
  fg::bench::time_memory_bound(state, double(x.numel()) * double(fg::dtype_size(from) + fg::dtype_size(to)),
                               [&] { Tensor y = x.to(to); });
}

BENCHMARK_CAPTURE(BM_CudaCast, f32_to_f16, DType::F32, DType::F16)
    ->Args({8, 64, 64, 64})->Args({8, 99, 128, 128})->UseManualTime();
BENCHMARK_CAPTURE(BM_CudaCast, f16_to_f32, DType::F16, DType::F32)
    ->Args({8, 64, 64, 64})->Args({8, 99, 128, 128})->UseManualTime();
BENCHMARK_CAPTURE(BM_CudaCast, f32_to_bf16, DType::F32, DType::BF16)->Args({8, 64, 64, 64})->UseManualTime();

// NCHW -> NHWC and back: the strided copy kernel with a permuted source.
void BM_CudaPermuteCopy(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor x = gpu_random(nchw(state), 12);
  fg::bench::time_memory_bound(state, 2.0 * double(x.nbytes()),
                               [&] { Tensor y = x.permute({0, 2, 3, 1}).contiguous(); });
}
BENCHMARK(BM_CudaPermuteCopy)->Args({8, 64, 64, 64})->Args({8, 3, 256, 256})->UseManualTime();

// ---- elementwise and reductions ----

// The residual add of a res block: two reads, one write.
void BM_CudaAdd(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor a = gpu_random(nchw(state), 13), b = gpu_random(nchw(state), 14);
  fg::bench::time_memory_bound(state, 3.0 * double(a.nbytes()), [&] { Tensor y = fg::kernels::add(a, b); });
}
// Adding a per-channel bias (C, 1, 1): broadcasting through the strided index math.
void BM_CudaAddBias(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor a = gpu_random(nchw(state), 15), b = gpu_random({state.range(1), 1, 1}, 16);
  fg::bench::time_memory_bound(state, 2.0 * double(a.nbytes()), [&] { Tensor y = fg::kernels::add(a, b); });
}
// Gradient accumulation: dst += src, read both, write dst.
void BM_CudaAccumulate(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  Tensor dst = gpu_random(nchw(state), 17);
  const Tensor src = gpu_random(nchw(state), 18);
  fg::bench::time_memory_bound(state, 3.0 * double(dst.nbytes()), [&] { fg::kernels::add_(dst, src, 1.0); });
}
// The bias gradient: sum over (N, H, W) of (N, C, H, W).
void BM_CudaBiasGradSum(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor g = gpu_random(nchw(state), 19);
  fg::bench::time_memory_bound(state, double(g.nbytes()), [&] { Tensor s = fg::kernels::sum(g, {0, 2, 3}); });
}

BENCHMARK(BM_CudaAdd)->Args({8, 64, 64, 64})->Args({8, 99, 128, 128})->UseManualTime();
BENCHMARK(BM_CudaAddBias)->Args({8, 64, 64, 64})->Args({8, 512, 8, 8})->UseManualTime();
BENCHMARK(BM_CudaAccumulate)->Args({8, 64, 64, 64})->Args({8, 99, 128, 128})->UseManualTime();
BENCHMARK(BM_CudaBiasGradSum)->Args({8, 64, 64, 64})->Args({8, 512, 8, 8})->Args({8, 3, 256, 256})->UseManualTime();

// ---- losses on the restored image (8, 3, S, S) ----

void BM_CudaMseLoss(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor p = gpu_random(nchw(state), 20), t = gpu_random(nchw(state), 21);
  fg::bench::time_memory_bound(state, 2.0 * double(p.nbytes()), [&] { Tensor l = fg::kernels::mse_loss(p, t); });
}
void BM_CudaMseLossBackward(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const Tensor p = gpu_random(nchw(state), 22), t = gpu_random(nchw(state), 23);
  const Tensor go = Tensor::ones({}, DType::F32, fg::Device::cuda(0));
  fg::bench::time_memory_bound(state, 3.0 * double(p.nbytes()),
                               [&] { Tensor g = fg::kernels::mse_loss_backward(go, p, t); });
}
BENCHMARK(BM_CudaMseLoss)->Args({8, 3, 128, 128})->Args({8, 3, 256, 256})->UseManualTime();
BENCHMARK(BM_CudaMseLossBackward)->Args({8, 3, 128, 128})->Args({8, 3, 256, 256})->UseManualTime();

// ---- the fused Adam step: read p, g, m, v; write p, m, v. Arg: parameters in millions x 10 ----

void BM_CudaAdamStep(benchmark::State& state) {
  if (fg::bench::skip_without_gpu(state)) return;
  const int64_t n = state.range(0) * 100000;
  Tensor p = gpu_random({n}, 24), g = gpu_random({n}, 25);
  Tensor m = Tensor::zeros({n}, DType::F32, fg::Device::cuda(0));
  Tensor v = Tensor::zeros({n}, DType::F32, fg::Device::cuda(0));
  fg::kernels::cuda::AdamStep st;
  st.decoupled = true;
  st.weight_decay = 1e-2;
  fg::bench::time_memory_bound(state, 7.0 * double(p.nbytes()),
                               [&] { fg::kernels::cuda::adam_update(p, g, m, v, st); });
}
// The Dynamic U-Net's 41.4 M parameters, and its 20.1 M trainable ones.
BENCHMARK(BM_CudaAdamStep)->Arg(414)->Arg(201)->UseManualTime();

}  // namespace

#else  // FG_WITH_CUDA

namespace {
void BM_CudaPointwise(benchmark::State& state) {
  state.SkipWithError("filmgrad was built without CUDA (nvcc not found): GPU benchmarks skipped");
}
BENCHMARK(BM_CudaPointwise);
}  // namespace

#endif  // FG_WITH_CUDA

BENCHMARK_MAIN();
