// Differentiable dtype conversion among the floating types f32, f64, f16 and bf16 (autograd/ops.h). The values
// are converted by Tensor::to (round to nearest even, NaN kept); the gradient is converted back to the input's
// dtype. Casting to the dtype x already has returns x itself, as torch's .to() does.
#include <memory>
#include <utility>

#include "autograd/ops.h"

namespace fg {
namespace {

class CastBackward : public Node {
 public:
  explicit CastBackward(DType input_dtype) : input_dtype_(input_dtype) {}
  const char* name() const override { return "CastBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override { return {grad_output.to(input_dtype_)}; }

 private:
  DType input_dtype_;
};

}  // namespace

Variable cast(const Variable& x, DType dtype) {
  FG_CHECK(x.defined(), "cast: the input is an undefined variable");
  FG_CHECK(dtype_is_floating(x.dtype()) && dtype_is_floating(dtype),
           "cast: only f32, f64, f16 and bf16 are differentiable; cannot cast " << dtype_name(x.dtype()) << " to "
               << dtype_name(dtype) << " (use Tensor::to on the data for integer types)");
  if (x.dtype() == dtype) return x;
  Tensor y = x.data().to(dtype);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x})) node = std::make_shared<CastBackward>(x.dtype());
  return make_result(std::move(y), std::move(node), {x});
}

}  // namespace fg
