// Activations (relu, leaky_relu, sigmoid, tanh, sigmoid_range): the forward against the textbook formulas computed
// in double over a case table of shapes and layouts, PyTorch's derivative conventions at the kinks, numerical
// stability for large inputs, finite-difference gradient checks, and the errors a user can cause.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/activation.h"
#include "kernels/elementwise.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct InputCase {
  std::string name;
  std::function<Tensor()> make;  // may return a non-contiguous view
};

std::vector<InputCase> input_cases(DType dtype) {
  return {
      {"size1", [=] { return test::random_tensor({1}, 11, dtype, -3, 3); }},
      {"odd_1d", [=] { return test::random_tensor({7}, 12, dtype, -3, 3); }},
      {"odd_4d", [=] { return test::random_tensor({2, 3, 5, 7}, 13, dtype, -3, 3); }},
      {"permuted", [=] { return test::random_tensor({6, 5, 4}, 14, dtype, -3, 3).permute({2, 0, 1}); }},
      {"sliced_step2", [=] { return test::random_tensor({6, 9, 4}, 15, dtype, -3, 3).slice(1, 1, 8, 2); }},
      {"transposed_2d", [=] { return test::random_tensor({13, 11}, 16, dtype, -3, 3).transpose(0, 1); }},
      {"large_magnitude", [=] { return test::random_tensor({4, 33}, 17, dtype, -100, 100); }},
      {"extremes", [=] { return Tensor::from_vector({-100, 100, -1e4, 1e4, 0, -0.0, 1e-30, -1e-30}, {8}, dtype); }},
      // Above the OpenMP grain, so the parallel loop runs.
      {"parallel", [=] { return test::random_tensor({3, 20001}, 18, dtype, -5, 5); }},
  };
}

struct ActivationCase {
  std::string name;
  std::function<Variable(const Variable&)> op;
  std::function<double(double)> formula;
};

constexpr double kSlope = 0.2;
constexpr double kLo = -3.0, kHi = 3.0;

double naive_sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

std::vector<ActivationCase> activation_cases() {
  return {
      {"relu", [](const Variable& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0.0; }},
      {"leaky_relu", [](const Variable& x) { return leaky_relu(x, kSlope); },
       [](double v) { return v > 0 ? v : v * kSlope; }},
      {"leaky_relu_default", [](const Variable& x) { return leaky_relu(x); },
       [](double v) { return v > 0 ? v : v * 0.01; }},
      {"sigmoid", [](const Variable& x) { return sigmoid(x); }, naive_sigmoid},
      {"tanh", [](const Variable& x) { return fg::tanh(x); },
       [](double v) { return (1 - std::exp(-2 * std::abs(v))) / (1 + std::exp(-2 * std::abs(v))) * (v < 0 ? -1 : 1); }},
      {"sigmoid_range", [](const Variable& x) { return sigmoid_range(x, kLo, kHi); },
       [](double v) { return naive_sigmoid(v) * (kHi - kLo) + kLo; }},
  };
}

Tensor apply_formula(const Tensor& x, const std::function<double(double)>& f, DType dtype) {
  std::vector<double> v = x.to_vector();
  for (double& e : v) e = f(e);
  return Tensor::from_vector(v, x.shape(), dtype);
}

TEST(Activation, ForwardMatchesFormulaF32) {
  for (const auto& act : activation_cases()) {
    for (const auto& in : input_cases(DType::F32)) {
      SCOPED_TRACE(act.name + " / " + in.name);
      const Tensor x = in.make();
      const Tensor y = act.op(Variable(x)).data();
      ASSERT_EQ(y.shape(), x.shape());
      ASSERT_EQ(y.dtype(), DType::F32);
      EXPECT_TRUE(kernels::all_finite(y));
      // f32 evaluation of exp and tanh: a few ulps of the (at most 1e4-sized) result.
      EXPECT_ALL_CLOSE(apply_formula(x, act.formula, DType::F32), y, 1e-6, 1e-6);
    }
  }
}

TEST(Activation, ForwardMatchesFormulaF64) {
  for (const auto& act : activation_cases()) {
    for (const auto& in : input_cases(DType::F64)) {
      SCOPED_TRACE(act.name + " / " + in.name);
      const Tensor x = in.make();
      const Tensor y = act.op(Variable(x)).data();
      ASSERT_EQ(y.dtype(), DType::F64);
      EXPECT_ALL_CLOSE(apply_formula(x, act.formula, DType::F64), y, 1e-14, 1e-13);
    }
  }
}

TEST(Activation, SaturatesWithoutNaN) {
  const Tensor x = Tensor::from_vector({-1000, -100, 100, 1000}, {4});
  EXPECT_EQ(sigmoid(Variable(x)).data().to_vector(), (std::vector<double>{0, 0, 1, 1}));
  EXPECT_EQ(fg::tanh(Variable(x)).data().to_vector(), (std::vector<double>{-1, -1, 1, 1}));
  EXPECT_EQ(sigmoid_range(Variable(x), -3, 3).data().to_vector(), (std::vector<double>{-3, -3, 3, 3}));
}

