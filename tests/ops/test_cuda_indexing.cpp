// The index arithmetic of the hand-written CUDA GEMM kernels, run on the CPU, so it is checked on every machine and
// in every build (no GPU, no CUDA needed): FastDivmod against '/', the split-K planner's invariants, and every GEMM
// problem the CUDA conv2d, matmul and Gram kernels build - the very operand and epilogue code of
// kernels/cuda/conv2d_operands.h and kernels/cuda/matmul_operands.h - evaluated element by element on host memory
// (as the naive CUDA kernel evaluates it) and compared with the CPU reference. What this cannot check - the tiled
// kernels' shared-memory staging, fragments and split-K reduction - tests/gpu/test_cuda_conv2d.cpp and
// test_cuda_matmul.cpp check on a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/cuda/conv2d_operands.h"
#include "kernels/cuda/matmul_operands.h"
#include "kernels/gram.h"
#include "kernels/matmul.h"
#include "tensor/philox.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using kernels::Conv2dGeometry;
using namespace fg::cuda;

// C[b][m][n] through the operands and the epilogue, one element at a time: what naive_gemm_kernel does per thread.
template <class P>
void host_gemm(const P& p) {
  using Acc = acc_t<typename P::AOp::T>;
  for (int b = 0; b < p.batch; ++b)
    for (int m = 0; m < p.M; ++m)
      for (int n = 0; n < p.N; ++n) {
        if (!p.epi.keep(m, n)) continue;
        Acc acc = 0;
        for (int k = 0; k < p.K; ++k) acc += operand_element(p.a, b, m, k) * operand_element(p.b, b, n, k);
        p.epi.store(m, p.epi.col(b, n), acc);
      }
}

// ---- FastDivmod and the planner ----

TEST(FastDivmod, MatchesIntegerDivision) {
  std::vector<int64_t> divisors;
  for (int64_t d = 1; d <= 300; ++d) divisors.push_back(d);
  for (int s = 9; s < 31; ++s)
    for (int64_t d : {(int64_t(1) << s) - 1, int64_t(1) << s, (int64_t(1) << s) + 1}) divisors.push_back(d);
  for (int64_t d : {int64_t(99) * 99, int64_t(4096) * 9, int64_t(1000003), int64_t(INT32_MAX)}) divisors.push_back(d);
  Generator gen(5);
  Tensor r = Tensor::empty({4096}, DType::F64);
  uniform_(r, gen, 0.0, double(INT32_MAX));
  const std::vector<double> randoms = r.to_vector();
  for (int64_t d : divisors) {
    const FastDivmod f(d);
    std::vector<int64_t> ns;
    for (int64_t n = 0; n < 2000; ++n) ns.push_back(n);
    for (int64_t q : {int64_t(1), int64_t(7), int64_t(1000), INT32_MAX / d})
      for (int64_t delta = -2; delta <= 2; ++delta) ns.push_back(q * d + delta);
    for (double v : randoms) ns.push_back(int64_t(v));
    ns.push_back(INT32_MAX);
    for (int64_t n : ns) {
      if (n < 0 || n > INT32_MAX) continue;
      int q = -1, rem = -1;
      f.divmod(int(n), q, rem);
      ASSERT_EQ(q, n / d) << n << " / " << d;
      ASSERT_EQ(rem, n % d) << n << " % " << d;
    }
  }
}

