// CPU reference for elementwise arithmetic with broadcasting, and sum reductions.
// Outputs are written (=), except add_ which accumulates (+=) into its destination.
// Sums accumulate in double whatever the element type, so f32 reductions stay accurate on large tensors.
#include "kernels/elementwise.h"

#include <cmath>

#include "kernels/cpu/loops.h"
#include "kernels/device_check.h"
#include "tensor/overlap.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/elementwise.h"
#endif

namespace fg::kernels {

namespace {

// Strides of `t` seen as broadcast to `shape` (0 on broadcast dims).
Shape broadcast_strides(const Tensor& t, const Shape& shape) { return t.expand(shape).strides(); }

template <typename T>
T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::ADD: return a + b;
    case BinaryOp::SUB: return a - b;
    case BinaryOp::MUL: return a * b;
    case BinaryOp::DIV: return a / b;
  }
  return T(0);
}

template <typename T>
T apply_unary(UnaryOp op, T a) {
  switch (op) {
    case UnaryOp::NEG: return -a;
    case UnaryOp::SQRT: return std::sqrt(a);
    case UnaryOp::EXP: return std::exp(a);
    case UnaryOp::LOG: return std::log(a);
    case UnaryOp::ABS: return std::abs(a);
    case UnaryOp::SIGN: return T((a > T(0)) - (a < T(0)));
    case UnaryOp::SQUARE: return a * a;
  }
  return T(0);
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
#ifdef FG_WITH_CUDA
  if (a.device().is_cuda() || b.device().is_cuda()) return cuda::binary(op, a, b);
#endif
  require_cpu(a, "binary op");
  require_cpu(b, "binary op");
  FG_CHECK(a.dtype() == b.dtype(), "elementwise op on " << dtype_name(a.dtype()) << " and " << dtype_name(b.dtype())
                                                        << " tensors; cast one of them first");
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, a.dtype());
  FG_DISPATCH_FLOATING(a.dtype(), "binary op", [&] {
    scalar_t* y = out.data<scalar_t>();
    if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
      const scalar_t* pa = a.data<scalar_t>();
      const scalar_t* pb = b.data<scalar_t>();
      switch (op) {  // one loop per op so the compiler vectorises each
        case BinaryOp::ADD: cpu::map2(pa, pb, y, out.numel(), [](scalar_t u, scalar_t v) { return u + v; }); break;
        case BinaryOp::SUB: cpu::map2(pa, pb, y, out.numel(), [](scalar_t u, scalar_t v) { return u - v; }); break;
        case BinaryOp::MUL: cpu::map2(pa, pb, y, out.numel(), [](scalar_t u, scalar_t v) { return u * v; }); break;
        case BinaryOp::DIV: cpu::map2(pa, pb, y, out.numel(), [](scalar_t u, scalar_t v) { return u / v; }); break;
      }
      return;
    }
    const Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape), sy = out.strides();
    const scalar_t* pa = static_cast<const scalar_t*>(a.storage()->data());
    const scalar_t* pb = static_cast<const scalar_t*>(b.storage()->data());
    const Shape* strides[3] = {&sa, &sb, &sy};
    const int64_t base[3] = {a.offset(), b.offset(), 0};
    for_each_strided<3>(shape, strides, base,
                        [&](const int64_t* o) { y[o[2]] = apply_binary(op, pa[o[0]], pb[o[1]]); });
  });
  return out;
}

Tensor unary(UnaryOp op, const Tensor& a_in) {
#ifdef FG_WITH_CUDA
  if (a_in.device().is_cuda()) return cuda::unary(op, a_in);
#endif
  require_cpu(a_in, "unary op");
  const Tensor a = a_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  FG_DISPATCH_FLOATING(a.dtype(), "unary op", [&] {
    cpu::map1(a.data<scalar_t>(), out.data<scalar_t>(), a.numel(), [op](scalar_t v) { return apply_unary(op, v); });
  });
  return out;
}

