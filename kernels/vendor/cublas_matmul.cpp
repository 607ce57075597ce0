// The cuBLAS twins of matmul, bmm, linear and the Gram matrix (see kernels/vendor/cublas_matmul.h). Every product
// is one cublasGemmStridedBatchedEx on row-major operands. Compiled only with FG_WITH_CUDA.
#ifdef FG_WITH_CUDA

#include "kernels/vendor/cublas_matmul.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/error.h"
#include "tensor/overlap.h"

namespace fg::vendor {

namespace {

[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* statement, const char* file, int line) {
  throw Error(std::string("cuBLAS error ") + cublasGetStatusString(status) + " in " + statement + " at " + file + ":" +
              std::to_string(line));
}

#define CUBLAS_CHECK(statement)                                              \
  do {                                                                       \
    const cublasStatus_t fg_cublas_status_ = (statement);                    \
    if (fg_cublas_status_ != CUBLAS_STATUS_SUCCESS)                          \
      throw_cublas_error(fg_cublas_status_, #statement, __FILE__, __LINE__); \
  } while (0)

// One handle per device, created on first use and bound to the device's stream; never destroyed (at process exit
// the CUDA context may be gone before static destructors run).
cublasHandle_t handle(int device) {
  static std::mutex mutex;
  static std::vector<cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mutex);
  if (handles.size() <= size_t(device)) handles.resize(size_t(device) + 1, nullptr);
  if (!handles[size_t(device)]) {
    cuda::DeviceGuard guard(device);
    cublasHandle_t h = nullptr;
    CUBLAS_CHECK(cublasCreate(&h));
    CUBLAS_CHECK(cublasSetStream(h, cuda::stream(device)));
    handles[size_t(device)] = h;
  }
  return handles[size_t(device)];
}

cudaDataType data_type(DType dt, const char* op) {
  switch (dt) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::F64:
      return CUDA_R_64F;
    case DType::F16:
      return CUDA_R_16F;
    case DType::BF16:
      return CUDA_R_16BF;
    default:
      break;
  }
  throw Error(std::string(op) + " (cuBLAS): dtype " + dtype_name(dt) + " is not supported; use f32, f64, f16 or bf16");
}

int as_int(int64_t v, const char* op) {
  FG_CHECK(v >= 0 && v < INT32_MAX,
           op << " (cuBLAS): a size or leading dimension of " << v << " is beyond cuBLAS's int arguments");
  return int(v);
}

// C[i] (M, N), row stride ldc = alpha op(A[i]) op(B[i]) + beta C[i] for i < batch, all row-major: cuBLAS, which is
// column-major, computes C^T = op(B)^T op(A)^T on the same memory.
void gemm_row_major(int device, DType dt, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                    const void* A, int64_t lda, int64_t stride_a, const void* B, int64_t ldb, int64_t stride_b,
                    double beta, void* C, int64_t ldc, int64_t stride_c, int64_t batch, const char* op) {
  const cudaDataType type = data_type(dt, op);
  const bool f64 = dt == DType::F64;
  const float alpha_f = float(alpha), beta_f = float(beta);
  const void* alpha_p = f64 ? static_cast<const void*>(&alpha) : &alpha_f;
  const void* beta_p = f64 ? static_cast<const void*>(&beta) : &beta_f;
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle(device), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(N, op),
      as_int(M, op), as_int(K, op), alpha_p, B, type, as_int(ldb, op), stride_b, A, type, as_int(lda, op), stride_a,
      beta_p, C, type, as_int(ldc, op), stride_c, as_int(batch, op), f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
}

// How the last two dims of a 3-D tensor are handed to a row-major GEMM without copying (as kernels/cpu/matmul.cpp
// does for OpenBLAS): rows with unit stride as they are, columns with unit stride as the transpose of a row-major
// matrix; anything else through a contiguous copy.
struct BlasOperand {
  Tensor holder;
  bool trans = false;
  int64_t ld = 1;
  int64_t batch_stride = 0;
};

BlasOperand blas_operand(const Tensor& t, bool trans) {
  const int64_t rows = t.size(1), cols = t.size(2), rs = t.stride(1), cs = t.stride(2);
  BlasOperand op;
  op.holder = t;
  op.trans = trans;
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= std::max<int64_t>(1, cols))) {
    op.ld = rows == 1 ? std::max<int64_t>(1, cols) : rs;
  } else if ((rs == 1 || rows == 1) && (cols == 1 || cs >= std::max<int64_t>(1, rows))) {
    op.trans = !trans;
    op.ld = cols == 1 ? std::max<int64_t>(1, rows) : cs;
  } else {
    op.holder = t.contiguous();
    op.ld = std::max<int64_t>(1, cols);
  }
  op.batch_stride = op.holder.size(0) == 1 ? 0 : op.holder.stride(0);
  return op;
}

