// Differentiable linear, matmul and bmm (autograd/ops.h). Backward products are GEMMs with transpose flags, so
// no transposed copy is ever made. Each node keeps an operand only when the other one needs a gradient.
#include <algorithm>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"

namespace fg {
namespace {

// y = x2 w^T + b with x2 = x viewed (M, IN).
class LinearNode : public Node {
 public:
  LinearNode(Tensor x2, Tensor w, Shape x_shape, bool has_bias)
      : x2_(std::move(x2)), w_(std::move(w)), x_shape_(std::move(x_shape)), has_bias_(has_bias) {}
  const char* name() const override { return "LinearBackward"; }
  // grad_output: (..., OUT).
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const int64_t out_features = grad_output.size(-1);
    const Tensor gy = grad_output.reshape({grad_output.numel() / std::max<int64_t>(1, out_features), out_features});
    std::vector<Tensor> grads(3);
    if (inputs[0].requires_grad()) grads[0] = kernels::matmul(gy, w_).view(x_shape_);  // (M, OUT) (OUT, IN)
    if (inputs[1].requires_grad()) grads[1] = kernels::matmul(gy, x2_, true, false);    // (OUT, M) (M, IN)
    if (has_bias_ && inputs[2].requires_grad()) grads[2] = kernels::sum(gy, {0});
    return grads;
  }
  void release_saved() override {
    x2_ = Tensor();
    w_ = Tensor();
  }

 private:
  Tensor x2_, w_;
  Shape x_shape_;
  bool has_bias_;
};

// y = a b for matrices (bmm: batches of matrices).
class MatmulNode : public Node {
 public:
  MatmulNode(Tensor a, Tensor b, bool batched) : a_(std::move(a)), b_(std::move(b)), batched_(batched) {}
  const char* name() const override { return batched_ ? "BmmBackward" : "MatmulBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    auto product = batched_ ? kernels::bmm : kernels::matmul;
    std::vector<Tensor> grads(2);
    if (inputs[0].requires_grad()) grads[0] = product(grad_output, b_, false, true, kernels::MatmulAlgo::BLAS);
    if (inputs[1].requires_grad()) grads[1] = product(a_, grad_output, true, false, kernels::MatmulAlgo::BLAS);
    return grads;
  }
  void release_saved() override {
    a_ = Tensor();
    b_ = Tensor();
  }

 private:
  Tensor a_, b_;
  bool batched_;
};

Variable matmul_op(const Variable& a, const Variable& b, bool batched) {
  const char* op = batched ? "bmm" : "matmul";
  const int64_t dims = batched ? 3 : 2;
  FG_CHECK(a.defined() && b.defined(), op << ": both operands must be defined");
  FG_CHECK(a.dim() == dims && b.dim() == dims,
           op << ": expects " << dims << "-D operands, got a " << shape_str(a.shape()) << " and b " << shape_str(b.shape()));
  Tensor y = batched ? kernels::bmm(a.data(), b.data()) : kernels::matmul(a.data(), b.data());
  std::shared_ptr<Node> node;
  if (any_requires_grad({a, b})) {
    node = std::make_shared<MatmulNode>(b.requires_grad() ? a.data() : Tensor(), a.requires_grad() ? b.data() : Tensor(),
                                        batched);
  }
  return make_result(std::move(y), std::move(node), {a, b});
}

}  // namespace

Variable linear(const Variable& x, const Variable& w, const Variable& b) {
  FG_CHECK(x.defined() && w.defined(), "linear: x and w must be defined");
  FG_CHECK(x.dim() >= 1, "linear: x must have at least one dim (..., IN), got a scalar");
  FG_CHECK(w.dim() == 2, "linear: w must be (OUT, IN), got " << shape_str(w.shape()));
  FG_CHECK(x.size(-1) == w.size(1), "linear: x " << shape_str(x.shape()) << " has " << x.size(-1)
                                                 << " features but w " << shape_str(w.shape()) << " expects "
                                                 << w.size(1));
  FG_CHECK(!b.defined() || b.dim() == 1, "linear: bias must be 1-D (OUT), got " << shape_str(b.shape()));
  const int64_t in = x.size(-1), out_features = w.size(0);
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  const Tensor x2 = x.data().reshape({rows, in});
  Tensor y2 = kernels::linear(x2, w.data(), b.defined() ? b.data() : Tensor());
  Shape y_shape = x.shape();
  y_shape.back() = out_features;
  std::shared_ptr<Node> node;
  if (any_requires_grad({x, w, b})) {
    node = std::make_shared<LinearNode>(w.requires_grad() ? x2 : Tensor(), x.requires_grad() ? w.data() : Tensor(),
                                        x.shape(), b.defined());
  }
  return make_result(y2.view(y_shape), std::move(node), {x, w, b});
}

Variable matmul(const Variable& a, const Variable& b) { return matmul_op(a, b, false); }

Variable bmm(const Variable& a, const Variable& b) { return matmul_op(a, b, true); }

}  // namespace fg