Tensor pow_scalar(const Tensor& a_in, double p) {
#ifdef FG_WITH_CUDA
  if (a_in.device().is_cuda()) return cuda::pow_scalar(a_in, p);
#endif
  require_cpu(a_in, "pow");
  const Tensor a = a_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  FG_DISPATCH_FLOATING(a.dtype(), "pow", [&] {
    const scalar_t e = scalar_t(p);
    cpu::map1(a.data<scalar_t>(), out.data<scalar_t>(), a.numel(), [e](scalar_t v) { return std::pow(v, e); });
  });
  return out;
}

Tensor affine(const Tensor& a_in, double s, double t) {
#ifdef FG_WITH_CUDA
  if (a_in.device().is_cuda()) return cuda::affine(a_in, s, t);
#endif
  require_cpu(a_in, "affine");
  const Tensor a = a_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  FG_DISPATCH_FLOATING(a.dtype(), "affine", [&] {
    const scalar_t ss = scalar_t(s), tt = scalar_t(t);
    cpu::map1(a.data<scalar_t>(), out.data<scalar_t>(), a.numel(), [=](scalar_t v) { return v * ss + tt; });
  });
  return out;
}

void add_(Tensor& dst, const Tensor& src, double alpha) {
#ifdef FG_WITH_CUDA
  if (dst.device().is_cuda() || src.device().is_cuda()) return cuda::add_(dst, src, alpha);
#endif
  require_cpu(dst, "add_");
  require_cpu(src, "add_");
  FG_CHECK(dst.dtype() == src.dtype(), "add_: dtypes differ (" << dtype_name(dst.dtype()) << " += "
                                                               << dtype_name(src.dtype()) << ")");
  FG_CHECK(broadcast_shapes(dst.shape(), src.shape()) == dst.shape(),
           "add_: cannot accumulate " << shape_str(src.shape()) << " into " << shape_str(dst.shape()));
  check_no_partial_overlap(dst, src, "add_");
  dispatch_floating(dst.dtype(), "add_", [&](auto tag) {
    using scalar_t = decltype(tag);
    const scalar_t al = scalar_t(alpha);
    scalar_t* d = static_cast<scalar_t*>(dst.storage()->data());
    const scalar_t* s = static_cast<const scalar_t*>(src.storage()->data());
    if (src.shape() == dst.shape() && src.is_contiguous() && dst.is_contiguous()) {
      d += dst.offset();
      s += src.offset();
      const int64_t n = dst.numel();
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
      for (int64_t i = 0; i < n; ++i) d[i] += al * s[i];
      return;
    }
    const Shape ss = broadcast_strides(src, dst.shape());
    const Shape* strides[2] = {&dst.strides(), &ss};
    const int64_t base[2] = {dst.offset(), src.offset()};
    for_each_strided<2>(dst.shape(), strides, base, [&](const int64_t* o) { d[o[0]] += al * s[o[1]]; });
  });
}

