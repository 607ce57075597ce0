// Differentiable views, slice and concat: forward values and gradient checks, including non-contiguous inputs.
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

TEST(ViewOps, ForwardValues) {
  const Tensor x = Tensor::arange(24, DType::F64).view({2, 3, 4});
  EXPECT_EQ(reshape(Variable(x), {4, 6}).data().at({3, 5}), 23.0);
  EXPECT_EQ(permute(Variable(x), {2, 0, 1}).data().at({3, 1, 2}), 23.0);
  EXPECT_EQ(transpose(Variable(x), 0, 2).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(flatten(Variable(x), 1).shape(), (Shape{2, 12}));
  EXPECT_EQ(expand(Variable(x.slice(1, 0, 1)), {2, 5, 4}).data().at({1, 4, 3}), 15.0);
  EXPECT_EQ(slice(Variable(x), 2, 1, 4, 2).data().to_vector().size(), 12u);
  EXPECT_EQ(slice(Variable(x), -1, -2, 4).data().at({1, 2, 1}), 23.0);
}

TEST(ViewOps, Gradients) {
  const Tensor x = test::random_tensor({2, 3, 4}, 1, DType::F64);
  const Tensor xt = test::random_tensor({4, 3, 2}, 2, DType::F64).permute({2, 1, 0});  // non-contiguous
  for (const Tensor& in : {x, xt}) {
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return reshape(v[0], {4, -1}); }, {in});
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return permute(v[0], {1, 2, 0}); }, {in});
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return transpose(v[0], -1, 0); }, {in});
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return slice(v[0], 2, 1, 4, 2); }, {in});
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return slice(v[0], 0, -1, 5); }, {in});
    EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return flatten(v[0], 0, 1); }, {in});
  }
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return expand(v[0], {3, 2, 4}); },
                 {test::random_tensor({2, 1}, 3, DType::F64)});
}

TEST(Concat, ForwardAlongEachDim) {
  const Tensor a = Tensor::arange(6, DType::F64).view({1, 2, 3});
  const Tensor b = Tensor::full({1, 2, 3}, -1, DType::F64);
  for (int64_t dim = 0; dim < 3; ++dim) {
    const Tensor y = concat({Variable(a), Variable(b)}, dim).data();
    Shape s = a.shape();
    s[size_t(dim)] *= 2;
    ASSERT_EQ(y.shape(), s);
    EXPECT_ALL_CLOSE(a, y.narrow(dim, 0, a.size(dim)), 0, 0);
    EXPECT_ALL_CLOSE(b, y.narrow(dim, a.size(dim), b.size(dim)), 0, 0);
  }
  EXPECT_EQ(concat({Variable(a)}, -1).shape(), a.shape());
}

TEST(Concat, GradientsWithUnequalSizesAndViews) {
  const Tensor a = test::random_tensor({2, 3, 4, 5}, 4, DType::F64);
  const Tensor b = test::random_tensor({2, 1, 4, 5}, 5, DType::F64);
  const Tensor c = test::random_tensor({2, 5, 4, 2}, 6, DType::F64).transpose(1, 3);  // (2, 2, 4, 5) view
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return concat(v, 1); }, {a, b, c});
  // one input without gradient
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return concat(v, 1); }, {a, b}, {true, false});
}

TEST(Concat, Errors) {
  const Variable a(Tensor::ones({2, 3})), b(Tensor::ones({3, 3})), c(Tensor::ones({2, 3}, DType::F64));
  EXPECT_THROW(concat({a, b}, 1), Error);
  EXPECT_THROW(concat({a, c}, 0), Error);
  EXPECT_THROW(concat({}, 0), Error);
  EXPECT_THROW(concat({a, a}, 2), Error);
  EXPECT_NO_THROW(concat({a, b}, 0));
}

}  // namespace
}  // namespace fg
