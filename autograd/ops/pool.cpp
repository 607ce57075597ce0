// Differentiable 2-D max and average pooling (autograd/ops.h). Max pooling keeps the argmax indices (one i64 per
// output) rather than the input; average pooling keeps only the input's shape.
#include "kernels/pool.h"

#include "autograd/ops.h"

namespace fg {
namespace {

class MaxPool2dNode : public Node {
 public:
  MaxPool2dNode(Tensor indices, Shape input_shape)
      : indices_(std::move(indices)), input_shape_(std::move(input_shape)) {}
  const char* name() const override { return "MaxPool2dBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {kernels::max_pool2d_backward(grad_output, indices_, input_shape_)};
  }
  void release_saved() override { indices_ = Tensor(); }

 private:
  Tensor indices_;
  Shape input_shape_;
};

class AvgPool2dNode : public Node {
 public:
  AvgPool2dNode(Shape input_shape, kernels::Pool2dParams params, bool count_include_pad)
      : input_shape_(std::move(input_shape)), params_(params), count_include_pad_(count_include_pad) {}
  const char* name() const override { return "AvgPool2dBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {kernels::avg_pool2d_backward(grad_output, input_shape_, params_, count_include_pad_)};
  }

 private:
  Shape input_shape_;
  kernels::Pool2dParams params_;
  bool count_include_pad_;
};

}  // namespace

Variable max_pool2d(const Variable& x, int64_t kernel, int64_t stride, int64_t padding) {
  FG_CHECK(x.defined(), "max_pool2d: the input is undefined");
  const kernels::Pool2dParams p = kernels::Pool2dParams::square(kernel, stride, padding);
  const bool needs_grad = any_requires_grad({x});
  Tensor indices;
  Tensor out = kernels::max_pool2d_forward(x.data(), p, needs_grad ? &indices : nullptr);
  std::shared_ptr<Node> node;
  if (needs_grad) node = std::make_shared<MaxPool2dNode>(std::move(indices), x.shape());
  return make_result(std::move(out), std::move(node), {x});
}

Variable avg_pool2d(const Variable& x, int64_t kernel, int64_t stride, int64_t padding, bool count_include_pad) {
  FG_CHECK(x.defined(), "avg_pool2d: the input is undefined");
  const kernels::Pool2dParams p = kernels::Pool2dParams::square(kernel, stride, padding);
  Tensor out = kernels::avg_pool2d_forward(x.data(), p, count_include_pad);
  return make_result(std::move(out), std::make_shared<AvgPool2dNode>(x.shape(), p, count_include_pad), {x});
}

}  // namespace fg