void mul_scalar_(Tensor& dst, double s) {
#ifdef FG_WITH_CUDA
  if (dst.device().is_cuda()) return cuda::mul_scalar_(dst, s);
#endif
  require_cpu(dst, "mul_scalar_");
  check_no_internal_overlap(dst, "mul_scalar_");
  FG_DISPATCH_FLOATING(dst.dtype(), "mul_scalar_", [&] {
    const scalar_t v = scalar_t(s);
    scalar_t* d = static_cast<scalar_t*>(dst.storage()->data());
    const Shape* strides[1] = {&dst.strides()};
    const int64_t base[1] = {dst.offset()};
    for_each_strided<1>(dst.shape(), strides, base, [&](const int64_t* o) { d[o[0]] *= v; });
  });
}

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim, double scale) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::sum(x, dims_in, keepdim, scale);
#endif
  require_cpu(x, "sum");
  std::vector<bool> reduce(size_t(x.dim()), dims_in.empty());
  for (int64_t d : dims_in) {
    const int64_t w = wrap_dim(d, x.dim(), "sum: dim");
    FG_CHECK(!reduce[size_t(w)] || dims_in.empty(), "sum: dim " << d << " given twice");
    reduce[size_t(w)] = true;
  }
  Shape kept_shape, out_shape;
  for (int64_t d = 0; d < x.dim(); ++d) {
    kept_shape.push_back(reduce[size_t(d)] ? 1 : x.size(d));
    if (!reduce[size_t(d)]) out_shape.push_back(x.size(d));
  }
  Tensor acc = Tensor::zeros(kept_shape, DType::F64);
  // Accumulator strides with 0 on reduced dims: every input element adds into its output slot.
  Shape acc_strides = acc.strides();
  for (int64_t d = 0; d < x.dim(); ++d)
    if (reduce[size_t(d)]) acc_strides[size_t(d)] = 0;
  double* a = acc.data<double>();
  dispatch_floating(x.dtype(), "sum", [&](auto tag) {
    using scalar_t = decltype(tag);
    const scalar_t* p = static_cast<const scalar_t*>(x.storage()->data());
    if (x.is_contiguous() && out_shape.empty()) {
      const scalar_t* q = p + x.offset();
      double s = 0;
      const int64_t n = x.numel();
#pragma omp parallel for reduction(+ : s) if (n > cpu::kParallelGrain) schedule(static)
      for (int64_t i = 0; i < n; ++i) s += double(q[i]);
      a[0] = s;
      return;
    }
    const Shape* strides[2] = {&x.strides(), &acc_strides};
    const int64_t base[2] = {x.offset(), 0};
    for_each_strided<2>(x.shape(), strides, base, [&](const int64_t* o) { a[o[1]] += double(p[o[0]]); });
  });
  if (scale != 1.0) {
    const int64_t n = acc.numel();
    for (int64_t i = 0; i < n; ++i) a[i] *= scale;
  }
  Tensor out = acc.to(x.dtype());
  return keepdim ? out : out.view(out_shape);
}

Tensor sum_to_shape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  FG_ASSERT(g.dim() >= int64_t(shape.size()), "sum_to_shape: target has more dims than the gradient");
  const int64_t lead = g.dim() - int64_t(shape.size());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < g.dim(); ++d) {
    if (d < lead || (shape[size_t(d - lead)] == 1 && g.size(d) != 1)) dims.push_back(d);
  }
  if (dims.empty()) return g.reshape(shape);
  return sum(g, dims, true).reshape(shape);
}

double sum_all(const Tensor& x) { return sum(x).to(DType::F64).item(); }

double max_abs(const Tensor& x_in) {
#ifdef FG_WITH_CUDA
  if (x_in.device().is_cuda()) return cuda::max_abs(x_in);
#endif
  require_cpu(x_in, "max_abs");
  const Tensor x = x_in.contiguous();
  double m = 0;
  FG_DISPATCH_FLOATING(x.dtype(), "max_abs", [&] {
    const scalar_t* p = x.data<scalar_t>();
    for (int64_t i = 0; i < x.numel(); ++i) m = std::max(m, double(std::abs(p[i])));
  });
  return m;
}

double sum_squares(const Tensor& x_in) {
#ifdef FG_WITH_CUDA
  if (x_in.device().is_cuda()) return cuda::sum_squares(x_in);
#endif
  require_cpu(x_in, "sum_squares");
  const Tensor x = x_in.contiguous();
  double s = 0;
  dispatch_floating(x.dtype(), "sum_squares", [&](auto tag) {
    using scalar_t = decltype(tag);
    const scalar_t* p = x.data<scalar_t>();
    const int64_t n = x.numel();
#pragma omp parallel for reduction(+ : s) if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) s += double(p[i]) * double(p[i]);
  });
  return s;
}

bool all_finite(const Tensor& x_in) {
#ifdef FG_WITH_CUDA
  if (x_in.device().is_cuda()) return cuda::all_finite(x_in);
#endif
  require_cpu(x_in, "all_finite");
  const Tensor x = x_in.contiguous();
  bool ok = true;
  FG_DISPATCH_FLOATING(x.dtype(), "all_finite", [&] {
    const scalar_t* p = x.data<scalar_t>();
    for (int64_t i = 0; i < x.numel() && ok; ++i) ok = std::isfinite(p[i]);
  });
  return ok;
}

}  // namespace fg::kernels
