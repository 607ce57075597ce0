// Softmax: the forward against exp(x) / sum(exp(x)) evaluated in double (no max subtraction needed there) over
// every dim of 2-, 3- and 4-D tensors, non-contiguous views, inputs of magnitude 100 (which overflow f32 without the
// max subtraction), slices wider than the kernel's column block, shapes above the OpenMP grain; the backward by
// finite differences on every dim; the edge cases (0-d, all -inf) and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/softmax.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

// Softmax of x (any layout) over dim, in double, from the logical element order.
Tensor naive_softmax(const Tensor& x, int64_t dim, DType out_dtype) {
  const Shape& s = x.shape();
  const int64_t nd = int64_t(s.size());
  const int64_t d = dim < 0 ? dim + nd : dim;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= s[size_t(i)];
  for (int64_t i = d + 1; i < nd; ++i) inner *= s[size_t(i)];
  const int64_t n = s[size_t(d)];
  const std::vector<double> v = x.to_vector();
  std::vector<double> out(v.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      double total = 0;
      for (int64_t k = 0; k < n; ++k) total += std::exp(v[size_t((o * n + k) * inner + j)]);
      for (int64_t k = 0; k < n; ++k) {
        const size_t i = size_t((o * n + k) * inner + j);
        out[i] = std::exp(v[i]) / total;
      }
    }
  }
  return Tensor::from_vector(out, s, out_dtype);
}

struct SoftmaxCase {
  std::string name;
  std::function<Tensor(DType)> make;
  std::vector<int64_t> dims;
};

std::vector<SoftmaxCase> softmax_cases() {
  return {
      {"size1", [](DType t) { return test::random_tensor({1}, 31, t, -2, 2); }, {0, -1}},
      {"one_by_one", [](DType t) { return test::random_tensor({1, 1}, 32, t, -2, 2); }, {0, 1}},
      {"odd_1d", [](DType t) { return test::random_tensor({7}, 33, t, -2, 2); }, {0}},
      {"matrix", [](DType t) { return test::random_tensor({3, 5}, 34, t, -2, 2); }, {0, 1, -1, -2}},
      {"three_d", [](DType t) { return test::random_tensor({2, 3, 4}, 35, t, -2, 2); }, {0, 1, 2, -1, -2, -3}},
      {"four_d", [](DType t) { return test::random_tensor({2, 3, 4, 5}, 36, t, -2, 2); }, {0, 1, 2, 3, -1, -4}},
      {"permuted", [](DType t) { return test::random_tensor({4, 3, 5}, 37, t, -2, 2).permute({2, 0, 1}); },
       {0, 1, 2}},
      {"sliced_step2", [](DType t) { return test::random_tensor({5, 8, 3}, 38, t, -2, 2).slice(1, 0, 8, 2); },
       {0, 1, 2}},
      {"large_magnitude", [](DType t) { return test::random_tensor({3, 6, 5}, 39, t, -100, 100); }, {0, 1, 2}},
      {"large_shift", [](DType t) { return test::random_tensor({4, 9}, 40, t, 95, 100); }, {0, 1}},
      // inner = 130: two full column blocks and a partial one.
      {"wide_inner", [](DType t) { return test::random_tensor({2, 5, 130}, 41, t, -3, 3); }, {1, 0}},
      // Above the OpenMP grain for both code paths (contiguous rows and column blocks).
      {"parallel", [](DType t) { return test::random_tensor({4, 300, 70}, 42, t, -3, 3); }, {1, 2}},
  };
}

TEST(Softmax, ForwardMatchesNaive) {
  for (DType dtype : {DType::F32, DType::F64}) {
    // f32: exp and the sum each round; the reference is double.
    const double atol = dtype == DType::F32 ? 1e-7 : 1e-15;
    const double rtol = dtype == DType::F32 ? 2e-6 : 1e-13;
    for (const auto& c : softmax_cases()) {
      const Tensor x = c.make(dtype);
      for (int64_t dim : c.dims) {
        SCOPED_TRACE(c.name + " dim " + std::to_string(dim) + " " + dtype_name(dtype));
        const Tensor y = softmax(Variable(x), dim).data();
        ASSERT_EQ(y.shape(), x.shape());
        ASSERT_EQ(y.dtype(), dtype);
        EXPECT_ALL_CLOSE(naive_softmax(x, dim, dtype), y, atol, rtol);
      }
    }
  }
}

