// Differentiable pixel shuffle and unshuffle (autograd/ops.h). Each is a permutation of elements, so the backward
// of one is the other applied to the gradient; the nodes keep only the factor.
#include "kernels/pixel_shuffle.h"

#include "autograd/ops.h"

namespace fg {
namespace {

class PixelShuffleNode : public Node {
 public:
  PixelShuffleNode(int64_t r, bool unshuffle) : r_(r), unshuffle_(unshuffle) {}
  const char* name() const override { return unshuffle_ ? "PixelUnshuffleBackward" : "PixelShuffleBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {unshuffle_ ? kernels::pixel_shuffle(grad_output, r_) : kernels::pixel_unshuffle(grad_output, r_)};
  }

 private:
  int64_t r_;
  bool unshuffle_;
};

}  // namespace

Variable pixel_shuffle(const Variable& x, int64_t r) {
  FG_CHECK(x.defined(), "pixel_shuffle: the input is undefined");
  Tensor out = kernels::pixel_shuffle(x.data(), r);
  return make_result(std::move(out), std::make_shared<PixelShuffleNode>(r, false), {x});
}

Variable pixel_unshuffle(const Variable& x, int64_t r) {
  FG_CHECK(x.defined(), "pixel_unshuffle: the input is undefined");
  Tensor out = kernels::pixel_unshuffle(x.data(), r);
  return make_result(std::move(out), std::make_shared<PixelShuffleNode>(r, true), {x});
}

}  // namespace fg
