// Hand-written CUDA matmul, bmm, linear and the fused Gram matrix (forward and backward): the entry points of
// kernels/cuda/matmul.h. They describe each product as a GEMM problem over strided views
// (kernels/cuda/matmul_operands.h) and run it on the kernels of kernels/cuda/gemm_core.cuh; nothing is copied
// except what is not on the device's stream order already (bias and Gram inputs are made contiguous). Every output
// is written (=).
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "kernels/cuda/gemm_core.cuh"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/matmul_operands.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/error.h"
#include "tensor/overlap.h"

namespace fg::cuda {

namespace {

// The engine that runs `kernel` on dtype dt (naive == no tiles); throws when the pair does not exist.
struct Resolved {
  bool naive;
  GemmEngine engine;
};

Resolved resolve(MatmulKernel kernel, DType dt, const char* op) {
  FG_CHECK(dt == DType::F32 || dt == DType::F64 || dt == DType::F16 || dt == DType::BF16,
           op << " (CUDA): dtype " << dtype_name(dt) << " is not supported; use f32, f64, f16 or bf16");
  const GemmEngine engine = dt == DType::F32 ? GemmEngine::SIMT : GemmEngine::WMMA;
  switch (kernel) {
    case MatmulKernel::MATMUL_DEFAULT:
      return {dt == DType::F64, engine};
    case MatmulKernel::MATMUL_NAIVE:
      return {true, engine};
    case MatmulKernel::MATMUL_TILED_F32:
      FG_CHECK(dt == DType::F32, op << " (CUDA): the tiled_f32 kernel computes f32, but the operands are "
                                    << dtype_name(dt) << "; use the wmma or naive kernel");
      return {false, engine};
    case MatmulKernel::MATMUL_WMMA:
      FG_CHECK(dt == DType::F16 || dt == DType::BF16, op << " (CUDA): the wmma kernel computes f16 and bf16, but the "
                                                         << "operands are " << dtype_name(dt)
                                                         << "; use the tiled_f32 or naive kernel");
      return {false, engine};
  }
  return {true, engine};
}

template <typename F>
void dispatch_dtype(DType dt, F&& f) {
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
      FG_ASSERT(false, "matmul (CUDA): unreachable dtype");
  }
}

template <typename T>
constexpr bool is_tiled_type() {
  return std::is_same<T, float>::value || std::is_same<T, half_t>::value || std::is_same<T, bf16_t>::value;
}

void check_operand(const Tensor& t, const char* op, const char* what, const Tensor& ref, int64_t dims) {
  FG_CHECK(t.defined(), op << " (CUDA): " << what << " is undefined");
  FG_CHECK(dims < 0 || t.dim() == dims,
           op << " (CUDA): " << what << " must be " << dims << "-D, got " << shape_str(t.shape()));
  FG_CHECK(t.device() == ref.device(), op << " (CUDA): " << what << " is on " << t.device().str() << " but the "
                                          << "other operand is on " << ref.device().str());
  FG_CHECK(t.dtype() == ref.dtype(), op << " (CUDA): " << what << " is " << dtype_name(t.dtype()) << " but the "
                                        << "other operand is " << dtype_name(ref.dtype())
                                        << "; cast both to the same dtype");
}

void check_out(const Tensor& out, const Shape& shape, const Tensor& ref, const char* op) {
  FG_CHECK(out.defined() && out.is_contiguous() && out.shape() == shape && out.dtype() == ref.dtype() &&
               out.device() == ref.device(),
           op << " (CUDA): the output must be a contiguous " << dtype_name(ref.dtype()) << shape_str(shape)
              << " tensor on " << ref.device().str() << ", got "
              << (out.defined() ? out.str() : std::string("undefined")));
}

void check_index_range(int64_t v, const char* op) {
  FG_CHECK(v < INT32_MAX, op << " (CUDA): a dimension of " << v << " is beyond the kernels' 32-bit indexing");
}

// Runs p on the naive kernel or, for the element types the tiled kernels take, on the tiled ones.
template <typename E, class P>
void run(const P& p, const Resolved& r, const GemmTuning& tuning, int device) {
  if (r.naive) {
    run_naive_gemm(p, device);
    return;
  }
  if constexpr (is_tiled_type<E>())
    run_tiled_gemm(p, r.engine, tuning, device);
  else
    FG_ASSERT(false, "matmul (CUDA): f64 runs on the naive kernel only");
}

// out (batch, M, N) contiguous = op(a[i]) op(b[i]) (+ bias[n]) for 3-D views a, b.
void product_into(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, const Tensor& bias,
                  MatmulKernel kernel, const GemmTuning& tuning, const char* op) {
  check_outputs_separate({&out}, {&a, &b, &bias}, op);  // tensor/overlap.h
  const Resolved r = resolve(kernel, a.dtype(), op);
  const int64_t batch = out.size(0), M = out.size(1), N = out.size(2);
  const int64_t K = trans_a ? a.size(1) : a.size(2);
  for (int64_t v : {batch, M, N, K}) check_index_range(v, op);
  if (out.numel() == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device);
  const auto view = [](const Tensor& t) {
    return View3{t.raw_data(), {t.size(0), t.size(1), t.size(2)}, {t.stride(0), t.stride(1), t.stride(2)}};
  };
  const ProductLayout layout = product_layout(view(a), trans_a, view(b), trans_b, int(dtype_size(a.dtype())));
  const Tensor bias_c = bias.defined() ? bias.contiguous() : Tensor();
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using E = decltype(tag);
    const E* bias_p = bias_c.defined() ? bias_c.data<E>() : nullptr;
    if (r.naive) {
      with_product_problem<E, true>(layout, batch, K, out.data<E>(), bias_p,
                                    [&](const auto& p) { run_naive_gemm(p, device); });
    } else if constexpr (is_tiled_type<E>()) {
      with_product_problem<E, false>(layout, batch, K, out.data<E>(), bias_p,
                                     [&](const auto& p) { run_tiled_gemm(p, r.engine, tuning, device); });
    }
  });
}

