// Gram matrices: both variants (OpenBLAS and plain loops) against sum_k x[i,k] x[j,k] / (C*H*W) evaluated in double
// over a case table (all sizes 1, odd channel counts, H*W = 1, a row not a multiple of any BLAS tile, permuted and
// step-sliced views, a VGG-like 64-channel map), a hand-computed 2 x 2 case, exact symmetry; the backward of both
// variants against (G + G^T) X / (C*H*W) with a non-symmetric output gradient; finite-difference gradient checks,
// also through non-contiguous views; the errors a user can cause.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/gram.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

// (N, C, H, W) in any layout -> (N, C, C) in double.
Tensor naive_gram(const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) * x.size(3);
  const std::vector<double> v = x.to_vector();
  std::vector<double> g(size_t(N * C * C));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < C; ++j) {
        double s = 0;
        for (int64_t k = 0; k < L; ++k) s += v[size_t((n * C + i) * L + k)] * v[size_t((n * C + j) * L + k)];
        g[size_t((n * C + i) * C + j)] = s / double(C * L);
      }
  return Tensor::from_vector(g, {N, C, C}, DType::F64);
}

// grad_x = (G + G^T) X / (C*H*W), in double.
Tensor naive_gram_backward(const Tensor& grad, const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) * x.size(3);
  const std::vector<double> v = x.to_vector(), gv = grad.to_vector();
  std::vector<double> out(size_t(N * C * L));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < L; ++k) {
        double s = 0;
        for (int64_t j = 0; j < C; ++j)
          s += (gv[size_t((n * C + c) * C + j)] + gv[size_t((n * C + j) * C + c)]) * v[size_t((n * C + j) * L + k)];
        out[size_t((n * C + c) * L + k)] = s / double(C * L);
      }
  return Tensor::from_vector(out, x.shape(), DType::F64);
}

struct GramCase {
  std::string name;
  std::function<Tensor(DType)> make;
};

std::vector<GramCase> gram_cases() {
  return {
      {"size1",
       [](DType t) {
         return test::random_tensor({1, 1, 1, 1}, 1, t);
       }},
      {"one_pixel",
       [](DType t) {
         return test::random_tensor({2, 5, 1, 1}, 2, t);
       }},
      {"odd",
       [](DType t) {
         return test::random_tensor({2, 3, 4, 5}, 3, t);
       }},
      {"odd_channels",
       [](DType t) {
         return test::random_tensor({1, 7, 3, 3}, 4, t);
       }},
      {"tall_row",
       [](DType t) {
         return test::random_tensor({3, 5, 1, 37}, 5, t);
       }},
      {"permuted",
       [](DType t) {
         return test::random_tensor({2, 6, 3, 5}, 6, t).permute({0, 2, 1, 3});
       }},
      {"sliced_step2",
       [](DType t) {
         return test::random_tensor({2, 4, 9, 7}, 7, t).slice(2, 0, 9, 2);
       }},
      {"vgg_like",
       [](DType t) {
         return test::random_tensor({2, 64, 12, 12}, 8, t, 0, 2);
       }},
  };
}

TEST(Gram, ForwardMatchesNaive) {
  for (DType dtype : {DType::F32, DType::F64}) {
    // f32: BLAS sums in f32 (L up to 144 terms); the loops sum in double.
    const double atol = dtype == DType::F32 ? 1e-6 : 1e-14;
    const double rtol = dtype == DType::F32 ? 1e-5 : 1e-12;
    for (const auto& c : gram_cases()) {
      for (kernels::GramVariant v : {kernels::GramVariant::BLAS, kernels::GramVariant::LOOPS}) {
        SCOPED_TRACE(c.name + " " + dtype_name(dtype) + (v == kernels::GramVariant::BLAS ? " blas" : " loops"));
        const Tensor x = c.make(dtype);
        const Tensor g = kernels::gram_matrix(x, v);
        EXPECT_EQ(g.dtype(), dtype);
        EXPECT_ALL_CLOSE(naive_gram(x), g, atol, rtol);
        // Exactly symmetric.
        EXPECT_ALL_CLOSE(g, g.transpose(1, 2), 0, 0);
      }
      // The autograd op gives the production (BLAS) result.
      const Tensor x = c.make(dtype);
      EXPECT_ALL_CLOSE(kernels::gram_matrix(x), gram_matrix(Variable(x)).data(), 0, 0);
    }
  }
}

TEST(Gram, HandComputed) {
  // X = [[1, 2], [3, 4]]: X X^T = [[5, 11], [11, 25]], divided by C*H*W = 2*1*2 = 4.
  const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 2, 1, 2});
  const Tensor expected = Tensor::from_vector({1.25, 2.75, 2.75, 6.25}, {1, 2, 2});
  EXPECT_ALL_CLOSE(expected, gram_matrix(Variable(x)).data(), 0, 0);
  EXPECT_ALL_CLOSE(expected, kernels::gram_matrix(x, kernels::GramVariant::LOOPS), 0, 0);
}

