// conv2d and conv1d: the forward against a naive formula written here, the GEMM path against the plain loops in
// every direction (f64 NMSE <= 1e-10, f32 elementwise) at 1, 2 and 3 OpenMP threads (each count takes other work
// splits), finite-difference gradient checks of the autograd ops, and the errors a user can cause.
#include <omp.h>

#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/gemm.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using kernels::Conv2dAlgo;
using kernels::Conv2dGeometry;

struct ConvCase {
  const char* name;
  int64_t N, C, H, W, O, KH, KW;
  Conv2dGeometry g;
  bool bias;
  bool strided_views;  // x a permuted view, w a sliced view
};

// Names the case in gtest's failure messages.
void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

Conv2dGeometry geom(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  return {sh, sw, ph, pw, dh, dw};
}

// Reaches every branch of the GEMM path (run at 1, 2 and 3 threads): kernels 1/3/4/7, strides 1/2/3, paddings 0/1/3, dilations 1/2, batch 1 and
// 3, odd sizes, channels 1/3/5, 1x1 convolutions (read in place), tiles of several whole images, images split
// over several tiles, outputs of one pixel, and windows that hang over the padding on every side.
const std::vector<ConvCase>& cases() {
  static const std::vector<ConvCase> table = {
      {"k1_s1_p0", 3, 5, 5, 7, 4, 1, 1, geom(1, 1, 0, 0, 1, 1), true, false},
      {"k1_s2_p0", 3, 3, 5, 7, 2, 1, 1, geom(2, 2, 0, 0, 1, 1), false, false},
      {"k1_s1_p1", 1, 3, 4, 3, 5, 1, 1, geom(1, 1, 1, 1, 1, 1), true, true},
      {"k3_s1_p1", 3, 3, 5, 7, 4, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      {"k3_s2_p1", 1, 5, 7, 5, 3, 3, 3, geom(2, 2, 1, 1, 1, 1), false, false},
      {"k3_s3_p0", 3, 1, 11, 10, 2, 3, 3, geom(3, 3, 0, 0, 1, 1), true, false},
      {"k3_d2_p2", 1, 3, 9, 8, 4, 3, 3, geom(1, 1, 2, 2, 2, 2), true, false},
      {"k3_d2_p3_s2", 3, 5, 7, 9, 2, 3, 3, geom(2, 2, 3, 3, 2, 2), false, true},
      {"k4_s1_p1", 3, 3, 6, 5, 3, 4, 4, geom(1, 1, 1, 1, 1, 1), true, false},
      {"k4_s2_p1", 1, 1, 8, 9, 2, 4, 4, geom(2, 2, 1, 1, 1, 1), true, true},
      {"k7_s2_p3", 3, 3, 13, 11, 4, 7, 7, geom(2, 2, 3, 3, 1, 1), false, false},
      {"k7_s1_p6_d2", 1, 1, 5, 7, 3, 7, 7, geom(1, 1, 6, 6, 2, 2), true, false},
      {"k7_s3_p0_tight", 1, 3, 7, 7, 2, 7, 7, geom(3, 3, 0, 0, 1, 1), true, false},  // a single output pixel
      {"rect_k3x1_mixed", 3, 3, 5, 7, 2, 3, 1, geom(2, 1, 0, 1, 1, 2), true, true},
      {"rect_k1x4_mixed", 1, 5, 6, 9, 3, 1, 4, geom(1, 3, 3, 0, 2, 1), false, false},
      {"pad_bigger_than_image", 3, 1, 1, 2, 2, 3, 3, geom(1, 1, 3, 3, 1, 1), true, false},
      {"k3_s1_p1_c1", 3, 1, 5, 7, 1, 3, 3, geom(1, 1, 1, 1, 1, 1), false, false},
      // Above the 1 Mflop below which the kernels stay on one thread: these take the multi-thread work splits
      // (tiles narrowed to give every thread one, channel ranges for dx, column ranges of dW).
      {"medium_k3_s1_p1", 3, 5, 23, 19, 16, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      {"medium_k1_s1", 3, 32, 17, 15, 24, 1, 1, geom(1, 1, 0, 0, 1, 1), true, true},
      {"medium_k1_s2", 3, 48, 15, 17, 64, 1, 1, geom(2, 2, 0, 0, 1, 1), false, false},
      {"medium_k4_s2_p3_d2", 2, 8, 21, 25, 16, 4, 4, geom(2, 2, 3, 3, 2, 2), true, false},
      {"medium_k7_s2_p3_batch1", 1, 3, 40, 36, 16, 7, 7, geom(2, 2, 3, 3, 1, 1), false, true},
      // C*KH*KW = 576: two k blocks of the packed weights; O = 26 is no multiple of any micro-tile's MR, and the
      // one tile of 2 images makes the threads split O between them (in blocks of whole MR-row slivers).
      {"deep_k3_two_k_blocks", 2, 64, 8, 8, 26, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      // Winograd F(2x2, 3x3) forwards (3x3, stride 1, >= 16 channels): odd output sizes (half tiles), no padding
      // and padding 2, strided views, and enough tiles for several chunks per thread, runs of tiles crossing images.
      {"wino_k3_p1_odd", 2, 16, 9, 7, 17, 3, 3, geom(1, 1, 1, 1, 1, 1), true, true},
      {"wino_k3_p0", 1, 20, 10, 11, 16, 3, 3, geom(1, 1, 0, 0, 1, 1), false, false},
      {"wino_k3_p2_many_chunks", 3, 16, 40, 37, 16, 3, 3, geom(1, 1, 2, 2, 1, 1), true, false},
  };
  return table;
}

// Large enough that one image spans several column tiles (the column buffer is bounded), or with long output rows.
const std::vector<ConvCase>& big_cases() {
  static const std::vector<ConvCase> table = {
      {"k7_split_image", 2, 5, 70, 70, 2, 7, 7, geom(1, 1, 3, 3, 1, 1), true, false},
      {"k1_split_image", 2, 2, 730, 730, 3, 1, 1, geom(1, 1, 0, 0, 1, 1), true, false},
      // Output rows of 38 and 27 pixels with strides 2 and 3: the strided row copies (vectorised for stride 2).
      {"k3_s2_wide_rows", 1, 2, 9, 75, 3, 3, 3, geom(2, 2, 1, 1, 1, 1), true, true},
      {"k3_s3_wide_rows", 2, 2, 8, 80, 3, 3, 3, geom(3, 3, 1, 1, 1, 1), false, false},
  };
  return table;
}

struct ConvInputs {
  Tensor x, w, b;
};

ConvInputs make_inputs(const ConvCase& c, DType dt, uint64_t seed) {
  ConvInputs in;
  if (c.strided_views) {
    in.x = test::random_tensor({c.N, c.H, c.C, c.W}, seed, dt).permute({0, 2, 1, 3});
    in.w = test::random_tensor({c.O, c.C, c.KH, 2 * c.KW}, seed + 1, dt).slice(3, 0, 2 * c.KW, 2);
  } else {
    in.x = test::random_tensor({c.N, c.C, c.H, c.W}, seed, dt);
    in.w = test::random_tensor({c.O, c.C, c.KH, c.KW}, seed + 1, dt);
  }
  if (c.bias) in.b = test::random_tensor({c.O}, seed + 2, dt);
  return in;
}

// The definition, straight from PyTorch's documentation, on logical-order copies of the inputs.
Tensor naive_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), KH = w.size(2), KW = w.size(3);
  const int64_t OH = (H + 2 * g.pad_h - g.dilation_h * (KH - 1) - 1) / g.stride_h + 1;
  const int64_t OW = (W + 2 * g.pad_w - g.dilation_w * (KW - 1) - 1) / g.stride_w + 1;
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector();
  const std::vector<double> bv = b.defined() ? b.to_vector() : std::vector<double>(size_t(O), 0.0);
  std::vector<double> y(size_t(N * O * OH * OW));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          double s = bv[size_t(o)];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t p = 0; p < KH; ++p)
              for (int64_t q = 0; q < KW; ++q) {
                const int64_t r = i * g.stride_h + p * g.dilation_h - g.pad_h;
                const int64_t s2 = j * g.stride_w + q * g.dilation_w - g.pad_w;
                if (r < 0 || r >= H || s2 < 0 || s2 >= W) continue;
                s += xv[size_t(((n * C + c) * H + r) * W + s2)] * wv[size_t(((o * C + c) * KH + p) * KW + q)];
              }
          y[size_t(((n * O + o) * OH + i) * OW + j)] = s;
        }
  return Tensor::from_vector(y, {N, O, OH, OW}, DType::F64);
}