void check_operand(const Tensor& t, const char* op, const char* what, const Tensor& ref, int64_t dims) {
  FG_CHECK(t.defined() && t.dim() == dims, op << " (cuBLAS): " << what << " must be a " << dims << "-D tensor");
  FG_CHECK(t.device().is_cuda() && t.device() == ref.device(), op << " (cuBLAS): " << what << " is on "
                                                                  << t.device().str() << "; every operand must be on "
                                                                  << ref.device().str());
  FG_CHECK(t.dtype() == ref.dtype(), op << " (cuBLAS): " << what << " is " << dtype_name(t.dtype()) << " but the "
                                        << "other operand is " << dtype_name(ref.dtype())
                                        << "; cast them to one dtype");
}

void check_out(const Tensor& out, const Shape& shape, const Tensor& ref, const char* op) {
  FG_CHECK(out.defined() && out.is_contiguous() && out.shape() == shape && out.dtype() == ref.dtype() &&
               out.device() == ref.device(),
           op << " (cuBLAS): the output must be a contiguous " << dtype_name(ref.dtype()) << shape_str(shape)
              << " tensor on " << ref.device().str());
}

void zero(const Tensor& out) {
  CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.nbytes(), cuda::stream(out.device().index)));
}

// out (batch, M, N) contiguous = op(a[i]) op(b[i]) for 3-D a, b.
void product(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, const char* op) {
  check_outputs_separate({&out}, {&a, &b}, op);  // tensor/overlap.h
  const int64_t batch = out.size(0), M = out.size(1), N = out.size(2), K = trans_a ? a.size(1) : a.size(2);
  if (out.numel() == 0) return;
  const int device = out.device().index;
  cuda::DeviceGuard guard(device);
  if (K == 0) {
    zero(out);
    return;
  }
  const BlasOperand A = blas_operand(a, trans_a), B = blas_operand(b, trans_b);
  gemm_row_major(device, a.dtype(), A.trans, B.trans, M, N, K, 1.0, A.holder.raw_data(), A.ld, A.batch_stride,
                 B.holder.raw_data(), B.ld, B.batch_stride, 0.0, out.raw_data(), N, M * N, batch, op);
}

void check_gram_input(const Tensor& x, const char* op) {
  FG_CHECK(x.defined() && x.dim() == 4 && x.device().is_cuda(),
           op << " (cuBLAS): x must be a (N, C, H, W) CUDA tensor, got " << (x.defined() ? x.str() : "undefined"));
}

}  // namespace

void matmul_into(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_operand(a, "matmul", "a", a, 2);
  check_operand(b, "matmul", "b", a, 2);
  const int64_t M = trans_a ? a.size(1) : a.size(0), Ka = trans_a ? a.size(0) : a.size(1);
  const int64_t Kb = trans_b ? b.size(1) : b.size(0), N = trans_b ? b.size(0) : b.size(1);
  FG_CHECK(Ka == Kb, "matmul (cuBLAS): a " << shape_str(a.shape()) << (trans_a ? " (transposed)" : "") << " and b "
                                           << shape_str(b.shape()) << (trans_b ? " (transposed)" : "")
                                           << " have different inner dimensions " << Ka << " and " << Kb);
  check_out(out, {M, N}, a, "matmul");
  product(out.unsqueeze(0), a.unsqueeze(0), b.unsqueeze(0), trans_a, trans_b, "matmul");
}

void bmm_into(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_operand(a, "bmm", "a", a, 3);
  check_operand(b, "bmm", "b", a, 3);
  FG_CHECK(a.size(0) == b.size(0),
           "bmm (cuBLAS): batch sizes differ: a " << shape_str(a.shape()) << ", b " << shape_str(b.shape()));
  const int64_t M = trans_a ? a.size(2) : a.size(1), Ka = trans_a ? a.size(1) : a.size(2);
  const int64_t Kb = trans_b ? b.size(2) : b.size(1), N = trans_b ? b.size(1) : b.size(2);
  FG_CHECK(Ka == Kb, "bmm (cuBLAS): a " << shape_str(a.shape()) << (trans_a ? " (transposed)" : "") << " and b "
                                        << shape_str(b.shape()) << (trans_b ? " (transposed)" : "")
                                        << " have different inner dimensions " << Ka << " and " << Kb);
  check_out(out, {a.size(0), M, N}, a, "bmm");
  product(out, a, b, trans_a, trans_b, "bmm");
}