TEST(Activation, ReluPassesNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> y = relu(Variable(Tensor::from_vector({nan, -1.0, 2.0}, {3}))).data().to_vector();
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 0.0);
  EXPECT_EQ(y[2], 2.0);
}

// The derivative at exactly 0 follows PyTorch: relu gives 0, leaky_relu gives the slope.
TEST(Activation, DerivativeAtZeroMatchesPyTorch) {
  const Tensor x = Tensor::from_vector({0.0, -2.0, 3.0}, {3}, DType::F64);
  const Tensor g = Tensor::from_vector({5.0, 7.0, 11.0}, {3}, DType::F64);
  {
    Variable v(x, true);
    const std::vector<Tensor> gx = fg::grad(relu(v), {v}, g);
    EXPECT_EQ(gx[0].to_vector(), (std::vector<double>{0.0, 0.0, 11.0}));
  }
  {
    Variable v(x, true);
    const std::vector<Tensor> gx = fg::grad(leaky_relu(v, kSlope), {v}, g);
    EXPECT_EQ(gx[0].to_vector(), (std::vector<double>{5.0 * kSlope, 7.0 * kSlope, 11.0}));
  }
}

// Derivatives of sigmoid and tanh at 0 (1/4 and 1) and far out (0), from the saved output.
TEST(Activation, SmoothDerivativesAtKnownPoints) {
  const Tensor x = Tensor::from_vector({0.0, 50.0, -50.0}, {3}, DType::F64);
  const Tensor g = Tensor::ones({3}, DType::F64);
  Variable v(x, true);
  EXPECT_ALL_CLOSE(Tensor::from_vector({0.25, 0, 0}, {3}, DType::F64), fg::grad(sigmoid(v), {v}, g)[0], 1e-15, 0);
  EXPECT_ALL_CLOSE(Tensor::from_vector({1, 0, 0}, {3}, DType::F64), fg::grad(fg::tanh(v), {v}, g)[0], 1e-15, 0);
  EXPECT_ALL_CLOSE(Tensor::from_vector({1.5, 0, 0}, {3}, DType::F64),
                   fg::grad(sigmoid_range(v, kLo, kHi), {v}, g)[0], 1e-15, 0);
}

// Inputs kept away from 0 so the central differences never straddle the kink of relu / leaky_relu.
Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  std::vector<double> v = test::random_tensor(shape, seed, DType::F64, -2, 2).to_vector();
  for (double& e : v) e = e < 0 ? e - 0.05 : e + 0.05;
  return Tensor::from_vector(v, shape, DType::F64);
}

TEST(Activation, GradientCheck) {
  for (const auto& act : activation_cases()) {
    SCOPED_TRACE(act.name);
    EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return act.op(v[0]); }, {away_from_zero({3, 5}, 21)});
    // Through a permuted view: the op sees a non-contiguous input and its gradient is scattered back.
    EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return act.op(permute(v[0], {1, 2, 0})); },
                   {away_from_zero({2, 3, 4}, 22)});
  }
}

TEST(Activation, GradientCheckWideInputs) {
  // sigmoid / tanh on |x| up to 6, where the derivative becomes small but not zero.
  const Tensor x = test::random_tensor({17}, 23, DType::F64, -6, 6);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return sigmoid(v[0]); }, {x});
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return fg::tanh(v[0]); }, {x});
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return sigmoid_range(v[0], -1.5, 4.0); }, {x});
}

TEST(Activation, NoGraphWithoutRequiresGrad) {
  const Variable y = relu(Variable(test::random_tensor({4}, 24)));
  EXPECT_TRUE(y.is_leaf());
  EXPECT_FALSE(y.requires_grad());
  const Variable z = sigmoid(Variable(test::random_tensor({4}, 24), true));
  EXPECT_FALSE(z.is_leaf());
  EXPECT_TRUE(z.requires_grad());
}

TEST(Activation, Errors) {
  const Variable ints(Tensor::zeros({3}, DType::I32));
  EXPECT_THROW(relu(ints), Error);
  EXPECT_THROW(sigmoid(ints), Error);
  const Variable half(Tensor::zeros({3}, DType::F16));
  EXPECT_THROW(fg::tanh(half), Error);  // f16 is a storage type on the CPU
  const Tensor a = Tensor::zeros({3}), b = Tensor::zeros({4});
  EXPECT_THROW(kernels::relu_backward(a, b), Error);
  EXPECT_THROW(kernels::sigmoid_backward(a, Tensor::zeros({3}, DType::F64)), Error);
  EXPECT_THROW(kernels::sigmoid_range_backward(a, b, -1, 1), Error);
}

}  // namespace
}  // namespace fg