// Runs the body at 1, 2 and 3 OpenMP threads and restores the default.
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

class ConvCases : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvCases, ForwardMatchesNaiveFormula) {
  const ConvCase& c = GetParam();
  const ConvInputs in = make_inputs(c, DType::F64, 11);
  const Tensor ref = naive_conv2d(in.x, in.w, in.b, c.g);
  for (Conv2dAlgo algo : {Conv2dAlgo::PLAIN, Conv2dAlgo::GEMM}) {
    const Tensor y = kernels::conv2d_forward(in.x, in.w, in.b, c.g, algo);
    EXPECT_ALL_CLOSE(ref, y, 1e-12, 1e-12);
  }
}

TEST_P(ConvCases, GemmMatchesPlainF64) {
  const ConvCase& c = GetParam();
  const ConvInputs in = make_inputs(c, DType::F64, 21);
  const Tensor y = kernels::conv2d_forward(in.x, in.w, in.b, c.g, Conv2dAlgo::PLAIN);
  const Tensor gy = test::random_tensor(y.shape(), 22, DType::F64);
  const Tensor dx = kernels::conv2d_backward_input(gy, in.w, in.x.shape(), c.g, Conv2dAlgo::PLAIN);
  const Tensor dw = kernels::conv2d_backward_weight(gy, in.x, in.w.shape(), c.g, Conv2dAlgo::PLAIN);
  at_thread_counts([&] {
    EXPECT_LE(test::nmse(y, kernels::conv2d_forward(in.x, in.w, in.b, c.g)), 1e-10);
    EXPECT_LE(test::nmse(dx, kernels::conv2d_backward_input(gy, in.w, in.x.shape(), c.g)), 1e-10);
    EXPECT_LE(test::nmse(dw, kernels::conv2d_backward_weight(gy, in.x, in.w.shape(), c.g)), 1e-10);
  });
}

