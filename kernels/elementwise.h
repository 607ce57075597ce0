// Tensor-level elementwise arithmetic, broadcasting and reductions: the entry points other kernels, the
// autograd engine (gradient accumulation) and the optimizers use. Each dispatches on the device; the CPU
// reference is kernels/cpu/elementwise.cpp. Results are new contiguous tensors unless the name ends in '_'.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace fg::kernels {

enum class BinaryOp { ADD, SUB, MUL, DIV };
enum class UnaryOp { NEG, SQRT, EXP, LOG, ABS, SIGN, SQUARE };

// a (op) b with numpy broadcasting; a and b must share dtype and device.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::ADD, a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::SUB, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::MUL, a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::DIV, a, b); }
Tensor unary(UnaryOp op, const Tensor& a);
Tensor pow_scalar(const Tensor& a, double p);
// a * s + t
Tensor affine(const Tensor& a, double s, double t);
inline Tensor mul_scalar(const Tensor& a, double s) { return affine(a, s, 0.0); }
inline Tensor add_scalar(const Tensor& a, double t) { return affine(a, 1.0, t); }

// dst += alpha * src, src broadcast to dst's shape; dst may be any strided view. src may be dst itself or memory
// dst does not cover; a src sharing dst's memory in another layout (x += x.t()) is an fg::Error on every device,
// and so is a dst with several elements at one address (tensor/overlap.h).
void add_(Tensor& dst, const Tensor& src, double alpha = 1.0);
// dst *= s; dst as for add_.
void mul_scalar_(Tensor& dst, double s);

// Sums over `dims` (empty = all); negative dims allowed. Each sum is multiplied by `scale` in the double
// accumulator, before the one rounding to x's dtype: mean() passes 1 / count there, so a mean whose sum exceeds
// the dtype's range (f16: 65504, e.g. the mean of 70000 ones) is the mean, not Inf.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false, double scale = 1.0);
// Reduces a broadcast gradient back to `shape` (sums the broadcast dims): the backward of broadcasting.
Tensor sum_to_shape(const Tensor& g, const Shape& shape);

// Single numbers (CPU; for losses, norms and checks).
double sum_all(const Tensor& x);
double max_abs(const Tensor& x);
double sum_squares(const Tensor& x);
bool all_finite(const Tensor& x);

}  // namespace fg::kernels
