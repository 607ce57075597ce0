// matmul, bmm and linear: kernels against a naive sum written here (both algorithms, all transpose flags, strided
// views that BLAS reads in place and ones that must be copied), BLAS against the plain loop at 1, 2 and 3 OpenMP
// threads (row and column splits, per-matrix batches), gradient checks of the autograd ops, and the errors.
#include <omp.h>

#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using kernels::MatmulAlgo;

// op(a) op(b) for 2-D a, b (any strides), by the definition.
Tensor naive_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t M = ta ? a.size(1) : a.size(0), K = ta ? a.size(0) : a.size(1), N = tb ? b.size(0) : b.size(1);
  std::vector<double> y(size_t(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += (ta ? a.at({k, i}) : a.at({i, k})) * (tb ? b.at({j, k}) : b.at({k, j}));
      y[size_t(i * N + j)] = s;
    }
  return Tensor::from_vector(y, {M, N}, DType::F64);
}

// A (rows, cols) matrix stored in one of three ways.
enum class Layout { CONTIGUOUS, TRANSPOSED_VIEW, STEPPED_SLICE };

Tensor make_matrix(int64_t rows, int64_t cols, Layout layout, uint64_t seed, DType dt = DType::F64) {
  switch (layout) {
    case Layout::TRANSPOSED_VIEW:  // column-major: BLAS reads it as a transposed row-major matrix
      return test::random_tensor({cols, rows}, seed, dt).transpose(0, 1);
    case Layout::STEPPED_SLICE:  // neither rows nor columns unit-stride: copied before the GEMM
      return test::random_tensor({rows, 2 * cols}, seed, dt).slice(1, 0, 2 * cols, 2);
    default:
      return test::random_tensor({rows, cols}, seed, dt);
  }
}

struct MatmulCase {
  int64_t M, K, N;
};

// Sizes 1, odd sizes, and products big enough (> 4 Mflop) to be split over threads by rows (M >= N) or columns.
const std::vector<MatmulCase> kMatmulCases = {
    {1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 1, 5}, {1, 40, 1}, {200, 150, 100}, {20, 300, 400},
};

template <typename F>
void at_thread_counts(F body) {
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    omp_set_num_threads(threads);
    body();
  }
  omp_set_num_threads(saved);
}

TEST(Matmul, MatchesNaiveForEveryFlagAndLayout) {
  uint64_t seed = 100;
  for (const MatmulCase& c : kMatmulCases) {
    if (c.M * c.K * c.N > 100000) continue;  // the naive reference uses at(); the big ones are checked below
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (Layout la : {Layout::CONTIGUOUS, Layout::TRANSPOSED_VIEW, Layout::STEPPED_SLICE})
          for (Layout lb : {Layout::CONTIGUOUS, Layout::TRANSPOSED_VIEW, Layout::STEPPED_SLICE}) {
            SCOPED_TRACE(::testing::Message() << c.M << "x" << c.K << "x" << c.N << " ta " << ta << " tb " << tb
                                              << " layouts " << int(la) << int(lb));
            const Tensor a = ta ? make_matrix(c.K, c.M, la, ++seed) : make_matrix(c.M, c.K, la, ++seed);
            const Tensor b = tb ? make_matrix(c.N, c.K, lb, ++seed) : make_matrix(c.K, c.N, lb, ++seed);
            const Tensor ref = naive_matmul(a, b, ta, tb);
            EXPECT_ALL_CLOSE(ref, kernels::matmul(a, b, ta, tb, MatmulAlgo::BLAS), 1e-12, 1e-12);
            EXPECT_ALL_CLOSE(ref, kernels::matmul(a, b, ta, tb, MatmulAlgo::PLAIN), 1e-12, 1e-12);
          }
  }
}

TEST(Matmul, BlasMatchesPlain) {
  uint64_t seed = 200;
  for (const MatmulCase& c : kMatmulCases) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE(::testing::Message() << c.M << "x" << c.K << "x" << c.N << " ta " << ta << " tb " << tb);
        const Tensor a = ta ? make_matrix(c.K, c.M, Layout::CONTIGUOUS, ++seed)
                            : make_matrix(c.M, c.K, Layout::TRANSPOSED_VIEW, ++seed);
        const Tensor b = tb ? make_matrix(c.N, c.K, Layout::TRANSPOSED_VIEW, ++seed)
                            : make_matrix(c.K, c.N, Layout::CONTIGUOUS, ++seed);
        const Tensor ref = kernels::matmul(a, b, ta, tb, MatmulAlgo::PLAIN);
        at_thread_counts([&] { EXPECT_LE(test::nmse(ref, kernels::matmul(a, b, ta, tb)), 1e-10); });
        const Tensor a32 = a.to(DType::F32), b32 = b.to(DType::F32);
        const Tensor ref32 = kernels::matmul(a32, b32, ta, tb, MatmulAlgo::PLAIN);
        EXPECT_EQ(ref32.dtype(), DType::F32);
        EXPECT_ALL_CLOSE(ref32, kernels::matmul(a32, b32, ta, tb), 1e-5, 1e-4);
      }
  }
}

