// Example 4: a differentiable op defined outside the library, with its own backward, checked by gradcheck.
//   softplus(x) = log(1 + exp(x)),   d softplus / dx = sigmoid(x) = 1 / (1 + exp(-x))
// An op is a forward on Tensors plus a Node subclass whose backward maps dL/dy to dL/dx; make_result records the
// node only when an input needs a gradient. Walk-through: docs/internals/06_adding_an_op.md.
// Exits non-zero when gradcheck rejects the correct backward or accepts a deliberately wrong one.
#include <cmath>
#include <cstdio>
#include <memory>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"

namespace {

// y[i] = fn(x[i]) into a new contiguous tensor of x's shape; f32 or f64 on the CPU (enough for this example).
template <typename Fn>
fg::Tensor map_elements(const fg::Tensor& x, Fn fn) {
  const fg::Tensor xc = x.contiguous();
  fg::Tensor y = fg::Tensor::empty(x.shape(), x.dtype());
  if (x.dtype() == fg::DType::F64) {
    const double* in = xc.data<double>();
    double* out = y.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = fn(in[i]);
  } else {
    const float* in = xc.data<float>();  // data<T>() checks T against the dtype: f16 and others throw here
    float* out = y.data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = float(fn(double(in[i])));
  }
  return y;
}

double softplus_value(double v) {
  return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
}
double sigmoid_value(double v) {
  return 1.0 / (1.0 + std::exp(-v));
}

class SoftplusNode : public fg::Node {
 public:
  SoftplusNode(fg::Tensor x, bool wrong) : x_(std::move(x)), wrong_(wrong) {}
  const char* name() const override { return "SoftplusBackward"; }
  // grad_output: dL/dy, contiguous, y's shape. Returns dL/dx = dL/dy * sigmoid(x), one gradient per input.
  std::vector<fg::Tensor> backward(const fg::Tensor& grad_output) override {
    const fg::Tensor s = map_elements(x_, [this](double v) { return wrong_ ? std::exp(v) : sigmoid_value(v); });
    fg::Tensor dx = fg::mul(fg::Variable(grad_output), fg::Variable(s)).data();
    return {dx};
  }
  void release_saved() override { x_ = fg::Tensor(); }  // the saved input is freed once backward has run

 private:
  fg::Tensor x_;  // all the backward needs
  bool wrong_;    // a deliberate bug (exp(x) for sigmoid(x)) that gradcheck must catch
};

fg::Variable softplus(const fg::Variable& x, bool wrong = false) {
  fg::Tensor y = map_elements(x.data(), softplus_value);
  return fg::make_result(std::move(y), std::make_shared<SoftplusNode>(x.data(), wrong), {x});
}

}  // namespace

int main() {
  int failures = 0;
  fg::Generator gen(3);
  fg::Tensor x = fg::Tensor::empty({2, 5}, fg::DType::F64), w = fg::Tensor::empty({5}, fg::DType::F64);
  fg::uniform_(x, gen, -3.0, 3.0);
  fg::uniform_(w, gen, -1.0, 1.0);

  // The custom op composes with the library's: L = sum(softplus(x) * w), w broadcast over rows.
  auto model = [](bool wrong) {
    return [wrong](const std::vector<fg::Variable>& in) { return fg::sum(fg::mul(softplus(in[0], wrong), in[1])); };
  };
  // gradcheck's defaults: central differences with eps 1e-6 in f64, |analytic - numeric| <= 1e-6 + 1e-4 |numeric|.
  const fg::GradCheckResult good = fg::gradcheck(model(false), {x, w});
  std::printf("%s  gradcheck of softplus: max |analytic - numeric| = %.3g\n", good.ok ? "ok  " : "FAIL",
              good.max_abs_error);
  if (!good.ok) {
    std::printf("      %s\n", good.message.c_str());
    ++failures;
  }
  const fg::GradCheckResult bad = fg::gradcheck(model(true), {x, w});
  std::printf("%s  gradcheck rejects the wrong backward: %s\n", bad.ok ? "FAIL" : "ok  ", bad.message.c_str());
  if (bad.ok) ++failures;

  // Without an input that needs a gradient, nothing is recorded.
  const fg::Variable plain = softplus(fg::Variable(x));
  if (plain.grad_fn()) {
    std::printf("FAIL softplus of a constant recorded a node\n");
    ++failures;
  }
  std::printf("%s\n", failures ? "custom_op: FAILED" : "custom_op: the backward matches finite differences");
  return failures ? 1 : 0;
}
