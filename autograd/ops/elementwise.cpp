// Differentiable elementwise arithmetic. Broadcast inputs get their gradient summed back to their own shape.
#include <cmath>
#include <functional>

#include "autograd/ops.h"
#include "kernels/elementwise.h"

namespace fg {

namespace k = kernels;

namespace {

struct BinaryBackward : Node {
  k::BinaryOp op;
  Tensor a, b;  // saved only where the gradient needs them (MUL, DIV)
  Shape a_shape, b_shape;
  const char* name() const override { return "BinaryBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor ga, gb;
    const bool need_a = inputs[0].requires_grad(), need_b = inputs[1].requires_grad();
    switch (op) {
      case k::BinaryOp::ADD:
        if (need_a) ga = g;
        if (need_b) gb = g;
        break;
      case k::BinaryOp::SUB:
        if (need_a) ga = g;
        if (need_b) gb = k::mul_scalar(g, -1.0);
        break;
      case k::BinaryOp::MUL:
        if (need_a) ga = k::mul(g, b);
        if (need_b) gb = k::mul(g, a);
        break;
      case k::BinaryOp::DIV:  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
        if (need_a) ga = k::div(g, b);
        if (need_b) gb = k::mul_scalar(k::div(k::mul(g, a), k::mul(b, b)), -1.0);
        break;
    }
    return {ga.defined() ? k::sum_to_shape(ga, a_shape) : ga, gb.defined() ? k::sum_to_shape(gb, b_shape) : gb};
  }
  void release_saved() override {
    a = Tensor();
    b = Tensor();
  }
};

Variable binary_op(k::BinaryOp op, const Variable& a, const Variable& b) {
  Tensor out = k::binary(op, a.data(), b.data());
  if (!any_requires_grad({a, b})) return Variable(out);
  auto node = std::make_shared<BinaryBackward>();
  node->op = op;
  node->a_shape = a.shape();
  node->b_shape = b.shape();
  if (op == k::BinaryOp::MUL || op == k::BinaryOp::DIV) {
    node->a = a.data();
    node->b = b.data();
  }
  return make_result(out, node, {a, b});
}

// y = f(x) with dy/dx computed from x and y by `deriv` (elementwise, on tensors).
struct UnaryBackward : Node {
  const char* op_name;
  Tensor x, y;
  std::function<Tensor(const Tensor& g, const Tensor& x, const Tensor& y)> grad_fn;
  const char* name() const override { return op_name; }
  std::vector<Tensor> backward(const Tensor& g) override { return {grad_fn(g, x, y)}; }
  void release_saved() override {
    x = Tensor();
    y = Tensor();
  }
};

Variable unary_op(const char* name, const Variable& x, Tensor y,
                  std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)> grad_fn) {
  if (!any_requires_grad({x})) return Variable(y);
  auto node = std::make_shared<UnaryBackward>();
  node->op_name = name;
  node->x = x.data();
  node->y = y;
  node->grad_fn = std::move(grad_fn);
  return make_result(y, node, {x});
}

}  // namespace

Variable add(const Variable& a, const Variable& b) { return binary_op(k::BinaryOp::ADD, a, b); }
Variable sub(const Variable& a, const Variable& b) { return binary_op(k::BinaryOp::SUB, a, b); }
Variable mul(const Variable& a, const Variable& b) { return binary_op(k::BinaryOp::MUL, a, b); }
Variable div(const Variable& a, const Variable& b) { return binary_op(k::BinaryOp::DIV, a, b); }

Variable neg(const Variable& a) {
  return unary_op("NegBackward", a, k::mul_scalar(a.data(), -1.0),
                  [](const Tensor& g, const Tensor&, const Tensor&) { return k::mul_scalar(g, -1.0); });
}

Variable add_scalar(const Variable& a, double s) {
  return unary_op("AddScalarBackward", a, k::add_scalar(a.data(), s),
                  [](const Tensor& g, const Tensor&, const Tensor&) { return g; });
}

Variable mul_scalar(const Variable& a, double s) {
  return unary_op("MulScalarBackward", a, k::mul_scalar(a.data(), s),
                  [s](const Tensor& g, const Tensor&, const Tensor&) { return k::mul_scalar(g, s); });
}

Variable pow_scalar(const Variable& a, double p) {
  return unary_op("PowBackward", a, k::pow_scalar(a.data(), p), [p](const Tensor& g, const Tensor& x, const Tensor&) {
    return k::mul(g, k::mul_scalar(k::pow_scalar(x, p - 1.0), p));
  });
}

Variable sqrt(const Variable& a) {
  return unary_op("SqrtBackward", a, k::unary(k::UnaryOp::SQRT, a.data()),
                  [](const Tensor& g, const Tensor&, const Tensor& y) { return k::div(g, k::mul_scalar(y, 2.0)); });
}

Variable exp(const Variable& a) {
  return unary_op("ExpBackward", a, k::unary(k::UnaryOp::EXP, a.data()),
                  [](const Tensor& g, const Tensor&, const Tensor& y) { return k::mul(g, y); });
}

Variable log(const Variable& a) {
  return unary_op("LogBackward", a, k::unary(k::UnaryOp::LOG, a.data()),
                  [](const Tensor& g, const Tensor& x, const Tensor&) { return k::div(g, x); });
}

Variable abs(const Variable& a) {
  return unary_op("AbsBackward", a, k::unary(k::UnaryOp::ABS, a.data()),
                  [](const Tensor& g, const Tensor& x, const Tensor&) {
                    return k::mul(g, k::unary(k::UnaryOp::SIGN, x));
                  });
}

}  // namespace fg
