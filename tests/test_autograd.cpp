// The backward engine: accumulation over shared subgraphs, leaves, no-grad mode, retain_graph, fg::grad,
// and the gradient checker itself (it must catch a wrong gradient).
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

Variable leaf(std::vector<double> v, Shape s) { return Variable(Tensor::from_vector(v, s, DType::F64), true); }

TEST(Autograd, ChainAndAccumulationThroughASharedInput) {
  Variable x = leaf({1, 2, 3}, {3});
  // y = sum(x * x + 3 x): dy/dx = 2x + 3; x is used three times
  Variable y = sum(add(mul(x, x), mul_scalar(x, 3.0)));
  EXPECT_DOUBLE_EQ(y.item(), 1 + 4 + 9 + 3 * 6);
  y.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{5, 7, 9}));
  // a second graph accumulates into the same leaf
  sum(x).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{6, 8, 10}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, DiamondGraphRunsEachNodeOnceWithSummedGradient) {
  Variable x = leaf({2}, {1});
  Variable a = mul_scalar(x, 3.0);  // shared intermediate
  Variable y = sum(mul(a, a) + a);  // 9x^2 + 3x -> 18x + 3
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 18 * 2 + 3);
}

TEST(Autograd, GradReadyHookFiresOnceWithTheCompleteGradientBeforeEarlierLayersRun) {
  // y = sum((x * w) * v + w): w feeds two nodes, v one; the graph runs from y back to x * w, so v's gradient is
  // complete first and w's only after the product x * w (its last use) has run.
  Variable x = leaf({1, 2}, {2});
  Variable w = leaf({3, 4}, {2});
  Variable v = leaf({5, 6}, {2});
  std::vector<std::string> events;
  std::vector<double> w_grad_at_hook;
  w.impl()->grad_ready_hook = [&] {
    events.push_back("w");
    w_grad_at_hook = w.grad().to_vector();
  };
  v.impl()->grad_ready_hook = [&] { events.push_back("v"); };
  Variable y = sum(add(mul(mul(x, w), v), w));
  y.backward();
  EXPECT_EQ(events, (std::vector<std::string>{"v", "w"}));
  // dy/dw = x * v + 1
  EXPECT_EQ(w_grad_at_hook, (std::vector<double>{6, 13}));
  EXPECT_EQ(w.grad().to_vector(), w_grad_at_hook);
  // fg::grad leaves grad() alone, so it calls no hook
  events.clear();
  grad(sum(mul(x, w)), {w});
  EXPECT_TRUE(events.empty());
}

TEST(Autograd, NoGradModeRecordsNothing) {
  Variable x = leaf({1, 2}, {2});
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_mode_enabled());
    Variable y = mul(x, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
  }
  EXPECT_TRUE(grad_mode_enabled());
  EXPECT_TRUE(mul(x, x).requires_grad());
  Variable c(Tensor::ones({2}, DType::F64));  // constant
  EXPECT_FALSE(mul(c, c).requires_grad());
  EXPECT_THROW(sum(mul(c, c)).backward(), Error);
}

TEST(Autograd, RetainGraphIsOffByDefault) {
  Variable x = leaf({1, 2}, {2});
  Variable y = sum(mul(x, x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();  // allowed once more because the first call retained the graph
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{4, 8}));
  EXPECT_THROW(y.backward(), Error);  // the second call released it
}

TEST(Autograd, GradReturnsGradientsWithoutTouchingLeaves) {
  Variable x = leaf({1, 2}, {2}), w = leaf({3, 4}, {2});
  Variable y = sum(mul(x, w));
  const std::vector<Tensor> g = grad(y, {x, w});
  EXPECT_EQ(g[0].to_vector(), (std::vector<double>{3, 4}));
  EXPECT_EQ(g[1].to_vector(), (std::vector<double>{1, 2}));
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, BackwardNeedsAScalarOrAGradient) {
  Variable x = leaf({1, 2}, {2});
  Variable y = mul_scalar(x, 2.0);
  EXPECT_THROW(y.backward(), Error);
  y.backward(Tensor::from_vector({1, -1}, {2}, DType::F64));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, -2}));
  EXPECT_THROW(y.backward(Tensor::ones({3}, DType::F64)), Error);
}

TEST(Autograd, DetachAndRequiresGradRules) {
  Variable x = leaf({1}, {1});
  Variable y = mul_scalar(x, 2.0);
  EXPECT_FALSE(y.detach().requires_grad());
  EXPECT_THROW(y.set_requires_grad(false), Error);  // not a leaf
  Variable i(Tensor::ones({2}, DType::I32));
  EXPECT_THROW(i.set_requires_grad(true), Error);
}

TEST(Autograd, DeepChainDoesNotOverflowTheStack) {
  Variable x = leaf({1}, {1});
  Variable y = x;
  for (int i = 0; i < 20000; ++i) y = add_scalar(y, 1.0);
  sum(y).backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 1.0);
}

// An op with a deliberately wrong backward, to prove the checker catches it.
struct WrongSquareBackward : Node {
  Tensor x;
  const char* name() const override { return "WrongSquareBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {kernels::mul(g, x)}; }  // should be 2x
};
Variable wrong_square(const Variable& x) {
  auto node = std::make_shared<WrongSquareBackward>();
  node->x = x.data();
  return make_result(kernels::mul(x.data(), x.data()), node, {x});
}

TEST(GradCheck, PassesCorrectAndFailsWrongGradients) {
  const Tensor x = test::random_tensor({2, 3}, 5, DType::F64);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return mul(v[0], v[0]); }, {x});
  const GradCheckResult r = gradcheck([](const std::vector<Variable>& v) { return wrong_square(v[0]); }, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("analytic"), std::string::npos);
  EXPECT_THROW(gradcheck([](const std::vector<Variable>& v) { return v[0]; }, {x.to(DType::F32)}), Error);
}

}  // namespace
}  // namespace fg
