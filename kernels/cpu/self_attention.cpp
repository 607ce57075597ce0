// CPU self-attention (SAGAN / fastai SelfAttention), forward and backward, in two versions that compute the same
// thing (see kernels/self_attention.h for the formulas and the memory the forward keeps):
//   *_reference: plain loops, each line a formula of the derivation below; the spec the tests compare against.
//   *_blas:      the same products as GEMMs (kernels/cpu/gemm.h, row-major), with the softmax and its backward as row loops.
// Gradients are written (=), never accumulated: the autograd engine does the accumulation.
//
// Backward, per image, with P = h beta (C, N) and dO the gradient of out:
//   dgamma = sum(dO * P)            dP = gamma dO
//   dh = dP beta^T                  dbeta = h^T dP
//   ds[:, j] = beta[:, j] * (dbeta[:, j] - sum_i beta[i, j] dbeta[i, j])     (softmax over i, column j)
//   df[c, i] = sum_j g[c, j] ds[i, j]          dg[c, j] = sum_i f[c, i] ds[i, j]
//   dWq = sum_b df X^T, dWk = sum_b dg X^T, dWv = sum_b dh X^T
//   dX = dO + Wq^T df + Wk^T dg + Wv^T dh
// The BLAS version uses sum(dO * (h beta)) = sum(h * (dO beta^T)): Q = dO beta^T is formed once and gives both
// dgamma = sum(h * Q) and dh = gamma Q, so P is never formed and gamma = 0 needs no special case.
//
// beta is stored j-major: bt[b, j, i] = beta[b, i, j], so row j of bt is the softmax distribution of output
// position j over source positions i and both softmax passes run over contiguous rows.
#include "kernels/self_attention.h"
#include "kernels/device_check.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "kernels/cpu/loops.h"
#include "kernels/matmul.h"
#include "tensor/error.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/self_attention.h"
#endif

namespace fg::cpu {

namespace {

// In place, each of `rows` rows of length n becomes its softmax (max subtracted first, so exp never overflows).
// rows: (rows, n)
template <typename T>
void softmax_rows(T* rows_data, int64_t rows, int64_t n) {
#pragma omp parallel for if (rows * n > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    T* row = rows_data + r * n;
    T m = row[0];
    for (int64_t i = 1; i < n; ++i) m = std::max(m, row[i]);
    T total = 0;
    for (int64_t i = 0; i < n; ++i) {
      row[i] = std::exp(row[i] - m);
      total += row[i];
    }
    const T inv = T(1) / total;
    for (int64_t i = 0; i < n; ++i) row[i] *= inv;
  }
}

// In place, d becomes the softmax backward along each row: d[r, :] = p[r, :] * (d[r, :] - <p[r, :], d[r, :]>).
// p, d: (rows, n)
template <typename T>
void softmax_backward_rows(const T* p, T* d, int64_t rows, int64_t n) {
#pragma omp parallel for if (rows * n > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* pr = p + r * n;
    T* dr = d + r * n;
    T dot = 0;
    for (int64_t i = 0; i < n; ++i) dot += pr[i] * dr[i];
    for (int64_t i = 0; i < n; ++i) dr[i] = pr[i] * (dr[i] - dot);
  }
}

// y[o, n] = sum_c w[o, c] x[c, n]
// w: (O, C), x: (C, N), y: (O, N)
template <typename T>
void project_reference(const T* w, const T* x, T* y, int64_t O, int64_t C, int64_t N) {
  for (int64_t o = 0; o < O; ++o) {
    T* yo = y + o * N;
    for (int64_t n = 0; n < N; ++n) yo[n] = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T woc = w[o * C + c];
      const T* xc = x + c * N;
      for (int64_t n = 0; n < N; ++n) yo[n] += woc * xc[n];
    }
  }
}

}  // namespace

