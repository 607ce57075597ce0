// Differentiable softmax (autograd/ops.h). The backward needs only the output: grad_in = y * (g - sum_dim(g * y)).
#include <memory>
#include <utility>

#include "autograd/ops.h"
#include "kernels/softmax.h"

namespace fg {
namespace {

class SoftmaxBackward : public Node {
 public:
  SoftmaxBackward(Tensor y, int64_t dim) : y_(std::move(y)), dim_(dim) {}
  const char* name() const override { return "SoftmaxBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {kernels::softmax_backward(grad_output, y_, dim_)};
  }
  void release_saved() override { y_ = Tensor(); }

 private:
  Tensor y_;
  int64_t dim_;
};

}  // namespace

Variable softmax(const Variable& x, int64_t dim) {
  Tensor y = kernels::softmax(x.data(), dim);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x})) node = std::make_shared<SoftmaxBackward>(y, dim);
  return make_result(std::move(y), std::move(node), {x});
}

}  // namespace fg
