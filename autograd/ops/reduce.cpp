// Differentiable sum and mean: the gradient is the upstream gradient broadcast back over the reduced dims.
#include "autograd/ops.h"
#include "kernels/elementwise.h"

namespace fg {

namespace {

struct SumBackward : Node {
  Shape input_shape;
  std::vector<int64_t> dims;  // normalised, ascending; empty = all
  double scale = 1.0;         // 1 for sum, 1/count for mean
  const char* name() const override { return "SumBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    // Re-insert the reduced dims as size 1, then broadcast to the input shape.
    Shape kept = input_shape;
    for (int64_t d : dims) kept[size_t(d)] = 1;
    Tensor gk = g.reshape(kept).expand(input_shape);
    Tensor out = Tensor::empty(input_shape, g.dtype(), g.device());
    out.copy_(gk);
    if (scale != 1.0) kernels::mul_scalar_(out, scale);
    return {out};
  }
};

Variable reduce(const Variable& x, const std::vector<int64_t>& dims_in, bool keepdim, bool is_mean) {
  std::vector<int64_t> dims;
  std::vector<bool> reduce_dim(size_t(x.dim()), dims_in.empty());
  for (int64_t d : dims_in) reduce_dim[size_t(wrap_dim(d, x.dim(), "sum/mean: dim"))] = true;
  int64_t count = 1;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (reduce_dim[size_t(d)]) {
      dims.push_back(d);
      count *= x.size(d);
    }
  const double scale = is_mean ? 1.0 / double(std::max<int64_t>(count, 1)) : 1.0;
  if (is_mean) FG_CHECK(count > 0, "mean of an empty tensor " << x.data().str());
  // The 1 / count is applied to the double sum inside the kernel: a 16-bit sum rounded first could overflow.
  Tensor out = kernels::sum(x.data(), dims_in, keepdim, scale);
  if (!any_requires_grad({x})) return Variable(out);
  auto node = std::make_shared<SumBackward>();
  node->input_shape = x.shape();
  node->dims = dims;
  node->scale = scale;
  return make_result(out, node, {x});
}

}  // namespace

Variable sum(const Variable& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce(x, dims, keepdim, false);
}

Variable mean(const Variable& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce(x, dims, keepdim, true);
}

}  // namespace fg