void linear_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b) {
  check_operand(x, "linear", "x", x, 2);
  check_operand(w, "linear", "w", x, 2);
  const int64_t M = x.size(0), in = x.size(1), out_features = w.size(0);
  FG_CHECK(w.size(1) == in, "linear (cuBLAS): x " << shape_str(x.shape()) << " has " << in << " features but w "
                                                  << shape_str(w.shape()) << " expects " << w.size(1));
  if (b.defined()) {
    check_operand(b, "linear", "bias", x, 1);
    FG_CHECK(b.size(0) == out_features,
             "linear (cuBLAS): bias " << shape_str(b.shape()) << " should be (" << out_features << ")");
  }
  check_out(out, {M, out_features}, x, "linear");
  check_outputs_separate({&out}, {&b}, "linear (cuBLAS)");
  product(out.unsqueeze(0), x.unsqueeze(0), w.unsqueeze(0), false, true, "linear");
  if (!b.defined() || out.numel() == 0) return;
  const int device = x.device().index;
  cuda::DeviceGuard guard(device);
  // out (M, OUT) += ones (M, 1) b (1, OUT).
  const Tensor ones = Tensor::ones({M}, x.dtype(), x.device()), bc = b.contiguous();
  gemm_row_major(device, x.dtype(), false, false, M, out_features, 1, 1.0, ones.raw_data(), 1, 0, bc.raw_data(),
                 out_features, 0, 1.0, out.raw_data(), out_features, 0, 1, "linear");
}

void gram_matrix_into(Tensor& out, const Tensor& x) {
  check_gram_input(x, "gram_matrix");
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) * x.size(3);
  check_out(out, {N, C, C}, x, "gram_matrix");
  check_outputs_separate({&out}, {&x}, "gram_matrix (cuBLAS)");
  if (out.numel() == 0) return;
  if (L == 0) {
    out.fill_(std::nan(""));
    return;
  }
  const int device = x.device().index;
  cuda::DeviceGuard guard(device);
  const Tensor xc = x.contiguous();
  // G[n] (C, C) = X[n] (C, L) X[n]^T / (C*L).
  gemm_row_major(device, x.dtype(), false, true, C, C, L, 1.0 / double(C * L), xc.raw_data(), L, C * L, xc.raw_data(),
                 L, C * L, 0.0, out.raw_data(), C, C * C, N, "gram_matrix");
}

void gram_matrix_backward_into(Tensor& out, const Tensor& grad_out, const Tensor& x) {
  check_gram_input(x, "gram_matrix_backward");
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) * x.size(3);
  check_operand(grad_out, "gram_matrix_backward", "the gradient", x, 3);
  FG_CHECK(grad_out.shape() == Shape({N, C, C}), "gram_matrix_backward (cuBLAS): expected a gradient of shape "
                                                     << shape_str({N, C, C}) << ", got "
                                                     << shape_str(grad_out.shape()));
  check_out(out, x.shape(), x, "gram_matrix_backward");
  check_outputs_separate({&out}, {&grad_out, &x}, "gram_matrix_backward (cuBLAS)");
  if (out.numel() == 0) return;
  const int device = x.device().index;
  cuda::DeviceGuard guard(device);
  const Tensor xc = x.contiguous(), gc = grad_out.contiguous();
  const double alpha = 1.0 / double(C * L);
  // dX[n] = alpha G[n] X[n] + alpha G[n]^T X[n].
  gemm_row_major(device, x.dtype(), false, false, C, L, C, alpha, gc.raw_data(), C, C * C, xc.raw_data(), L, C * L, 0.0,
                 out.raw_data(), L, C * L, N, "gram_matrix_backward");
  gemm_row_major(device, x.dtype(), true, false, C, L, C, alpha, gc.raw_data(), C, C * C, xc.raw_data(), L, C * L, 1.0,
                 out.raw_data(), L, C * L, N, "gram_matrix_backward");
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  FG_CHECK(a.defined() && b.defined() && a.dim() == 2 && b.dim() == 2, "matmul (cuBLAS): expects two 2-D operands");
  Tensor out = Tensor::empty({trans_a ? a.size(1) : a.size(0), trans_b ? b.size(0) : b.size(1)}, a.dtype(), a.device());
  matmul_into(out, a, b, trans_a, trans_b);
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  FG_CHECK(a.defined() && b.defined() && a.dim() == 3 && b.dim() == 3, "bmm (cuBLAS): expects two 3-D operands");
  Tensor out = Tensor::empty({a.size(0), trans_a ? a.size(2) : a.size(1), trans_b ? b.size(1) : b.size(2)}, a.dtype(),
                             a.device());
  bmm_into(out, a, b, trans_a, trans_b);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  FG_CHECK(x.defined() && w.defined() && x.dim() == 2 && w.dim() == 2,
           "linear (cuBLAS): expects x (M, IN) and w (OUT, IN)");
  Tensor out = Tensor::empty({x.size(0), w.size(0)}, x.dtype(), x.device());
  linear_into(out, x, w, b);
  return out;
}

Tensor gram_matrix(const Tensor& x) {
  check_gram_input(x, "gram_matrix");
  Tensor out = Tensor::empty({x.size(0), x.size(1), x.size(1)}, x.dtype(), x.device());
  gram_matrix_into(out, x);
  return out;
}

Tensor gram_matrix_backward(const Tensor& grad_out, const Tensor& x) {
  check_gram_input(x, "gram_matrix_backward");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  gram_matrix_backward_into(out, grad_out, x);
  return out;
}

}  // namespace fg::vendor

#endif  // FG_WITH_CUDA
