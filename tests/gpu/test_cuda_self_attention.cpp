// CUDA self-attention against the CPU reference (kernels/cpu/self_attention.cpp), ggml test-backend-ops style: the
// fused kernel family on the tiled GEMMs (automatic tiles; 128x128 tiles without split-K; 64x64 tiles with 3 K
// splits) and on the naive GEMM kernel, forward (out, f, g, h, beta) and backward (dx, dwq, dwk, dwv, dgamma), over
// the CPU test's case table (Ck 1, negative gamma, N 1, one channel, odd sizes) plus sizes that are not multiples of
// any tile or vector (C 37, N 99; C 130, N 144), gamma 0, and the networks' shapes: the Dynamic U-Net's attention
// after UnetBlock 1 (C 384, Ck 48) at N = 16x16 and 32x32, and the NoGAN critic's (C 1024, Ck 128, N = 7x7). Every
// output sits between sentinel bytes. The backward is fed the reference's saved f, g, h, beta rounded to the tested
// dtype, on both sides, so it is checked on its own.
// The reference is the CPU in f64 on the same rounded inputs (its f32 path sums in f32 itself, so f64 is the truer
// yardstick). Weights are drawn in +-2/sqrt(C), the scale of the networks' initialisation, so the softmax is neither
// uniform nor one-hot.
// Tolerances (NMSE): f32 <= 1e-7; f64 <= 1e-20. f16/bf16: f and g are rounded to the dtype before the scores, so a
// score of size s carries an error near s u (u = 2^-11 f16, 2^-8 bf16) that exp turns into a relative error of beta
// of the same size, on top of one rounding per stored intermediate (f, g, h, beta; ds, df, dg, dh) and per output:
// f16 <= 2e-5, bf16 <= 1e-3.
// Skipped, with the reason, without a GPU or without CUDA.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/self_attention.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/self_attention.h"
#endif

