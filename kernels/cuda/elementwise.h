// CUDA entry points for kernels/elementwise.h (same signatures and semantics; the Tensor-level functions there
// dispatch here for CUDA tensors). f32, f64, f16 and bf16; 16-bit inputs are computed in f32 and rounded once.
// Results are new contiguous tensors on the input's device. Sums accumulate in double, like the CPU reference.
// sum_to_shape and sum_all need no CUDA code of their own: they are written with sum() and item().
#pragma once
#include <vector>

#include "kernels/elementwise.h"

namespace fg::kernels::cuda {

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor unary(UnaryOp op, const Tensor& a);
Tensor pow_scalar(const Tensor& a, double p);
Tensor affine(const Tensor& a, double s, double t);
void add_(Tensor& dst, const Tensor& src, double alpha);
void mul_scalar_(Tensor& dst, double s);
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, double scale = 1.0);
// These three return to the host, so they wait for the device.
double max_abs(const Tensor& x);
double sum_squares(const Tensor& x);
bool all_finite(const Tensor& x);

}  // namespace fg::kernels::cuda
