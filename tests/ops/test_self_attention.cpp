// Self-attention (SAGAN / fastai SelfAttention): the op against a naive computation written here from fastai's
// forward, the BLAS kernels against the plain-loop kernels (forward and backward), gamma = 0 as the exact identity,
// finite-difference gradients for all five inputs, non-contiguous inputs, both weight shapes, and the user errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "kernels/self_attention.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using kernels::SelfAttentionImpl;
using test::random_tensor;

struct Case {
  int64_t B, C, Ck, H, W;
  double gamma;
  std::string what;
};

std::string case_name(const Case& c) {
  return "B" + std::to_string(c.B) + " C" + std::to_string(c.C) + " Ck" + std::to_string(c.Ck) + " " +
         std::to_string(c.H) + "x" + std::to_string(c.W) + " gamma " + std::to_string(c.gamma) + " (" + c.what + ")";
}

// fastai v1's forward, literally: x viewed (B, C, N); f = Wq x, g = Wk x, h = Wv x; beta = softmax(bmm(f^T, g),
// dim=1); o = gamma * bmm(h, beta) + x. Inputs in logical row-major order; returns o and beta[b, i, j].
struct Naive {
  std::vector<double> out, beta;
};
Naive naive_self_attention(const std::vector<double>& x, const std::vector<double>& wq, const std::vector<double>& wk,
                           const std::vector<double>& wv, double gamma, int64_t B, int64_t C, int64_t Ck, int64_t N) {
  Naive r;
  r.out.assign(size_t(B * C * N), 0.0);
  r.beta.assign(size_t(B * N * N), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    auto X = [&](int64_t c, int64_t n) { return x[size_t((b * C + c) * N + n)]; };
    std::vector<double> f(size_t(Ck * N), 0.0), g(size_t(Ck * N), 0.0), h(size_t(C * N), 0.0);
    for (int64_t o = 0; o < Ck; ++o)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
          f[size_t(o * N + n)] += wq[size_t(o * C + c)] * X(c, n);
          g[size_t(o * N + n)] += wk[size_t(o * C + c)] * X(c, n);
        }
    for (int64_t o = 0; o < C; ++o)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) h[size_t(o * N + n)] += wv[size_t(o * C + c)] * X(c, n);
    // s[i, j] = sum_c f[c, i] g[c, j]; softmax over i (dim 1 of (B, N, N)) for every column j.
    std::vector<double> s(size_t(N * N), 0.0);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        for (int64_t c = 0; c < Ck; ++c) s[size_t(i * N + j)] += f[size_t(c * N + i)] * g[size_t(c * N + j)];
    double* beta = r.beta.data() + b * N * N;
    for (int64_t j = 0; j < N; ++j) {
      double m = -INFINITY, total = 0.0;
      for (int64_t i = 0; i < N; ++i) m = std::max(m, s[size_t(i * N + j)]);
      for (int64_t i = 0; i < N; ++i) total += std::exp(s[size_t(i * N + j)] - m);
      for (int64_t i = 0; i < N; ++i) beta[i * N + j] = std::exp(s[size_t(i * N + j)] - m) / total;
    }
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0.0;
        for (int64_t i = 0; i < N; ++i) acc += h[size_t(c * N + i)] * beta[i * N + j];
        r.out[size_t((b * C + c) * N + j)] = gamma * acc + X(c, j);
      }
  }
  return r;
}

struct Inputs {
  Tensor x, wq, wk, wv, gamma;
};
Inputs make_inputs(const Case& c, DType dt, uint64_t seed) {
  return {random_tensor({c.B, c.C, c.H, c.W}, seed, dt), random_tensor({c.Ck, c.C}, seed + 1, dt),
          random_tensor({c.Ck, c.C}, seed + 2, dt), random_tensor({c.C, c.C}, seed + 3, dt, -0.5, 0.5),
          Tensor::full({1}, c.gamma, dt)};
}