namespace fg {
namespace {

#ifdef FG_WITH_CUDA

using cuda::GemmTile;
using cuda::GemmTuning;
using kernels::SelfAttentionForward;
using kernels::SelfAttentionGrads;
using kernels::cuda::AttentionKernel;

struct AttnCase {
  const char* name;
  int64_t B, C, Ck, H, W;
  double gamma;
};
void PrintTo(const AttnCase& c, std::ostream* os) {
  *os << c.name;
}

const std::vector<AttnCase>& cases() {
  static const std::vector<AttnCase> table = {
      {"ck1", 2, 8, 1, 3, 5, 0.7},
      {"ck2_negative_gamma", 2, 8, 2, 3, 5, -1.3},
      {"batch1_even_n", 1, 16, 2, 4, 4, 0.5},
      {"odd_c5_n9", 3, 5, 3, 3, 3, 1.1},
      {"n1", 2, 4, 1, 1, 1, 0.9},
      {"one_channel_row", 1, 1, 1, 1, 7, 2.0},
      {"n35", 2, 24, 3, 5, 7, 0.3},
      {"c37_n99", 2, 37, 5, 9, 11, 0.6},
      {"c130_n144", 1, 130, 16, 12, 12, 0.4},
      {"gamma0", 2, 64, 8, 16, 16, 0.0},
      {"unet_block1_128px", 2, 384, 48, 16, 16, 0.8},
      {"unet_block1_256px", 1, 384, 48, 32, 32, 0.5},
      {"critic_head", 2, 1024, 128, 7, 7, 0.3},
  };
  return table;
}

struct Version {
  std::string name;
  AttentionKernel kernel;
  GemmTuning tuning;
};

std::vector<Version> versions(DType dt) {
  if (dt == DType::F64) return {{"naive_gemm", AttentionKernel::ATTENTION_NAIVE_GEMM, {}}};
  return {{"default/auto", AttentionKernel::ATTENTION_DEFAULT, {}},
          {"default/big_split1", AttentionKernel::ATTENTION_DEFAULT, {GemmTile::BIG, 1}},
          {"default/small_split3", AttentionKernel::ATTENTION_DEFAULT, {GemmTile::SMALL, 3}},
          {"naive_gemm", AttentionKernel::ATTENTION_NAIVE_GEMM, {}}};
}

double tolerance(DType dt) {
  switch (dt) {
    case DType::F64:
      return 1e-20;
    case DType::F32:
      return 1e-7;
    case DType::F16:
      return 2e-5;
    default:
      return 1e-3;  // bf16
  }
}

struct Inputs {
  Tensor x, wq, wk, wv, gamma, dout;  // host, dtype dt
};

Inputs make_inputs(const AttnCase& c, DType dt) {
  const int64_t N = c.H * c.W;
  const double s = 2.0 / std::sqrt(double(c.C));
  Inputs in;
  in.x = test::random_tensor({c.B, c.C, N}, 61).to(dt);
  in.wq = test::random_tensor({c.Ck, c.C}, 62, DType::F32, -s, s).to(dt);
  in.wk = test::random_tensor({c.Ck, c.C}, 63, DType::F32, -s, s).to(dt);
  in.wv = test::random_tensor({c.C, c.C}, 64, DType::F32, -s, s).to(dt);
  in.gamma = Tensor::full({1}, c.gamma, dt);
  in.dout = test::random_tensor({c.B, c.C, N}, 65).to(dt);
  return in;
}

Tensor f64(const Tensor& t) {
  return t.to(DType::F64);
}
Tensor gpu(const Tensor& t) {
  return t.to(Device::cuda(0));
}

// The saved forward rounded to dt, on the CPU in f64 and on the device in dt.
SelfAttentionForward rounded(const SelfAttentionForward& s, DType dt, bool device) {
  const auto r = [&](const Tensor& t) { return device ? gpu(t.to(dt)) : f64(t.to(dt)); };
  SelfAttentionForward o;
  o.f = r(s.f);
  o.g = r(s.g);
  o.h = r(s.h);
  o.beta = r(s.beta.transpose(1, 2).contiguous()).transpose(1, 2);  // keep the j-major storage
  return o;
}

void check_case(const AttnCase& c, DType dt) {
  const Inputs in = make_inputs(c, dt);
  const int64_t N = c.H * c.W;
  const double tol = tolerance(dt);
  const SelfAttentionForward ref =
      kernels::self_attention_forward(f64(in.x), f64(in.wq), f64(in.wk), f64(in.wv), f64(in.gamma));
  const SelfAttentionForward given_ref = rounded(ref, dt, false), given = rounded(ref, dt, true);
  const SelfAttentionGrads gref = kernels::self_attention_backward(f64(in.dout), f64(in.x), f64(in.wq), f64(in.wk),
                                                                   f64(in.wv), f64(in.gamma), given_ref);
  const Tensor xd = gpu(in.x), wqd = gpu(in.wq), wkd = gpu(in.wk), wvd = gpu(in.wv), gd = gpu(in.gamma);
  const Tensor doutd = gpu(in.dout);
  for (const Version& v : versions(dt)) {
    SCOPED_TRACE(std::string(dtype_name(dt)) + " " + v.name);
    test::GuardedTensor out = test::empty_guarded({c.B, c.C, N}, dt), h = test::empty_guarded({c.B, c.C, N}, dt);
    test::GuardedTensor f = test::empty_guarded({c.B, c.Ck, N}, dt), g = test::empty_guarded({c.B, c.Ck, N}, dt);
    test::GuardedTensor bt = test::empty_guarded({c.B, N, N}, dt);
    SelfAttentionForward fw;
    fw.out = out.tensor;
    fw.f = f.tensor;
    fw.g = g.tensor;
    fw.h = h.tensor;
    fw.beta = bt.tensor.transpose(1, 2);
    kernels::cuda::self_attention_forward_into(fw, xd, wqd, wkd, wvd, gd, v.kernel, v.tuning);
    for (const test::GuardedTensor* t : {&out, &f, &g, &h, &bt}) EXPECT_TRUE(test::sentinels_intact(*t));
    EXPECT_TRUE(test::nmse_within(ref.out, fw.out, tol)) << "out";
    EXPECT_TRUE(test::nmse_within(ref.f, fw.f, tol)) << "f";
    EXPECT_TRUE(test::nmse_within(ref.g, fw.g, tol)) << "g";
    EXPECT_TRUE(test::nmse_within(ref.h, fw.h, tol)) << "h";
    EXPECT_TRUE(test::nmse_within(ref.beta, fw.beta, tol)) << "beta";
    if (c.gamma == 0.0) {
      EXPECT_TRUE(test::nmse_within(in.x, fw.out, 0.0)) << "gamma 0 leaves x unchanged";
    }

    test::GuardedTensor dx = test::empty_guarded({c.B, c.C, N}, dt);
    test::GuardedTensor dwq = test::empty_guarded({c.Ck, c.C}, dt), dwk = test::empty_guarded({c.Ck, c.C}, dt);
    test::GuardedTensor dwv = test::empty_guarded({c.C, c.C}, dt), dgamma = test::empty_guarded({1}, dt);
    SelfAttentionGrads gr;
    gr.dx = dx.tensor;
    gr.dwq = dwq.tensor;
    gr.dwk = dwk.tensor;
    gr.dwv = dwv.tensor;
    gr.dgamma = dgamma.tensor;
    kernels::cuda::self_attention_backward_into(gr, doutd, xd, wqd, wkd, wvd, gd, given, v.kernel, v.tuning);
    for (const test::GuardedTensor* t : {&dx, &dwq, &dwk, &dwv, &dgamma}) EXPECT_TRUE(test::sentinels_intact(*t));
    EXPECT_TRUE(test::nmse_within(gref.dx, gr.dx, tol)) << "dx";
    EXPECT_TRUE(test::nmse_within(gref.dwq, gr.dwq, tol)) << "dwq";
    EXPECT_TRUE(test::nmse_within(gref.dwk, gr.dwk, tol)) << "dwk";
    EXPECT_TRUE(test::nmse_within(gref.dwv, gr.dwv, tol)) << "dwv";
    EXPECT_TRUE(test::nmse_within(gref.dgamma, gr.dgamma, tol)) << "dgamma";
  }
}

class CudaSelfAttention : public ::testing::TestWithParam<AttnCase> {};

TEST_P(CudaSelfAttention, F32MatchesTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_case(GetParam(), DType::F32);
}

TEST_P(CudaSelfAttention, F16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_case(GetParam(), DType::F16);
}

TEST_P(CudaSelfAttention, Bf16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_case(GetParam(), DType::BF16);
}

INSTANTIATE_TEST_SUITE_P(Table, CudaSelfAttention, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<AttnCase>& info) { return std::string(info.param.name); });

TEST(CudaSelfAttentionF64, NaiveGemmMatchesTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (size_t i : {size_t(0), size_t(3), size_t(4), size_t(7)}) {
    SCOPED_TRACE(cases()[i].name);
    check_case(cases()[i], DType::F64);
  }
}

// The entry points of kernels/self_attention.h dispatch CUDA tensors here; gamma may be 0-d, x and the weights any
// views, and the saved beta in any layout (the backward copies one that is not j-major).
TEST(CudaSelfAttentionDispatch, EntryPointsViewsAndLayouts) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const AttnCase& c = cases()[7];
  const Inputs in = make_inputs(c, DType::F32);
  const Tensor gamma0d = Tensor::scalar(c.gamma);
  const SelfAttentionForward ref = kernels::self_attention_forward(in.x, in.wq, in.wk, in.wv, gamma0d);
  const SelfAttentionGrads gref = kernels::self_attention_backward(in.dout, in.x, in.wq, in.wk, in.wv, gamma0d, ref);
  // x stored (B, N, C) and viewed (B, C, N); wv stored transposed.
  const Tensor xd = gpu(in.x.transpose(1, 2).contiguous()).transpose(1, 2);
  const Tensor wvd = gpu(in.wv.transpose(0, 1).contiguous()).transpose(0, 1);
  const Tensor gd = gpu(gamma0d);
  const SelfAttentionForward got = kernels::self_attention_forward(xd, gpu(in.wq), gpu(in.wk), wvd, gd);
  EXPECT_TRUE(got.out.device().is_cuda());
  EXPECT_EQ(got.beta.stride(1), 1);
  EXPECT_TRUE(test::nmse_within(ref.out, got.out));
  EXPECT_TRUE(test::nmse_within(ref.beta, got.beta));
  SelfAttentionForward saved = got;
  saved.beta = got.beta.contiguous();  // i-major storage now
  const SelfAttentionGrads g =
      kernels::self_attention_backward(gpu(in.dout), xd, gpu(in.wq), gpu(in.wk), wvd, gd, saved);
  EXPECT_EQ(g.dgamma.dim(), 0);
  EXPECT_TRUE(test::nmse_within(gref.dx, g.dx));
  EXPECT_TRUE(test::nmse_within(gref.dwv, g.dwv));
  EXPECT_TRUE(test::nmse_within(gref.dgamma, g.dgamma));
}

