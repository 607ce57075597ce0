// Hand-written CUDA self-attention (kernels/cuda/self_attention.h): the entry points, and every product of the
// forward and backward as a GEMM problem on the shared tiled engine (kernels/cuda/gemm_core.cuh) with the attention
// epilogue below. The non-GEMM steps are in kernels/cuda/self_attention_steps.cu. Formulas and their derivation are
// in kernels/cpu/self_attention.cpp; the products, per image b (X = x[b] (C, N), bt = beta stored j-major):
//   forward   [f; g; h] = [wq; wk; wv] X                       M = 2 Ck + C, N = N, K = C
//             out = gamma (h bt^T) + x                         M = C,  N = N (j), K = N (i)
//   backward  Q = dO bt          (Q[c, i] = sum_j dO[c, j] bt[j, i])      M = C,  N = N (i), K = N (j)
//             D = dO^T h         (D[j, i] = sum_c dO[c, j] h[c, i])       M = N (j), N = N (i), K = C
//             df = g ds          (df[c, i] = sum_j g[c, j] ds[j, i])      M = Ck, N = N (i), K = N (j)
//             dg = f ds^T        (dg[c, j] = sum_i f[c, i] ds[j, i])      M = Ck, N = N (j), K = N (i)
//             dW_b = dY X^T      (dY = [df; dg; dh], per image)           M = 2 Ck + C, N = C, K = N
//             dX = dO + W^T dY   (W = [wq; wk; wv])                       M = C,  N = N, K = 2 Ck + C
// Each operand is a strided view read in place (kernels/cuda/matmul_operands.h), so only three layout pairs occur:
// (k, k), (k, mn) and (mn, mn), each instantiated once per dtype.
#include <cuda_runtime.h>

#include <climits>
#include <string>
#include <type_traits>

#include "kernels/cuda/gemm_core.cuh"
#include "kernels/cuda/matmul_operands.h"
#include "kernels/cuda/self_attention.h"
#include "kernels/cuda/self_attention_steps.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/error.h"
#include "tensor/overlap.h"

namespace fg::kernels::cuda {

namespace {

namespace gc = ::fg::cuda;
using attention_steps::Wide;

// Where a GEMM's result goes: rows [0, rows0) to part0, the next rows1 rows to part1, the rest to part2, each part
// (batch, rows, ld) with its own batch stride; optionally scaled by gamma[0] and added to a residual laid out like
// part0; stored in the element type E or, when `wide`, in f32 (f64 for f64).
template <typename E>
struct AttentionOutput {
  void* part0 = nullptr;
  void* part1 = nullptr;
  void* part2 = nullptr;
  int64_t stride0 = 0, stride1 = 0, stride2 = 0;
  int rows0 = INT_MAX, rows1 = INT_MAX;
  int ld = 0;
  bool wide = false;
  const E* gamma = nullptr;
  const E* residual = nullptr;