TEST(Softmax, SlicesSumToOne) {
  const Tensor x = test::random_tensor({3, 4, 5}, 43, DType::F64, -100, 100);
  for (int64_t dim = 0; dim < 3; ++dim) {
    const Tensor y = softmax(Variable(x), dim).data();
    const Shape reduced_shape = [&] {
      Shape s = x.shape();
      s.erase(s.begin() + dim);
      return s;
    }();
    const Tensor sums = sum(Variable(y), {dim}).data();
    EXPECT_ALL_CLOSE(Tensor::ones(reduced_shape, DType::F64), sums, 1e-14, 0);
  }
}

TEST(Softmax, EdgeCases) {
  // A 0-d tensor is one element along dim 0 / -1.
  EXPECT_EQ(softmax(Variable(Tensor::scalar(3.5)), 0).item(), 1.0);
  EXPECT_EQ(softmax(Variable(Tensor::scalar(3.5)), -1).item(), 1.0);
  // Equal inputs give the uniform distribution; a -inf entry gets exactly 0.
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(softmax(Variable(Tensor::from_vector({2, 2, 2, 2}, {4})), 0).data().to_vector(),
            (std::vector<double>{0.25, 0.25, 0.25, 0.25}));
  EXPECT_EQ(softmax(Variable(Tensor::from_vector({0, -inf}, {2})), 0).data().to_vector(),
            (std::vector<double>{1, 0}));
  // A slice that is all -inf has no distribution: NaN, as in PyTorch; other slices are unaffected.
  const std::vector<double> y =
      softmax(Variable(Tensor::from_vector({-inf, -inf, 1, 1}, {2, 2})), 1).data().to_vector();
  EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]));
  EXPECT_EQ(y[2], 0.5);
  EXPECT_EQ(y[3], 0.5);
}

TEST(Softmax, GradientCheckEveryDim) {
  const Tensor x3 = test::random_tensor({2, 3, 4}, 44, DType::F64, -2, 2);
  for (int64_t dim : {0, 1, 2, -1}) {
    SCOPED_TRACE("3-D dim " + std::to_string(dim));
    EXPECT_GRAD_OK([dim](const std::vector<Variable>& v) { return softmax(v[0], dim); }, {x3});
  }
  const Tensor x4 = test::random_tensor({2, 3, 2, 3}, 45, DType::F64, -2, 2);
  for (int64_t dim : {0, 1, 2, 3}) {
    SCOPED_TRACE("4-D dim " + std::to_string(dim));
    EXPECT_GRAD_OK([dim](const std::vector<Variable>& v) { return softmax(v[0], dim); }, {x4});
  }
  // A non-contiguous input reaching the op, and inputs of magnitude 30.
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return softmax(permute(v[0], {2, 0, 1}), 1); }, {x3});
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return softmax(v[0], 1); },
                 {test::random_tensor({3, 4}, 46, DType::F64, -30, 30)});
}

// The backward kernel against its formula on a case wider than one column block.
TEST(Softmax, BackwardMatchesFormula) {
  const Tensor x = test::random_tensor({2, 3, 70}, 47, DType::F64, -2, 2);
  const Tensor g = test::random_tensor({2, 3, 70}, 48, DType::F64, -1, 1);
  const Tensor y = kernels::softmax(x, 1);
  const Tensor gx = kernels::softmax_backward(g, y, 1);
  std::vector<double> yv = y.to_vector(), gv = g.to_vector(), expected(yv.size());
  for (int64_t o = 0; o < 2; ++o) {
    for (int64_t j = 0; j < 70; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < 3; ++k) dot += gv[size_t((o * 3 + k) * 70 + j)] * yv[size_t((o * 3 + k) * 70 + j)];
      for (int64_t k = 0; k < 3; ++k) {
        const size_t i = size_t((o * 3 + k) * 70 + j);
        expected[i] = yv[i] * (gv[i] - dot);
      }
    }
  }
  EXPECT_ALL_CLOSE(Tensor::from_vector(expected, x.shape(), DType::F64), gx, 1e-15, 1e-12);
}

TEST(Softmax, Errors) {
  const Variable x(Tensor::zeros({2, 3}));
  EXPECT_THROW(softmax(x, 2), Error);
  EXPECT_THROW(softmax(x, -3), Error);
  EXPECT_THROW(softmax(Variable(Tensor::zeros({2, 3}, DType::I32)), 0), Error);
  EXPECT_THROW(softmax(Variable(Tensor::scalar(1.0)), 1), Error);
  EXPECT_THROW(kernels::softmax_backward(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}), 0), Error);
}

}  // namespace
}  // namespace fg