TEST(CudaSelfAttentionErrors, ClearMessages) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Inputs in = make_inputs(cases()[0], DType::F32);
  const Tensor xd = gpu(in.x), wqd = gpu(in.wq), wkd = gpu(in.wk), wvd = gpu(in.wv), gd = gpu(in.gamma);
  std::string msg = test::error_of([&] { kernels::cuda::self_attention_forward(xd, in.wq, wkd, wvd, gd); });
  EXPECT_NE(msg.find("cpu"), std::string::npos) << msg;
  msg = test::error_of([&] { kernels::cuda::self_attention_forward(xd, wqd, wkd.slice(0, 0, 0), wvd, gd); });
  EXPECT_NE(msg.find("wk must have wq's shape"), std::string::npos) << msg;
  msg = test::error_of([&] { kernels::cuda::self_attention_forward(xd, wqd, wkd, wvd, gd.to(DType::F16)); });
  EXPECT_NE(msg.find("one dtype"), std::string::npos) << msg;
  const SelfAttentionForward fw = kernels::cuda::self_attention_forward(xd, wqd, wkd, wvd, gd);
  SelfAttentionForward bad = fw;
  bad.h = fw.f;
  msg = test::error_of([&] { kernels::cuda::self_attention_backward(xd, xd, wqd, wkd, wvd, gd, bad); });
  EXPECT_NE(msg.find("saved forward tensor"), std::string::npos) << msg;
}