  struct Col {
    int b, n;
  };
  FG_HD Col col(int b, int n) const { return {b, n}; }
  FG_HD bool keep(int, int) const { return true; }
  template <typename Acc>
  FG_HD void store(int m, const Col& c, Acc v) const {
    int row = m;
    void* base = part0;
    int64_t batch_stride = stride0;
    if (row >= rows0) {
      row -= rows0;
      base = part1;
      batch_stride = stride1;
      if (row >= rows1) {
        row -= rows1;
        base = part2;
        batch_stride = stride2;
      }
    }
    const int64_t i = int64_t(c.b) * batch_stride + int64_t(row) * ld + c.n;
    using W = Wide<E>;
    W r = W(v);
    if (gamma) r *= W(gc::to_acc(gamma[0]));
    if (residual) r += W(gc::to_acc(residual[i]));
    if (wide)
      static_cast<W*>(base)[i] = r;
    else
      static_cast<E*>(base)[i] = gc::from_acc<E>(r);
  }
};

template <typename E>
AttentionOutput<E> single_output(void* data, int64_t batch_stride, int64_t ld, bool wide) {
  AttentionOutput<E> o;
  o.part0 = data;
  o.stride0 = batch_stride;
  o.ld = int(ld);
  o.wide = wide;
  return o;
}

// Runs the problem on the tiled engine of its element type (f64: the naive kernel, the only one for f64).
template <class P>
void run_gemm(const P& p, AttentionKernel kernel, const gc::GemmTuning& tuning, int device) {
  using E = typename P::AOp::T;
  if constexpr (std::is_same<E, double>::value) {
    gc::run_naive_gemm(p, device);
  } else {
    if (kernel == AttentionKernel::ATTENTION_NAIVE_GEMM)
      gc::run_naive_gemm(p, device);
    else
      gc::run_tiled_gemm(p, std::is_same<E, float>::value ? gc::GemmEngine::SIMT : gc::GemmEngine::WMMA, tuning,
                         device);
  }
}

// C (batch, M, N) = A B through `epi`, with A read as (M, K) and B as (N, K) from the operand views.
template <typename E>
void gemm(const gc::OperandView& a, const gc::OperandView& b, const AttentionOutput<E>& epi, int64_t M, int64_t N,
          int64_t K, int64_t batch, AttentionKernel kernel, const gc::GemmTuning& tuning, int device) {
  if (M * N * batch == 0) return;
  const auto fill = [&](auto& p) {
    p.epi = epi;
    p.M = int(M);
    p.N = int(N);
    p.K = int(K);
    p.batch = int(batch);
  };
  if (a.along_k && b.along_k) {
    gc::GemmProblem<gc::StridedK<E>, gc::StridedK<E>, AttentionOutput<E>> p;
    p.a = gc::strided_k<E>(a);
    p.b = gc::strided_k<E>(b);
    fill(p);
    run_gemm(p, kernel, tuning, device);
  } else if (a.along_k) {
    gc::GemmProblem<gc::StridedK<E>, gc::StridedMN<E>, AttentionOutput<E>> p;
    p.a = gc::strided_k<E>(a);
    p.b = gc::strided_mn<E>(b);
    fill(p);
    run_gemm(p, kernel, tuning, device);
  } else {
    FG_ASSERT(!b.along_k, "self_attention (CUDA): no product here reads A along m and B along k");
    gc::GemmProblem<gc::StridedMN<E>, gc::StridedMN<E>, AttentionOutput<E>> p;
    p.a = gc::strided_mn<E>(a);
    p.b = gc::strided_mn<E>(b);
    fill(p);
    run_gemm(p, kernel, tuning, device);
  }
}

// An operand (MN, K) of a GEMM: element (b, mn, k) at data[b * batch_stride + mn * s_mn + k * s_k], read along k
// (along_k) or along mn.
template <typename E>
gc::OperandView operand(const E* data, int64_t batch_stride, int64_t s_mn, int64_t s_k, int64_t MN, int64_t K,
                        bool along_k) {
  return gc::describe_operand_along(data, batch_stride, s_mn, s_k, MN, K, int(sizeof(E)), along_k);
}

struct Dims {
  int64_t B, C, Ck, N;
};

void check_same(const Tensor& x, const Tensor& t, const char* name) {
  FG_CHECK(t.defined(), "self_attention (CUDA): " << name << " is undefined; pass a tensor");
  FG_CHECK(t.dtype() == x.dtype(), "self_attention (CUDA): " << name << " has dtype " << dtype_name(t.dtype())
                                                             << " but x has " << dtype_name(x.dtype())
                                                             << "; cast them to one dtype");
  FG_CHECK(t.device() == x.device(), "self_attention (CUDA): " << name << " is on " << t.device().str()
                                                               << " but x is on " << x.device().str()
                                                               << "; move them to one device");
}

Dims check_inputs(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor& wv, const Tensor& gamma) {
  FG_CHECK(x.defined() && x.device().is_cuda(), "self_attention (CUDA): x must be a CUDA tensor");
  FG_CHECK(x.dim() == 3, "self_attention (CUDA): x must be (B, C, N), got " << shape_str(x.shape()));
  check_same(x, wq, "wq");
  check_same(x, wk, "wk");
  check_same(x, wv, "wv");
  check_same(x, gamma, "gamma");
  FG_CHECK(dtype_is_floating(x.dtype()),
           "self_attention (CUDA): dtype " << dtype_name(x.dtype()) << " is not floating; cast to f32");
  const Dims d{x.size(0), x.size(1), wq.dim() == 2 ? wq.size(0) : 0, x.size(2)};
  FG_CHECK(wq.dim() == 2 && wq.size(1) == d.C && d.Ck >= 1,
           "self_attention (CUDA): wq must be (Ck, C) = (Ck, " << d.C << ") with Ck >= 1 for x " << shape_str(x.shape())
                                                               << ", got " << shape_str(wq.shape()));
  FG_CHECK(wk.shape() == wq.shape(), "self_attention (CUDA): wk must have wq's shape "
                                         << shape_str(wq.shape()) << ", got " << shape_str(wk.shape()));
  FG_CHECK(wv.dim() == 2 && wv.size(0) == d.C && wv.size(1) == d.C,
           "self_attention (CUDA): wv must be (C, C) = (" << d.C << ", " << d.C << ") for x " << shape_str(x.shape())
                                                          << ", got " << shape_str(wv.shape()));
  FG_CHECK(gamma.numel() == 1, "self_attention (CUDA): gamma must hold one element, got " << shape_str(gamma.shape()));
  FG_CHECK(d.C >= 1, "self_attention (CUDA): x " << shape_str(x.shape()) << " has no channels");
  const int64_t Mo = 2 * d.Ck + d.C;
  FG_CHECK(d.N * d.N < INT_MAX && Mo * d.N < INT_MAX && d.B < 65535 && Mo * d.C < INT_MAX,
           "self_attention (CUDA): x " << shape_str(x.shape()) << " is too large (N * N, (2 Ck + C) * N and the "
                                       << "batch must fit the kernels' 32-bit indexing)");
  return d;
}

void check_output(const Tensor& out, const Shape& shape, const Tensor& x, const char* name) {
  FG_CHECK(out.defined() && out.shape() == shape && out.dtype() == x.dtype() && out.device() == x.device() &&
               out.is_contiguous(),
           "self_attention (CUDA): the output " << name << " must be a contiguous " << dtype_name(x.dtype())
                                                << shape_str(shape) << " tensor on " << x.device().str() << ", got "
                                                << (out.defined() ? out.str() : std::string("undefined")));
}

// [wq; wk; wv] (2 Ck + C, C), contiguous, on the device.
Tensor stacked_weights(const Tensor& wq, const Tensor& wk, const Tensor& wv, const Dims& d) {
  Tensor w = Tensor::empty({2 * d.Ck + d.C, d.C}, wq.dtype(), wq.device());
  w.narrow(0, 0, d.Ck).copy_(wq);
  w.narrow(0, d.Ck, d.Ck).copy_(wk);
  w.narrow(0, 2 * d.Ck, d.C).copy_(wv);
  return w;
}

template <typename F>
void dispatch(DType dt, F&& f) {
  switch (dt) {
    case DType::F32:
      f(float{});
      return;
    case DType::F64:
      f(double{});
      return;
    case DType::F16:
      f(half_t{});
      return;
    case DType::BF16:
      f(bf16_t{});
      return;
    default:
      break;
  }
  throw Error(std::string("self_attention (CUDA): dtype ") + dtype_name(dt) +
              " is not supported; use f32, f64, f16 or bf16");
}

DType wide_dtype(DType dt) {
  return dt == DType::F64 ? DType::F64 : DType::F32;
}

}  // namespace

const char* attention_kernel_name(AttentionKernel k) {
  switch (k) {
    case AttentionKernel::ATTENTION_DEFAULT:
      return "default";
    case AttentionKernel::ATTENTION_NAIVE_GEMM:
      return "naive_gemm";
  }
  return "?";
}

void self_attention_forward_into(SelfAttentionForward& out, const Tensor& x_in, const Tensor& wq, const Tensor& wk,
                                 const Tensor& wv, const Tensor& gamma, AttentionKernel kernel,
                                 const gc::GemmTuning& tuning) {
  const Dims d = check_inputs(x_in, wq, wk, wv, gamma);
  check_output(out.out, {d.B, d.C, d.N}, x_in, "out");
  check_output(out.f, {d.B, d.Ck, d.N}, x_in, "f");
  check_output(out.g, {d.B, d.Ck, d.N}, x_in, "g");
  check_output(out.h, {d.B, d.C, d.N}, x_in, "h");
  FG_CHECK(out.beta.defined() && out.beta.shape() == Shape({d.B, d.N, d.N}) &&
               out.beta.transpose(1, 2).is_contiguous() && out.beta.dtype() == x_in.dtype() &&
               out.beta.device() == x_in.device(),
           "self_attention (CUDA): the output beta must be (B, N, N) stored j-major (beta.transpose(1, 2) "
           "contiguous), got "
               << (out.beta.defined() ? out.beta.str() : std::string("undefined")));
  check_outputs_separate({&out.out, &out.f, &out.g, &out.h, &out.beta}, {&x_in, &wq, &wk, &wv, &gamma},
                         "self_attention (CUDA)");  // tensor/overlap.h
  if (d.B * d.N == 0) return;
  const int device = x_in.device().index;
  gc::DeviceGuard guard(device);
  const cudaStream_t stream = gc::stream(device);
  const Tensor x = x_in.contiguous();
  const Tensor g1 = gamma.reshape({1}).contiguous();
  const Tensor w_all = stacked_weights(wq, wk, wv, d);
  const Tensor bt = out.beta.transpose(1, 2);  // (B, N, N) contiguous: bt[b, j, i]
  const int64_t Mo = 2 * d.Ck + d.C;
  dispatch(x.dtype(), [&](auto tag) {
    using E = decltype(tag);
    const E* xp = x.data<E>();
    // [f; g; h] = W X: A = W (Mo, C) read along c; B[b] (n = position, k = c) = x[b, c, n], read along n.
    AttentionOutput<E> proj;
    proj.part0 = out.f.data<E>();
    proj.stride0 = d.Ck * d.N;
    proj.rows0 = int(d.Ck);
    proj.part1 = out.g.data<E>();
    proj.stride1 = d.Ck * d.N;
    proj.rows1 = int(d.Ck);
    proj.part2 = out.h.data<E>();
    proj.stride2 = d.C * d.N;
    proj.ld = int(d.N);
    gemm<E>(operand(w_all.data<E>(), 0, d.C, 1, Mo, d.C, true), operand(xp, d.C * d.N, 1, d.N, d.N, d.C, false), proj,
            Mo, d.N, d.C, d.B, kernel, tuning, device);
    attention_steps::scores_softmax<E>(out.f.data<E>(), out.g.data<E>(), bt.data<E>(), d.B, d.Ck, d.N, stream);
    // out = gamma h bt^T + x: A = h[b] (c, k = i) along i; B[b] (n = j, k = i) = bt[b, j, i], along i.
    AttentionOutput<E> weighted = single_output<E>(out.out.data<E>(), d.C * d.N, d.N, false);
    weighted.gamma = g1.data<E>();
    weighted.residual = xp;
    gemm<E>(operand(out.h.data<E>(), d.C * d.N, d.N, 1, d.C, d.N, true),
            operand(bt.data<E>(), d.N * d.N, d.N, 1, d.N, d.N, true), weighted, d.C, d.N, d.N, d.B, kernel, tuning,
            device);
  });
}

SelfAttentionForward self_attention_forward(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor& wv,
                                            const Tensor& gamma, AttentionKernel kernel, const gc::GemmTuning& tuning) {
  const Dims d = check_inputs(x, wq, wk, wv, gamma);
  const Device dev = x.device();
  SelfAttentionForward r;
  r.out = Tensor::empty({d.B, d.C, d.N}, x.dtype(), dev);
  r.f = Tensor::empty({d.B, d.Ck, d.N}, x.dtype(), dev);
  r.g = Tensor::empty({d.B, d.Ck, d.N}, x.dtype(), dev);
  r.h = Tensor::empty({d.B, d.C, d.N}, x.dtype(), dev);
  r.beta = Tensor::empty({d.B, d.N, d.N}, x.dtype(), dev).transpose(1, 2);
  self_attention_forward_into(r, x, wq, wk, wv, gamma, kernel, tuning);
  return r;
}

void self_attention_backward_into(SelfAttentionGrads& out, const Tensor& grad_out, const Tensor& x_in, const Tensor& wq,
                                  const Tensor& wk, const Tensor& wv, const Tensor& gamma,
                                  const SelfAttentionForward& saved, AttentionKernel kernel,
                                  const gc::GemmTuning& tuning) {
  const Dims d = check_inputs(x_in, wq, wk, wv, gamma);
  check_same(x_in, grad_out, "grad_out");
  FG_CHECK(grad_out.shape() == x_in.shape(), "self_attention (CUDA) backward: grad_out must have x's shape "
                                                 << shape_str(x_in.shape()) << ", got " << shape_str(grad_out.shape()));
  const std::pair<const Tensor*, Shape> expected[] = {{&saved.f, {d.B, d.Ck, d.N}},
                                                      {&saved.g, {d.B, d.Ck, d.N}},
                                                      {&saved.h, {d.B, d.C, d.N}},
                                                      {&saved.beta, {d.B, d.N, d.N}}};
  for (const auto& [t, shape] : expected) {
    check_same(x_in, *t, "a saved forward tensor");
    FG_CHECK(t->shape() == shape, "self_attention (CUDA) backward: a saved forward tensor has shape "
                                      << shape_str(t->shape()) << ", expected " << shape_str(shape)
                                      << "; pass the forward's result for the same inputs");
  }
  check_output(out.dx, {d.B, d.C, d.N}, x_in, "dx");
  check_output(out.dwq, {d.Ck, d.C}, x_in, "dwq");
  check_output(out.dwk, {d.Ck, d.C}, x_in, "dwk");
  check_output(out.dwv, {d.C, d.C}, x_in, "dwv");
  check_output(out.dgamma, gamma.shape(), x_in, "dgamma");
  check_outputs_separate(
      {&out.dx, &out.dwq, &out.dwk, &out.dwv, &out.dgamma},
      {&grad_out, &x_in, &wq, &wk, &wv, &gamma, &saved.out, &saved.f, &saved.g, &saved.h, &saved.beta},
      "self_attention (CUDA) backward");  // tensor/overlap.h
  if (d.B * d.N == 0) {
    for (Tensor* t : {&out.dwq, &out.dwk, &out.dwv, &out.dgamma}) t->zero_();
    return;
  }
  const int device = x_in.device().index;
  gc::DeviceGuard guard(device);
  const cudaStream_t stream = gc::stream(device);
  const Tensor x = x_in.contiguous(), dO = grad_out.contiguous();
  const Tensor f = saved.f.contiguous(), g = saved.g.contiguous(), h = saved.h.contiguous();
  const Tensor bt = saved.beta.transpose(1, 2).contiguous();  // j-major; a copy only when given another layout
  const Tensor g1 = gamma.reshape({1}).contiguous();
  const Tensor w_all = stacked_weights(wq, wk, wv, d);
  const int64_t B = d.B, C = d.C, Ck = d.Ck, N = d.N, Mo = 2 * Ck + C;
  const Device dev = x.device();
  const DType wt = wide_dtype(x.dtype());
  // Workspace, released when this returns (the caching allocator orders the reuse of its memory on `stream`).
  const Tensor q = Tensor::empty({B, C, N}, wt, dev);
  const Tensor dmat = Tensor::empty({B, N, N}, wt, dev);
  const Tensor ds = Tensor::empty({B, N, N}, x.dtype(), dev);
  const Tensor dy_all = Tensor::empty({B, Mo, N}, x.dtype(), dev);  // [df; dg; dh] per image
  const Tensor w_per_image = Tensor::empty({B, Mo, C}, wt, dev);
  const Tensor gamma_ws = Tensor::empty({attention_steps::gamma_workspace_doubles(B * C * N)}, DType::F64, dev);
  dispatch(x.dtype(), [&](auto tag) {
    using E = decltype(tag);
    using W = Wide<E>;
    const E* dop = dO.data<E>();
    const E* btp = bt.data<E>();
    E* dyp = dy_all.data<E>();
    // Q[c, i] = sum_j dO[c, j] bt[j, i]: A = dO[b] (c, k = j) along j; B (n = i, k = j) at j N + i, along i.
    gemm<E>(operand(dop, C * N, N, 1, C, N, true), operand(btp, N * N, 1, N, N, N, false),
            single_output<E>(q.data<W>(), C * N, N, true), C, N, N, B, kernel, tuning, device);
    // D[j, i] = sum_c dO[c, j] h[c, i]: A (m = j, k = c) at c N + j, along j; B (n = i, k = c) at c N + i, along i.
    gemm<E>(operand(dop, C * N, 1, N, N, C, false), operand(h.data<E>(), C * N, 1, N, N, C, false),
            single_output<E>(dmat.data<W>(), N * N, N, true), N, N, C, B, kernel, tuning, device);
    attention_steps::softmax_backward<E>(btp, dmat.data<W>(), g1.data<E>(), ds.data<E>(), B * N, N, stream);
    // df[c, i] = sum_j g[c, j] ds[j, i]: A = g[b] along j; B (n = i, k = j) at j N + i, along i. Rows [0, Ck) of dY.
    gemm<E>(operand(g.data<E>(), Ck * N, N, 1, Ck, N, true), operand(ds.data<E>(), N * N, 1, N, N, N, false),
            single_output<E>(dyp, Mo * N, N, false), Ck, N, N, B, kernel, tuning, device);
    // dg[c, j] = sum_i f[c, i] ds[j, i]: A = f[b] along i; B (n = j, k = i) at j N + i, along i. Rows [Ck, 2 Ck).
    gemm<E>(operand(f.data<E>(), Ck * N, N, 1, Ck, N, true), operand(ds.data<E>(), N * N, N, 1, N, N, true),
            single_output<E>(dyp + Ck * N, Mo * N, N, false), Ck, N, N, B, kernel, tuning, device);
    // dgamma = sum(h Q); dh = gamma Q into rows [2 Ck, Mo).
    attention_steps::gamma_and_dh<E>(h.data<E>(), q.data<W>(), g1.data<E>(), B, C, N, dyp, Mo, 2 * Ck,
                                     out.dgamma.data<E>(), gamma_ws.data<double>(), stream);
    // dW_b[o, c] = sum_n dY[b, o, n] x[b, c, n]: A = dY[b] along n; B (n = c, k = n) = x[b, c, n], along n.
    gemm<E>(operand(static_cast<const E*>(dyp), Mo * N, N, 1, Mo, N, true),
            operand(x.data<E>(), C * N, N, 1, C, N, true), single_output<E>(w_per_image.data<W>(), Mo * C, C, true), Mo,
            C, N, B, kernel, tuning, device);
    attention_steps::weight_grads<E>(w_per_image.data<W>(), B, Ck, C, out.dwq.data<E>(), out.dwk.data<E>(),
                                     out.dwv.data<E>(), stream);
    // dX[c, n] = dO[c, n] + sum_o W[o, c] dY[o, n]: A (m = c, k = o) at o C + c, along c; B (n, k = o) at o N + n.
    AttentionOutput<E> dx_out = single_output<E>(out.dx.data<E>(), C * N, N, false);
    dx_out.residual = dop;
    gemm<E>(operand(w_all.data<E>(), 0, 1, C, C, Mo, false),
            operand(static_cast<const E*>(dyp), Mo * N, 1, N, N, Mo, false), dx_out, C, N, Mo, B, kernel, tuning,
            device);
  });
}

SelfAttentionGrads self_attention_backward(const Tensor& grad_out, const Tensor& x, const Tensor& wq, const Tensor& wk,
                                           const Tensor& wv, const Tensor& gamma, const SelfAttentionForward& saved,
                                           AttentionKernel kernel, const gc::GemmTuning& tuning) {
  const Dims d = check_inputs(x, wq, wk, wv, gamma);
  const Device dev = x.device();
  SelfAttentionGrads r;
  r.dx = Tensor::empty({d.B, d.C, d.N}, x.dtype(), dev);
  r.dwq = Tensor::empty({d.Ck, d.C}, x.dtype(), dev);
  r.dwk = Tensor::empty({d.Ck, d.C}, x.dtype(), dev);
  r.dwv = Tensor::empty({d.C, d.C}, x.dtype(), dev);
  r.dgamma = Tensor::empty(gamma.shape(), x.dtype(), dev);
  self_attention_backward_into(r, grad_out, x, wq, wk, wv, gamma, saved, kernel, tuning);
  return r;
}

}  // namespace fg::kernels::cuda