TEST(Gram, BackwardMatchesNaive) {
  for (DType dtype : {DType::F32, DType::F64}) {
    const double atol = dtype == DType::F32 ? 1e-6 : 1e-14;
    const double rtol = dtype == DType::F32 ? 1e-5 : 1e-12;
    for (const auto& c : gram_cases()) {
      const Tensor x = c.make(dtype);
      const int64_t N = x.size(0), C = x.size(1);
      // Non-symmetric, so a backward that forgot the transpose term would fail.
      const Tensor grad = test::random_tensor({N, C, C}, 99, dtype);
      const Tensor ref = naive_gram_backward(grad, x);
      for (kernels::GramVariant v : {kernels::GramVariant::BLAS, kernels::GramVariant::LOOPS}) {
        SCOPED_TRACE(c.name + " " + dtype_name(dtype) + (v == kernels::GramVariant::BLAS ? " blas" : " loops"));
        const Tensor gx = kernels::gram_matrix_backward(grad, x, v);
        EXPECT_EQ(gx.shape(), x.shape());
        EXPECT_ALL_CLOSE(ref, gx, atol, rtol);
      }
      // A non-contiguous output gradient.
      const Tensor grad_t = grad.transpose(1, 2);
      EXPECT_ALL_CLOSE(naive_gram_backward(grad_t, x), kernels::gram_matrix_backward(grad_t, x), atol, rtol);
    }
  }
}

TEST(Gram, GradCheck) {
  auto f = [](const std::vector<Variable>& v) { return gram_matrix(v[0]); };
  for (const Shape& shape : {Shape{1, 1, 1, 1}, Shape{1, 3, 2, 3}, Shape{2, 2, 3, 1}, Shape{2, 4, 1, 5}}) {
    SCOPED_TRACE(shape_str(shape));
    EXPECT_GRAD_OK(f, {test::random_tensor(shape, 31, DType::F64)});
  }
  // Through a permuted view: x (N, H, C, W) seen as (N, C, H, W).
  auto fp = [](const std::vector<Variable>& v) { return gram_matrix(permute(v[0], {0, 2, 1, 3})); };
  EXPECT_GRAD_OK(fp, {test::random_tensor({2, 3, 4, 2}, 32, DType::F64)});
  // A use like the style loss: the Gram matrix feeds another op, so the output gradient is not all ones.
  auto fl = [](const std::vector<Variable>& v) { return l1_loss(gram_matrix(v[0]), gram_matrix(v[1])); };
  const Tensor a = test::random_tensor({2, 3, 2, 2}, 33, DType::F64);
  const Tensor b = test::random_tensor({2, 3, 2, 2}, 34, DType::F64);
  EXPECT_GRAD_OK(fl, {a, b});
}

TEST(Gram, EmptyInputs) {
  // No pixels: 0 / 0 as in PyTorch (bmm gives zeros, the division NaN). No channels: an empty result.
  for (kernels::GramVariant v : {kernels::GramVariant::BLAS, kernels::GramVariant::LOOPS}) {
    const Tensor g = kernels::gram_matrix(Tensor::zeros({2, 3, 0, 4}), v);
    EXPECT_EQ(g.shape(), Shape({2, 3, 3}));
    EXPECT_TRUE(std::isnan(g.at({1, 2, 0})));
    EXPECT_EQ(kernels::gram_matrix(Tensor::zeros({2, 0, 4, 4}), v).shape(), Shape({2, 0, 0}));
    EXPECT_EQ(kernels::gram_matrix_backward(Tensor::zeros({2, 3, 3}), Tensor::zeros({2, 3, 0, 4}), v).shape(),
              Shape({2, 3, 0, 4}));
  }
}

TEST(Gram, Errors) {
  EXPECT_THROW(gram_matrix(Variable(Tensor::zeros({3, 4, 5}))), Error);
  EXPECT_THROW(gram_matrix(Variable(Tensor::zeros({1, 2, 3, 4, 5}))), Error);
  EXPECT_THROW(gram_matrix(Variable(Tensor::zeros({1, 2, 3, 4}, DType::I32))), Error);
  EXPECT_THROW(gram_matrix(Variable()), Error);
  const Tensor x = Tensor::zeros({2, 3, 4, 4});
  EXPECT_THROW(kernels::gram_matrix_backward(Tensor::zeros({2, 3, 4}), x), Error);
  EXPECT_THROW(kernels::gram_matrix_backward(Tensor::zeros({2, 3, 3}, DType::F64), x), Error);
  try {
    gram_matrix(Variable(Tensor::zeros({3, 4, 5})));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("gram_matrix"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(3, 4, 5)"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace fg