void check_gram_input(const Tensor& x, const char* op) {
  FG_CHECK(x.defined() && x.device().is_cuda(), op << " (CUDA): x must be a CUDA tensor");
  FG_CHECK(x.dim() == 4, op << " (CUDA): expected x of shape (N, C, H, W), got " << shape_str(x.shape())
                            << "; reshape it to 4 dimensions first");
  for (int64_t v : {x.size(0), x.size(1), x.size(2) * x.size(3), x.size(1) * x.size(1)}) check_index_range(v, op);
}

}  // namespace

const char* matmul_kernel_name(MatmulKernel k) {
  switch (k) {
    case MatmulKernel::MATMUL_DEFAULT:
      return "default";
    case MatmulKernel::MATMUL_NAIVE:
      return "naive";
    case MatmulKernel::MATMUL_TILED_F32:
      return "tiled_f32";
    case MatmulKernel::MATMUL_WMMA:
      return "wmma";
  }
  return "?";
}

void matmul_into(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, MatmulKernel kernel,
                 const GemmTuning& tuning) {
  FG_CHECK(a.defined() && a.device().is_cuda(), "matmul (CUDA): a must be a CUDA tensor");
  check_operand(a, "matmul", "a", a, 2);
  check_operand(b, "matmul", "b", a, 2);
  const int64_t M = trans_a ? a.size(1) : a.size(0), Ka = trans_a ? a.size(0) : a.size(1);
  const int64_t Kb = trans_b ? b.size(1) : b.size(0), N = trans_b ? b.size(0) : b.size(1);
  FG_CHECK(Ka == Kb, "matmul (CUDA): a " << shape_str(a.shape()) << (trans_a ? " (transposed)" : "") << " and b "
                                         << shape_str(b.shape()) << (trans_b ? " (transposed)" : "")
                                         << " have different inner dimensions " << Ka << " and " << Kb);
  check_out(out, {M, N}, a, "matmul");
  product_into(out.unsqueeze(0), a.unsqueeze(0), b.unsqueeze(0), trans_a, trans_b, Tensor(), kernel, tuning, "matmul");
}

void bmm_into(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, MatmulKernel kernel,
              const GemmTuning& tuning) {
  FG_CHECK(a.defined() && a.device().is_cuda(), "bmm (CUDA): a must be a CUDA tensor");
  check_operand(a, "bmm", "a", a, 3);
  check_operand(b, "bmm", "b", a, 3);
  FG_CHECK(a.size(0) == b.size(0),
           "bmm (CUDA): batch sizes differ: a " << shape_str(a.shape()) << ", b " << shape_str(b.shape()));
  const int64_t M = trans_a ? a.size(2) : a.size(1), Ka = trans_a ? a.size(1) : a.size(2);
  const int64_t Kb = trans_b ? b.size(2) : b.size(1), N = trans_b ? b.size(1) : b.size(2);
  FG_CHECK(Ka == Kb, "bmm (CUDA): a " << shape_str(a.shape()) << (trans_a ? " (transposed)" : "") << " and b "
                                      << shape_str(b.shape()) << (trans_b ? " (transposed)" : "")
                                      << " have different inner dimensions " << Ka << " and " << Kb);
  check_out(out, {a.size(0), M, N}, a, "bmm");
  product_into(out, a, b, trans_a, trans_b, Tensor(), kernel, tuning, "bmm");
}