TEST_P(ConvCases, GemmMatchesPlainF32) {
  const ConvCase& c = GetParam();
  const ConvInputs in = make_inputs(c, DType::F32, 31);
  const Tensor y = kernels::conv2d_forward(in.x, in.w, in.b, c.g, Conv2dAlgo::PLAIN);
  const Tensor gy = test::random_tensor(y.shape(), 32, DType::F32);
  const Tensor dx = kernels::conv2d_backward_input(gy, in.w, in.x.shape(), c.g, Conv2dAlgo::PLAIN);
  // dw sums N*OH*OW products (up to 4,914 here): against the f64 sum of the same f32 inputs, since two f32 orders of
  // so long a sum (the plain loop's and Winograd's tiles) differ by more than 1e-4 relative on elements that cancel.
  const Tensor dw64 =
      kernels::conv2d_backward_weight(gy.to(DType::F64), in.x.to(DType::F64), in.w.shape(), c.g, Conv2dAlgo::PLAIN);
  EXPECT_EQ(y.dtype(), DType::F32);
  // y and dx sum at most a few hundred products of numbers in [-1, 1]: f32 rounding stays well inside
  // 1e-5 + 1e-4 |ref|.
  at_thread_counts([&] {
    EXPECT_ALL_CLOSE(y, kernels::conv2d_forward(in.x, in.w, in.b, c.g), 1e-5, 1e-4);
    EXPECT_ALL_CLOSE(dx, kernels::conv2d_backward_input(gy, in.w, in.x.shape(), c.g), 1e-5, 1e-4);
    EXPECT_LE(test::nmse(dw64, kernels::conv2d_backward_weight(gy, in.x, in.w.shape(), c.g).to(DType::F64)), 1e-10);
  });
}

// Winograd and im2col against the plain loops in f64 (the reference), on the cases Winograd takes, forward and
// input gradient. In f32 each
// sums C*9 products, rounded: Winograd's transforms add up to 4 (input), 9 (weights, halved) and 9 (output) terms
// before and after its 16 GEMMs, so its rounding error may be some times im2col's but stays of the same order; the
// test allows 8 times im2col's largest error plus 1e-6.
// The rows of the case table that Winograd takes (3x3, stride 1, undilated, at least 16 channels each way).
std::vector<ConvCase> winograd_cases() {
  std::vector<ConvCase> out;
  for (const ConvCase& c : cases()) {
    const kernels::Conv2dGeometry& g = c.g;
    if (c.KH == 3 && c.KW == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 &&
        c.C >= 16 && c.O >= 16)
      out.push_back(c);
  }
  return out;
}

class WinogradCases : public ::testing::TestWithParam<ConvCase> {};

