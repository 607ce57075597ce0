// Differentiable Gram matrix (the style term of the perceptual loss): (N, C, H, W) -> (N, C, C) = X X^T / (C*H*W).
// The node saves x, contiguous, since both the forward and the backward read it as (N, C, H*W) rows.
#include "kernels/gram.h"

#include <memory>
#include <utility>

#include "autograd/ops.h"
#include "tensor/error.h"

namespace fg {

namespace {

class GramMatrixNode : public Node {
 public:
  explicit GramMatrixNode(Tensor x) : x_(std::move(x)) {}
  const char* name() const override { return "GramMatrixBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {kernels::gram_matrix_backward(grad_output, x_)};
  }
  void release_saved() override { x_ = Tensor(); }

 private:
  Tensor x_;
};

}  // namespace

Variable gram_matrix(const Variable& x) {
  FG_CHECK(x.defined(), "gram_matrix: the input is undefined");
  const Tensor xc = x.data().contiguous();
  Tensor out = kernels::gram_matrix(xc);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x})) node = std::make_shared<GramMatrixNode>(xc);
  return make_result(out, node, {x});
}

}  // namespace fg