TEST(Matmul, EmptyInnerDimensionGivesZeros) {
  const Tensor y = kernels::matmul(Tensor::zeros({3, 0}), Tensor::zeros({0, 4}));
  EXPECT_EQ(y.shape(), (Shape{3, 4}));
  EXPECT_EQ(kernels::max_abs(y), 0.0);
}

// ---- bmm ----

Tensor naive_bmm(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  std::vector<double> all;
  for (int64_t i = 0; i < a.size(0); ++i) {
    const std::vector<double> m = naive_matmul(a.select(0, i), b.select(0, i), ta, tb).to_vector();
    all.insert(all.end(), m.begin(), m.end());
  }
  const int64_t M = ta ? a.size(2) : a.size(1), N = tb ? b.size(1) : b.size(2);
  return Tensor::from_vector(all, {a.size(0), M, N}, DType::F64);
}

TEST(Bmm, MatchesNaiveAndPlain) {
  struct Case {
    int64_t B, M, K, N;
  };
  // Batches smaller and larger than the thread count (per-product splits and one product per thread).
  const std::vector<Case> table = {{1, 1, 1, 1}, {1, 5, 3, 7}, {3, 4, 6, 5}, {5, 9, 2, 11}, {2, 130, 120, 140}};
  uint64_t seed = 300;
  for (const Case& c : table) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE(::testing::Message() << c.B << "x" << c.M << "x" << c.K << "x" << c.N << " ta " << ta << " tb "
                                          << tb);
        // a stored transposed in memory (a permuted view), b contiguous.
        const Tensor a = ta ? test::random_tensor({c.B, c.M, c.K}, ++seed, DType::F64).transpose(1, 2)
                            : test::random_tensor({c.B, c.K, c.M}, ++seed, DType::F64).transpose(1, 2);
        const Tensor b = tb ? test::random_tensor({c.B, c.N, c.K}, ++seed, DType::F64)
                            : test::random_tensor({c.B, c.K, c.N}, ++seed, DType::F64);
        const Tensor ref = kernels::bmm(a, b, ta, tb, MatmulAlgo::PLAIN);
        if (c.M * c.K * c.N < 10000) {
          EXPECT_ALL_CLOSE(naive_bmm(a, b, ta, tb), ref, 1e-12, 1e-12);
        }
        at_thread_counts([&] { EXPECT_LE(test::nmse(ref, kernels::bmm(a, b, ta, tb)), 1e-10); });
        const Tensor a32 = a.to(DType::F32), b32 = b.to(DType::F32);
        EXPECT_ALL_CLOSE(kernels::bmm(a32, b32, ta, tb, MatmulAlgo::PLAIN), kernels::bmm(a32, b32, ta, tb), 1e-5, 1e-4);
      }
  }
}

TEST(Bmm, BroadcastBatchView) {
  // One matrix expanded over the batch (batch stride 0), as attention weights shared across images would be.
  const Tensor a = test::random_tensor({3, 4, 5}, 310, DType::F64);
  const Tensor w = test::random_tensor({1, 5, 6}, 311, DType::F64).expand({3, 5, 6});
  EXPECT_ALL_CLOSE(naive_bmm(a, w, false, false), kernels::bmm(a, w), 1e-12, 1e-12);
}

// ---- linear ----

TEST(Linear, MatchesNaiveWithAndWithoutBias) {
  const Tensor x = make_matrix(6, 7, Layout::TRANSPOSED_VIEW, 400);
  const Tensor w = test::random_tensor({5, 7}, 401, DType::F64);
  const Tensor b = test::random_tensor({5}, 402, DType::F64);
  const Tensor xw = naive_matmul(x, w, false, true);
  std::vector<double> with_bias = xw.to_vector();
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 5; ++j) with_bias[size_t(i * 5 + j)] += b.at({j});
  const Tensor ref = Tensor::from_vector(with_bias, {6, 5}, DType::F64);
  for (MatmulAlgo algo : {MatmulAlgo::PLAIN, MatmulAlgo::BLAS}) {
    EXPECT_ALL_CLOSE(ref, kernels::linear(x, w, b, algo), 1e-12, 1e-12);
    EXPECT_ALL_CLOSE(xw, kernels::linear(x, w, Tensor(), algo), 1e-12, 1e-12);
  }
  // The op: any leading dims, and a single vector.
  const Variable y3 = linear(Variable(x.reshape({2, 3, 7})), Variable(w), Variable(b));
  EXPECT_EQ(y3.shape(), (Shape{2, 3, 5}));
  EXPECT_ALL_CLOSE(ref.reshape({2, 3, 5}), y3.data(), 1e-12, 1e-12);
  const Variable y1 = linear(Variable(x.select(0, 4)), Variable(w), Variable(b));
  EXPECT_EQ(y1.shape(), (Shape{5}));
  EXPECT_ALL_CLOSE(ref.select(0, 4), y1.data(), 1e-12, 1e-12);
}