TEST_P(WinogradCases, WinogradMatchesPlainAndIm2col) {
  const ConvCase& c = GetParam();
  const kernels::Conv2dGeometry& g = c.g;
  const ConvInputs in = make_inputs(c, DType::F64, 61);
  const Tensor ref = kernels::conv2d_forward(in.x, in.w, in.b, g, Conv2dAlgo::PLAIN);
  at_thread_counts([&] {
    EXPECT_LE(test::nmse(ref, kernels::conv2d_forward(in.x, in.w, in.b, g, Conv2dAlgo::WINOGRAD)), 1e-24);
    const Tensor x32 = in.x.to(DType::F32), w32 = in.w.to(DType::F32);
    const Tensor b32 = in.b.defined() ? in.b.to(DType::F32) : Tensor();
    const Tensor wino = kernels::conv2d_forward(x32, w32, b32, g, Conv2dAlgo::WINOGRAD).to(DType::F64);
    const Tensor im2col = kernels::conv2d_forward(x32, w32, b32, g, Conv2dAlgo::IM2COL).to(DType::F64);
    const std::vector<double> r = ref.to_vector(), wv = wino.to_vector(), iv = im2col.to_vector();
    double err_wino = 0, err_im2col = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      err_wino = std::max(err_wino, std::abs(wv[i] - r[i]));
      err_im2col = std::max(err_im2col, std::abs(iv[i] - r[i]));
    }
    EXPECT_LE(err_wino, 8 * err_im2col + 1e-6) << "im2col's largest error " << err_im2col;
    // Production takes Winograd from 64 tiles of 2x2 outputs per image, im2col below (the same code, so the same
    // bits, as the explicit choice).
    const int64_t tiles = ((ref.size(2) + 1) / 2) * ((ref.size(3) + 1) / 2);
    const bool production_wino = tiles >= 64 && kernels::conv2d_cpu_winograd();  // unless FG_CPU_WINOGRAD=0
    EXPECT_ALL_CLOSE(kernels::conv2d_forward(x32, w32, b32, g), (production_wino ? wino : im2col).to(DType::F32), 0, 0);
  });
  // The input gradient: the forward of dy with the turned weights, the same bounds.
  const Tensor gy = test::random_tensor(ref.shape(), 62, DType::F64);
  const Tensor dref = kernels::conv2d_backward_input(gy, in.w, in.x.shape(), g, Conv2dAlgo::PLAIN);
  at_thread_counts([&] {
    EXPECT_LE(test::nmse(dref, kernels::conv2d_backward_input(gy, in.w, in.x.shape(), g, Conv2dAlgo::WINOGRAD)),
              1e-24);
    const Tensor gy32 = gy.to(DType::F32), w32 = in.w.to(DType::F32);
    const Tensor wino =
        kernels::conv2d_backward_input(gy32, w32, in.x.shape(), g, Conv2dAlgo::WINOGRAD).to(DType::F64);
    const Tensor im2col = kernels::conv2d_backward_input(gy32, w32, in.x.shape(), g, Conv2dAlgo::IM2COL).to(DType::F64);
    const std::vector<double> r = dref.to_vector(), wv = wino.to_vector(), iv = im2col.to_vector();
    double err_wino = 0, err_im2col = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      err_wino = std::max(err_wino, std::abs(wv[i] - r[i]));
      err_im2col = std::max(err_im2col, std::abs(iv[i] - r[i]));
    }
    EXPECT_LE(err_wino, 8 * err_im2col + 1e-6) << "im2col's largest error " << err_im2col;
    const int64_t tiles = ((c.H + 1) / 2) * ((c.W + 1) / 2);
    EXPECT_ALL_CLOSE(kernels::conv2d_backward_input(gy32, w32, in.x.shape(), g),
                     (tiles >= 64 && kernels::conv2d_cpu_winograd() ? wino : im2col).to(DType::F32), 0,
                     0);
  });
}

// The weight gradient through the same tiles (16 GEMMs over the tiles, then G^T dU G), the same bounds; the production
// path takes it wherever the forward takes Winograd.
TEST_P(WinogradCases, WeightGradientMatchesPlainAndIm2col) {
  const ConvCase& c = GetParam();
  const kernels::Conv2dGeometry& g = c.g;
  const ConvInputs in = make_inputs(c, DType::F64, 63);
  const Tensor y = kernels::conv2d_forward(in.x, in.w, in.b, g, Conv2dAlgo::PLAIN);
  const Tensor gy = test::random_tensor(y.shape(), 64, DType::F64);
  const Tensor ref = kernels::conv2d_backward_weight(gy, in.x, in.w.shape(), g, Conv2dAlgo::PLAIN);
  const Tensor x32 = in.x.to(DType::F32), gy32 = gy.to(DType::F32);
  Tensor first;
  at_thread_counts([&] {
    EXPECT_LE(test::nmse(ref, kernels::conv2d_backward_weight(gy, in.x, in.w.shape(), g, Conv2dAlgo::WINOGRAD)),
              1e-24);
    const Tensor wino = kernels::conv2d_backward_weight(gy32, x32, in.w.shape(), g, Conv2dAlgo::WINOGRAD);
    const Tensor im2col = kernels::conv2d_backward_weight(gy32, x32, in.w.shape(), g, Conv2dAlgo::IM2COL);
    const std::vector<double> r = ref.to_vector(), wv = wino.to(DType::F64).to_vector(),
                              iv = im2col.to(DType::F64).to_vector();
    double err_wino = 0, err_im2col = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      err_wino = std::max(err_wino, std::abs(wv[i] - r[i]));
      err_im2col = std::max(err_im2col, std::abs(iv[i] - r[i]));
    }
    EXPECT_LE(err_wino, 8 * err_im2col + 1e-6) << "im2col's largest error " << err_im2col;
    // The same bits at every thread count: the chunks do not depend on it and each sum runs in chunk order.
    if (!first.defined()) first = wino;
    EXPECT_ALL_CLOSE(first, wino, 0, 0);
    const int64_t tiles = ((y.size(2) + 1) / 2) * ((y.size(3) + 1) / 2);
    EXPECT_ALL_CLOSE(kernels::conv2d_backward_weight(gy32, x32, in.w.shape(), g),
                     tiles >= 64 && kernels::conv2d_cpu_winograd() ? wino : im2col, 0, 0);
  });
}

