// Differentiable 2-D replication and zero padding (autograd/ops.h). The nodes keep only the input's shape and the
// padding amounts.
#include "kernels/pad.h"

#include "autograd/ops.h"

namespace fg {
namespace {

class Pad2dNode : public Node {
 public:
  Pad2dNode(Shape input_shape, kernels::Pad2dParams params, bool replication)
      : input_shape_(std::move(input_shape)), params_(params), replication_(replication) {}
  const char* name() const override { return replication_ ? "ReplicationPad2dBackward" : "ZeroPad2dBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {replication_ ? kernels::replication_pad2d_backward(grad_output, input_shape_, params_)
                         : kernels::zero_pad2d_backward(grad_output, input_shape_, params_)};
  }

 private:
  Shape input_shape_;
  kernels::Pad2dParams params_;
  bool replication_;
};

}  // namespace

Variable replication_pad2d(const Variable& x, int64_t left, int64_t right, int64_t top, int64_t bottom) {
  FG_CHECK(x.defined(), "replication_pad2d: the input is undefined");
  const kernels::Pad2dParams p{left, right, top, bottom};
  Tensor out = kernels::replication_pad2d_forward(x.data(), p);
  return make_result(std::move(out), std::make_shared<Pad2dNode>(x.shape(), p, true), {x});
}

Variable zero_pad2d(const Variable& x, int64_t left, int64_t right, int64_t top, int64_t bottom) {
  FG_CHECK(x.defined(), "zero_pad2d: the input is undefined");
  const kernels::Pad2dParams p{left, right, top, bottom};
  Tensor out = kernels::zero_pad2d_forward(x.data(), p);
  return make_result(std::move(out), std::make_shared<Pad2dNode>(x.shape(), p, false), {x});
}

}  // namespace fg
