// CUDA conv2d against the CPU reference, ggml test-backend-ops style: every hand-written version (direct,
// implicit_gemm_f32, wmma - the tiled ones with automatic, BIG/1-split and SMALL/3-split tunings, so both tile sizes
// and the split-K reduction run on every case) and the cuDNN twin, in all directions (forward with and without bias,
// backward-input, backward-weight, bias), over a case table (sizes 1, odd sizes, channel counts that are and are not
// multiples of 8, strides 1-3, dilation 2, padding larger than the image, 1x1 and 7x7/2, strided input views) and the
// networks' real layer shapes at batch 2. Every output is written into a buffer with sentinel bytes on both sides.
// Tolerances (NMSE against the CPU result): f32 <= 1e-7; f16/bf16 against the CPU f32 result on the same rounded
// inputs: the products are exact and the f32 sum is rounded once, which gives NMSE ~ u^2/3 (u = 2^-11 for f16,
// 2^-8 for bf16), so f16 <= 1e-6 and bf16 <= 2e-5. cuDNN's 16-bit algorithms may round intermediates too
// (Winograd/FFT transforms), so its 16-bit limits are 4x looser. f64 (direct kernel) <= 1e-20.
// Skipped, with the reason, without a GPU or without CUDA.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"
#ifdef FG_WITH_CUDA
#include "kernels/backend.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/vendor/cudnn_conv2d.h"
#endif

