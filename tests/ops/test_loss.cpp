// Pixel losses (mse_loss, l1_loss, bce_with_logits): the forward against the mean of the per-element formula
// evaluated in double over a case table (size 1, odd sizes, 4-D, permuted and step-sliced views, a size above the
// OpenMP grain and not a multiple of the summation chunk), hand-computed values, BCE at logits of +-1000 (finite,
// exact), the backward against its closed form (sign(0) = 0 for L1, -x/n for the BCE target), finite-difference
// gradient checks for both inputs, gradients for only one input, and the errors a user can cause.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

enum class Loss { MSE, L1, BCE };

const char* loss_name(Loss l) {
  return l == Loss::MSE ? "mse" : l == Loss::L1 ? "l1" : "bce";
}

// The per-element term of each loss, written from its definition (BCE: -[t log s(x) + (1 - t) log(1 - s(x))] in
// the form log(1 + e^x) - x t, with log(1 + e^x) = max(x, 0) + log(1 + e^-|x|)).
double term(Loss l, double a, double b) {
  switch (l) {
    case Loss::MSE:
      return (a - b) * (a - b);
    case Loss::L1:
      return std::fabs(a - b);
    case Loss::BCE:
      return std::max(a, 0.0) + std::log(1.0 + std::exp(-std::fabs(a))) - a * b;
  }
  return 0.0;
}

double naive_loss(Loss l, const Tensor& a, const Tensor& b) {
  const std::vector<double> va = a.to_vector(), vb = b.to_vector();
  double s = 0.0;
  for (size_t i = 0; i < va.size(); ++i) s += term(l, va[i], vb[i]);
  return s / double(va.size());
}

Variable apply(Loss l, const Variable& a, const Variable& b) {
  switch (l) {
    case Loss::MSE:
      return mse_loss(a, b);
    case Loss::L1:
      return l1_loss(a, b);
    case Loss::BCE:
      return bce_with_logits(a, b);
  }
  return Variable();
}

struct LossCase {
  std::string name;
  std::function<Tensor(DType, uint64_t)> make;  // the same maker for both inputs, different seeds
};

std::vector<LossCase> loss_cases() {
  return {
      {"size1", [](DType t, uint64_t s) { return test::random_tensor({1}, s, t, -2, 2); }},
      {"scalar", [](DType t, uint64_t s) { return test::random_tensor({}, s, t, -2, 2); }},
      {"odd_1d", [](DType t, uint64_t s) { return test::random_tensor({7}, s, t, -2, 2); }},
      {"odd_3d",
       [](DType t, uint64_t s) {
         return test::random_tensor({3, 5, 7}, s, t, -3, 3);
       }},
      {"nchw",
       [](DType t, uint64_t s) {
         return test::random_tensor({2, 3, 4, 5}, s, t, -3, 3);
       }},
      {"permuted",
       [](DType t, uint64_t s) {
         return test::random_tensor({4, 3, 5}, s, t, -2, 2).permute({2, 0, 1});
       }},
      {"sliced_step2",
       [](DType t, uint64_t s) {
         return test::random_tensor({5, 9, 3}, s, t, -2, 2).slice(1, 1, 9, 2);
       }},
      // 3 * 7 * 2003 = 42063 elements: above the OpenMP grain, five full summation chunks and a partial one.
      {"parallel",
       [](DType t, uint64_t s) {
         return test::random_tensor({3, 7, 2003}, s, t, -4, 4);
       }},
  };
}

TEST(Loss, ForwardMatchesNaive) {
  for (Loss l : {Loss::MSE, Loss::L1, Loss::BCE}) {
    for (DType dtype : {DType::F32, DType::F64}) {
      // f32: the inputs are exact in double and the sums run in double; only the final rounding to f32 remains.
      const double rtol = dtype == DType::F32 ? 1e-6 : 1e-12;
      for (const auto& c : loss_cases()) {
        SCOPED_TRACE(std::string(loss_name(l)) + " " + c.name + " " + dtype_name(dtype));
        const Tensor a = c.make(dtype, 11);
        Tensor b = c.make(dtype, 12);
        if (l == Loss::BCE) b = test::random_tensor(b.shape(), 13, dtype, 0, 1);  // targets are probabilities
        const Variable out = apply(l, Variable(a), Variable(b));
        EXPECT_EQ(out.shape(), Shape{});
        EXPECT_EQ(out.dtype(), dtype);
        const double ref = naive_loss(l, a, b);
        EXPECT_NEAR(out.item(), ref, rtol * std::fabs(ref));
        // The view and a contiguous copy of it give the same bits.
        EXPECT_EQ(apply(l, Variable(a.contiguous()), Variable(b.contiguous())).item(), out.item());
      }
    }
  }
}