// x: (B, C, N), wq, wk: (Ck, C), wv: (C, C), gamma: scalar
// -> out: (B, C, N), f, g: (B, Ck, N), h: (B, C, N), bt: (B, N, N) with bt[b, j, i] = beta[b, i, j]
template <typename T>
void self_attention_forward_reference(const T* x, const T* wq, const T* wk, const T* wv, T gamma, int64_t B, int64_t C,
                                      int64_t Ck, int64_t N, T* out, T* f, T* g, T* h, T* bt) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const T* xb = x + b * C * N;
    T* fb = f + b * Ck * N;
    T* gb = g + b * Ck * N;
    T* hb = h + b * C * N;
    T* btb = bt + b * N * N;
    project_reference(wq, xb, fb, Ck, C, N);
    project_reference(wk, xb, gb, Ck, C, N);
    project_reference(wv, xb, hb, C, C, N);
    // s[i, j] = sum_c f[c, i] g[c, j], stored at btb[j, i]
    for (int64_t j = 0; j < N; ++j) {
      for (int64_t i = 0; i < N; ++i) {
        T s = 0;
        for (int64_t c = 0; c < Ck; ++c) s += fb[c * N + i] * gb[c * N + j];
        btb[j * N + i] = s;
      }
    }
    softmax_rows(btb, N, N);
    // out[c, j] = gamma * sum_i h[c, i] beta[i, j] + x[c, j]
    T* ob = out + b * C * N;
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t j = 0; j < N; ++j) {
        T acc = 0;
        for (int64_t i = 0; i < N; ++i) acc += hb[c * N + i] * btb[j * N + i];
        ob[c * N + j] = gamma * acc + xb[c * N + j];
      }
    }
  }
}

// Same arguments as the reference.
template <typename T>
void self_attention_forward_blas(const T* x, const T* wq, const T* wk, const T* wv, T gamma, int64_t B, int64_t C,
                                 int64_t Ck, int64_t N, T* out, T* f, T* g, T* h, T* bt) {
  // One image at a time: the GEMM threads each product itself, and the batch is outermost in (B, C, N) so the
  // images cannot be fused into one GEMM without a transposing copy.
  for (int64_t b = 0; b < B; ++b) {
    const T* xb = x + b * C * N;
    T* fb = f + b * Ck * N;
    T* gb = g + b * Ck * N;
    T* hb = h + b * C * N;
    gemm_parallel(false, false, Ck, N, C, T(1), wq, C, xb, N, T(0), fb, N);
    gemm_parallel(false, false, Ck, N, C, T(1), wk, C, xb, N, T(0), gb, N);
    gemm_parallel(false, false, C, N, C, T(1), wv, C, xb, N, T(0), hb, N);
    // bt[j, i] = sum_c g[c, j] f[c, i] = (g^T f)[j, i]
    gemm_parallel(true, false, N, N, Ck, T(1), gb, N, fb, N, T(0), bt + b * N * N, N);
  }
  softmax_rows(bt, B * N, N);
  std::copy(x, x + B * C * N, out);
  for (int64_t b = 0; b < B; ++b) {
    // out[c, j] += gamma * sum_i h[c, i] bt[j, i] = gamma * (h bt^T)[c, j]
    gemm_parallel(false, true, C, N, N, gamma, h + b * C * N, N, bt + b * N * N, N, T(1), out + b * C * N, N);
  }
}

