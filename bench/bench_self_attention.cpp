// Self-attention kernels (kernels/self_attention.h), forward and backward, both CPU versions, on the shapes the
// networks use: the Dynamic U-Net's attention after UnetBlock 1 (384 channels, Ck = 384 / 8 = 48, at 1/8 of the
// input size: 8x8 for 64 px crops, 16x16 for 128 px, 32x32 for 256 px) and the NoGAN critic's (1024 channels after
// the 4x4 stride-1 pad-1 conv on ResNet34's 8x8 output for 256 px: 7x7), batch 8. The plain-loop reference runs
// only on the smallest shape, where it finishes in reasonable time.
// Counters: FLOP/s (multiply-adds count 2; the softmax's exp/divide are not counted) and the MiB the forward
// keeps for the backward (f, g, h, beta).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "kernels/self_attention.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace {

using fg::kernels::SelfAttentionImpl;

struct AttentionShape {
  int64_t B, C, Ck, H, W;
};

double forward_flops(const AttentionShape& s) {
  const double B = double(s.B), C = double(s.C), Ck = double(s.Ck), N = double(s.H * s.W);
  // f, g, h projections; scores f^T g; h beta.
  return 2 * B * N * C * (2 * Ck + C) + 2 * B * N * N * Ck + 2 * B * C * N * N;
}

double backward_flops(const AttentionShape& s) {
  const double B = double(s.B), C = double(s.C), Ck = double(s.Ck), N = double(s.H * s.W);
  // dO beta^T and h^T dO; df and dg; the three weight gradients and the three terms of dX.
  return 2 * 2 * B * C * N * N + 2 * 2 * B * Ck * N * N + 2 * 2 * B * N * C * (2 * Ck + C);
}

double saved_mib(const AttentionShape& s) {
  const double N = double(s.H * s.W);
  return double(s.B) * ((2 * double(s.Ck) + double(s.C)) * N + N * N) * 4.0 / (1024.0 * 1024.0);
}

struct Inputs {
  fg::Tensor x, wq, wk, wv, gamma, dout;
};

Inputs make_inputs(const AttentionShape& s) {
  fg::Generator gen(42);
  const int64_t N = s.H * s.W;
  Inputs in{fg::Tensor::empty({s.B, s.C, N}), fg::Tensor::empty({s.Ck, s.C}), fg::Tensor::empty({s.Ck, s.C}),
            fg::Tensor::empty({s.C, s.C}),    fg::Tensor::full({1}, 0.5),     fg::Tensor::empty({s.B, s.C, N})};
  fg::uniform_(in.x, gen, -1.0, 1.0);
  fg::normal_(in.wq, gen, 0.0, 0.05);
  fg::normal_(in.wk, gen, 0.0, 0.05);
  fg::normal_(in.wv, gen, 0.0, 0.05);
  fg::uniform_(in.dout, gen, -1.0, 1.0);
  return in;
}

void set_counters(benchmark::State& state, const AttentionShape& s, double flops) {
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["saved_MiB"] = saved_mib(s);
}

void BM_self_attention_forward(benchmark::State& state, AttentionShape s, SelfAttentionImpl impl) {
  const Inputs in = make_inputs(s);
  for (auto _ : state) {
    auto fwd = fg::kernels::self_attention_forward(in.x, in.wq, in.wk, in.wv, in.gamma, impl);
    benchmark::DoNotOptimize(fwd.out.raw_data());
  }
  set_counters(state, s, forward_flops(s));
}

void BM_self_attention_backward(benchmark::State& state, AttentionShape s, SelfAttentionImpl impl) {
  const Inputs in = make_inputs(s);
  const auto fwd = fg::kernels::self_attention_forward(in.x, in.wq, in.wk, in.wv, in.gamma, impl);
  for (auto _ : state) {
    auto grads = fg::kernels::self_attention_backward(in.dout, in.x, in.wq, in.wk, in.wv, in.gamma, fwd, impl);
    benchmark::DoNotOptimize(grads.dx.raw_data());
  }
  set_counters(state, s, backward_flops(s));
}

const AttentionShape kUnet64{8, 384, 48, 8, 8};
const AttentionShape kUnet128{8, 384, 48, 16, 16};
const AttentionShape kUnet256{8, 384, 48, 32, 32};
const AttentionShape kCritic256{8, 1024, 128, 7, 7};

}  // namespace

BENCHMARK_CAPTURE(BM_self_attention_forward, unet_64px_blas, kUnet64, SelfAttentionImpl::BLAS)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_self_attention_forward, unet_64px_reference, kUnet64, SelfAttentionImpl::REFERENCE)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_self_attention_forward, unet_128px_blas, kUnet128, SelfAttentionImpl::BLAS)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_self_attention_forward, unet_256px_blas, kUnet256, SelfAttentionImpl::BLAS)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_self_attention_forward, critic_256px_blas, kCritic256, SelfAttentionImpl::BLAS)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(BM_self_attention_backward, unet_64px_blas, kUnet64, SelfAttentionImpl::BLAS)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_self_attention_backward, unet_64px_reference, kUnet64, SelfAttentionImpl::REFERENCE)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_self_attention_backward, unet_128px_blas, kUnet128, SelfAttentionImpl::BLAS)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_self_attention_backward, unet_256px_blas, kUnet256, SelfAttentionImpl::BLAS)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_self_attention_backward, critic_256px_blas, kCritic256, SelfAttentionImpl::BLAS)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
