// Differentiable pixel losses: mse_loss, l1_loss, bce_with_logits (reduction 'mean', PyTorch semantics). Each node
// saves the two inputs (the backward needs both) and computes gradients only for the inputs that need them.
#include "kernels/loss.h"

#include <memory>
#include <utility>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "tensor/error.h"

namespace fg {

namespace {

void check_defined(const char* op, const Variable& a, const Variable& b) {
  FG_CHECK(a.defined() && b.defined(), op << ": both inputs must be defined");
}

// Losses whose gradient for the target is the negation of the gradient for the prediction.
class DifferenceLossNode : public Node {
 public:
  using Backward = Tensor (*)(const Tensor&, const Tensor&, const Tensor&);
  DifferenceLossNode(const char* name, Backward backward, Tensor pred, Tensor target)
      : name_(name), backward_(backward), pred_(std::move(pred)), target_(std::move(target)) {}
  const char* name() const override { return name_; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const bool want_pred = inputs[0].requires_grad(), want_target = inputs[1].requires_grad();
    Tensor grad_pred = backward_(grad_output, pred_, target_);
    Tensor grad_target = want_target ? kernels::mul_scalar(grad_pred, -1.0) : Tensor();
    return {want_pred ? grad_pred : Tensor(), grad_target};
  }
  void release_saved() override {
    pred_ = Tensor();
    target_ = Tensor();
  }

 private:
  const char* name_;
  Backward backward_;
  Tensor pred_, target_;
};

class BceWithLogitsNode : public Node {
 public:
  BceWithLogitsNode(Tensor logits, Tensor target) : logits_(std::move(logits)), target_(std::move(target)) {}
  const char* name() const override { return "BceWithLogitsBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    kernels::BceWithLogitsGrads g = kernels::bce_with_logits_backward(
        grad_output, logits_, target_, inputs[0].requires_grad(), inputs[1].requires_grad());
    return {g.logits, g.target};
  }
  void release_saved() override {
    logits_ = Tensor();
    target_ = Tensor();
  }

 private:
  Tensor logits_, target_;
};

}  // namespace

Variable mse_loss(const Variable& pred, const Variable& target) {
  check_defined("mse_loss", pred, target);
  Tensor out = kernels::mse_loss(pred.data(), target.data());
  std::shared_ptr<Node> node;
  if (any_requires_grad({pred, target}))
    node = std::make_shared<DifferenceLossNode>("MseLossBackward", &kernels::mse_loss_backward, pred.data(),
                                                target.data());
  return make_result(out, node, {pred, target});
}

Variable l1_loss(const Variable& pred, const Variable& target) {
  check_defined("l1_loss", pred, target);
  Tensor out = kernels::l1_loss(pred.data(), target.data());
  std::shared_ptr<Node> node;
  if (any_requires_grad({pred, target}))
    node =
        std::make_shared<DifferenceLossNode>("L1LossBackward", &kernels::l1_loss_backward, pred.data(), target.data());
  return make_result(out, node, {pred, target});
}

Variable bce_with_logits(const Variable& logits, const Variable& target) {
  check_defined("bce_with_logits", logits, target);
  Tensor out = kernels::bce_with_logits(logits.data(), target.data());
  std::shared_ptr<Node> node;
  if (any_requires_grad({logits, target})) node = std::make_shared<BceWithLogitsNode>(logits.data(), target.data());
  return make_result(out, node, {logits, target});
}

}  // namespace fg