void linear_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, MatmulKernel kernel,
                 const GemmTuning& tuning) {
  FG_CHECK(x.defined() && x.device().is_cuda(), "linear (CUDA): x must be a CUDA tensor");
  check_operand(x, "linear", "x", x, 2);
  check_operand(w, "linear", "w", x, 2);
  const int64_t M = x.size(0), in = x.size(1), out_features = w.size(0);
  FG_CHECK(w.size(1) == in, "linear (CUDA): x " << shape_str(x.shape()) << " has " << in << " features but w "
                                                << shape_str(w.shape()) << " expects " << w.size(1));
  if (b.defined()) {
    check_operand(b, "linear", "bias", x, 1);
    FG_CHECK(b.size(0) == out_features,
             "linear (CUDA): bias " << shape_str(b.shape()) << " should be (" << out_features << ")");
  }
  check_out(out, {M, out_features}, x, "linear");
  product_into(out.unsqueeze(0), x.unsqueeze(0), w.unsqueeze(0), false, true, b, kernel, tuning, "linear");
}

void gram_matrix_into(Tensor& out, const Tensor& x, MatmulKernel kernel, const GemmTuning& tuning) {
  check_gram_input(x, "gram_matrix");
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) * x.size(3);
  check_out(out, {N, C, C}, x, "gram_matrix");
  check_outputs_separate({&out}, {&x}, "gram_matrix (CUDA)");
  const Resolved r = resolve(kernel, x.dtype(), "gram_matrix");
  if (out.numel() == 0) return;
  if (L == 0) {  // 0/0, as PyTorch gives it
    out.fill_(std::nan(""));
    return;
  }
  const int device = x.device().index;
  DeviceGuard guard(device);
  const Tensor xc = x.contiguous();
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using E = decltype(tag);
    run<E>(gram_problem<E>(xc.data<E>(), out.data<E>(), N, C, L, r.naive), r, tuning, device);
  });
}

void gram_matrix_backward_into(Tensor& out, const Tensor& grad_out, const Tensor& x, MatmulKernel kernel,
                               const GemmTuning& tuning) {
  check_gram_input(x, "gram_matrix_backward");
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) * x.size(3);
  FG_CHECK(grad_out.defined() && grad_out.shape() == Shape({N, C, C}),
           "gram_matrix_backward (CUDA): expected a gradient of shape "
               << shape_str({N, C, C}) << " for x of shape " << shape_str(x.shape()) << ", got "
               << (grad_out.defined() ? shape_str(grad_out.shape()) : std::string("undefined")));
  check_operand(grad_out, "gram_matrix_backward", "the gradient", x, 3);
  check_out(out, x.shape(), x, "gram_matrix_backward");
  check_outputs_separate({&out}, {&grad_out, &x}, "gram_matrix_backward (CUDA)");
  const Resolved r = resolve(kernel, x.dtype(), "gram_matrix_backward");
  if (out.numel() == 0) return;
  const int device = x.device().index;
  DeviceGuard guard(device);
  const Tensor xc = x.contiguous(), gc = grad_out.contiguous();
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using E = decltype(tag);
    run<E>(gram_backward_problem<E>(gc.data<E>(), xc.data<E>(), out.data<E>(), N, C, L, r.naive), r, tuning, device);
  });
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, MatmulKernel kernel,
              const GemmTuning& tuning) {
  FG_CHECK(a.defined() && b.defined() && a.dim() == 2 && b.dim() == 2, "matmul (CUDA): expects two 2-D operands");
  Tensor out = Tensor::empty({trans_a ? a.size(1) : a.size(0), trans_b ? b.size(0) : b.size(1)}, a.dtype(), a.device());
  matmul_into(out, a, b, trans_a, trans_b, kernel, tuning);
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, MatmulKernel kernel,
           const GemmTuning& tuning) {
  FG_CHECK(a.defined() && b.defined() && a.dim() == 3 && b.dim() == 3, "bmm (CUDA): expects two 3-D operands");
  Tensor out = Tensor::empty({a.size(0), trans_a ? a.size(2) : a.size(1), trans_b ? b.size(1) : b.size(2)}, a.dtype(),
                             a.device());
  bmm_into(out, a, b, trans_a, trans_b, kernel, tuning);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, MatmulKernel kernel, const GemmTuning& tuning) {
  FG_CHECK(x.defined() && w.defined() && x.dim() == 2 && w.dim() == 2,
           "linear (CUDA): expects x (M, IN) and w (OUT, IN)");
  Tensor out = Tensor::empty({x.size(0), w.size(0)}, x.dtype(), x.device());
  linear_into(out, x, w, b, kernel, tuning);
  return out;
}

Tensor gram_matrix(const Tensor& x, MatmulKernel kernel, const GemmTuning& tuning) {
  check_gram_input(x, "gram_matrix");
  Tensor out = Tensor::empty({x.size(0), x.size(1), x.size(1)}, x.dtype(), x.device());
  gram_matrix_into(out, x, kernel, tuning);
  return out;
}

Tensor gram_matrix_backward(const Tensor& grad_out, const Tensor& x, MatmulKernel kernel, const GemmTuning& tuning) {
  check_gram_input(x, "gram_matrix_backward");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  gram_matrix_backward_into(out, grad_out, x, kernel, tuning);
  return out;
}

}  // namespace fg::cuda