// dout, x: (B, C, N), wq, wk: (Ck, C), wv: (C, C), gamma: scalar, f, g: (B, Ck, N), h: (B, C, N),
// bt: (B, N, N) j-major beta -> dx: (B, C, N), dwq, dwk: (Ck, C), dwv: (C, C), *dgamma: scalar. All written (=).
template <typename T>
void self_attention_backward_reference(const T* dout, const T* x, const T* wq, const T* wk, const T* wv, T gamma,
                                       const T* f, const T* g, const T* h, const T* bt, int64_t B, int64_t C,
                                       int64_t Ck, int64_t N, T* dx, T* dwq, T* dwk, T* dwv, T* dgamma) {
  // Per-image gradients of f, g and h are kept for the whole batch so that the weight gradients (a sum over the
  // batch) can be formed afterwards without races between images.
  std::vector<T> df(size_t(B * Ck * N)), dg(size_t(B * Ck * N)), dh(size_t(B * C * N));
  std::vector<double> dgamma_per_image(size_t(B), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const T* dob = dout + b * C * N;
    const T* fb = f + b * Ck * N;
    const T* gb = g + b * Ck * N;
    const T* hb = h + b * C * N;
    const T* btb = bt + b * N * N;
    auto beta = [&](int64_t i, int64_t j) { return btb[j * N + i]; };
    T* dfb = df.data() + b * Ck * N;
    T* dgb = dg.data() + b * Ck * N;
    T* dhb = dh.data() + b * C * N;
    // P[c, j] = sum_i h[c, i] beta[i, j];  dgamma = sum dO * P
    double dgam = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t j = 0; j < N; ++j) {
        T p = 0;
        for (int64_t i = 0; i < N; ++i) p += hb[c * N + i] * beta(i, j);
        dgam += double(dob[c * N + j]) * double(p);
      }
    }
    dgamma_per_image[size_t(b)] = dgam;
    // dP = gamma dO;  dh[c, i] = sum_j dP[c, j] beta[i, j]
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t i = 0; i < N; ++i) {
        T acc = 0;
        for (int64_t j = 0; j < N; ++j) acc += gamma * dob[c * N + j] * beta(i, j);
        dhb[c * N + i] = acc;
      }
    }
    // dbeta[i, j] = sum_c h[c, i] dP[c, j]
    std::vector<T> dbeta(size_t(N * N));
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t j = 0; j < N; ++j) {
        T acc = 0;
        for (int64_t c = 0; c < C; ++c) acc += hb[c * N + i] * gamma * dob[c * N + j];
        dbeta[size_t(i * N + j)] = acc;
      }
    }
    // ds[i, j] = beta[i, j] * (dbeta[i, j] - sum_k beta[k, j] dbeta[k, j])
    std::vector<T> ds(size_t(N * N));
    for (int64_t j = 0; j < N; ++j) {
      T dot = 0;
      for (int64_t k = 0; k < N; ++k) dot += beta(k, j) * dbeta[size_t(k * N + j)];
      for (int64_t i = 0; i < N; ++i) ds[size_t(i * N + j)] = beta(i, j) * (dbeta[size_t(i * N + j)] - dot);
    }
    // df[c, i] = sum_j g[c, j] ds[i, j];  dg[c, j] = sum_i f[c, i] ds[i, j]
    for (int64_t c = 0; c < Ck; ++c) {
      for (int64_t i = 0; i < N; ++i) {
        T acc = 0;
        for (int64_t j = 0; j < N; ++j) acc += gb[c * N + j] * ds[size_t(i * N + j)];
        dfb[c * N + i] = acc;
      }
      for (int64_t j = 0; j < N; ++j) {
        T acc = 0;
        for (int64_t i = 0; i < N; ++i) acc += fb[c * N + i] * ds[size_t(i * N + j)];
        dgb[c * N + j] = acc;
      }
    }
    // dx[c, n] = dO[c, n] + sum_o wq[o, c] df[o, n] + sum_o wk[o, c] dg[o, n] + sum_o wv[o, c] dh[o, n]
    T* dxb = dx + b * C * N;
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t n = 0; n < N; ++n) {
        T acc = dob[c * N + n];
        for (int64_t o = 0; o < Ck; ++o) acc += wq[o * C + c] * dfb[o * N + n] + wk[o * C + c] * dgb[o * N + n];
        for (int64_t o = 0; o < C; ++o) acc += wv[o * C + c] * dhb[o * N + n];
        dxb[c * N + n] = acc;
      }
    }
  }
  double dgam = 0.0;
  for (int64_t b = 0; b < B; ++b) dgam += dgamma_per_image[size_t(b)];
  *dgamma = T(dgam);
  // dW[o, c] = sum_b sum_n dY[b, o, n] x[b, c, n] for (dW, dY) in (dwq, df), (dwk, dg), (dwv, dh)
  auto weight_grad = [&](const T* dy, int64_t O, T* dw) {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < O; ++o) {
      for (int64_t c = 0; c < C; ++c) {
        T acc = 0;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t n = 0; n < N; ++n) acc += dy[(b * O + o) * N + n] * x[(b * C + c) * N + n];
        dw[o * C + c] = acc;
      }
    }
  };
  weight_grad(df.data(), Ck, dwq);
  weight_grad(dg.data(), Ck, dwk);
  weight_grad(dh.data(), C, dwv);
}