TEST(Loss, HandComputedValues) {
  const Tensor p = Tensor::from_vector({1, 2, 3}, {3});
  const Tensor t = Tensor::from_vector({1, 0, 0}, {3});
  EXPECT_NEAR(mse_loss(Variable(p), Variable(t)).item(), 13.0 / 3.0, 1e-6);  // (0 + 4 + 9) / 3
  EXPECT_NEAR(l1_loss(Variable(p), Variable(t)).item(), 5.0 / 3.0, 1e-6);    // (0 + 2 + 3) / 3
  // x = 0: log 2 whatever the target; x = 2, t = 0: 2 + log(1 + e^-2); x = -3, t = 1: 3 + log(1 + e^-3).
  const Tensor x = Tensor::from_vector({0, 2, -3}, {3});
  const Tensor y = Tensor::from_vector({0.3, 0, 1}, {3});
  EXPECT_NEAR(bce_with_logits(Variable(x), Variable(y)).item(), (0.6931472 + 2.1269280 + 3.0485874) / 3.0, 1e-6);
  // Identical inputs: no error at all.
  EXPECT_EQ(mse_loss(Variable(p), Variable(p)).item(), 0.0);
  EXPECT_EQ(l1_loss(Variable(p), Variable(p)).item(), 0.0);
}

TEST(Loss, BceLargeLogitsStayFinite) {
  for (DType dtype : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = Tensor::from_vector({1000, -1000, 1000, -1000}, {4}, dtype);
    const Tensor t = Tensor::from_vector({1, 0, 0, 1}, {4}, dtype);
    // Right answers cost 0 (exp(-1000) underflows to exactly 0), wrong ones cost |x|.
    EXPECT_DOUBLE_EQ(bce_with_logits(Variable(x), Variable(t)).item(), 2000.0 / 4.0);
    const kernels::BceWithLogitsGrads g =
        kernels::bce_with_logits_backward(Tensor::scalar(1.0, dtype), x, t, true, true);
    // sigmoid(1000) = 1, sigmoid(-1000) = 0 without overflow: (s - t) / 4.
    EXPECT_ALL_CLOSE(Tensor::from_vector({0, 0, 0.25, -0.25}, {4}, dtype), g.logits, 0, 0);
    EXPECT_ALL_CLOSE(Tensor::from_vector({-250, 250, -250, 250}, {4}, dtype), g.target, 0, 0);
  }
}

TEST(Loss, BackwardMatchesClosedForm) {
  for (DType dtype : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtype_name(dtype));
    const double tol = dtype == DType::F32 ? 1e-6 : 1e-14;
    // 0 and the repeated 0.5 make pred == target at two places: L1's gradient must be exactly 0 there.
    const Tensor p = Tensor::from_vector({0.5, -1, 2, 0, 3, -0.25}, {2, 3}, dtype);
    const Tensor t = Tensor::from_vector({0.5, 1, -1, 0, 2.5, 0.75}, {2, 3}, dtype);
    const double g = 1.5, n = 6;
    std::vector<double> mse, l1, bce_x, bce_t;
    const std::vector<double> vp = p.to_vector(), vt = t.to_vector();
    for (size_t i = 0; i < vp.size(); ++i) {
      const double d = vp[i] - vt[i];
      mse.push_back(2 * d * g / n);
      l1.push_back((d > 0 ? 1 : d < 0 ? -1 : 0) * g / n);
      bce_x.push_back((1 / (1 + std::exp(-vp[i])) - vt[i]) * g / n);
      bce_t.push_back(-vp[i] * g / n);
    }
    const Tensor go = Tensor::scalar(g, dtype);
    EXPECT_ALL_CLOSE(Tensor::from_vector(mse, {2, 3}, DType::F64), kernels::mse_loss_backward(go, p, t), tol, tol);
    const Tensor l1_grad = kernels::l1_loss_backward(go, p, t);
    EXPECT_ALL_CLOSE(Tensor::from_vector(l1, {2, 3}, DType::F64), l1_grad, tol, tol);
    EXPECT_EQ(l1_grad.at({0, 0}), 0.0);
    EXPECT_EQ(l1_grad.at({1, 0}), 0.0);
    const kernels::BceWithLogitsGrads b = kernels::bce_with_logits_backward(go, p, t, true, true);
    EXPECT_ALL_CLOSE(Tensor::from_vector(bce_x, {2, 3}, DType::F64), b.logits, tol, tol);
    EXPECT_ALL_CLOSE(Tensor::from_vector(bce_t, {2, 3}, DType::F64), b.target, tol, tol);
    const kernels::BceWithLogitsGrads only_t = kernels::bce_with_logits_backward(go, p, t, false, true);
    EXPECT_FALSE(only_t.logits.defined());
    EXPECT_TRUE(only_t.target.defined());
  }
}

