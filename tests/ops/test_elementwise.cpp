// Elementwise ops with broadcasting: forward against direct formulas over a case table of shapes (size 1,
// odd, broadcast on either side, non-contiguous views), gradient checks, and errors.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct BroadcastCase {
  const char* name;
  Shape a, b;
  bool transpose_a;  // feed a as a non-contiguous view
};

const BroadcastCase kCases[] = {
    {"same", {3, 5}, {3, 5}, false},         {"size1", {1}, {1}, false},
    {"row", {4, 7}, {7}, false},             {"col", {4, 7}, {4, 1}, false},
    {"both", {3, 1, 5}, {1, 4, 1}, false},   {"scalar", {2, 3}, {}, false},
    {"lead", {2, 3, 5}, {3, 5}, false},      {"view", {5, 3}, {5, 3}, true},
    {"view_bcast", {5, 3}, {5, 1}, true},
};

Tensor operand(const Shape& s, uint64_t seed, bool transpose, double lo = -1, double hi = 1) {
  if (!transpose) return test::random_tensor(s, seed, DType::F64, lo, hi);
  return test::random_tensor({s[1], s[0]}, seed, DType::F64, lo, hi).transpose(0, 1);
}

double ref_binary(kernels::BinaryOp op, double a, double b) {
  switch (op) {
    case kernels::BinaryOp::ADD: return a + b;
    case kernels::BinaryOp::SUB: return a - b;
    case kernels::BinaryOp::MUL: return a * b;
    case kernels::BinaryOp::DIV: return a / b;
  }
  return 0;
}

TEST(Elementwise, BinaryForwardMatchesDirectIndexing) {
  for (const auto& c : kCases) {
    const Tensor a = operand(c.a, 1, c.transpose_a), b = operand(c.b, 2, false, 0.5, 2.0);
    const Shape out_shape = broadcast_shapes(a.shape(), b.shape());
    for (auto op : {kernels::BinaryOp::ADD, kernels::BinaryOp::SUB, kernels::BinaryOp::MUL, kernels::BinaryOp::DIV}) {
      const Tensor y = kernels::binary(op, a, b);
      ASSERT_EQ(y.shape(), out_shape) << c.name;
      const Tensor ae = a.expand(out_shape), be = b.expand(out_shape);
      const Tensor ref = Tensor::empty(out_shape, DType::F64);
      // reference via the expanded views' element access
      std::vector<double> expect;
      const int64_t n = shape_numel(out_shape);
      const Shape st = contiguous_strides(out_shape);
      for (int64_t i = 0; i < n; ++i) {
        std::vector<int64_t> idx(out_shape.size());
        for (size_t d = 0; d < idx.size(); ++d) idx[d] = (i / st[d]) % out_shape[d];
        expect.push_back(ref_binary(op, ae.at(idx), be.at(idx)));
      }
      EXPECT_ALL_CLOSE(Tensor::from_vector(expect, out_shape, DType::F64), y, 0, 0) << c.name;
    }
  }
}

TEST(Elementwise, BinaryGradients) {
  for (const auto& c : kCases) {
    const Tensor a = operand(c.a, 3, c.transpose_a), b = operand(c.b, 4, false, 0.5, 2.0);
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return add(v[0], v[1]); }, {a, b}) << c.name;
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return sub(v[0], v[1]); }, {a, b}) << c.name;
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return mul(v[0], v[1]); }, {a, b}) << c.name;
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return div(v[0], v[1]); }, {a, b}) << c.name;
  }
}

TEST(Elementwise, UnaryForwardAndGradients) {
  const Tensor pos = test::random_tensor({3, 4}, 7, DType::F64, 0.2, 3.0);
  const Tensor any = test::random_tensor({5, 3}, 8, DType::F64, -2.0, 2.0).transpose(0, 1);
  struct U {
    const char* name;
    std::function<Variable(const Variable&)> f;
    std::function<double(double)> ref;
    bool positive_only;
  };
  const std::vector<U> ops = {
      {"neg", [](const Variable& v) { return neg(v); }, [](double x) { return -x; }, false},
      {"add_scalar", [](const Variable& v) { return add_scalar(v, 1.5); }, [](double x) { return x + 1.5; }, false},
      {"mul_scalar", [](const Variable& v) { return mul_scalar(v, -0.5); }, [](double x) { return -0.5 * x; }, false},
      {"pow2", [](const Variable& v) { return pow_scalar(v, 2.0); }, [](double x) { return x * x; }, false},
      {"pow1.5", [](const Variable& v) { return pow_scalar(v, 1.5); }, [](double x) { return std::pow(x, 1.5); }, true},
      {"sqrt", [](const Variable& v) { return sqrt(v); }, [](double x) { return std::sqrt(x); }, true},
      {"exp", [](const Variable& v) { return exp(v); }, [](double x) { return std::exp(x); }, false},
      {"log", [](const Variable& v) { return log(v); }, [](double x) { return std::log(x); }, true},
      {"abs", [](const Variable& v) { return abs(v); }, [](double x) { return std::abs(x); }, false},
  };
  for (const auto& u : ops) {
    const Tensor x = u.positive_only ? pos : any;
    const Variable y = u.f(Variable(x));
    const std::vector<double> xs = x.to_vector(), ys = y.data().to_vector();
    for (size_t i = 0; i < xs.size(); ++i) EXPECT_NEAR(ys[i], u.ref(xs[i]), 1e-12) << u.name;
    EXPECT_GRAD_OK([&](const std::vector<Variable>& v) { return u.f(v[0]); }, {x}) << u.name;
  }
}

