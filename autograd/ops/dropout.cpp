// Differentiable dropout and dropout2d (autograd/ops.h). The mask (0 or 1/(1-p), in x's dtype) comes from the
// Philox generator (kernels/dropout.h), so every backend drops the same elements; the backward multiplies the
// gradient by that same saved mask. As in PyTorch, p == 0, eval mode and empty inputs return x itself and leave
// the generator untouched; p outside [0, 1) is an error even in eval mode.
#include <memory>
#include <utility>

#include "autograd/ops.h"
#include "kernels/dropout.h"

namespace fg {
namespace {

class DropoutBackward : public Node {
 public:
  DropoutBackward(const char* name, Tensor mask) : name_(name), mask_(std::move(mask)) {}
  const char* name() const override { return name_; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {kernels::apply_dropout_mask(grad_output, mask_)};
  }
  void release_saved() override { mask_ = Tensor(); }

 private:
  const char* name_;
  Tensor mask_;
};

void check_probability(const char* op, double p) {
  FG_CHECK(p >= 0.0 && p < 1.0, op << ": drop probability p = " << p << " must be in [0, 1)");
}

// mask_shape: the shape the generator draws, a prefix of x's shape.
Variable masked(const Variable& x, const Shape& mask_shape, double p, Generator& gen, const char* node_name) {
  Tensor mask = kernels::dropout_mask(mask_shape, p, gen, x.dtype(), x.data().device());
  Tensor y = kernels::apply_dropout_mask(x.data(), mask);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x})) node = std::make_shared<DropoutBackward>(node_name, std::move(mask));
  return make_result(std::move(y), std::move(node), {x});
}

}  // namespace

Variable dropout(const Variable& x, double p, bool training, Generator& gen) {
  check_probability("dropout", p);
  if (!training || p == 0.0 || x.numel() == 0) return x;
  return masked(x, x.shape(), p, gen, "DropoutBackward");
}

Variable dropout2d(const Variable& x, double p, bool training, Generator& gen) {
  check_probability("dropout2d", p);
  FG_CHECK(x.dim() >= 2, "dropout2d: input " << shape_str(x.shape())
                                             << " needs at least 2 dims (N, C, ...); use dropout for a 1-D tensor");
  if (!training || p == 0.0 || x.numel() == 0) return x;
  return masked(x, {x.size(0), x.size(1)}, p, gen, "Dropout2dBackward");
}

}  // namespace fg