Variable run_op(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor& wv, const Tensor& gamma) {
  return self_attention(Variable(x), Variable(wq), Variable(wk), Variable(wv), Variable(gamma));
}

const std::vector<Case> kForwardCases = {
    {2, 8, 1, 3, 5, 0.7, "the gradient-check shape, Ck 1"},
    {2, 8, 2, 3, 5, -1.3, "Ck 2, negative gamma"},
    {1, 16, 2, 4, 4, 0.5, "batch 1, even N"},
    {3, 5, 3, 3, 3, 1.1, "odd C, odd N 9"},
    {2, 4, 1, 1, 1, 0.9, "N 1: beta is 1"},
    {1, 1, 1, 1, 7, 2.0, "one channel, a 1x7 row"},
    {2, 24, 3, 5, 7, 0.3, "N 35, not a multiple of anything"},
};

TEST(SelfAttention, ForwardMatchesNaive) {
  for (DType dt : {DType::F64, DType::F32}) {
    for (const Case& c : kForwardCases) {
      SCOPED_TRACE(case_name(c) + " " + dtype_name(dt));
      const Inputs in = make_inputs(c, dt, 100);
      const Variable out = run_op(in.x, in.wq, in.wk, in.wv, in.gamma);
      ASSERT_EQ(out.shape(), in.x.shape());
      ASSERT_EQ(out.dtype(), dt);
      const int64_t N = c.H * c.W;
      const Naive ref = naive_self_attention(in.x.to_vector(), in.wq.to_vector(), in.wk.to_vector(), in.wv.to_vector(),
                                             c.gamma, c.B, c.C, c.Ck, N);
      const Tensor ref_out = Tensor::from_vector(ref.out, in.x.shape(), DType::F64);
      if (dt == DType::F64) {
        EXPECT_ALL_CLOSE(ref_out, out.data(), 1e-12, 1e-10);
      } else {
        EXPECT_ALL_CLOSE(ref_out, out.data().to(DType::F64), 1e-5, 1e-4);
      }
    }
  }
}

TEST(SelfAttention, SavedBetaIsTheColumnSoftmax) {
  for (const Case& c : kForwardCases) {
    SCOPED_TRACE(case_name(c));
    const Inputs in = make_inputs(c, DType::F64, 200);
    const int64_t N = c.H * c.W;
    for (SelfAttentionImpl impl : {SelfAttentionImpl::BLAS, SelfAttentionImpl::REFERENCE}) {
      const kernels::SelfAttentionForward fwd =
          kernels::self_attention_forward(in.x.reshape({c.B, c.C, N}), in.wq, in.wk, in.wv, in.gamma, impl);
      const Naive ref = naive_self_attention(in.x.to_vector(), in.wq.to_vector(), in.wk.to_vector(), in.wv.to_vector(),
                                             c.gamma, c.B, c.C, c.Ck, N);
      ASSERT_EQ(fwd.beta.shape(), (Shape{c.B, N, N}));
      EXPECT_ALL_CLOSE(Tensor::from_vector(ref.beta, {c.B, N, N}, DType::F64), fwd.beta, 1e-12, 1e-10);
      // Every column j of beta[b] is a distribution over i.
      const Tensor column_sums = Tensor::from_vector(std::vector<double>(size_t(c.B * N), 1.0), {c.B, N}, DType::F64);
      EXPECT_ALL_CLOSE(column_sums, kernels::sum(fwd.beta, {1}), 1e-12, 0.0);
    }
  }
}

TEST(SelfAttention, GammaZeroIsExactlyTheIdentity) {
  for (DType dt : {DType::F32, DType::F64}) {
    for (Case c : kForwardCases) {
      c.gamma = 0.0;
      SCOPED_TRACE(case_name(c) + " " + dtype_name(dt));
      const Inputs in = make_inputs(c, dt, 300);
      EXPECT_EQ(run_op(in.x, in.wq, in.wk, in.wv, in.gamma).data().to_vector(), in.x.to_vector());
      const int64_t N = c.H * c.W;
      for (SelfAttentionImpl impl : {SelfAttentionImpl::BLAS, SelfAttentionImpl::REFERENCE}) {
        const Tensor x3 = in.x.reshape({c.B, c.C, N});
        EXPECT_EQ(kernels::self_attention_forward(x3, in.wq, in.wk, in.wv, in.gamma, impl).out.to_vector(),
                  x3.to_vector());
      }
    }
  }
}