// The table's cases fit the weight gradient's tiles in one chunk; 64 channels make chunks of 512 tiles, so these
// 2 x 24 x 25 tiles take three, the last one partial, and a tile row crosses a chunk boundary.
TEST(Conv2dWinograd, WeightGradientOverSeveralChunks) {
  const Conv2dGeometry g{1, 1, 1, 1, 1, 1};
  const Tensor x = test::random_tensor({2, 64, 48, 50}, 81, DType::F64), w = test::random_tensor({64, 64, 3, 3}, 82);
  const Tensor gy = test::random_tensor({2, 64, 48, 50}, 83, DType::F64);
  const Tensor ref = kernels::conv2d_backward_weight(gy, x, w.shape(), g, Conv2dAlgo::PLAIN);
  EXPECT_LE(test::nmse(ref, kernels::conv2d_backward_weight(gy, x, w.shape(), g, Conv2dAlgo::WINOGRAD)), 1e-24);
  const Tensor x32 = x.to(DType::F32), gy32 = gy.to(DType::F32);
  Tensor first;
  at_thread_counts([&] {
    const Tensor dw = kernels::conv2d_backward_weight(gy32, x32, w.shape(), g, Conv2dAlgo::WINOGRAD);
    EXPECT_LE(test::nmse(ref, dw.to(DType::F64)), 1e-10);
    if (!first.defined()) first = dw;
    EXPECT_ALL_CLOSE(first, dw, 0, 0);
  });
}

// An image's Winograd result does not depend on the batch around it or the thread count (data-parallel ranks,
// which see half a batch, must compute what one process computes): the same bits.
TEST(Conv2dWinograd, AnImageDoesNotDependOnTheBatchOrThreads) {
  if (cpu::gemm_backend() == cpu::GemmBackend::OPENBLAS)
    GTEST_SKIP() << "FG_CPU_GEMM=openblas: OpenBLAS's sgemm blocks by the column count, so an image's bits follow the "
                    "batch around it; filmgrad's own GEMM (the default) keeps them";
  const Conv2dGeometry g{1, 1, 1, 1, 1, 1};
  const Tensor x = test::random_tensor({4, 16, 32, 32}, 71, DType::F32), w = test::random_tensor({24, 16, 3, 3}, 72, DType::F32);
  const Tensor gy = test::random_tensor({4, 24, 32, 32}, 73, DType::F32);
  const Tensor whole = kernels::conv2d_forward(x, w, Tensor(), g, Conv2dAlgo::WINOGRAD);
  const Tensor dwhole = kernels::conv2d_backward_input(gy, w, x.shape(), g, Conv2dAlgo::WINOGRAD);
  at_thread_counts([&] {
    for (int64_t n0 : {0, 2}) {
      const Tensor half = kernels::conv2d_forward(x.slice(0, n0, n0 + 2), w, Tensor(), g, Conv2dAlgo::WINOGRAD);
      EXPECT_ALL_CLOSE(whole.slice(0, n0, n0 + 2), half, 0, 0);
      const Tensor dhalf = kernels::conv2d_backward_input(gy.slice(0, n0, n0 + 2), w, {2, 16, 32, 32}, g,
                                                          Conv2dAlgo::WINOGRAD);
      EXPECT_ALL_CLOSE(dwhole.slice(0, n0, n0 + 2), dhalf, 0, 0);
    }
  });
}

TEST_P(ConvCases, BiasGradientIsTheSumOfGradOut) {
  const ConvCase& c = GetParam();
  const ConvInputs in = make_inputs(c, DType::F64, 41);
  const Tensor y = kernels::conv2d_forward(in.x, in.w, in.b, c.g);
  const Tensor gy = test::random_tensor(y.shape(), 42, DType::F64);
  const std::vector<double> g = gy.to_vector();
  const int64_t O = y.size(1), P = y.size(2) * y.size(3);
  std::vector<double> ref(size_t(O), 0.0);
  for (int64_t n = 0; n < y.size(0); ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t p = 0; p < P; ++p) ref[size_t(o)] += g[size_t((n * O + o) * P + p)];
  EXPECT_ALL_CLOSE(Tensor::from_vector(ref, {O}, DType::F64), kernels::conv2d_backward_bias(gy), 1e-12, 1e-12);
  EXPECT_ALL_CLOSE(Tensor::from_vector(ref, {O}, DType::F64), kernels::conv2d_backward_bias(gy.to(DType::F32)), 1e-5,
                   1e-5);
}

