// CUDA matmul, bmm, linear and the Gram matrix (forward and backward) against the CPU reference: every hand-written
// version (naive, tiled_f32 / wmma with automatic, BIG/1-split and SMALL/3-split tunings) and the cuBLAS twin, over
// a case table (sizes 1, odd sizes, sizes not a multiple of any tile or vector, every transpose pair, transposed,
// strided, misaligned and batch-broadcast views, empty K, bias) and the VGG16 feature-map shapes of the style loss.
// Every output is written into a buffer with sentinel bytes on both sides. Tolerances (NMSE against the CPU): f32
// <= 1e-7; f16/bf16 against the CPU f32 result on the same rounded inputs: exact products, one f32 sum, one rounding,
// so NMSE ~ u^2/3: f16 <= 1e-6, bf16 <= 2e-5 (the Gram backward rounds G' + G'^T to the element type first, as the
// CPU does in its own type; still inside these). cuBLAS's 16-bit Gram backward rounds twice (two products), so its
// 16-bit limits are 4x looser. f64 (naive kernel and cuBLAS) <= 1e-20. Skipped without a GPU or without CUDA.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/gram.h"
#include "kernels/matmul.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"
#ifdef FG_WITH_CUDA
#include "kernels/backend.h"
#include "kernels/cuda/matmul.h"
#include "kernels/vendor/cublas_matmul.h"
#endif