// The BLAS kernels against the plain loops, forward and backward, on the same saved tensors.
TEST(SelfAttention, BlasMatchesReference) {
  std::vector<Case> cases = kForwardCases;
  cases.push_back({2, 48, 6, 6, 7, 0.8, "a scaled-down U-Net block, N 42"});
  cases.push_back({1, 32, 4, 1, 37, -0.6, "prime N 37"});
  cases.push_back({3, 7, 2, 2, 2, 0.0, "gamma 0: only dgamma and dx = dO survive"});
  for (DType dt : {DType::F64, DType::F32}) {
    for (const Case& c : cases) {
      SCOPED_TRACE(case_name(c) + " " + dtype_name(dt));
      const Inputs in = make_inputs(c, dt, 400);
      const int64_t N = c.H * c.W;
      const Tensor x3 = in.x.reshape({c.B, c.C, N});
      const Tensor dout = random_tensor({c.B, c.C, N}, 450, dt);
      const auto fast = kernels::self_attention_forward(x3, in.wq, in.wk, in.wv, in.gamma, SelfAttentionImpl::BLAS);
      const auto ref = kernels::self_attention_forward(x3, in.wq, in.wk, in.wv, in.gamma, SelfAttentionImpl::REFERENCE);
      const auto fast_grads =
          kernels::self_attention_backward(dout, x3, in.wq, in.wk, in.wv, in.gamma, fast, SelfAttentionImpl::BLAS);
      const auto ref_grads =
          kernels::self_attention_backward(dout, x3, in.wq, in.wk, in.wv, in.gamma, ref, SelfAttentionImpl::REFERENCE);
      // Elementwise bounds relative to each tensor's scale: the BLAS and the loops sum the same f32 products in
      // different orders (and the BLAS's order depends on which kernels it picks for the CPU: OpenBLAS's Prescott
      // kernels on an unrecognised Intel CPU moved single gradient elements by 3.6e-5 at a scale of about 0.5),
      // so the f32 bound is 1e-4 of the tensor's largest magnitude; NMSE below stays at 1e-7.
      const double atol_scale = dt == DType::F64 ? 1e-12 : 1e-4, rtol = dt == DType::F64 ? 1e-10 : 1e-4;
      const std::pair<const char*, std::pair<Tensor, Tensor>> pairs[] = {
          {"out", {ref.out, fast.out}},
          {"f", {ref.f, fast.f}},
          {"g", {ref.g, fast.g}},
          {"h", {ref.h, fast.h}},
          {"beta", {ref.beta, fast.beta}},
          {"dx", {ref_grads.dx, fast_grads.dx}},
          {"dwq", {ref_grads.dwq, fast_grads.dwq}},
          {"dwk", {ref_grads.dwk, fast_grads.dwk}},
          {"dwv", {ref_grads.dwv, fast_grads.dwv}},
          {"dgamma", {ref_grads.dgamma, fast_grads.dgamma}}};
      for (const auto& [name, p] : pairs) {
        SCOPED_TRACE(name);
        const double atol = atol_scale * std::max(1e-3, kernels::max_abs(p.first));
        EXPECT_ALL_CLOSE(p.first, p.second, atol, rtol);
        // NMSE is meaningless when both are exactly zero (weight gradients at gamma = 0): nmse returns 0 then.
        EXPECT_LE(test::nmse(p.first, p.second), dt == DType::F64 ? 1e-20 : 1e-7);
      }
      if (c.gamma == 0.0) {
        EXPECT_EQ(kernels::max_abs(fast_grads.dwq), 0.0);
        EXPECT_EQ(fast_grads.dx.to_vector(), dout.to_vector());
      }
    }
  }
}