INSTANTIATE_TEST_SUITE_P(Table, ConvCases, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });
INSTANTIATE_TEST_SUITE_P(Table, WinogradCases, ::testing::ValuesIn(winograd_cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

class BigConvCases : public ::testing::TestWithParam<ConvCase> {};

TEST_P(BigConvCases, GemmMatchesPlainF64) {
  const ConvCase& c = GetParam();
  const ConvInputs in = make_inputs(c, DType::F64, 51);
  const Tensor y = kernels::conv2d_forward(in.x, in.w, in.b, c.g, Conv2dAlgo::PLAIN);
  const Tensor gy = test::random_tensor(y.shape(), 52, DType::F64);
  EXPECT_LE(test::nmse(y, kernels::conv2d_forward(in.x, in.w, in.b, c.g)), 1e-10);
  EXPECT_LE(test::nmse(kernels::conv2d_backward_input(gy, in.w, in.x.shape(), c.g, Conv2dAlgo::PLAIN),
                       kernels::conv2d_backward_input(gy, in.w, in.x.shape(), c.g)),
            1e-10);
  EXPECT_LE(test::nmse(kernels::conv2d_backward_weight(gy, in.x, in.w.shape(), c.g, Conv2dAlgo::PLAIN),
                       kernels::conv2d_backward_weight(gy, in.x, in.w.shape(), c.g)),
            1e-10);
}

// f32 takes the AVX-512 row copies, whose long runs (OW = 70 here: whole vectors plus a masked tail) only these
// sizes reach.
TEST_P(BigConvCases, GemmMatchesPlainF32) {
  const ConvCase& c = GetParam();
  const ConvInputs in = make_inputs(c, DType::F32, 53);
  const Tensor y = kernels::conv2d_forward(in.x, in.w, in.b, c.g, Conv2dAlgo::PLAIN);
  const Tensor gy = test::random_tensor(y.shape(), 54, DType::F32);
  EXPECT_ALL_CLOSE(y, kernels::conv2d_forward(in.x, in.w, in.b, c.g), 1e-5, 1e-4);
  EXPECT_ALL_CLOSE(kernels::conv2d_backward_input(gy, in.w, in.x.shape(), c.g, Conv2dAlgo::PLAIN),
                   kernels::conv2d_backward_input(gy, in.w, in.x.shape(), c.g), 1e-5, 1e-4);
  // dw sums N*OH*OW = 9800 .. 1.07e6 products. The plain loop adds them one by one in f32, whose rounding error
  // grows with the count (about 1e-5 relative here, so NMSE ~1e-10 against the blocked BLAS sum): 1e-8 allows it.
  EXPECT_LE(test::nmse(kernels::conv2d_backward_weight(gy, in.x, in.w.shape(), c.g, Conv2dAlgo::PLAIN),
                       kernels::conv2d_backward_weight(gy, in.x, in.w.shape(), c.g)),
            1e-8);
}

INSTANTIATE_TEST_SUITE_P(Table, BigConvCases, ::testing::ValuesIn(big_cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

TEST(Conv2dKernels, EmptyBatch) {
  // PyTorch accepts N = 0: empty outputs, and zero weight and bias gradients.
  const Tensor x = Tensor::zeros({0, 2, 5, 5}), w = Tensor::ones({3, 2, 3, 3});
  const Conv2dGeometry g{2, 2, 1, 1, 1, 1};
  for (Conv2dAlgo algo : {Conv2dAlgo::PLAIN, Conv2dAlgo::GEMM}) {
    const Tensor y = kernels::conv2d_forward(x, w, Tensor::ones({3}), g, algo);
    EXPECT_EQ(y.shape(), (Shape{0, 3, 3, 3}));
    EXPECT_EQ(kernels::conv2d_backward_input(y, w, x.shape(), g, algo).shape(), x.shape());
    const Tensor dw = kernels::conv2d_backward_weight(y, x, w.shape(), g, algo);
    EXPECT_EQ(dw.shape(), w.shape());
    EXPECT_EQ(dw.to_vector(), std::vector<double>(size_t(w.numel()), 0.0));
  }
  EXPECT_EQ(kernels::conv2d_backward_bias(Tensor::zeros({0, 3, 3, 3})).to_vector(), std::vector<double>(3, 0.0));
}

// ---- the autograd ops ----

Conv2dParams to_params(const Conv2dGeometry& g) {
  return {g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h, g.dilation_w};
}

TEST(Conv2dOp, ForwardMatchesNaiveFormula) {
  for (const ConvCase& c : cases()) {
    SCOPED_TRACE(c.name);
    const ConvInputs in = make_inputs(c, DType::F32, 61);
    const Variable y = conv2d(Variable(in.x), Variable(in.w), c.bias ? Variable(in.b) : Variable(), to_params(c.g));
    EXPECT_EQ(y.dtype(), DType::F32);
    EXPECT_ALL_CLOSE(naive_conv2d(in.x, in.w, in.b, c.g), y.data(), 1e-5, 1e-4);
  }
}

TEST(Conv2dOp, GradientsOfXWAndB) {
  // Small versions of the table's geometries: the checker differentiates every element numerically.
  const std::vector<ConvCase> grad_cases = {
      {"k3_s1_p1", 2, 2, 5, 4, 3, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      {"k1_s2", 2, 3, 5, 3, 2, 1, 1, geom(2, 2, 0, 0, 1, 1), true, true},
      {"k3_s2_d2_p3", 1, 2, 7, 6, 2, 3, 3, geom(2, 2, 3, 3, 2, 2), true, false},
      {"k4_s3_p1", 2, 1, 7, 8, 2, 4, 4, geom(3, 3, 1, 1, 1, 1), false, true},
      {"k7_s2_p3", 1, 1, 6, 5, 2, 7, 7, geom(2, 2, 3, 3, 1, 1), true, false},
      {"rect_mixed", 2, 2, 5, 7, 2, 3, 2, geom(1, 2, 0, 1, 2, 1), true, false},
  };
  for (const ConvCase& c : grad_cases) {
    SCOPED_TRACE(c.name);
    const ConvInputs in = make_inputs(c, DType::F64, 71);
    const Conv2dParams p = to_params(c.g);
    if (c.bias) {
      EXPECT_GRAD_OK([p](const std::vector<Variable>& v) { return conv2d(v[0], v[1], v[2], p); },
                     {in.x, in.w, in.b});
    } else {
      EXPECT_GRAD_OK([p](const std::vector<Variable>& v) { return conv2d(v[0], v[1], Variable(), p); },
                     {in.x, in.w});
    }
  }
}

TEST(Conv2dOp, OnlyRequestedGradientsAreComputed) {
  const Tensor x = test::random_tensor({2, 3, 5, 5}, 81, DType::F64);
  const Tensor w = test::random_tensor({4, 3, 3, 3}, 82, DType::F64);
  const Tensor b = test::random_tensor({4}, 83, DType::F64);
  const Variable vx(x, false), vw(w, true), vb(b, false);
  sum(conv2d(vx, vw, vb, Conv2dParams::square(1, 1))).backward();
  EXPECT_FALSE(vx.grad().defined());
  EXPECT_FALSE(vb.grad().defined());
  ASSERT_TRUE(vw.grad().defined());
  EXPECT_EQ(vw.grad().shape(), w.shape());
  // d(sum y)/dw[o, c, kh, kw] is the sum of the input pixels that tap meets, the same for every o.
  const Tensor expected = kernels::conv2d_backward_weight(Tensor::ones({2, 4, 5, 5}, DType::F64), x, w.shape(),
                                                          {1, 1, 1, 1, 1, 1}, Conv2dAlgo::PLAIN);
  EXPECT_ALL_CLOSE(expected, vw.grad(), 1e-12, 1e-12);
  // No input needs a gradient: the result is a plain leaf.
  EXPECT_TRUE(conv2d(vx, Variable(w), Variable(), {}).is_leaf());
}

// ---- conv1d ----

Tensor naive_conv1d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t pad, int64_t dil) {
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2), O = w.size(0), K = w.size(2);
  const int64_t OL = (L + 2 * pad - dil * (K - 1) - 1) / stride + 1;
  std::vector<double> y(size_t(N * O * OL));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < OL; ++i) {
        double s = b.defined() ? b.at({o}) : 0.0;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t k = 0; k < K; ++k) {
            const int64_t l = i * stride + k * dil - pad;
            if (l >= 0 && l < L) s += x.at({n, c, l}) * w.at({o, c, k});
          }
        y[size_t((n * O + o) * OL + i)] = s;
      }
  return Tensor::from_vector(y, {N, O, OL}, DType::F64);
}

struct Conv1dCase {
  int64_t N, C, L, O, K, stride, pad, dil;
  bool bias;
};

TEST(Conv1dOp, ForwardMatchesNaiveFormula) {
  const std::vector<Conv1dCase> table = {
      {1, 1, 1, 1, 1, 1, 0, 1, false}, {3, 3, 11, 4, 3, 1, 1, 1, true}, {2, 5, 13, 3, 4, 2, 1, 1, true},
      {3, 1, 9, 2, 7, 3, 3, 1, false}, {1, 3, 10, 2, 3, 1, 2, 2, true}, {2, 2, 5, 3, 5, 1, 0, 1, true},
  };
  for (const Conv1dCase& c : table) {
    SCOPED_TRACE(::testing::Message() << "L " << c.L << " K " << c.K << " stride " << c.stride << " pad " << c.pad
                                      << " dilation " << c.dil);
    const Tensor x = test::random_tensor({c.N, c.C, c.L}, 91, DType::F64);
    const Tensor w = test::random_tensor({c.O, c.C, c.K}, 92, DType::F64);
    const Tensor b = c.bias ? test::random_tensor({c.O}, 93, DType::F64) : Tensor();
    const Variable y = conv1d(Variable(x), Variable(w), c.bias ? Variable(b) : Variable(), c.stride, c.pad, c.dil);
    EXPECT_ALL_CLOSE(naive_conv1d(x, w, b, c.stride, c.pad, c.dil), y.data(), 1e-12, 1e-12);
  }
}

TEST(Conv1dOp, ForwardOfAStridedView) {
  const Tensor x = test::random_tensor({7, 3, 2}, 94, DType::F64).permute({2, 1, 0});  // (2, 3, 7), not contiguous
  const Tensor w = test::random_tensor({4, 3, 3}, 95, DType::F64);
  const Variable y = conv1d(Variable(x), Variable(w), Variable(), 2, 1, 1);
  EXPECT_ALL_CLOSE(naive_conv1d(x, w, Tensor(), 2, 1, 1), y.data(), 1e-12, 1e-12);
}

TEST(Conv1dOp, GradientsOfXWAndB) {
  const Tensor x = test::random_tensor({2, 3, 9}, 96, DType::F64);
  const Tensor w = test::random_tensor({2, 3, 3}, 97, DType::F64);
  const Tensor b = test::random_tensor({2}, 98, DType::F64);
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return conv1d(v[0], v[1], v[2], 2, 1, 2); }, {x, w, b});
  EXPECT_GRAD_OK([](const std::vector<Variable>& v) { return conv1d(v[0], v[1], Variable(), 1, 0, 1); }, {x, w});
}