TEST(PlanGemm, SplitsCoverKWithoutEmptySplitsAndRespectTheLimits) {
  for (int sms : {1, 8, 132})
    for (int64_t M : {1, 3, 64, 100, 512, 4096})
      for (int64_t N : {1, 17, 64, 576, 4608, 65536})
        for (int64_t K : {0, 1, 31, 32, 33, 256, 1000, 4608, 131072})
          for (int64_t batch : {1, 4})
            for (int forced : {0, 1, 3, 64}) {
              GemmTuning t;
              t.split_k = forced;
              const GemmPlan p = plan_gemm(M, N, K, batch, sms, t);
              SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) + " batch " +
                           std::to_string(batch) + " sms " + std::to_string(sms) + " forced " + std::to_string(forced));
              ASSERT_GE(p.splits, 1);
              ASSERT_GT(p.k_per_split, 0);
              ASSERT_EQ(p.k_per_split % kSplitAlign, 0);
              ASSERT_GE(int64_t(p.splits) * p.k_per_split, K);  // every k is in a split
              if (p.splits > 1) {
                ASSERT_LT(int64_t(p.splits - 1) * p.k_per_split, K);  // and no split is empty
                ASSERT_LE(4 * M * N * batch * p.splits, kMaxWorkspaceBytes);
              }
              ASSERT_LE(int64_t(p.splits) * batch, 65535);
              if (forced > 0) {
                ASSERT_LE(p.splits, forced);
              } else {
                ASSERT_LE(p.splits, kMaxSplits);
              }
            }
  GemmTuning big, small;
  big.tile = GemmTile::BIG;
  small.tile = GemmTile::SMALL;
  EXPECT_TRUE(plan_gemm(8, 8, 8, 1, 132, big).big);
  EXPECT_FALSE(plan_gemm(4096, 4096, 8, 1, 132, small).big);
  EXPECT_TRUE(plan_gemm(4096, 4096, 64, 1, 132, {}).big);      // 1024 big tiles: enough for 132 SMs
  EXPECT_FALSE(plan_gemm(64, 4096, 64, 1, 132, {}).big);       // 32 big tiles: too few
  EXPECT_GT(plan_gemm(64, 576, 32768, 1, 132, {}).splits, 1);  // a weight gradient: few tiles, long K
}

// ---- conv2d ----

struct ConvCase {
  const char* name;
  int64_t N, C, H, W, O, KH, KW;
  Conv2dGeometry g;
  bool bias;
};
void PrintTo(const ConvCase& c, std::ostream* os) {
  *os << c.name;
}

Conv2dGeometry geom(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  return {sh, sw, ph, pw, dh, dw};
}

// Kernels 1/3/4/7, strides 1/2/3, dilation 2, padding larger than the image, rectangular kernels with mixed
// geometry, channel counts that are and are not multiples of 8 (the channels-last padding), single output pixels,
// and small versions of the networks' layers.
const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> table = {
      {"k1_s1_p0", 3, 5, 5, 7, 4, 1, 1, geom(1, 1, 0, 0, 1, 1), true},
      {"k1_s2_p0", 3, 3, 5, 7, 2, 1, 1, geom(2, 2, 0, 0, 1, 1), false},
      {"k1_s1_p1", 1, 3, 4, 3, 5, 1, 1, geom(1, 1, 1, 1, 1, 1), true},
      {"k3_s1_p1", 3, 3, 5, 7, 4, 3, 3, geom(1, 1, 1, 1, 1, 1), true},
      {"k3_s2_p1", 1, 5, 7, 5, 3, 3, 3, geom(2, 2, 1, 1, 1, 1), false},
      {"k3_s3_p0", 3, 1, 11, 10, 2, 3, 3, geom(3, 3, 0, 0, 1, 1), true},
      {"k3_d2_p2", 1, 3, 9, 8, 4, 3, 3, geom(1, 1, 2, 2, 2, 2), true},
      {"k3_d2_p3_s2", 3, 5, 7, 9, 2, 3, 3, geom(2, 2, 3, 3, 2, 2), false},
      {"k4_s2_p1", 1, 1, 8, 9, 2, 4, 4, geom(2, 2, 1, 1, 1, 1), true},
      {"k7_s2_p3", 3, 3, 13, 11, 4, 7, 7, geom(2, 2, 3, 3, 1, 1), false},
      {"k7_s1_p6_d2", 1, 1, 5, 7, 3, 7, 7, geom(1, 1, 6, 6, 2, 2), true},
      {"k7_s3_p0_tight", 1, 3, 7, 7, 2, 7, 7, geom(3, 3, 0, 0, 1, 1), true},
      {"rect_k3x1_mixed", 3, 3, 5, 7, 2, 3, 1, geom(2, 1, 0, 1, 1, 2), true},
      {"rect_k1x4_mixed", 1, 5, 6, 9, 3, 1, 4, geom(1, 3, 3, 0, 2, 1), false},
      {"pad_bigger_than_image", 3, 1, 1, 2, 2, 3, 3, geom(1, 1, 3, 3, 1, 1), true},
      {"channels_17_to_9", 2, 17, 6, 5, 9, 3, 3, geom(1, 1, 1, 1, 1, 1), true},
      {"channels_16_to_8", 2, 16, 5, 6, 8, 3, 3, geom(1, 1, 1, 1, 1, 1), false},
      {"r34_conv1_small", 1, 3, 20, 18, 8, 7, 7, geom(2, 2, 3, 3, 1, 1), false},
      {"r34_downsample_small", 2, 16, 8, 8, 24, 1, 1, geom(2, 2, 0, 0, 1, 1), false},
      {"xc_dilated_small", 1, 24, 6, 6, 16, 3, 3, geom(1, 1, 2, 2, 2, 2), true},
      {"unet_head_small", 2, 11, 9, 9, 3, 1, 1, geom(1, 1, 0, 0, 1, 1), true},
  };
  return table;
}

