// Differentiable pointwise activations (autograd/ops.h): relu, leaky_relu, sigmoid, tanh, sigmoid_range.
// Each backward Node keeps the one tensor its derivative needs: the output for relu, sigmoid and tanh (as
// PyTorch does), the input for leaky_relu and sigmoid_range. Nodes are only built when a gradient is needed, so
// inference saves nothing.
#include <memory>
#include <utility>

#include "autograd/ops.h"
#include "kernels/activation.h"

namespace fg {
namespace {

// Shared shape of the single-input, single-saved-tensor nodes: Derivative(grad_output, saved) -> grad_input.
template <Tensor (*Derivative)(const Tensor&, const Tensor&)>
class SavedTensorBackward : public Node {
 public:
  SavedTensorBackward(const char* name, Tensor saved) : name_(name), saved_(std::move(saved)) {}
  const char* name() const override { return name_; }
  std::vector<Tensor> backward(const Tensor& grad_output) override { return {Derivative(grad_output, saved_)}; }
  void release_saved() override { saved_ = Tensor(); }

 private:
  const char* name_;
  Tensor saved_;
};

class LeakyReluBackward : public Node {
 public:
  LeakyReluBackward(Tensor x, double slope) : x_(std::move(x)), slope_(slope) {}
  const char* name() const override { return "LeakyReluBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {kernels::leaky_relu_backward(grad_output, x_, slope_)};
  }
  void release_saved() override { x_ = Tensor(); }

 private:
  Tensor x_;
  double slope_;
};

class SigmoidRangeBackward : public Node {
 public:
  SigmoidRangeBackward(Tensor x, double lo, double hi) : x_(std::move(x)), lo_(lo), hi_(hi) {}
  const char* name() const override { return "SigmoidRangeBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {kernels::sigmoid_range_backward(grad_output, x_, lo_, hi_)};
  }
  void release_saved() override { x_ = Tensor(); }

 private:
  Tensor x_;
  double lo_, hi_;
};

// Output-saving activations: y = Forward(x), backward from y.
template <Tensor (*Forward)(const Tensor&), Tensor (*Derivative)(const Tensor&, const Tensor&)>
Variable output_saving_op(const Variable& x, const char* node_name) {
  Tensor y = Forward(x.data());
  std::shared_ptr<Node> node;
  if (any_requires_grad({x})) node = std::make_shared<SavedTensorBackward<Derivative>>(node_name, y);
  return make_result(std::move(y), std::move(node), {x});
}

}  // namespace

Variable relu(const Variable& x) {
  return output_saving_op<kernels::relu, kernels::relu_backward>(x, "ReluBackward");
}

Variable sigmoid(const Variable& x) {
  return output_saving_op<kernels::sigmoid, kernels::sigmoid_backward>(x, "SigmoidBackward");
}

Variable tanh(const Variable& x) {
  return output_saving_op<kernels::tanh, kernels::tanh_backward>(x, "TanhBackward");
}

Variable leaky_relu(const Variable& x, double negative_slope) {
  Tensor y = kernels::leaky_relu(x.data(), negative_slope);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x})) node = std::make_shared<LeakyReluBackward>(x.data(), negative_slope);
  return make_result(std::move(y), std::move(node), {x});
}

Variable sigmoid_range(const Variable& x, double lo, double hi) {
  Tensor y = kernels::sigmoid_range(x.data(), lo, hi);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x})) node = std::make_shared<SigmoidRangeBackward>(x.data(), lo, hi);
  return make_result(std::move(y), std::move(node), {x});
}

}  // namespace fg