// The backward kernel accepts beta in any layout, not only the j-major one the forward returns.
TEST(SelfAttention, BackwardAcceptsContiguousBeta) {
  const Case c{2, 6, 2, 3, 4, 0.7, "layout"};
  const Inputs in = make_inputs(c, DType::F64, 500);
  const Tensor x3 = in.x.reshape({2, 6, 12});
  const Tensor dout = random_tensor({2, 6, 12}, 501, DType::F64);
  kernels::SelfAttentionForward fwd = kernels::self_attention_forward(x3, in.wq, in.wk, in.wv, in.gamma);
  const auto want = kernels::self_attention_backward(dout, x3, in.wq, in.wk, in.wv, in.gamma, fwd);
  fwd.beta = fwd.beta.contiguous();
  ASSERT_TRUE(fwd.beta.is_contiguous());
  const auto got = kernels::self_attention_backward(dout, x3, in.wq, in.wk, in.wv, in.gamma, fwd);
  EXPECT_EQ(want.dx.to_vector(), got.dx.to_vector());
  EXPECT_EQ(want.dwq.to_vector(), got.dwq.to_vector());
}

const std::vector<Case> kGradCases = {
    {2, 8, 1, 3, 5, 0.7, "Ck 1"},
    {2, 8, 2, 3, 5, 0.7, "Ck 2"},
    {1, 8, 2, 3, 3, -0.4, "batch 1, odd N 9"},
    {2, 3, 1, 1, 1, 0.7, "N 1"},
    {2, 8, 2, 3, 5, 0.0, "gamma 0, the initial value"},
};

TEST(SelfAttention, GradCheckAllInputs) {
  for (const Case& c : kGradCases) {
    SCOPED_TRACE(case_name(c));
    const Inputs in = make_inputs(c, DType::F64, 600);
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return self_attention(v[0], v[1], v[2], v[3], v[4]); },
                   {in.x, in.wq, in.wk, in.wv, in.gamma});
  }
}

TEST(SelfAttention, GradCheckConv1dWeights) {
  const Case c{2, 8, 2, 3, 5, 0.7, "(Co, C, 1) weights"};
  const Inputs in = make_inputs(c, DType::F64, 700);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return self_attention(v[0], v[1], v[2], v[3], v[4]); },
                 {in.x, in.wq.reshape({2, 8, 1}), in.wk.reshape({2, 8, 1}), in.wv.reshape({8, 8, 1}), in.gamma});
}

TEST(SelfAttention, GradCheckSubsetsOfInputs) {
  const Case c{2, 8, 1, 3, 5, 0.7, "subsets"};
  const Inputs in = make_inputs(c, DType::F64, 800);
  auto f = [](const std::vector<Variable>& v) { return self_attention(v[0], v[1], v[2], v[3], v[4]); };
  EXPECT_GRAD_OK(f, {in.x, in.wq, in.wk, in.wv, in.gamma}, {true, false, false, false, false});
  EXPECT_GRAD_OK(f, {in.x, in.wq, in.wk, in.wv, in.gamma}, {false, true, true, true, true});
  EXPECT_GRAD_OK(f, {in.x, in.wq, in.wk, in.wv, in.gamma}, {false, false, false, false, true});
}

// x reaches the op as a permuted view of a (B, H, W, C) tensor: the gradient flows back through the view.
TEST(SelfAttention, GradCheckNonContiguousX) {
  const Case c{2, 8, 2, 3, 5, 0.7, "permuted x"};
  const Inputs in = make_inputs(c, DType::F64, 900);
  const Tensor x_bhwc = random_tensor({2, 3, 5, 8}, 901, DType::F64);
  EXPECT_GRAD_OK(
      [](const std::vector<Variable>& v) {
        return self_attention(permute(v[0], {0, 3, 1, 2}), v[1], v[2], v[3], v[4]);
      },
      {x_bhwc, in.wq, in.wk, in.wv, in.gamma});
}