namespace fg {
namespace {

#ifdef FG_WITH_CUDA

using cuda::Conv2dKernel;
using cuda::GemmTile;
using cuda::GemmTuning;
using kernels::Conv2dGeometry;

struct ConvCase {
  const char* name;
  int64_t N, C, H, W, O, KH, KW;
  Conv2dGeometry g;
  bool bias;
  bool strided_views;  // x a permuted view, w a sliced view (on the device)
};
void PrintTo(const ConvCase& c, std::ostream* os) {
  *os << c.name;
}

Conv2dGeometry geom(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  return {sh, sw, ph, pw, dh, dw};
}

const std::vector<ConvCase>& cases() {
  static const std::vector<ConvCase> table = {
      {"ones", 1, 1, 1, 1, 1, 1, 1, geom(1, 1, 0, 0, 1, 1), true, false},
      {"k1_s1_p0", 3, 5, 5, 7, 4, 1, 1, geom(1, 1, 0, 0, 1, 1), true, false},
      {"k1_s2_p0", 3, 3, 5, 7, 2, 1, 1, geom(2, 2, 0, 0, 1, 1), false, false},
      {"k1_s1_p1_views", 1, 3, 4, 3, 5, 1, 1, geom(1, 1, 1, 1, 1, 1), true, true},
      {"k3_s1_p1", 3, 3, 5, 7, 4, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      {"k3_s2_p1", 1, 5, 7, 5, 3, 3, 3, geom(2, 2, 1, 1, 1, 1), false, false},
      {"k3_s3_p0", 3, 1, 11, 10, 2, 3, 3, geom(3, 3, 0, 0, 1, 1), true, false},
      {"k3_d2_p2", 1, 3, 9, 8, 4, 3, 3, geom(1, 1, 2, 2, 2, 2), true, false},
      {"k3_d2_p3_s2_views", 3, 5, 7, 9, 2, 3, 3, geom(2, 2, 3, 3, 2, 2), false, true},
      {"k4_s2_p1", 1, 1, 8, 9, 2, 4, 4, geom(2, 2, 1, 1, 1, 1), true, false},
      {"k7_s2_p3", 3, 3, 13, 11, 4, 7, 7, geom(2, 2, 3, 3, 1, 1), false, false},
      {"k7_s1_p6_d2", 1, 1, 5, 7, 3, 7, 7, geom(1, 1, 6, 6, 2, 2), true, false},
      {"k7_s3_p0_tight", 1, 3, 7, 7, 2, 7, 7, geom(3, 3, 0, 0, 1, 1), true, false},
      {"rect_k3x1_mixed_views", 3, 3, 5, 7, 2, 3, 1, geom(2, 1, 0, 1, 1, 2), true, true},
      {"rect_k1x4_mixed", 1, 5, 6, 9, 3, 1, 4, geom(1, 3, 3, 0, 2, 1), false, false},
      {"pad_bigger_than_image", 3, 1, 1, 2, 2, 3, 3, geom(1, 1, 3, 3, 1, 1), true, false},
      {"tiles_not_multiples", 2, 37, 23, 19, 70, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      {"channels_130_to_129", 1, 130, 9, 11, 129, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      // The networks' layers (SPEC.md) at batch 2 and 64 px input.
      {"r34_conv1", 2, 3, 64, 64, 64, 7, 7, geom(2, 2, 3, 3, 1, 1), false, false},
      {"r34_layer1", 2, 64, 16, 16, 64, 3, 3, geom(1, 1, 1, 1, 1, 1), false, false},
      {"r34_layer2_0_conv1", 2, 64, 16, 16, 128, 3, 3, geom(2, 2, 1, 1, 1, 1), false, false},
      {"r34_layer2_0_downsample", 2, 64, 16, 16, 128, 1, 1, geom(2, 2, 0, 0, 1, 1), false, false},
      {"r34_layer4", 2, 512, 2, 2, 512, 3, 3, geom(1, 1, 1, 1, 1, 1), false, false},
      {"unet_bridge_conv1", 2, 512, 2, 2, 1024, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      {"unet_block0_shuf", 2, 512, 2, 2, 1024, 1, 1, geom(1, 1, 0, 0, 1, 1), true, false},
      {"unet_block3_conv1", 2, 192, 32, 32, 96, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      {"unet_res", 2, 99, 64, 64, 99, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      {"unet_head", 2, 99, 64, 64, 3, 1, 1, geom(1, 1, 0, 0, 1, 1), true, false},
      {"xc_block0_conv1", 2, 3, 64, 64, 64, 3, 3, geom(1, 1, 1, 1, 1, 1), true, false},
      {"xc_dilated", 2, 512, 4, 4, 512, 3, 3, geom(1, 1, 2, 2, 2, 2), true, false},
      {"xc_out", 2, 32, 64, 64, 1, 1, 1, geom(1, 1, 0, 0, 1, 1), true, false},
  };
  return table;
}

struct Version {
  std::string name;
  Conv2dKernel kernel;
  GemmTuning tuning;
  bool vendor;
};

// The hand-written versions that exist for dt, and the cuDNN twin when this build has it.
std::vector<Version> versions(DType dt) {
  std::vector<Version> v = {{"direct", Conv2dKernel::CONV_DIRECT, {}, false}};
  if (dt != DType::F64) {
    const Conv2dKernel tiled = dt == DType::F32 ? Conv2dKernel::CONV_IMPLICIT_GEMM_F32 : Conv2dKernel::CONV_WMMA;
    const std::string name = cuda::conv2d_kernel_name(tiled);
    v.push_back({name + "/auto", tiled, {}, false});
    v.push_back({name + "/big_split1", tiled, {GemmTile::BIG, 1}, false});
    v.push_back({name + "/small_split3", tiled, {GemmTile::SMALL, 3}, false});
  }
  if (vendor::cudnn_available()) v.push_back({"cudnn", Conv2dKernel::CONV_DEFAULT, {}, true});
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

// Host inputs of dtype dt (rounded from f32 draws) and their device copies (as views when the case asks).
struct Inputs {
  Tensor x, w, b, dy;      // host, dtype dt
  Tensor xd, wd, bd, dyd;  // device
};

Inputs make_inputs(const ConvCase& c, DType dt) {
  Inputs in;
  in.x = test::random_tensor({c.N, c.C, c.H, c.W}, 101).to(dt);
  in.w = test::random_tensor({c.O, c.C, c.KH, c.KW}, 102).to(dt);
  if (c.bias) in.b = test::random_tensor({c.O}, 103).to(dt);
  const auto [OH, OW] = kernels::conv2d_output_size(c.H, c.W, c.KH, c.KW, c.g);
  in.dy = test::random_tensor({c.N, c.O, OH, OW}, 104).to(dt);
  const Device gpu = Device::cuda(0);
  if (c.strided_views) {
    in.xd = in.x.permute({0, 2, 1, 3}).contiguous().to(gpu).permute({0, 2, 1, 3});
    Tensor wide = Tensor::zeros({c.O, c.C, c.KH, 2 * c.KW}, dt);
    wide.slice(3, 0, 2 * c.KW, 2).copy_(in.w);
    in.wd = wide.to(gpu).slice(3, 0, 2 * c.KW, 2);
  } else {
    in.xd = in.x.to(gpu);
    in.wd = in.w.to(gpu);
  }
  if (c.bias) in.bd = in.b.to(gpu);
  in.dyd = in.dy.to(gpu);
  return in;
}

// The CPU references, in f32 (f64 for f64) on the rounded inputs.
struct References {
  Tensor y, dx, dw, db;
};
References references(const ConvCase& c, const Inputs& in) {
  const DType rt = in.x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  const Tensor x = in.x.to(rt), w = in.w.to(rt), dy = in.dy.to(rt), b = c.bias ? in.b.to(rt) : Tensor();
  References r;
  r.y = kernels::conv2d_forward(x, w, b, c.g);
  r.dx = kernels::conv2d_backward_input(dy, w, x.shape(), c.g);
  r.dw = kernels::conv2d_backward_weight(dy, x, w.shape(), c.g);
  r.db = kernels::conv2d_backward_bias(dy);
  return r;
}

void check_all_directions(const ConvCase& c, DType dt) {
  const Inputs in = make_inputs(c, dt);
  const References ref = references(c, in);
  for (const Version& v : versions(dt)) {
    SCOPED_TRACE(std::string(dtype_name(dt)) + " " + v.name);
    const double tol = tolerance(dt, v.vendor);
    test::GuardedTensor y = test::empty_guarded(ref.y.shape(), dt);
    test::GuardedTensor dx = test::empty_guarded(ref.dx.shape(), dt);
    test::GuardedTensor dw = test::empty_guarded(ref.dw.shape(), dt);
    if (v.vendor) {
      vendor::conv2d_forward_into(y.tensor, in.xd, in.wd, in.bd, c.g);
      vendor::conv2d_backward_input_into(dx.tensor, in.dyd, in.wd, c.g);
      vendor::conv2d_backward_weight_into(dw.tensor, in.dyd, in.xd, c.g);
    } else {
      cuda::conv2d_forward_into(y.tensor, in.xd, in.wd, in.bd, c.g, v.kernel, v.tuning);
      cuda::conv2d_backward_input_into(dx.tensor, in.dyd, in.wd, c.g, v.kernel, v.tuning);
      cuda::conv2d_backward_weight_into(dw.tensor, in.dyd, in.xd, c.g, v.kernel, v.tuning);
    }
    EXPECT_TRUE(test::sentinels_intact(y)) << "forward";
    EXPECT_TRUE(test::sentinels_intact(dx)) << "backward-input";
    EXPECT_TRUE(test::sentinels_intact(dw)) << "backward-weight";
    EXPECT_TRUE(test::nmse_within(ref.y, y.tensor, tol)) << "forward";
    EXPECT_TRUE(test::nmse_within(ref.dx, dx.tensor, tol)) << "backward-input";
    EXPECT_TRUE(test::nmse_within(ref.dw, dw.tensor, tol)) << "backward-weight";
  }
  test::GuardedTensor db = test::empty_guarded(ref.db.shape(), dt);
  cuda::conv2d_backward_bias_into(db.tensor, in.dyd);
  EXPECT_TRUE(test::sentinels_intact(db)) << "bias";
  EXPECT_TRUE(test::nmse_within(ref.db, db.tensor, tolerance(dt, false))) << "bias " << dtype_name(dt);
}

class CudaConv2d : public ::testing::TestWithParam<ConvCase> {};

TEST_P(CudaConv2d, F32MatchesTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_all_directions(GetParam(), DType::F32);
}

TEST_P(CudaConv2d, Bf16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_all_directions(GetParam(), DType::BF16);
}

TEST_P(CudaConv2d, F16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_all_directions(GetParam(), DType::F16);
}

INSTANTIATE_TEST_SUITE_P(Table, CudaConv2d, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

TEST(CudaConv2dF64, DirectMatchesTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (size_t i : {size_t(1), size_t(8), size_t(13), size_t(16)}) {
    SCOPED_TRACE(cases()[i].name);
    check_all_directions(cases()[i], DType::F64);
  }
}

// The entry points of kernels/conv2d.h dispatch CUDA tensors to the hand-written kernels, or to cuDNN when selected.
TEST(CudaConv2dDispatch, EntryPointsFollowTheBackendSwitch) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const ConvCase& c = cases()[4];
  const Inputs in = make_inputs(c, DType::F32);
  const References ref = references(c, in);
  const bool saved = kernels::use_vendor(kernels::OpFamily::CONV2D);
  kernels::set_vendor(kernels::OpFamily::CONV2D, false);
  EXPECT_TRUE(test::nmse_within(ref.y, kernels::conv2d_forward(in.xd, in.wd, in.bd, c.g)));
  EXPECT_TRUE(test::nmse_within(ref.dx, kernels::conv2d_backward_input(in.dyd, in.wd, in.x.shape(), c.g)));
  EXPECT_TRUE(test::nmse_within(ref.dw, kernels::conv2d_backward_weight(in.dyd, in.xd, in.w.shape(), c.g)));
  EXPECT_TRUE(test::nmse_within(ref.db, kernels::conv2d_backward_bias(in.dyd)));
  kernels::set_vendor(kernels::OpFamily::CONV2D, true);
  if (vendor::cudnn_available()) {
    EXPECT_TRUE(test::nmse_within(ref.y, kernels::conv2d_forward(in.xd, in.wd, in.bd, c.g)));
    EXPECT_TRUE(test::nmse_within(ref.dx, kernels::conv2d_backward_input(in.dyd, in.wd, in.x.shape(), c.g)));
    EXPECT_TRUE(test::nmse_within(ref.dw, kernels::conv2d_backward_weight(in.dyd, in.xd, in.w.shape(), c.g)));
  } else {
    const std::string msg = test::error_of([&] { kernels::conv2d_forward(in.xd, in.wd, in.bd, c.g); });
    EXPECT_NE(msg.find("without cuDNN"), std::string::npos) << msg;
  }
  kernels::set_vendor(kernels::OpFamily::CONV2D, saved);
}

TEST(CudaConv2dErrors, WrongVersionOrMixedOperandsAreClearErrors) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Tensor x = test::random_tensor({1, 2, 5, 5}, 1).to(Device::cuda(0));
  const Tensor w = test::random_tensor({3, 2, 3, 3}, 2).to(Device::cuda(0));
  const Conv2dGeometry g{};
  std::string msg = test::error_of([&] { cuda::conv2d_forward(x, w, Tensor(), g, Conv2dKernel::CONV_WMMA); });
  EXPECT_NE(msg.find("f16 and bf16"), std::string::npos) << msg;
  msg = test::error_of([&] {
    cuda::conv2d_forward(x.to(DType::BF16), w.to(DType::BF16), Tensor(), g, Conv2dKernel::CONV_IMPLICIT_GEMM_F32);
  });
  EXPECT_NE(msg.find("computes f32"), std::string::npos) << msg;
  msg = test::error_of([&] { cuda::conv2d_forward(x, w.to(DType::BF16), Tensor(), g); });
  EXPECT_NE(msg.find("one dtype"), std::string::npos) << msg;
  msg = test::error_of([&] { cuda::conv2d_forward(x, w.to(Device::cpu()), Tensor(), g); });
  EXPECT_NE(msg.find("cpu"), std::string::npos) << msg;
  msg = test::error_of([&] {
    cuda::conv2d_forward(x, test::random_tensor({3, 4, 3, 3}, 3).to(Device::cuda(0)), Tensor(), g);
  });
  EXPECT_NE(msg.find("channels"), std::string::npos) << msg;
}

// An output with no input pixels under any window still gets its bias, and an empty batch is fine.
TEST(CudaConv2dEdges, EmptyBatchAndBiasOnlyOutputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Device gpu = Device::cuda(0);
  const Tensor w = test::random_tensor({4, 3, 3, 3}, 5).to(gpu), b = test::random_tensor({4}, 6).to(gpu);
  const Tensor x0 = Tensor::empty({0, 3, 5, 5}, DType::F32, gpu);
  EXPECT_EQ(cuda::conv2d_forward(x0, w, b, Conv2dGeometry{}).shape(), Shape({0, 4, 3, 3}));
  const Tensor dy0 = Tensor::empty({0, 4, 3, 3}, DType::F32, gpu);
  const Tensor dw0 = cuda::conv2d_backward_weight(dy0, x0, w.shape(), Conv2dGeometry{});
  for (double v : dw0.to(Device::cpu()).to_vector()) EXPECT_EQ(v, 0.0);
}

#else  // !FG_WITH_CUDA

TEST(CudaConv2d, Skipped) {
  GTEST_SKIP() << test::gpu_skip_reason();
}

#endif  // FG_WITH_CUDA

}  // namespace
}  // namespace fg