// t (4-D) -> (t.size(outer_dim), H, W, padded): the channels-last copy conv2d.cu makes on the GPU.
Tensor channels_last_host(const Tensor& t, int64_t outer_dim, int64_t chan_dim, int64_t padded) {
  Tensor out = Tensor::zeros({t.size(outer_dim), t.size(2), t.size(3), padded}, t.dtype());
  out.slice(3, 0, t.size(chan_dim)).copy_(t.permute({outer_dim, 2, 3, chan_dim}));
  return out;
}

template <typename E>
const E* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<E>() : nullptr;
}

// The three implicit GEMMs of conv2d.cu on host copies; tensors of E's dtype.
template <typename E>
Tensor emulate_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g) {
  const ConvDims d = make_conv_dims(x.shape(), w.shape(), g);
  const Tensor xt = channels_last_host(x, 0, 1, d.Cp), wf = channels_last_host(w, 0, 1, d.Cp);
  Tensor y = Tensor::empty({d.N, d.O, d.OH, d.OW}, x.dtype());
  host_gemm(fprop_problem<E>(d, wf.data<E>(), xt.data<E>(), ptr_or_null<E>(b), y.data<E>()));
  return y;
}
template <typename E>
Tensor emulate_backward_input(const Tensor& dy, const Tensor& w, const Shape& x_shape, const Conv2dGeometry& g) {
  const ConvDims d = make_conv_dims(x_shape, w.shape(), g);
  const Tensor dyt = channels_last_host(dy, 0, 1, d.Op), wd = channels_last_host(w, 1, 0, d.Op);
  Tensor dx = Tensor::empty(x_shape, dy.dtype());
  host_gemm(dgrad_problem<E>(d, wd.data<E>(), dyt.data<E>(), dx.data<E>()));
  return dx;
}
template <typename E>
Tensor emulate_backward_weight(const Tensor& dy, const Tensor& x, const Shape& w_shape, const Conv2dGeometry& g) {
  const ConvDims d = make_conv_dims(x.shape(), w_shape, g);
  const Tensor dyt = channels_last_host(dy, 0, 1, d.Op), xt = channels_last_host(x, 0, 1, d.Cp);
  Tensor dw = Tensor::empty(w_shape, dy.dtype());
  host_gemm(wgrad_problem<E>(d, dyt.data<E>(), xt.data<E>(), dw.data<E>()));
  return dw;
}

class ConvIndexing : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvIndexing, F32ImplicitGemmsMatchTheReference) {
  const ConvCase& c = GetParam();
  const Tensor x = test::random_tensor({c.N, c.C, c.H, c.W}, 1), w = test::random_tensor({c.O, c.C, c.KH, c.KW}, 2);
  const Tensor b = c.bias ? test::random_tensor({c.O}, 3) : Tensor();
  const Tensor x64 = x.to(DType::F64), w64 = w.to(DType::F64), b64 = c.bias ? b.to(DType::F64) : Tensor();
  const Tensor y_ref = kernels::conv2d_forward(x64, w64, b64, c.g, kernels::Conv2dAlgo::PLAIN);
  const Tensor dy = test::random_tensor(y_ref.shape(), 4);
  const Tensor dx_ref =
      kernels::conv2d_backward_input(dy.to(DType::F64), w64, x.shape(), c.g, kernels::Conv2dAlgo::PLAIN);
  const Tensor dw_ref =
      kernels::conv2d_backward_weight(dy.to(DType::F64), x64, w.shape(), c.g, kernels::Conv2dAlgo::PLAIN);
  // Sums of at most a few hundred f32 products: NMSE near 1e-14, far inside the house limit.
  EXPECT_LE(test::nmse(y_ref, emulate_forward<float>(x, w, b, c.g)), 1e-7);
  EXPECT_LE(test::nmse(dx_ref, emulate_backward_input<float>(dy, w, x.shape(), c.g)), 1e-7);
  EXPECT_LE(test::nmse(dw_ref, emulate_backward_weight<float>(dy, x, w.shape(), c.g)), 1e-7);
}