// Same arguments as the reference.
template <typename T>
void self_attention_backward_blas(const T* dout, const T* x, const T* wq, const T* wk, const T* wv, T gamma, const T* f,
                                  const T* g, const T* h, const T* bt, int64_t B, int64_t C, int64_t Ck, int64_t N,
                                  T* dx, T* dwq, T* dwk, T* dwv, T* dgamma) {
  // One image's workspace, reused for every image (the weight gradients accumulate across images via GEMM beta).
  std::vector<T> dst(size_t(N * N)), df(size_t(Ck * N)), dg(size_t(Ck * N)), dh(size_t(C * N));
  std::fill(dwq, dwq + Ck * C, T(0));
  std::fill(dwk, dwk + Ck * C, T(0));
  std::fill(dwv, dwv + C * C, T(0));
  double dgam = 0.0;
  for (int64_t b = 0; b < B; ++b) {
    const T* dob = dout + b * C * N;
    const T* xb = x + b * C * N;
    const T* fb = f + b * Ck * N;
    const T* gb = g + b * Ck * N;
    const T* hb = h + b * C * N;
    const T* btb = bt + b * N * N;
    // dh starts as Q = dO beta^T (C, N): Q[c, i] = sum_j dO[c, j] bt[j, i]. dgamma = sum(h * Q), dh = gamma Q.
    gemm_parallel(false, false, C, N, N, T(1), dob, N, btb, N, T(0), dh.data(), N);
    double dot = 0.0;
    for (int64_t k = 0; k < C * N; ++k) dot += double(hb[k]) * double(dh[size_t(k)]);
    dgam += dot;
    for (auto& v : dh) v *= gamma;
    // dbeta, j-major: dst[j, i] = gamma * sum_c dO[c, j] h[c, i] = gamma (dO^T h)[j, i]; then the softmax backward.
    gemm_parallel(true, false, N, N, C, gamma, dob, N, hb, N, T(0), dst.data(), N);
    softmax_backward_rows(btb, dst.data(), N, N);
    // df[c, i] = sum_j g[c, j] ds[i, j] = (g dst)[c, i];  dg[c, j] = sum_i f[c, i] ds[i, j] = (f dst^T)[c, j]
    gemm_parallel(false, false, Ck, N, N, T(1), gb, N, dst.data(), N, T(0), df.data(), N);
    gemm_parallel(false, true, Ck, N, N, T(1), fb, N, dst.data(), N, T(0), dg.data(), N);
    // dW += dY X^T
    gemm_parallel(false, true, Ck, C, N, T(1), df.data(), N, xb, N, T(1), dwq, C);
    gemm_parallel(false, true, Ck, C, N, T(1), dg.data(), N, xb, N, T(1), dwk, C);
    gemm_parallel(false, true, C, C, N, T(1), dh.data(), N, xb, N, T(1), dwv, C);
    // dX = dO + Wq^T df + Wk^T dg + Wv^T dh
    T* dxb = dx + b * C * N;
    std::copy(dob, dob + C * N, dxb);
    gemm_parallel(true, false, C, N, Ck, T(1), wq, C, df.data(), N, T(1), dxb, N);
    gemm_parallel(true, false, C, N, Ck, T(1), wk, C, dg.data(), N, T(1), dxb, N);
    gemm_parallel(true, false, C, N, C, T(1), wv, C, dh.data(), N, T(1), dxb, N);
  }
  *dgamma = T(dgam);
}

}  // namespace fg::cpu