TEST(Elementwise, F32MatchesF64) {
  const Tensor a = test::random_tensor({17, 33}, 9), b = test::random_tensor({33}, 10, DType::F32, 0.5, 1.5);
  const Tensor y32 = kernels::div(a, b);
  const Tensor y64 = kernels::div(a.to(DType::F64), b.to(DType::F64));
  EXPECT_LT(test::nmse(y64, y32), 1e-13);
}

TEST(Elementwise, AccumulateIntoAView) {
  Tensor dst = Tensor::zeros({3, 4}, DType::F64);
  Tensor col = dst.slice(1, 1, 2);  // (3, 1) view
  kernels::add_(col, Tensor::from_vector({1, 2, 3}, {3, 1}, DType::F64), 2.0);
  EXPECT_EQ(dst.at({2, 1}), 6.0);
  EXPECT_EQ(dst.at({2, 0}), 0.0);
  kernels::add_(dst, Tensor::ones({4}, DType::F64));  // broadcast source
  EXPECT_EQ(dst.at({0, 3}), 1.0);
  EXPECT_THROW(kernels::add_(col, Tensor::ones({3, 4}, DType::F64)), Error);
}

// In-place arithmetic follows tensor/overlap.h on every device. Before, x += x^T read elements the CPU loop had
// already updated (15 of 36 elements differed from the CUDA kernel's, which read a copy); now both refuse it.
TEST(Elementwise, InPlaceOpsRefusePartialOverlap) {
  Tensor x = Tensor::arange(36, DType::F64).view({6, 6});
  const std::string msg = test::error_of([&] { kernels::add_(x, x.transpose(0, 1)); });
  EXPECT_NE(msg.find("add_"), std::string::npos) << msg;
  EXPECT_NE(msg.find("clone()"), std::string::npos) << msg;
  EXPECT_EQ(x.to_vector(), Tensor::arange(36, DType::F64).to_vector());  // refused before writing
  kernels::add_(x, x.transpose(0, 1).clone());                           // what the message says to do
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 6; ++j) EXPECT_EQ(x.at({i, j}), double(6 * i + j + 6 * j + i)) << i << ", " << j;
  // A broadcast row of the destination itself, and a shifted slice, are partial overlaps too.
  EXPECT_THROW(kernels::add_(x, x.select(0, 0)), Error);
  Tensor right = x.slice(1, 1, 6);
  EXPECT_THROW(kernels::add_(right, x.slice(1, 0, 5)), Error);
  // The destination itself (x += x) and memory it does not cover are fine.
  Tensor y = Tensor::arange(4, DType::F64);
  kernels::add_(y, y, 0.5);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{0, 1.5, 3, 4.5}));
  Tensor m = Tensor::arange(6, DType::F64).view({2, 3});
  Tensor col0 = m.select(1, 0);
  kernels::add_(col0, m.select(1, 2));
  EXPECT_EQ(m.to_vector(), (std::vector<double>{2, 1, 2, 8, 4, 5}));
  // A destination with several elements at one address.
  Tensor row = Tensor::zeros({3}, DType::F64);
  Tensor rows = row.unsqueeze(0).expand({4, 3});
  EXPECT_THROW(kernels::add_(rows, Tensor::ones({4, 3}, DType::F64)), Error);
  EXPECT_THROW(kernels::mul_scalar_(rows, 2.0), Error);
  EXPECT_EQ(row.to_vector(), (std::vector<double>{0, 0, 0}));
}

TEST(Elementwise, Errors) {
  EXPECT_THROW(add(Variable(Tensor::ones({2, 3})), Variable(Tensor::ones({4}))), Error);
  EXPECT_THROW(add(Variable(Tensor::ones({2})), Variable(Tensor::ones({2}, DType::F64))), Error);
  EXPECT_THROW(kernels::unary(kernels::UnaryOp::EXP, Tensor::ones({2}, DType::I32)), Error);
  EXPECT_TRUE(kernels::all_finite(Tensor::ones({3})));
  EXPECT_FALSE(kernels::all_finite(Tensor::from_vector({1, NAN}, {2})));
  EXPECT_DOUBLE_EQ(kernels::sum_squares(Tensor::from_vector({3, 4}, {2})), 25.0);
  EXPECT_DOUBLE_EQ(kernels::max_abs(Tensor::from_vector({3, -4}, {2})), 4.0);
}

}  // namespace
}  // namespace fg