namespace fg {
namespace {

#ifdef FG_WITH_CUDA

using cuda::GemmTile;
using cuda::GemmTuning;
using cuda::MatmulKernel;

struct Version {
  std::string name;
  MatmulKernel kernel;
  GemmTuning tuning;
  bool vendor;
};

std::vector<Version> versions(DType dt) {
  std::vector<Version> v = {{"naive", MatmulKernel::MATMUL_NAIVE, {}, false}};
  if (dt != DType::F64) {
    const MatmulKernel tiled = dt == DType::F32 ? MatmulKernel::MATMUL_TILED_F32 : MatmulKernel::MATMUL_WMMA;
    const std::string name = cuda::matmul_kernel_name(tiled);
    v.push_back({name + "/auto", tiled, {}, false});
    v.push_back({name + "/big_split1", tiled, {GemmTile::BIG, 1}, false});
    v.push_back({name + "/small_split3", tiled, {GemmTile::SMALL, 3}, false});
  }
  v.push_back({"cublas", MatmulKernel::MATMUL_DEFAULT, {}, true});
  return v;
}

double tolerance(DType dt, bool vendor) {
  switch (dt) {
    case DType::F64:
      return 1e-20;
    case DType::F32:
      return 1e-7;
    case DType::F16:
      return vendor ? 4e-6 : 1e-6;
    default:
      return vendor ? 8e-5 : 2e-5;  // bf16
  }
}

DType reference_type(DType dt) {
  return dt == DType::F64 ? DType::F64 : DType::F32;
}

enum class Layout { CONTIGUOUS, TRANSPOSED, STEP2, OFFSET, BROADCAST };

// A (batch, rows, cols) operand: the host copy (dtype dt) and a device view with the same strides pattern.
struct Operand {
  Tensor host, device;
};

Tensor apply_layout(const Tensor& base, Layout layout, int64_t batch, int64_t rows, int64_t cols) {
  switch (layout) {
    case Layout::CONTIGUOUS:
      return base;
    case Layout::TRANSPOSED:
      return base.transpose(1, 2);
    case Layout::STEP2:
      return base.slice(2, 0, 2 * cols, 2);
    case Layout::OFFSET:
      return base.slice(1, 1, rows * cols + 1).view({batch, rows, cols});
    case Layout::BROADCAST:
      return base.expand({batch, rows, cols});
  }
  return base;
}

Operand make_operand(int64_t batch, int64_t rows, int64_t cols, Layout layout, uint64_t seed, DType dt) {
  Shape base_shape;
  switch (layout) {
    case Layout::CONTIGUOUS:
      base_shape = {batch, rows, cols};
      break;
    case Layout::TRANSPOSED:
      base_shape = {batch, cols, rows};
      break;
    case Layout::STEP2:
      base_shape = {batch, rows, 2 * cols};
      break;
    case Layout::OFFSET:
      base_shape = {batch, rows * cols + 1};
      break;
    case Layout::BROADCAST:
      base_shape = {1, rows, cols};
      break;
  }
  const Tensor base = test::random_tensor(base_shape, seed).to(dt);
  return {apply_layout(base, layout, batch, rows, cols),
          apply_layout(base.to(Device::cuda(0)), layout, batch, rows, cols)};
}

struct ProductCase {
  const char* name;
  int64_t batch, M, N, K;
  bool trans_a, trans_b;
  Layout a, b;
};
void PrintTo(const ProductCase& c, std::ostream* os) {
  *os << c.name;
}

const std::vector<ProductCase>& product_cases() {
  static const std::vector<ProductCase> table = {
      {"ones", 1, 1, 1, 1, false, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
      {"nn_odd", 2, 37, 19, 53, false, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
      {"nn_tiles_not_multiples", 1, 130, 67, 129, false, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
      {"nt", 2, 70, 90, 40, false, true, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
      {"tn", 3, 17, 21, 200, true, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
      {"tt", 1, 13, 11, 16, true, true, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
      {"a_transposed_view", 2, 64, 48, 32, false, false, Layout::TRANSPOSED, Layout::CONTIGUOUS},
      {"b_transposed_view", 2, 64, 48, 32, false, false, Layout::CONTIGUOUS, Layout::TRANSPOSED},
      {"step2_views", 2, 10, 12, 7, false, false, Layout::STEP2, Layout::STEP2},
      {"offset_views", 3, 8, 16, 24, false, false, Layout::OFFSET, Layout::OFFSET},
      {"broadcast_a", 4, 12, 8, 16, false, false, Layout::BROADCAST, Layout::CONTIGUOUS},
      {"k_odd_nt", 1, 8, 8, 13, false, true, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
      {"long_k_split", 1, 64, 64, 5000, false, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
      {"big_square", 1, 300, 260, 280, false, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
      {"attention_like", 4, 256, 256, 64, true, false, Layout::CONTIGUOUS, Layout::CONTIGUOUS},
  };
  return table;
}

class CudaBmm : public ::testing::TestWithParam<ProductCase> {};

void check_bmm(const ProductCase& c, DType dt) {
  const Operand a =
      c.trans_a ? make_operand(c.batch, c.K, c.M, c.a, 201, dt) : make_operand(c.batch, c.M, c.K, c.a, 201, dt);
  const Operand b =
      c.trans_b ? make_operand(c.batch, c.N, c.K, c.b, 202, dt) : make_operand(c.batch, c.K, c.N, c.b, 202, dt);
  const DType rt = reference_type(dt);
  const Tensor ref = kernels::bmm(a.host.to(rt), b.host.to(rt), c.trans_a, c.trans_b);
  for (const Version& v : versions(dt)) {
    SCOPED_TRACE(std::string(dtype_name(dt)) + " " + v.name);
    test::GuardedTensor out = test::empty_guarded(ref.shape(), dt);
    if (v.vendor)
      vendor::bmm_into(out.tensor, a.device, b.device, c.trans_a, c.trans_b);
    else
      cuda::bmm_into(out.tensor, a.device, b.device, c.trans_a, c.trans_b, v.kernel, v.tuning);
    EXPECT_TRUE(test::sentinels_intact(out));
    EXPECT_TRUE(test::nmse_within(ref, out.tensor, tolerance(dt, v.vendor)));
  }
}

TEST_P(CudaBmm, F32MatchesTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_bmm(GetParam(), DType::F32);
}
TEST_P(CudaBmm, Bf16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_bmm(GetParam(), DType::BF16);
}
TEST_P(CudaBmm, F16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_bmm(GetParam(), DType::F16);
}
TEST_P(CudaBmm, F64MatchesTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_bmm(GetParam(), DType::F64);
}

INSTANTIATE_TEST_SUITE_P(Table, CudaBmm, ::testing::ValuesIn(product_cases()),
                         [](const ::testing::TestParamInfo<ProductCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(CudaMatmul, TwoDimensionalProductsAndLinear) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    const Operand a = make_operand(1, 45, 70, Layout::CONTIGUOUS, 301, dt);
    const Operand b = make_operand(1, 33, 70, Layout::CONTIGUOUS, 302, dt);
    const Tensor bias = test::random_tensor({33}, 303).to(dt), bias_d = bias.to(Device::cuda(0));
    const Tensor a2 = a.host.select(0, 0), b2 = b.host.select(0, 0), ad = a.device.select(0, 0),
                 bd = b.device.select(0, 0);
    const DType rt = reference_type(dt);
    const Tensor mm_ref = kernels::matmul(a2.to(rt), b2.to(rt), false, true);
    const Tensor lin_ref = kernels::linear(a2.to(rt), b2.to(rt), bias.to(rt));
    for (const Version& v : versions(dt)) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + v.name);
      test::GuardedTensor mm = test::empty_guarded(mm_ref.shape(), dt), lin = test::empty_guarded(lin_ref.shape(), dt);
      if (v.vendor) {
        vendor::matmul_into(mm.tensor, ad, bd, false, true);
        vendor::linear_into(lin.tensor, ad, bd, bias_d);
      } else {
        cuda::matmul_into(mm.tensor, ad, bd, false, true, v.kernel, v.tuning);
        cuda::linear_into(lin.tensor, ad, bd, bias_d, v.kernel, v.tuning);
      }
      EXPECT_TRUE(test::sentinels_intact(mm));
      EXPECT_TRUE(test::sentinels_intact(lin));
      EXPECT_TRUE(test::nmse_within(mm_ref, mm.tensor, tolerance(dt, v.vendor))) << "matmul";
      EXPECT_TRUE(test::nmse_within(lin_ref, lin.tensor, tolerance(dt, v.vendor))) << "linear";
    }
  }
}

TEST(CudaMatmul, EmptyInnerDimensionGivesZerosAndBias) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Device gpu = Device::cuda(0);
  const Tensor a = Tensor::empty({4, 0}, DType::F32, gpu), b = Tensor::empty({0, 3}, DType::F32, gpu);
  const Tensor w = Tensor::empty({3, 0}, DType::F32, gpu), bias = test::random_tensor({3}, 9);
  for (const Version& v : versions(DType::F32)) {
    SCOPED_TRACE(v.name);
    const Tensor mm = v.vendor ? vendor::matmul(a, b) : cuda::matmul(a, b, false, false, v.kernel, v.tuning);
    for (double x : mm.to(Device::cpu()).to_vector()) EXPECT_EQ(x, 0.0);
    const Tensor lin =
        v.vendor ? vendor::linear(a, w, bias.to(gpu)) : cuda::linear(a, w, bias.to(gpu), v.kernel, v.tuning);
    const std::vector<double> got = lin.to(Device::cpu()).to_vector(), bv = bias.to_vector();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], bv[i % 3]);
  }
}

struct GramCase {
  const char* name;
  int64_t N, C, H, W;
};
void PrintTo(const GramCase& c, std::ostream* os) {
  *os << c.name;
}

// Odd sizes and the VGG16 feature maps of the style loss (SPEC.md: relu1_2 .. relu5_3) at 128 px, batch 2.
const std::vector<GramCase>& gram_cases() {
  static const std::vector<GramCase> table = {
      {"one", 1, 1, 1, 1},
      {"odd", 2, 5, 7, 9},
      {"c3", 3, 3, 4, 5},
      {"c130", 1, 130, 5, 7},
      {"vgg_relu1_2_128px", 2, 64, 128, 128},
      {"vgg_relu2_2_128px", 2, 128, 64, 64},
      {"vgg_relu3_3_128px", 2, 256, 32, 32},
      {"vgg_relu4_3_128px", 2, 512, 16, 16},
      {"vgg_relu5_3_128px", 2, 512, 8, 8},
  };
  return table;
}

class CudaGram : public ::testing::TestWithParam<GramCase> {};

void check_gram(const GramCase& c, DType dt) {
  const Tensor x = test::random_tensor({c.N, c.C, c.H, c.W}, 401).to(dt);
  // dX is G' X / (C*H*W): with G' in [-1, 1] its entries fall to ~1e-5 on the VGG shapes, where f16 is subnormal
  // and loses relative precision; a larger G' keeps every dtype in its normal range.
  const Tensor gy = test::random_tensor({c.N, c.C, c.C}, 402, DType::F32, -1000.0, 1000.0).to(dt);
  const Tensor xd = x.to(Device::cuda(0)), gyd = gy.to(Device::cuda(0));
  const DType rt = reference_type(dt);
  const Tensor g_ref = kernels::gram_matrix(x.to(rt));
  const Tensor dx_ref = kernels::gram_matrix_backward(gy.to(rt), x.to(rt));
  for (const Version& v : versions(dt)) {
    SCOPED_TRACE(std::string(dtype_name(dt)) + " " + v.name);
    test::GuardedTensor g = test::empty_guarded(g_ref.shape(), dt), dx = test::empty_guarded(dx_ref.shape(), dt);
    if (v.vendor) {
      vendor::gram_matrix_into(g.tensor, xd);
      vendor::gram_matrix_backward_into(dx.tensor, gyd, xd);
    } else {
      cuda::gram_matrix_into(g.tensor, xd, v.kernel, v.tuning);
      cuda::gram_matrix_backward_into(dx.tensor, gyd, xd, v.kernel, v.tuning);
    }
    EXPECT_TRUE(test::sentinels_intact(g)) << "forward";
    EXPECT_TRUE(test::sentinels_intact(dx)) << "backward";
    EXPECT_TRUE(test::nmse_within(g_ref, g.tensor, tolerance(dt, v.vendor))) << "forward";
    EXPECT_TRUE(test::nmse_within(dx_ref, dx.tensor, tolerance(dt, v.vendor))) << "backward";
    if (!v.vendor) {  // the mirrored store makes the hand-written Gram matrices exactly symmetric
      const std::vector<double> gv = g.tensor.to(Device::cpu()).to_vector();
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t i = 0; i < c.C; ++i)
          for (int64_t j = 0; j < i; ++j)
            ASSERT_EQ(gv[size_t((n * c.C + i) * c.C + j)], gv[size_t((n * c.C + j) * c.C + i)]);
    }
  }
}

TEST_P(CudaGram, F32MatchesTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_gram(GetParam(), DType::F32);
}
TEST_P(CudaGram, Bf16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_gram(GetParam(), DType::BF16);
}
TEST_P(CudaGram, F16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_gram(GetParam(), DType::F16);
}

INSTANTIATE_TEST_SUITE_P(Table, CudaGram, ::testing::ValuesIn(gram_cases()),
                         [](const ::testing::TestParamInfo<GramCase>& info) { return std::string(info.param.name); });

TEST(CudaGramEdges, EmptyImageGivesNaNAsOnTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Tensor x = Tensor::empty({2, 3, 0, 4}, DType::F32, Device::cuda(0));
  for (const Tensor& g : {cuda::gram_matrix(x), vendor::gram_matrix(x)})
    for (double v : g.to(Device::cpu()).to_vector()) EXPECT_TRUE(std::isnan(v));
}

// The entry points of kernels/matmul.h and kernels/gram.h follow the backend switch for CUDA tensors.
TEST(CudaMatmulDispatch, EntryPointsFollowTheBackendSwitch) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Operand a = make_operand(2, 20, 30, Layout::CONTIGUOUS, 501, DType::F32);
  const Operand b = make_operand(2, 30, 10, Layout::CONTIGUOUS, 502, DType::F32);
  const Tensor x = test::random_tensor({2, 6, 5, 5}, 503), xd = x.to(Device::cuda(0));
  const Tensor bmm_ref = kernels::bmm(a.host, b.host), gram_ref = kernels::gram_matrix(x);
  const bool saved_mm = kernels::use_vendor(kernels::OpFamily::MATMUL);
  const bool saved_gram = kernels::use_vendor(kernels::OpFamily::GRAM);
  for (bool vendor : {false, true}) {
    SCOPED_TRACE(vendor ? "cublas" : "hand-written");
    kernels::set_vendor(kernels::OpFamily::MATMUL, vendor);
    kernels::set_vendor(kernels::OpFamily::GRAM, vendor);
    EXPECT_TRUE(test::nmse_within(bmm_ref, kernels::bmm(a.device, b.device)));
    EXPECT_TRUE(test::nmse_within(bmm_ref.select(0, 1), kernels::matmul(a.device.select(0, 1), b.device.select(0, 1))));
    EXPECT_TRUE(test::nmse_within(gram_ref, kernels::gram_matrix(xd)));
  }
  kernels::set_vendor(kernels::OpFamily::MATMUL, saved_mm);
  kernels::set_vendor(kernels::OpFamily::GRAM, saved_gram);
}

TEST(CudaMatmulErrors, WrongVersionOrMixedOperandsAreClearErrors) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Tensor a = test::random_tensor({4, 5}, 1).to(Device::cuda(0)),
               b = test::random_tensor({5, 3}, 2).to(Device::cuda(0));
  std::string msg = test::error_of([&] { cuda::matmul(a, b, false, false, MatmulKernel::MATMUL_WMMA); });
  EXPECT_NE(msg.find("f16 and bf16"), std::string::npos) << msg;
  msg = test::error_of(
      [&] { cuda::matmul(a.to(DType::BF16), b.to(DType::BF16), false, false, MatmulKernel::MATMUL_TILED_F32); });
  EXPECT_NE(msg.find("computes f32"), std::string::npos) << msg;
  msg = test::error_of([&] { cuda::matmul(a, b.to(DType::F16)); });
  EXPECT_NE(msg.find("same dtype"), std::string::npos) << msg;
  msg = test::error_of([&] { cuda::matmul(a, a); });
  EXPECT_NE(msg.find("inner dimensions"), std::string::npos) << msg;
}

#else  // !FG_WITH_CUDA

TEST(CudaMatmul, Skipped) {
  GTEST_SKIP() << test::gpu_skip_reason();
}

#endif  // FG_WITH_CUDA

}  // namespace
}  // namespace fg