TEST(Loss, AutogradGradientsForEachInput) {
  const Tensor p = Tensor::from_vector({0.5, -1, 2, 0}, {4}, DType::F64);
  const Tensor t = Tensor::from_vector({0.5, 1, -1, 1}, {4}, DType::F64);
  for (Loss l : {Loss::MSE, Loss::L1, Loss::BCE}) {
    SCOPED_TRACE(loss_name(l));
    // Both inputs.
    Variable vp(p, true), vt(t, true);
    apply(l, vp, vt).backward();
    ASSERT_TRUE(vp.grad().defined());
    ASSERT_TRUE(vt.grad().defined());
    // Only the target (the prediction is a constant): the same target gradient as before.
    Variable cp(p, false), ct(t, true);
    apply(l, cp, ct).backward();
    EXPECT_FALSE(cp.grad().defined());
    ASSERT_TRUE(ct.grad().defined());
    EXPECT_ALL_CLOSE(vt.grad(), ct.grad(), 0, 0);
    if (l != Loss::BCE) {
      // MSE and L1: the target's gradient is the negated prediction gradient.
      std::vector<double> neg = vp.grad().to_vector();
      for (double& v : neg) v = -v;
      EXPECT_ALL_CLOSE(Tensor::from_vector(neg, {4}, DType::F64), vt.grad(), 0, 0);
    }
    // No input requires a gradient: no graph.
    EXPECT_TRUE(apply(l, Variable(p), Variable(t)).is_leaf());
  }
}

TEST(Loss, GradCheck) {
  for (Loss l : {Loss::MSE, Loss::L1, Loss::BCE}) {
    auto f = [l](const std::vector<Variable>& v) { return apply(l, v[0], v[1]); };
    for (const Shape& shape : {Shape{1}, Shape{7}, Shape{2, 3, 4}}) {
      SCOPED_TRACE(std::string(loss_name(l)) + " " + shape_str(shape));
      const Tensor a = test::random_tensor(shape, 21, DType::F64, -2, 2);
      Tensor b = test::random_tensor(shape, 22, DType::F64, 0.05, 1);
      // L1 has a kink at a == b: keep every difference at least 0.05 away from it (|a - b| >= 0.05 by the ranges).
      if (l == Loss::L1) b = kernels::add(kernels::mul(kernels::unary(kernels::UnaryOp::SIGN, a), b), a);
      EXPECT_GRAD_OK(f, {a, b});
    }
    // Through non-contiguous views of the inputs.
    auto fv = [l](const std::vector<Variable>& v) { return apply(l, permute(v[0], {1, 0}), slice(v[1], 1, 0, 6, 2)); };
    const Tensor a = test::random_tensor({3, 2}, 23, DType::F64, -2, 2);
    Tensor b = test::random_tensor({2, 6}, 24, DType::F64, 0.05, 1);
    if (l == Loss::L1) b = kernels::add_scalar(b, 5.0);  // every a - b < 0: far from the kink
    EXPECT_GRAD_OK(fv, {a, b});
  }
}

TEST(Loss, EmptyInputsGiveNaN) {
  // The mean of no elements, as in PyTorch; the gradient is empty.
  const Tensor e = Tensor::zeros({0, 3});
  for (Loss l : {Loss::MSE, Loss::L1, Loss::BCE}) {
    SCOPED_TRACE(loss_name(l));
    Variable v(e, true);
    const Variable out = apply(l, v, Variable(e));
    EXPECT_TRUE(std::isnan(out.item()));
    out.backward();
    EXPECT_EQ(v.grad().shape(), e.shape());
  }
}

TEST(Loss, Errors) {
  const Tensor a = Tensor::zeros({2, 3});
  for (Loss l : {Loss::MSE, Loss::L1, Loss::BCE}) {
    SCOPED_TRACE(loss_name(l));
    // Shapes must match exactly, even where they would broadcast.
    EXPECT_THROW(apply(l, Variable(a), Variable(Tensor::zeros({3, 2}))), Error);
    EXPECT_THROW(apply(l, Variable(a), Variable(Tensor::zeros({1, 3}))), Error);
    EXPECT_THROW(apply(l, Variable(a), Variable(Tensor::zeros({6}))), Error);
    EXPECT_THROW(apply(l, Variable(a), Variable(Tensor::zeros({2, 3}, DType::F64))), Error);
    EXPECT_THROW(apply(l, Variable(Tensor::zeros({2, 3}, DType::I32)), Variable(Tensor::zeros({2, 3}, DType::I32))),
                 Error);
    EXPECT_THROW(apply(l, Variable(), Variable(a)), Error);
  }
  EXPECT_THROW(kernels::mse_loss_backward(Tensor::zeros({2}), a, a), Error);  // the gradient must be one element
  try {
    mse_loss(Variable(a), Variable(Tensor::zeros({3, 2})));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("mse_loss"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(2, 3)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(3, 2)"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace fg