TEST(Linear, BlasMatchesPlainOnABigProduct) {
  const Tensor x = test::random_tensor({300, 150}, 410, DType::F32);
  const Tensor w = test::random_tensor({120, 150}, 411, DType::F32);
  const Tensor b = test::random_tensor({120}, 412, DType::F32);
  const Tensor ref = kernels::linear(x, w, b, MatmulAlgo::PLAIN);
  at_thread_counts([&] { EXPECT_ALL_CLOSE(ref, kernels::linear(x, w, b), 1e-5, 1e-4); });
}

// ---- gradients ----

TEST(MatmulOps, Gradients) {
  const Tensor a = test::random_tensor({3, 4}, 500, DType::F64);
  const Tensor b = test::random_tensor({4, 5}, 501, DType::F64);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return matmul(v[0], v[1]); }, {a, b});
  // Transposed views as inputs: the gradient must come back in the view's shape.
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return matmul(transpose(v[0], 0, 1), v[1]); },
                 {test::random_tensor({4, 3}, 502, DType::F64), b});

  const Tensor ba = test::random_tensor({2, 3, 4}, 503, DType::F64);
  const Tensor bb = test::random_tensor({2, 4, 2}, 504, DType::F64);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return bmm(v[0], v[1]); }, {ba, bb});
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return bmm(v[0], transpose(v[1], 1, 2)); },
                 {ba, test::random_tensor({2, 2, 4}, 505, DType::F64)});

  const Tensor x = test::random_tensor({2, 3, 4}, 506, DType::F64);
  const Tensor w = test::random_tensor({5, 4}, 507, DType::F64);
  const Tensor bias = test::random_tensor({5}, 508, DType::F64);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return linear(v[0], v[1], v[2]); }, {x, w, bias});
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return linear(v[0], v[1], Variable()); },
                 {test::random_tensor({4}, 509, DType::F64), w});
}

TEST(MatmulOps, OnlyRequestedGradientsAreComputed) {
  const Variable a(test::random_tensor({3, 4}, 510, DType::F64), true);
  const Variable b(test::random_tensor({4, 2}, 511, DType::F64), false);
  sum(matmul(a, b)).backward();
  EXPECT_FALSE(b.grad().defined());
  ASSERT_TRUE(a.grad().defined());
  // d(sum ab)/da[i, k] = sum_j b[k, j].
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t k = 0; k < 4; ++k) EXPECT_NEAR(a.grad().at({i, k}), b.data().at({k, 0}) + b.data().at({k, 1}), 1e-12);
}

// ---- errors ----

TEST(MatmulErrors, ShapesAndDtypes) {
  const Variable a(Tensor::zeros({2, 3})), b(Tensor::zeros({4, 5}));
  EXPECT_THROW(matmul(a, b), Error);                                  // inner dims 3 vs 4
  EXPECT_THROW(matmul(Variable(Tensor::zeros({2, 3, 4})), b), Error);  // 3-D into matmul
  EXPECT_THROW(matmul(a, Variable(Tensor::zeros({3, 5}, DType::F64))), Error);
  EXPECT_THROW(kernels::matmul(Tensor::zeros({2, 3}, DType::I32), Tensor::zeros({3, 2}, DType::I32)), Error);
  EXPECT_THROW(bmm(Variable(Tensor::zeros({2, 3, 4})), Variable(Tensor::zeros({3, 4, 5}))), Error);  // batch 2 vs 3
  EXPECT_THROW(bmm(Variable(Tensor::zeros({2, 3, 4})), Variable(Tensor::zeros({2, 5, 5}))), Error);
  EXPECT_THROW(bmm(a, b), Error);
  EXPECT_THROW(linear(Variable(Tensor::zeros({2, 3})), Variable(Tensor::zeros({4, 5})), Variable()), Error);
  EXPECT_THROW(linear(Variable(Tensor::zeros({2, 3})), Variable(Tensor::zeros({4, 3})), Variable(Tensor::zeros({5}))),
               Error);
  EXPECT_THROW(linear(Variable(Tensor::zeros({2, 3})), Variable(Tensor::zeros({4, 3}, DType::F64)), Variable()),
               Error);
}

}  // namespace
}  // namespace fg