// ---- errors a user can cause ----

TEST(Conv2dErrors, ChannelMismatch) {
  const Variable x(Tensor::zeros({1, 3, 5, 5})), w(Tensor::zeros({2, 4, 3, 3}));
  EXPECT_THROW(conv2d(x, w, Variable()), Error);
  EXPECT_THROW(kernels::conv2d_forward(x.data(), w.data(), Tensor(), {}), Error);
  EXPECT_THROW(conv1d(Variable(Tensor::zeros({1, 3, 5})), Variable(Tensor::zeros({2, 4, 3})), Variable()), Error);
}

TEST(Conv2dErrors, InputSmallerThanTheDilatedKernel) {
  const Variable x(Tensor::zeros({1, 1, 4, 9})), w(Tensor::zeros({1, 1, 3, 3}));
  EXPECT_NO_THROW(conv2d(x, w, Variable(), Conv2dParams::square(1, 0, 1)));
  // Dilation 2 makes the 3x3 kernel span 5 rows; the input has 4.
  EXPECT_THROW(conv2d(x, w, Variable(), Conv2dParams::square(1, 0, 2)), Error);
  // Padding 1 makes room again.
  EXPECT_NO_THROW(conv2d(x, w, Variable(), Conv2dParams::square(1, 1, 2)));
  EXPECT_THROW(conv1d(Variable(Tensor::zeros({1, 1, 4})), Variable(Tensor::zeros({1, 1, 3})), Variable(), 1, 0, 2),
               Error);
  try {
    conv2d(x, w, Variable(), Conv2dParams::square(1, 0, 2));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("smaller than the dilated kernel"), std::string::npos) << e.what();
  }
}