TEST_P(ConvIndexing, Bf16ImplicitGemmsMatchTheReferenceOnRoundedInputs) {
  const ConvCase& c = GetParam();
  const Tensor x = test::random_tensor({c.N, c.C, c.H, c.W}, 5).to(DType::BF16);
  const Tensor w = test::random_tensor({c.O, c.C, c.KH, c.KW}, 6).to(DType::BF16);
  const Tensor b = c.bias ? test::random_tensor({c.O}, 7).to(DType::BF16) : Tensor();
  const Tensor xr = x.to(DType::F64), wr = w.to(DType::F64), br = c.bias ? b.to(DType::F64) : Tensor();
  const Tensor y_ref = kernels::conv2d_forward(xr, wr, br, c.g, kernels::Conv2dAlgo::PLAIN);
  const Tensor dy = test::random_tensor(y_ref.shape(), 8).to(DType::BF16);
  const Tensor dx_ref =
      kernels::conv2d_backward_input(dy.to(DType::F64), wr, x.shape(), c.g, kernels::Conv2dAlgo::PLAIN);
  const Tensor dw_ref =
      kernels::conv2d_backward_weight(dy.to(DType::F64), xr, w.shape(), c.g, kernels::Conv2dAlgo::PLAIN);
  // Exact products, f32 sums, one rounding to bf16 (relative error <= 2^-8): NMSE about 2^-16 / 3 ~ 5e-6 at most.
  EXPECT_LE(test::nmse(y_ref, emulate_forward<bf16_t>(x, w, b, c.g)), 2e-5);
  EXPECT_LE(test::nmse(dx_ref, emulate_backward_input<bf16_t>(dy, w, x.shape(), c.g)), 2e-5);
  EXPECT_LE(test::nmse(dw_ref, emulate_backward_weight<bf16_t>(dy, x, w.shape(), c.g)), 2e-5);
}

