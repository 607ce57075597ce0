// Differentiable nearest-neighbour resampling (autograd/ops.h). The node keeps only the input's shape: the
// backward recomputes the same source indices and adds each output gradient to the input it copied.
#include "kernels/upsample.h"

#include "autograd/ops.h"

namespace fg {
namespace {

class UpsampleNearest2dNode : public Node {
 public:
  explicit UpsampleNearest2dNode(Shape input_shape) : input_shape_(std::move(input_shape)) {}
  const char* name() const override { return "UpsampleNearest2dBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {kernels::upsample_nearest2d_backward(grad_output, input_shape_)};
  }

 private:
  Shape input_shape_;
};

}  // namespace

Variable upsample_nearest2d(const Variable& x, int64_t out_h, int64_t out_w) {
  FG_CHECK(x.defined(), "upsample_nearest2d: the input is undefined");
  Tensor out = kernels::upsample_nearest2d_forward(x.data(), out_h, out_w);
  return make_result(std::move(out), std::make_shared<UpsampleNearest2dNode>(x.shape()), {x});
}

}  // namespace fg
