// Differentiable conv2d and conv1d (autograd/ops.h). conv1d is conv2d on (N, C, 1, L) with a (O, C, 1, K) kernel:
// the views cost nothing and one kernel serves both. The node keeps x only when w needs a gradient and w only when
// x needs one (dx needs w, dw needs x, db needs neither).
#include "autograd/ops.h"
#include "kernels/conv2d.h"

namespace fg {
namespace {

class ConvNode : public Node {
 public:
  ConvNode(const char* name, Tensor x4, Tensor w4, Shape x_shape, Shape w_shape, kernels::Conv2dGeometry g,
           bool has_bias)
      : name_(name),
        x4_(std::move(x4)),
        w4_(std::move(w4)),
        x_shape_(std::move(x_shape)),
        w_shape_(std::move(w_shape)),
        g_(g),
        has_bias_(has_bias) {}
  const char* name() const override { return name_; }

  // grad_output: (N, O, OH, OW), or (N, O, OL) for conv1d.
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const Tensor gy = grad_output.dim() == 3 ? grad_output.unsqueeze(2) : grad_output;
    std::vector<Tensor> grads(3);
    if (inputs[0].requires_grad()) {
      Shape x4_shape = x_shape_;
      if (x4_shape.size() == 3) x4_shape.insert(x4_shape.begin() + 2, 1);
      grads[0] = kernels::conv2d_backward_input(gy, w4_, x4_shape, g_).view(x_shape_);
    }
    if (inputs[1].requires_grad()) {
      Shape w4_shape = w_shape_;
      if (w4_shape.size() == 3) w4_shape.insert(w4_shape.begin() + 2, 1);
      grads[1] = kernels::conv2d_backward_weight(gy, x4_, w4_shape, g_).view(w_shape_);
    }
    if (has_bias_ && inputs[2].requires_grad()) grads[2] = kernels::conv2d_backward_bias(gy);
    return grads;
  }
  void release_saved() override {
    x4_ = Tensor();
    w4_ = Tensor();
  }

 private:
  const char* name_;
  Tensor x4_, w4_;  // 4-D views; undefined when the other side needs no gradient
  Shape x_shape_, w_shape_;
  kernels::Conv2dGeometry g_;
  bool has_bias_;
};

// x4: (N, C, H, W), w4: (O, C, KH, KW); x and w are the op's inputs (4-D for conv2d, 3-D for conv1d).
Variable conv_op(const char* name, const Variable& x, const Variable& w, const Variable& b, const Tensor& x4,
                 const Tensor& w4, const kernels::Conv2dGeometry& g, bool squeeze_h) {
  Tensor y = kernels::conv2d_forward(x4, w4, b.defined() ? b.data() : Tensor(), g);
  if (squeeze_h) y = y.squeeze(2);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x, w, b})) {
    // Saved contiguous: backward would otherwise copy them on every call.
    const Tensor x_saved = w.requires_grad() ? x4.contiguous() : Tensor();
    const Tensor w_saved = x.requires_grad() ? w4.contiguous() : Tensor();
    node = std::make_shared<ConvNode>(name, x_saved, w_saved, x.shape(), w.shape(), g, b.defined());
  }
  return make_result(std::move(y), std::move(node), {x, w, b});
}

void check_bias(const char* op, const Variable& b) {
  FG_CHECK(!b.defined() || b.dim() == 1, op << ": bias must be 1-D (O), got " << shape_str(b.shape()));
}

}  // namespace

Variable conv2d(const Variable& x, const Variable& w, const Variable& b, const Conv2dParams& p) {
  FG_CHECK(x.defined() && w.defined(), "conv2d: x and w must be defined");
  FG_CHECK(x.dim() == 4, "conv2d: x must be (N, C, H, W), got " << shape_str(x.shape())
                                                                << "; add a batch dim with unsqueeze(0) if needed");
  FG_CHECK(w.dim() == 4, "conv2d: w must be (O, C, KH, KW), got " << shape_str(w.shape()));
  check_bias("conv2d", b);
  const kernels::Conv2dGeometry g{p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w};
  return conv_op("Conv2dBackward", x, w, b, x.data(), w.data(), g, false);
}

Variable conv1d(const Variable& x, const Variable& w, const Variable& b, int64_t stride, int64_t padding,
                int64_t dilation) {
  FG_CHECK(x.defined() && w.defined(), "conv1d: x and w must be defined");
  FG_CHECK(x.dim() == 3, "conv1d: x must be (N, C, L), got " << shape_str(x.shape()));
  FG_CHECK(w.dim() == 3, "conv1d: w must be (O, C, K), got " << shape_str(w.shape()));
  check_bias("conv1d", b);
  FG_CHECK(x.size(1) == w.size(1), "conv1d: x " << shape_str(x.shape()) << " has " << x.size(1)
                                                << " channels but w " << shape_str(w.shape()) << " expects " << w.size(1));
  FG_CHECK(stride >= 1 && dilation >= 1 && padding >= 0,
           "conv1d: stride " << stride << " and dilation " << dilation << " must be at least 1, padding " << padding
                             << " must not be negative");
  FG_CHECK(x.size(2) + 2 * padding >= dilation * (w.size(2) - 1) + 1,
           "conv1d: the input length " << x.size(2) << " padded by " << padding << " is shorter than the dilated kernel "
                                       << dilation * (w.size(2) - 1) + 1 << "; use a longer input or more padding");
  const kernels::Conv2dGeometry g{1, stride, 0, padding, 1, dilation};
  return conv_op("Conv1dBackward", x, w, b, x.data().unsqueeze(2), w.data().unsqueeze(2), g, true);
}

}  // namespace fg