INSTANTIATE_TEST_SUITE_P(Table, ConvIndexing, ::testing::ValuesIn(conv_cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

TEST(ConvIndexing, SizesBeyond32BitIndexingAreAClearError) {
  const std::string msg = test::error_of([] {
    make_conv_dims({70000, 64, 256, 256}, {64, 64, 3, 3}, geom(1, 1, 1, 1, 1, 1));
  });
  EXPECT_NE(msg.find("32-bit"), std::string::npos) << msg;
  EXPECT_NE(msg.find("split the batch"), std::string::npos) << msg;
}

// ---- matmul and Gram ----

View3 view3(const Tensor& t) {
  return View3{t.raw_data(), {t.size(0), t.size(1), t.size(2)}, {t.stride(0), t.stride(1), t.stride(2)}};
}

enum class Layout {
  CONTIGUOUS,  // row-major storage
  TRANSPOSED,  // a transposed view of the other layout (unit stride along the other index)
  STEP2,       // every second column of a wider tensor (no unit stride: element loads)
  OFFSET,      // rows of a tensor starting one element in (unit stride, misaligned)
  BROADCAST,   // one matrix expanded over the batch (batch stride 0)
};

// A (batch, rows, cols) operand with the given storage.
Tensor make_operand(int64_t batch, int64_t rows, int64_t cols, Layout layout, uint64_t seed, DType dt) {
  switch (layout) {
    case Layout::CONTIGUOUS:
      return test::random_tensor({batch, rows, cols}, seed).to(dt);
    case Layout::TRANSPOSED:
      return test::random_tensor({batch, cols, rows}, seed).to(dt).transpose(1, 2);
    case Layout::STEP2:
      return test::random_tensor({batch, rows, 2 * cols}, seed).to(dt).slice(2, 0, 2 * cols, 2);
    case Layout::OFFSET:
      return test::random_tensor({batch, rows * cols + 1}, seed)
          .to(dt)
          .slice(1, 1, rows * cols + 1)
          .view({batch, rows, cols});
    case Layout::BROADCAST:
      return test::random_tensor({1, rows, cols}, seed).to(dt).expand({batch, rows, cols});
  }
  return Tensor();
}

struct ProductCase {
  const char* name;
  int64_t batch, M, N, K;
  bool trans_a, trans_b;
  Layout a, b;
  bool bias;
};
void PrintTo(const ProductCase& c, std::ostream* os) {
  *os << c.name;
}

// Every layout pair (including the (MN, K) pair that is computed transposed), transposes, sizes 1, odd sizes,
// sizes not a multiple of any vector or tile, misaligned and strided views, broadcast batches, bias.
const std::vector<ProductCase>& product_cases() {
  static const std::vector<ProductCase> table = {
      {"ones", 1, 1, 1, 1, false, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS, false},
      {"nn_odd", 2, 37, 19, 53, false, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS, true},
      {"nt_gram_like", 2, 24, 24, 40, false, true, Layout::CONTIGUOUS, Layout::CONTIGUOUS, false},
      {"tn_weight_grad", 3, 17, 21, 9, true, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS, false},
      {"tt", 1, 13, 11, 16, true, true, Layout::CONTIGUOUS, Layout::CONTIGUOUS, true},
      {"a_transposed_view", 2, 16, 24, 32, false, false, Layout::TRANSPOSED, Layout::CONTIGUOUS, false},
      {"b_transposed_view", 2, 16, 24, 32, false, false, Layout::CONTIGUOUS, Layout::TRANSPOSED, true},
      {"mn_k_swapped", 2, 9, 14, 20, true, true, Layout::CONTIGUOUS, Layout::CONTIGUOUS, true},
      {"step2_views", 2, 10, 12, 7, false, false, Layout::STEP2, Layout::STEP2, false},
      {"offset_views", 3, 8, 16, 24, false, false, Layout::OFFSET, Layout::OFFSET, true},
      {"broadcast_a", 4, 12, 8, 16, false, false, Layout::BROADCAST, Layout::CONTIGUOUS, false},
      {"k_not_vector_multiple", 1, 8, 8, 13, false, true, Layout::CONTIGUOUS, Layout::CONTIGUOUS, false},
      {"k_empty", 2, 5, 3, 0, false, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS, true},
  };
  return table;
}

template <typename E, bool kNaive>
Tensor emulate_product(const ProductCase& c, const Tensor& a, const Tensor& b, const Tensor& bias) {
  Tensor out = Tensor::empty({c.batch, c.M, c.N}, a.dtype());
  const ProductLayout layout = product_layout(view3(a), c.trans_a, view3(b), c.trans_b, int(dtype_size(a.dtype())));
  with_product_problem<E, kNaive>(layout, c.batch, c.K, out.data<E>(), ptr_or_null<E>(bias),
                                  [](const auto& p) { host_gemm(p); });
  return out;
}

// The reference: the CPU bmm in f64, plus the bias.
Tensor reference_product(const ProductCase& c, const Tensor& a, const Tensor& b, const Tensor& bias) {
  Tensor r = kernels::bmm(a.to(DType::F64), b.to(DType::F64), c.trans_a, c.trans_b, kernels::MatmulAlgo::PLAIN);
  if (!bias.defined()) return r;
  std::vector<double> v = r.to_vector();
  const std::vector<double> bv = bias.to_vector();
  for (size_t i = 0; i < v.size(); ++i) v[i] += bv[i % size_t(c.N)];
  return Tensor::from_vector(v, r.shape(), DType::F64);
}

class ProductIndexing : public ::testing::TestWithParam<ProductCase> {};

TEST_P(ProductIndexing, EveryProblemTypeMatchesTheReference) {
  const ProductCase& c = GetParam();
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor a =
        c.trans_a ? make_operand(c.batch, c.K, c.M, c.a, 11, dt) : make_operand(c.batch, c.M, c.K, c.a, 11, dt);
    const Tensor b =
        c.trans_b ? make_operand(c.batch, c.N, c.K, c.b, 12, dt) : make_operand(c.batch, c.K, c.N, c.b, 12, dt);
    const Tensor bias = c.bias ? test::random_tensor({c.N}, 13).to(dt) : Tensor();
    const Tensor ref = reference_product(c, a, b, bias);
    // f32: NMSE near 1e-14. bf16: the inputs are exact, the f32 sum is rounded once to bf16 (NMSE <= ~5e-6).
    const double tol = dt == DType::F32 ? 1e-7 : 2e-5;
    if (dt == DType::F32) {
      EXPECT_LE(test::nmse(ref, emulate_product<float, true>(c, a, b, bias)), tol) << "naive";
      EXPECT_LE(test::nmse(ref, emulate_product<float, false>(c, a, b, bias)), tol) << "tiled";
    } else {
      EXPECT_LE(test::nmse(ref, emulate_product<bf16_t, true>(c, a, b, bias)), tol) << "naive";
      EXPECT_LE(test::nmse(ref, emulate_product<bf16_t, false>(c, a, b, bias)), tol) << "tiled";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ProductIndexing, ::testing::ValuesIn(product_cases()),
                         [](const ::testing::TestParamInfo<ProductCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ProductIndexing, LayoutsAreChosenFromTheStrides) {
  const Tensor a = Tensor::empty({2, 8, 16}), at = Tensor::empty({2, 16, 8}).transpose(1, 2);
  const ProductLayout nn = product_layout(view3(a), false, view3(a.transpose(1, 2).contiguous()), false, 4);
  EXPECT_TRUE(nn.a.along_k);
  EXPECT_FALSE(nn.b.along_k);  // B (K, N) row-major: unit stride along n
  EXPECT_TRUE(nn.a.vec_ok && nn.b.vec_ok);
  const ProductLayout tn = product_layout(view3(at), false, view3(a), true, 4);
  EXPECT_FALSE(tn.a.along_k);  // a transposed view: unit stride along m
  EXPECT_TRUE(tn.b.along_k);
  const ProductLayout swapped = canonical_layout(tn);  // (MN, K) becomes (K, MN) on the transposed product
  EXPECT_TRUE(swapped.a.along_k);
  EXPECT_FALSE(swapped.b.along_k);
  EXPECT_EQ(swapped.M, tn.N);
  EXPECT_EQ(swapped.s_m, tn.s_n);
  EXPECT_TRUE(swapped.bias_on_m);
}

struct GramCase {
  const char* name;
  int64_t N, C, H, W;
};
void PrintTo(const GramCase& c, std::ostream* os) {
  *os << c.name;
}

const std::vector<GramCase>& gram_cases() {
  static const std::vector<GramCase> table = {
      {"one", 1, 1, 1, 1},  {"odd", 2, 5, 7, 9}, {"c3_not_vec", 3, 3, 4, 5}, {"vgg_like_small", 2, 16, 8, 8},
      {"c17", 1, 17, 3, 3},
  };
  return table;
}

class GramIndexing : public ::testing::TestWithParam<GramCase> {};

TEST_P(GramIndexing, ForwardAndBackwardMatchTheReference) {
  const GramCase& c = GetParam();
  const int64_t L = c.H * c.W;
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = test::random_tensor({c.N, c.C, c.H, c.W}, 21).to(dt);
    const Tensor gy = test::random_tensor({c.N, c.C, c.C}, 22).to(dt);
    const Tensor g_ref = kernels::gram_matrix(x.to(DType::F64), kernels::GramVariant::LOOPS);
    const Tensor dx_ref =
        kernels::gram_matrix_backward(gy.to(DType::F64), x.to(DType::F64), kernels::GramVariant::LOOPS);
    const double tol = dt == DType::F32 ? 1e-7 : 2e-5;  // bf16: one rounding of the result (and of G' + G'^T)
    for (bool naive : {true, false}) {
      Tensor g = Tensor::empty({c.N, c.C, c.C}, dt), dx = Tensor::empty(x.shape(), dt);
      if (dt == DType::F32) {
        host_gemm(gram_problem<float>(x.data<float>(), g.data<float>(), c.N, c.C, L, naive));
        host_gemm(
            gram_backward_problem<float>(gy.data<float>(), x.data<float>(), dx.data<float>(), c.N, c.C, L, naive));
      } else {
        host_gemm(gram_problem<bf16_t>(x.data<bf16_t>(), g.data<bf16_t>(), c.N, c.C, L, naive));
        host_gemm(
            gram_backward_problem<bf16_t>(gy.data<bf16_t>(), x.data<bf16_t>(), dx.data<bf16_t>(), c.N, c.C, L, naive));
      }
      EXPECT_LE(test::nmse(g_ref, g), tol) << (naive ? "naive" : "tiled");
      EXPECT_LE(test::nmse(dx_ref, dx), tol) << (naive ? "naive" : "tiled");
      // The mirrored store makes G exactly symmetric.
      const std::vector<double> gv = g.to_vector();
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t i = 0; i < c.C; ++i)
          for (int64_t j = 0; j < i; ++j)
            ASSERT_EQ(gv[size_t((n * c.C + i) * c.C + j)], gv[size_t((n * c.C + j) * c.C + i)]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, GramIndexing, ::testing::ValuesIn(gram_cases()),
                         [](const ::testing::TestParamInfo<GramCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace fg