// Non-contiguous x as a leaf: forward and gradients equal those of its contiguous copy, and each gradient has the
// shape its input was given in.
TEST(SelfAttention, NonContiguousLeavesAndGradientShapes) {
  const Case c{2, 8, 2, 3, 5, 0.7, "views"};
  const Inputs in = make_inputs(c, DType::F64, 1000);
  const Tensor permuted = random_tensor({2, 3, 5, 8}, 1001, DType::F64).permute({0, 3, 1, 2});
  const Tensor strided = random_tensor({2, 8, 3, 10}, 1002, DType::F64).slice(3, 0, 10, 2);
  const Tensor dout = random_tensor({2, 8, 3, 5}, 1003, DType::F64);
  for (const Tensor& x : {permuted, strided}) {
    ASSERT_FALSE(x.is_contiguous());
    for (bool conv1d_weights : {false, true}) {
      SCOPED_TRACE(std::string("conv1d weights ") + (conv1d_weights ? "yes" : "no"));
      const Tensor wq = conv1d_weights ? in.wq.reshape({2, 8, 1}) : in.wq;
      const Tensor wk = conv1d_weights ? in.wk.reshape({2, 8, 1}) : in.wk;
      const Tensor wv = conv1d_weights ? in.wv.reshape({8, 8, 1}) : in.wv;
      auto grads_for = [&](const Tensor& xt) {
        std::vector<Variable> v = {Variable(xt, true), Variable(wq, true), Variable(wk, true), Variable(wv, true),
                                   Variable(in.gamma, true)};
        const Variable out = self_attention(v[0], v[1], v[2], v[3], v[4]);
        std::vector<Tensor> g = grad(out, v, dout);
        g.push_back(out.data());
        return g;
      };
      const std::vector<Tensor> got = grads_for(x), want = grads_for(x.contiguous());
      ASSERT_EQ(got.size(), 6u);
      const Shape shapes[] = {x.shape(), wq.shape(), wk.shape(), wv.shape(), Shape{1}, x.shape()};
      for (size_t k = 0; k < got.size(); ++k) {
        SCOPED_TRACE("result " + std::to_string(k));
        ASSERT_TRUE(got[k].defined());
        EXPECT_EQ(got[k].shape(), shapes[k]);
        EXPECT_ALL_CLOSE(want[k], got[k], 1e-13, 1e-11);
      }
    }
  }
}

TEST(SelfAttention, ScalarGammaKeepsItsShape) {
  const Case c{1, 4, 1, 2, 3, 0.7, "gamma shape ()"};
  const Inputs in = make_inputs(c, DType::F64, 1100);
  const Variable gamma(Tensor::scalar(0.7, DType::F64), true);
  const Variable x(in.x, true);
  const Variable out = self_attention(x, Variable(in.wq), Variable(in.wk), Variable(in.wv), gamma);
  const std::vector<Tensor> g = grad(out, {x, gamma}, random_tensor(in.x.shape(), 1101, DType::F64));
  EXPECT_EQ(g[1].shape(), Shape{});
  EXPECT_NE(g[1].item(), 0.0);
  EXPECT_ALL_CLOSE(run_op(in.x, in.wq, in.wk, in.wv, in.gamma).data(), out.data(), 0.0, 0.0);
}

TEST(SelfAttention, NoGraphWithoutGradients) {
  const Case c{1, 4, 1, 2, 3, 0.7, "no grad"};
  const Inputs in = make_inputs(c, DType::F32, 1200);
  EXPECT_TRUE(run_op(in.x, in.wq, in.wk, in.wv, in.gamma).is_leaf());
  const Variable w(in.wv, true);
  EXPECT_FALSE(self_attention(Variable(in.x), Variable(in.wq), Variable(in.wk), w, Variable(in.gamma)).is_leaf());
  NoGradGuard no_grad;
  EXPECT_TRUE(self_attention(Variable(in.x), Variable(in.wq), Variable(in.wk), w, Variable(in.gamma)).is_leaf());
}

