// Differentiable views and reshapes, slice and concat. Forwards share storage where the Tensor view allows;
// gradients may be views of the upstream gradient (the engine makes them contiguous before the next backward).
#include <algorithm>

#include "autograd/ops.h"
#include "kernels/concat.h"
#include "kernels/elementwise.h"

namespace fg {

namespace {

struct ReshapeBackward : Node {
  Shape input_shape;
  const char* name() const override { return "ReshapeBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {g.reshape(input_shape)}; }
};

struct PermuteBackward : Node {
  std::vector<int64_t> inverse;
  const char* name() const override { return "PermuteBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {g.permute(inverse)}; }
};

struct ExpandBackward : Node {
  Shape input_shape;
  const char* name() const override { return "ExpandBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {kernels::sum_to_shape(g, input_shape)}; }
};

struct SliceBackward : Node {
  Shape input_shape;
  int64_t dim, start, end, step;
  const char* name() const override { return "SliceBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx = Tensor::zeros(input_shape, g.dtype(), g.device());
    gx.slice(dim, start, end, step).copy_(g);
    return {gx};
  }
};

struct ConcatBackward : Node {
  int64_t dim;
  std::vector<int64_t> sizes;
  const char* name() const override { return "ConcatBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    std::vector<Tensor> out;
    int64_t at = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (inputs[i].requires_grad()) out.push_back(g.narrow(dim, at, sizes[i]).contiguous());
      else out.emplace_back();
      at += sizes[i];
    }
    return out;
  }
};

Variable reshape_like(const Variable& x, Tensor out) {
  auto node = std::make_shared<ReshapeBackward>();
  node->input_shape = x.shape();
  return make_result(std::move(out), node, {x});
}

}  // namespace

Variable reshape(const Variable& x, const Shape& shape) { return reshape_like(x, x.data().reshape(shape)); }

Variable flatten(const Variable& x, int64_t start_dim, int64_t end_dim) {
  return reshape_like(x, x.data().flatten(start_dim, end_dim));
}

Variable permute(const Variable& x, const std::vector<int64_t>& dims) {
  Tensor out = x.data().permute(dims);
  auto node = std::make_shared<PermuteBackward>();
  node->inverse.assign(dims.size(), 0);
  for (size_t i = 0; i < dims.size(); ++i) node->inverse[size_t(wrap_dim(dims[i], x.dim()))] = int64_t(i);
  return make_result(out, node, {x});
}

Variable transpose(const Variable& x, int64_t a, int64_t b) {
  std::vector<int64_t> dims(size_t(x.dim()));
  for (int64_t i = 0; i < x.dim(); ++i) dims[size_t(i)] = i;
  std::swap(dims[size_t(wrap_dim(a, x.dim()))], dims[size_t(wrap_dim(b, x.dim()))]);
  return permute(x, dims);
}

Variable expand(const Variable& x, const Shape& shape) {
  Tensor out = x.data().expand(shape);
  auto node = std::make_shared<ExpandBackward>();
  node->input_shape = x.shape();
  return make_result(out, node, {x});
}

Variable slice(const Variable& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  Tensor out = x.data().slice(dim, start, end, step);
  auto node = std::make_shared<SliceBackward>();
  node->input_shape = x.shape();
  node->dim = wrap_dim(dim, x.dim());
  // Store the clamped, non-negative bounds the view actually used.
  const int64_t n = x.size(node->dim);
  int64_t s = start < 0 ? start + n : start, e = end < 0 ? end + n : end;
  s = std::clamp<int64_t>(s, 0, n);
  e = std::clamp<int64_t>(e, s, n);
  node->start = s;
  node->end = e;
  node->step = step;
  return make_result(out, node, {x});
}

Variable concat(const std::vector<Variable>& xs, int64_t dim) {
  std::vector<Tensor> ts;
  for (const Variable& v : xs) ts.push_back(v.data());
  Tensor out = kernels::concat(ts, dim);
  auto node = std::make_shared<ConcatBackward>();
  node->dim = wrap_dim(dim, xs[0].dim());
  for (const Tensor& t : ts) node->sizes.push_back(t.size(node->dim));
  return make_result(out, node, xs);
}

}  // namespace fg