// An empty batch gives empty outputs and zero weight gradients.
TEST(CudaSelfAttentionEdges, EmptyBatch) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Device dev = Device::cuda(0);
  const Tensor x = Tensor::empty({0, 4, 6}, DType::F32, dev);
  const Tensor wq = gpu(test::random_tensor({2, 4}, 71)), wk = gpu(test::random_tensor({2, 4}, 72));
  const Tensor wv = gpu(test::random_tensor({4, 4}, 73)), gamma = gpu(Tensor::full({1}, 0.5));
  const SelfAttentionForward fw = kernels::cuda::self_attention_forward(x, wq, wk, wv, gamma);
  EXPECT_EQ(fw.out.shape(), Shape({0, 4, 6}));
  const SelfAttentionGrads g = kernels::cuda::self_attention_backward(x, x, wq, wk, wv, gamma, fw);
  for (double v : g.dwv.to(Device::cpu()).to_vector()) EXPECT_EQ(v, 0.0);
  EXPECT_EQ(g.dgamma.to(Device::cpu()).item(), 0.0);
}

#else  // !FG_WITH_CUDA

TEST(CudaSelfAttention, Skipped) {
  GTEST_SKIP() << test::gpu_skip_reason();
}

#endif  // FG_WITH_CUDA

}  // namespace
}  // namespace fg