TEST(SelfAttention, EmptyBatch) {
  const Inputs in = make_inputs({1, 4, 1, 2, 3, 0.7, ""}, DType::F32, 1300);
  const Tensor x = Tensor::zeros({0, 4, 2, 3});
  EXPECT_EQ(run_op(x, in.wq, in.wk, in.wv, in.gamma).shape(), (Shape{0, 4, 2, 3}));
}

TEST(SelfAttention, Errors) {
  const Inputs in = make_inputs({2, 8, 2, 3, 5, 0.7, ""}, DType::F32, 1400);
  auto throws = [&](const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor& wv, const Tensor& gamma,
                    const std::string& needle) {
    try {
      run_op(x, wq, wk, wv, gamma);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "no fg::Error for the case expecting '" << needle << "'";
  };
  const Tensor f32 = in.x;
  // wv not C x C
  throws(f32, in.wq, in.wk, Tensor::zeros({2, 8}), in.gamma, "wv must be (C, C)");
  throws(f32, in.wq, in.wk, Tensor::zeros({8, 4}), in.gamma, "wv must be (C, C)");
  // channel mismatch between x and the weights
  throws(random_tensor({2, 6, 3, 5}, 1), in.wq, in.wk, in.wv, in.gamma, "wq and wk must both be (Ck, 6)");
  throws(f32, Tensor::zeros({2, 7}), Tensor::zeros({2, 7}), in.wv, in.gamma, "wq and wk must both be (Ck, 8)");
  throws(f32, in.wq, Tensor::zeros({3, 8}), in.wv, in.gamma, "wq and wk must both be");
  // weight ranks
  throws(f32, Tensor::zeros({2, 8, 2}), in.wk, in.wv, in.gamma, "wq must be (Ck, C) or (Ck, C, 1)");
  throws(f32, in.wq, in.wk, Tensor::zeros({8, 8, 1, 1}), in.gamma, "wv must be (C, C) or (C, C, 1)");
  throws(f32, in.wq, in.wk, Tensor::zeros({8}), in.gamma, "wv must be");
  // x rank, gamma size, dtypes
  throws(Tensor::zeros({8, 15}), in.wq, in.wk, in.wv, in.gamma, "x must be (B, C, H, W)");
  throws(f32, in.wq, in.wk, in.wv, Tensor::zeros({2}), "gamma must be a single learnable scalar");
  throws(f32, in.wq.to(DType::F64), in.wk, in.wv, in.gamma, "wq has dtype f64 but x has f32");
  throws(f32, in.wq, in.wk, in.wv, in.gamma.to(DType::F64), "gamma has dtype f64 but x has f32");
  throws(Tensor::zeros({2, 8, 3, 5}, DType::I32), Tensor::zeros({2, 8}, DType::I32), Tensor::zeros({2, 8}, DType::I32),
         Tensor::zeros({8, 8}, DType::I32), Tensor::zeros({1}, DType::I32), "cast to f32");
  // Undefined inputs.
  EXPECT_THROW(self_attention(Variable(in.x), Variable(), Variable(in.wk), Variable(in.wv), Variable(in.gamma)), Error);
  // The kernel entry points check on their own.
  const Tensor x3 = in.x.reshape({2, 8, 15});
  EXPECT_THROW(kernels::self_attention_forward(in.x, in.wq, in.wk, in.wv, in.gamma), Error);
  const auto fwd = kernels::self_attention_forward(x3, in.wq, in.wk, in.wv, in.gamma);
  EXPECT_THROW(kernels::self_attention_backward(random_tensor({2, 8, 14}, 2), x3, in.wq, in.wk, in.wv, in.gamma, fwd),
               Error);
  kernels::SelfAttentionForward wrong = fwd;
  wrong.beta = Tensor::zeros({2, 14, 14});
  EXPECT_THROW(kernels::self_attention_backward(x3, x3, in.wq, in.wk, in.wv, in.gamma, wrong), Error);
}

}  // namespace
}  // namespace fg
