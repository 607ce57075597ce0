// Differentiable batch normalisation (autograd/ops.h). The forward computes the statistics (batch ones when
// training, running ones in eval mode), updates the running statistics when training, and normalises; the node
// keeps x, the statistics it used and the weight, which is all the backward formulas need.
#include "kernels/batch_norm.h"

#include "autograd/ops.h"

namespace fg {
namespace {

class BatchNormNode : public Node {
 public:
  BatchNormNode(Tensor x, kernels::BatchNormStats stats, Tensor weight, bool training)
      : x_(std::move(x)), stats_(std::move(stats)), weight_(std::move(weight)), training_(training) {}
  const char* name() const override { return "BatchNormBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    kernels::BatchNormGrads g =
        kernels::batch_norm_backward(grad_output, x_, stats_, weight_, training_, inputs[0].requires_grad(),
                                     inputs[1].requires_grad(), inputs[2].requires_grad());
    return {g.input, g.weight, g.bias};
  }
  void release_saved() override {
    x_ = Tensor();
    stats_ = kernels::BatchNormStats();
    weight_ = Tensor();
  }

 private:
  Tensor x_;
  kernels::BatchNormStats stats_;
  Tensor weight_;
  bool training_;
};

}  // namespace

Variable batch_norm(const Variable& x, const Variable& weight, const Variable& bias, Tensor running_mean,
                    Tensor running_var, bool training, double momentum, double eps) {
  FG_CHECK(x.defined(), "batch_norm: the input is undefined");
  const Tensor xd = x.data().contiguous();
  const Tensor w = weight.defined() ? weight.data() : Tensor();
  const Tensor b = bias.defined() ? bias.data() : Tensor();
  kernels::BatchNormStats stats = training
                                      ? kernels::batch_norm_batch_stats(xd, eps, running_mean, running_var, momentum)
                                      : kernels::batch_norm_running_stats(running_mean, running_var, eps);
  Tensor y = kernels::batch_norm_forward(xd, stats, w, b);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x, weight, bias})) node = std::make_shared<BatchNormNode>(xd, std::move(stats), w, training);
  return make_result(std::move(y), std::move(node), {x, weight, bias});
}

}  // namespace fg