TEST(Conv2dErrors, WinogradOnAShapeItDoesNotTake) {
  const Tensor x = Tensor::zeros({1, 16, 8, 8}), w = Tensor::zeros({16, 16, 3, 3});
  const std::string err = test::error_of(
      [&] { kernels::conv2d_forward(x, w, Tensor(), Conv2dGeometry{2, 2, 1, 1, 1, 1}, Conv2dAlgo::WINOGRAD); });
  EXPECT_NE(err.find("Winograd F(2x2, 3x3) needs a 3x3 kernel, stride 1"), std::string::npos) << err;
}

TEST(Conv2dErrors, WrongDtypes) {
  const Tensor x = Tensor::zeros({1, 2, 5, 5}, DType::F32);
  EXPECT_THROW(conv2d(Variable(x), Variable(Tensor::zeros({1, 2, 3, 3}, DType::F64)), Variable()), Error);
  EXPECT_THROW(conv2d(Variable(x), Variable(Tensor::zeros({1, 2, 3, 3})), Variable(Tensor::zeros({1}, DType::F64))),
               Error);
  EXPECT_THROW(conv2d(Variable(Tensor::zeros({1, 2, 5, 5}, DType::I32)),
                      Variable(Tensor::zeros({1, 2, 3, 3}, DType::I32)), Variable()),
               Error);
}

TEST(Conv2dErrors, WrongShapesAndGeometry) {
  const Variable x(Tensor::zeros({1, 2, 5, 5})), w(Tensor::zeros({3, 2, 3, 3}));
  EXPECT_THROW(conv2d(Variable(Tensor::zeros({2, 5, 5})), w, Variable()), Error);  // no batch dim
  EXPECT_THROW(conv2d(x, Variable(Tensor::zeros({3, 2, 3})), Variable()), Error);
  EXPECT_THROW(conv2d(x, w, Variable(Tensor::zeros({2}))), Error);  // bias for 2 outputs, w has 3
  EXPECT_THROW(conv2d(x, w, Variable(), Conv2dParams::square(0, 0)), Error);
  EXPECT_THROW(conv2d(x, w, Variable(), Conv2dParams::square(1, -1)), Error);
  EXPECT_THROW(conv2d(x, w, Variable(), Conv2dParams::square(1, 0, 0)), Error);
  EXPECT_THROW(kernels::conv2d_backward_input(Tensor::zeros({1, 3, 4, 4}), w.data(), {1, 2, 5, 5}, {}), Error);
  EXPECT_THROW(conv1d(Variable(Tensor::zeros({1, 2, 5})), Variable(Tensor::zeros({3, 2, 3})), Variable(), 0), Error);
}

}  // namespace
}  // namespace fg