namespace fg::kernels {

namespace {

struct AttentionDims {
  int64_t B, C, Ck, N;
};

void check_same(const Tensor& x, const Tensor& t, const char* name) {
  FG_CHECK(t.defined(), "self_attention: " << name << " is undefined; pass a tensor");
  FG_CHECK(t.dtype() == x.dtype(), "self_attention: " << name << " has dtype " << dtype_name(t.dtype()) << " but x has "
                                                      << dtype_name(x.dtype()) << "; cast them to one dtype");
  FG_CHECK(t.device() == x.device(), "self_attention: " << name << " is on " << t.device().str() << " but x is on "
                                                        << x.device().str() << "; move them to one device");
}

AttentionDims check_inputs(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor& wv, const Tensor& gamma) {
  FG_CHECK(x.defined(), "self_attention: x is undefined; pass a (B, C, N) tensor");
  FG_CHECK(x.dim() == 3, "self_attention: x must be (B, C, N), got " << shape_str(x.shape()));
  check_same(x, wq, "wq");
  check_same(x, wk, "wk");
  check_same(x, wv, "wv");
  check_same(x, gamma, "gamma");
  FG_CHECK(dtype_is_floating(x.dtype()),
           "self_attention: dtype " << dtype_name(x.dtype()) << " is not floating; cast to f32 or f64");
  require_cpu(x, "self_attention", "x");
  const AttentionDims d{x.size(0), x.size(1), wq.dim() == 2 ? wq.size(0) : 0, x.size(2)};
  FG_CHECK(wq.dim() == 2 && wq.size(1) == d.C && d.Ck >= 1,
           "self_attention: wq must be (Ck, C) = (Ck, " << d.C << ") with Ck >= 1 for x " << shape_str(x.shape())
                                                        << ", got " << shape_str(wq.shape()));
  FG_CHECK(wk.shape() == wq.shape(),
           "self_attention: wk must have wq's shape " << shape_str(wq.shape()) << ", got " << shape_str(wk.shape()));
  FG_CHECK(wv.dim() == 2 && wv.size(0) == d.C && wv.size(1) == d.C,
           "self_attention: wv must be (C, C) = (" << d.C << ", " << d.C << ") for x " << shape_str(x.shape())
                                                   << ", got " << shape_str(wv.shape()));
  FG_CHECK(gamma.numel() == 1, "self_attention: gamma must hold one element, got " << shape_str(gamma.shape()));
  FG_CHECK(d.C >= 1, "self_attention: x " << shape_str(x.shape()) << " has no channels");
  // BLAS takes int sizes; N * N must also index one image's beta.
  FG_CHECK(d.N * d.N < INT_MAX && d.C * d.N < INT_MAX,
           "self_attention: x " << shape_str(x.shape()) << " is too large (N * N and C * N must stay below 2^31)");
  return d;
}

// beta stored j-major (what the forward returns), copying only when given another layout.
Tensor j_major(const Tensor& beta) {
  return beta.transpose(1, 2).contiguous();
}

}  // namespace

SelfAttentionForward self_attention_forward(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor& wv,
                                            const Tensor& gamma, SelfAttentionImpl impl) {
#ifdef FG_WITH_CUDA
  // `impl` chooses among the CPU versions; CUDA tensors run kernels/cuda/self_attention.h.
  if (x.defined() && x.device().is_cuda()) return cuda::self_attention_forward(x, wq, wk, wv, gamma);
#endif
  const AttentionDims d = check_inputs(x, wq, wk, wv, gamma);
  const Tensor xc = x.contiguous(), wqc = wq.contiguous(), wkc = wk.contiguous(), wvc = wv.contiguous();
  const double gamma_value = gamma.item();
  SelfAttentionForward r;
  r.out = Tensor::empty({d.B, d.C, d.N}, x.dtype());
  r.f = Tensor::empty({d.B, d.Ck, d.N}, x.dtype());
  r.g = Tensor::empty({d.B, d.Ck, d.N}, x.dtype());
  r.h = Tensor::empty({d.B, d.C, d.N}, x.dtype());
  const Tensor bt = Tensor::empty({d.B, d.N, d.N}, x.dtype());
  r.beta = bt.transpose(1, 2);
  if (d.B * d.N == 0) return r;
  FG_DISPATCH_FLOATING(x.dtype(), "self_attention", [&] {
    auto run = impl == SelfAttentionImpl::BLAS ? cpu::self_attention_forward_blas<scalar_t>
                                               : cpu::self_attention_forward_reference<scalar_t>;
    run(xc.data<scalar_t>(), wqc.data<scalar_t>(), wkc.data<scalar_t>(), wvc.data<scalar_t>(), scalar_t(gamma_value),
        d.B, d.C, d.Ck, d.N, r.out.data<scalar_t>(), r.f.data<scalar_t>(), r.g.data<scalar_t>(), r.h.data<scalar_t>(),
        bt.data<scalar_t>());
  });
  return r;
}

SelfAttentionGrads self_attention_backward(const Tensor& grad_out, const Tensor& x, const Tensor& wq, const Tensor& wk,
                                           const Tensor& wv, const Tensor& gamma, const SelfAttentionForward& saved,
                                           SelfAttentionImpl impl) {
#ifdef FG_WITH_CUDA
  if (x.defined() && x.device().is_cuda()) return cuda::self_attention_backward(grad_out, x, wq, wk, wv, gamma, saved);
#endif
  const AttentionDims d = check_inputs(x, wq, wk, wv, gamma);
  check_same(x, grad_out, "grad_out");
  FG_CHECK(grad_out.shape() == x.shape(), "self_attention backward: grad_out must have x's shape "
                                              << shape_str(x.shape()) << ", got " << shape_str(grad_out.shape()));
  const std::pair<const Tensor*, Shape> expected[] = {{&saved.f, {d.B, d.Ck, d.N}},
                                                      {&saved.g, {d.B, d.Ck, d.N}},
                                                      {&saved.h, {d.B, d.C, d.N}},
                                                      {&saved.beta, {d.B, d.N, d.N}}};
  for (const auto& [t, shape] : expected) {
    check_same(x, *t, "a saved forward tensor");
    FG_CHECK(t->shape() == shape, "self_attention backward: a saved forward tensor has shape "
                                      << shape_str(t->shape()) << ", expected " << shape_str(shape)
                                      << "; pass the forward's result for the same inputs");
  }
  const Tensor doc = grad_out.contiguous(), xc = x.contiguous(), wqc = wq.contiguous(), wkc = wk.contiguous(),
               wvc = wv.contiguous(), fc = saved.f.contiguous(), gc = saved.g.contiguous(), hc = saved.h.contiguous(),
               bt = j_major(saved.beta);
  const double gamma_value = gamma.item();
  SelfAttentionGrads r;
  r.dx = Tensor::empty({d.B, d.C, d.N}, x.dtype());
  r.dwq = Tensor::zeros({d.Ck, d.C}, x.dtype());
  r.dwk = Tensor::zeros({d.Ck, d.C}, x.dtype());
  r.dwv = Tensor::zeros({d.C, d.C}, x.dtype());
  r.dgamma = Tensor::zeros(gamma.shape(), x.dtype());
  if (d.B * d.N == 0) return r;
  FG_DISPATCH_FLOATING(x.dtype(), "self_attention", [&] {
    auto run = impl == SelfAttentionImpl::BLAS ? cpu::self_attention_backward_blas<scalar_t>
                                               : cpu::self_attention_backward_reference<scalar_t>;
    run(doc.data<scalar_t>(), xc.data<scalar_t>(), wqc.data<scalar_t>(), wkc.data<scalar_t>(), wvc.data<scalar_t>(),
        scalar_t(gamma_value), fc.data<scalar_t>(), gc.data<scalar_t>(), hc.data<scalar_t>(), bt.data<scalar_t>(), d.B,
        d.C, d.Ck, d.N, r.dx.data<scalar_t>(), r.dwq.data<scalar_t>(), r.dwk.data<scalar_t>(), r.dwv.data<scalar_t>(),
        r.dgamma.data<scalar_t>());
  });
  return r;
}

}  // namespace fg::kernels
