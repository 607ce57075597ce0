// CUDA SSIM against the CPU reference (kernels/cpu/ssim.cpp), ggml test-backend-ops style: the fused kernels and the
// five-convolution baseline, forward (value, per-channel means, statistics) and backward (both gradients, and each
// alone), over the CPU test's case table (a single pixel, odd sizes, windows larger than the image, even windows,
// another sigma, a row image, permuted and step-2 views) plus images spanning several 32x32 tiles with partial edge
// tiles, windows that need more than 48 KiB of shared memory (15, 16, 31), and the networks' real uses: SSIM on RGB
// batches at 256 px (window 11) and the 5x5 SSIM on VGG16 features (Model 3). Every output sits between sentinel
// bytes. The backward is fed the CPU's statistics rounded to the tested dtype, on both sides, so it is checked on
// its own.
// Tolerances (NMSE against the CPU): f32 <= 1e-7 (the moments are filtered in f32, as pytorch-ssim's f32
// convolutions do; the variance E[x^2] - E[x]^2 then carries an absolute error near 1e-8, which the constant C2 =
// 9e-4 in the denominator keeps to a relative 1e-5 of a map value at worst); f64 <= 1e-18. f16/bf16 against the
// CPU's f32 result on the same rounded inputs: every output is rounded once to the dtype, f16 <= 1e-6, bf16 <= 5e-5.
// grad_out is what the backward really receives, dL/dSSIM (kernels/ssim.h: the mean's 1 / (N C OH OW) is applied
// inside, in double): -0.75 for f32 and f64; for f16 and bf16, -1 (loss = 1 - SSIM) times a loss scale chosen as
// nn/loss_scale.h's scaler settles on one: the largest power of two up to 2^15 (the scaler starts at 2^16, which
// is Inf in f16, and halves it) that keeps the largest gradient at or below 2^12, well inside f16's 65504. Without
// a scale the gradients of a 256 px batch sit near 1e-6, in f16's subnormal range, where rounding alone is a
// relative error of several percent; that is what loss scaling is for. (grad_out = N C OH OW, as this test once
// used, is 131072 to 524288 for the networks' shapes: Inf in f16, and every gradient NaN.)
// Skipped, with the reason, without a GPU or without CUDA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/ssim.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/ssim.h"
#endif

namespace fg {
namespace {

#ifdef FG_WITH_CUDA

using kernels::SsimGrads;
using kernels::SsimParams;
using kernels::SsimResult;
using kernels::cuda::SsimKernel;

enum class Layout { PLAIN, PERMUTED, SLICED };

struct SsimCase {
  const char* name;
  Shape shape;
  std::vector<int64_t> windows;
  double sigma;
  Layout layout;
};
void PrintTo(const SsimCase& c, std::ostream* os) {
  *os << c.name;
}

const std::vector<SsimCase>& cases() {
  static const std::vector<SsimCase> table = {
      {"pixel", {1, 1, 1, 1}, {1, 2, 3, 11}, 1.5, Layout::PLAIN},
      {"odd", {1, 2, 7, 9}, {1, 2, 3, 4, 5, 7, 11}, 1.5, Layout::PLAIN},
      {"window_larger_than_image", {1, 1, 3, 4}, {5, 6, 11}, 1.5, Layout::PLAIN},
      {"batch", {2, 3, 16, 13}, {5, 11}, 1.5, Layout::PLAIN},
      {"row", {2, 1, 1, 17}, {3, 4, 11}, 1.5, Layout::PLAIN},
      {"other_sigma", {1, 2, 6, 5}, {3, 4, 7}, 0.8, Layout::PLAIN},
      {"permuted", {2, 3, 5, 6}, {3, 4, 11}, 1.5, Layout::PERMUTED},
      {"sliced_step2", {1, 2, 5, 7}, {3, 4}, 1.5, Layout::SLICED},
      {"several_tiles", {2, 3, 70, 45}, {5, 8, 11}, 1.5, Layout::PLAIN},
      {"large_windows", {1, 2, 40, 37}, {15, 16, 31}, 2.5, Layout::PLAIN},
      // The networks: SSIM loss on RGB batches at 256 px (window 11), the 5x5 SSIM on VGG16 features (Model 3:
      // relu1_2 at 64 px and relu3_3 at 64 px).
      {"rgb_256", {2, 3, 256, 256}, {11}, 1.5, Layout::PLAIN},
      {"vgg_relu1_2_64px", {2, 64, 64, 64}, {5}, 1.5, Layout::PLAIN},
      {"vgg_relu3_3_64px", {2, 256, 16, 16}, {5}, 1.5, Layout::PLAIN},
  };
  return table;
}

double tolerance(DType dt) {
  switch (dt) {
    case DType::F64:
      return 1e-18;
    case DType::F32:
      return 1e-7;
    case DType::F16:
      return 1e-6;
    default:
      return 5e-5;  // bf16
  }
}

DType ref_type(DType dt) {
  return dt == DType::F64 ? DType::F64 : DType::F32;
}

std::vector<SsimKernel> kernels_for(DType dt, int64_t ws) {
  std::vector<SsimKernel> v;
  for (SsimKernel k : {SsimKernel::SSIM_DEFAULT, SsimKernel::SSIM_FUSED, SsimKernel::SSIM_FIVE_CONVS})
    if (kernels::cuda::ssim_kernel_supports(k, dt, ws)) v.push_back(k);
  return v;
}

// Device copy of a host (N, C, H, W) image in the case's layout.
Tensor on_gpu(const Tensor& host, Layout layout) {
  const Device gpu = Device::cuda(0);
  switch (layout) {
    case Layout::PERMUTED:  // stored (N, H, C, W)
      return host.permute({0, 2, 1, 3}).contiguous().to(gpu).permute({0, 2, 1, 3});
    case Layout::SLICED: {  // every other row of a twice-as-tall image
      const int64_t H = host.size(2);
      Tensor tall = Tensor::zeros({host.size(0), host.size(1), 2 * H, host.size(3)}, host.dtype());
      tall.slice(2, 0, 2 * H, 2).copy_(host);
      return tall.to(gpu).slice(2, 0, 2 * H, 2);
    }
    case Layout::PLAIN:
      break;
  }
  return host.to(gpu);
}

struct Images {
  Tensor x, y;  // host, dtype dt; y correlated with x so the map spans a useful range
};
Images make_images(const Shape& shape, DType dt) {
  const std::vector<double> a = test::random_tensor(shape, 51, DType::F64, 0, 1).to_vector();
  const std::vector<double> b = test::random_tensor(shape, 52, DType::F64, 0, 1).to_vector();
  std::vector<double> y(a.size());
  for (size_t i = 0; i < a.size(); ++i) y[i] = 0.6 * a[i] + 0.4 * b[i];
  return {Tensor::from_vector(a, shape, dt), Tensor::from_vector(y, shape, dt)};
}

// grad_out for dtype dt (see the file header): -0.75 in f32/f64; for f16/bf16 -scale, the loss scale a dynamic
// scaler would reach for these images.
double upstream_gradient(DType dt, const Tensor& xr, const Tensor& yr, const kernels::SsimStats& stats,
                         const SsimParams& params) {
  if (dt != DType::F16 && dt != DType::BF16) return -0.75;
  const SsimGrads unit = kernels::ssim_backward(Tensor::scalar(-1.0, xr.dtype()), xr, yr, stats, params, true, true);
  const double largest = std::max(kernels::max_abs(unit.x), kernels::max_abs(unit.y));
  double scale = 32768.0;  // 2^15
  while (scale > 1.0 && largest * scale > 4096.0) scale /= 2;
  return -scale;
}

void check_case(const SsimCase& c, DType dt) {
  const Images im = make_images(c.shape, dt);
  const DType rt = ref_type(dt);
  const Tensor xr = im.x.to(rt), yr = im.y.to(rt);
  const Tensor xd = on_gpu(im.x, c.layout), yd = on_gpu(im.y, c.layout);
  const double tol = tolerance(dt);
  const int64_t N = c.shape[0], C = c.shape[1];
  for (int64_t ws : c.windows) {
    const SsimParams params{ws, c.sigma};
    const int64_t OH = kernels::ssim_map_size(c.shape[2], ws), OW = kernels::ssim_map_size(c.shape[3], ws);
    const SsimResult ref = kernels::ssim(xr, yr, params, true);
    // The backward's inputs, the same on both sides: the CPU's statistics rounded to dt, and grad_out.
    const kernels::SsimStats stats_given{ref.stats.moments.to(dt), ref.stats.params};
    const kernels::SsimStats stats_ref{stats_given.moments.to(rt), params};
    const double grad = upstream_gradient(dt, xr, yr, stats_ref, params);
    ASSERT_TRUE(std::isfinite(Tensor::scalar(grad, dt).item()))
        << "grad_out " << grad << " overflows " << dtype_name(dt);
    const SsimGrads gref = kernels::ssim_backward(Tensor::scalar(grad, rt), xr, yr, stats_ref, params, true, true);
    for (SsimKernel k : kernels_for(dt, ws)) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " window " + std::to_string(ws) + " " +
                   kernels::cuda::ssim_kernel_name(k));
      test::GuardedTensor value = test::empty_guarded({}, dt), per_channel = test::empty_guarded({N, C}, dt);
      test::GuardedTensor stats = test::empty_guarded({5, N, C, OH, OW}, dt);
      SsimResult out;
      out.value = value.tensor;
      out.per_channel = per_channel.tensor;
      out.stats.moments = stats.tensor;
      kernels::cuda::ssim_into(out, xd, yd, params, k);
      for (const test::GuardedTensor* t : {&value, &per_channel, &stats}) EXPECT_TRUE(test::sentinels_intact(*t));
      EXPECT_TRUE(test::nmse_within(ref.value, value.tensor, tol)) << "value";
      EXPECT_TRUE(test::nmse_within(ref.per_channel, per_channel.tensor, tol)) << "per_channel";
      EXPECT_TRUE(test::nmse_within(ref.stats.moments, stats.tensor, tol)) << "stats";
      EXPECT_EQ(out.stats.params.window_size, ws);

      // Without statistics the value is the same.
      const SsimResult lean = kernels::cuda::ssim(xd, yd, params, false, k);
      EXPECT_FALSE(lean.stats.defined());
      EXPECT_TRUE(test::nmse_within(ref.value, lean.value, tol)) << "value without statistics";

      const Tensor grad_d = Tensor::scalar(grad, dt).to(Device::cuda(0));
      const kernels::SsimStats sd{stats_given.moments.to(Device::cuda(0)), params};
      test::GuardedTensor gx = test::empty_guarded(c.shape, dt), gy = test::empty_guarded(c.shape, dt);
      SsimGrads g;
      g.x = gx.tensor;
      g.y = gy.tensor;
      kernels::cuda::ssim_backward_into(g, grad_d, xd, yd, sd, params, k);
      EXPECT_TRUE(test::sentinels_intact(gx));
      EXPECT_TRUE(test::sentinels_intact(gy));
      EXPECT_TRUE(test::nmse_within(gref.x, gx.tensor, tol)) << "dx";
      EXPECT_TRUE(test::nmse_within(gref.y, gy.tensor, tol)) << "dy";
      // Each gradient alone, grad_out on the CPU this time.
      const SsimGrads only_x =
          kernels::cuda::ssim_backward(Tensor::scalar(grad, dt), xd, yd, sd, params, true, false, k);
      EXPECT_FALSE(only_x.y.defined());
      EXPECT_TRUE(test::nmse_within(gref.x, only_x.x, tol)) << "dx alone";
      const SsimGrads only_y = kernels::cuda::ssim_backward(grad_d, xd, yd, sd, params, false, true, k);
      EXPECT_FALSE(only_y.x.defined());
      EXPECT_TRUE(test::nmse_within(gref.y, only_y.y, tol)) << "dy alone";
    }
  }
}

class CudaSsim : public ::testing::TestWithParam<SsimCase> {};

TEST_P(CudaSsim, F32MatchesTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_case(GetParam(), DType::F32);
}

TEST_P(CudaSsim, F16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_case(GetParam(), DType::F16);
}

TEST_P(CudaSsim, Bf16MatchesTheCpuOnRoundedInputs) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  check_case(GetParam(), DType::BF16);
}

INSTANTIATE_TEST_SUITE_P(Table, CudaSsim, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<SsimCase>& info) { return std::string(info.param.name); });

TEST(CudaSsimF64, FiveConvsMatchesTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (size_t i : {size_t(1), size_t(2), size_t(6), size_t(8)}) {
    SCOPED_TRACE(cases()[i].name);
    check_case(cases()[i], DType::F64);
  }
}

// A window above 31 runs on the five-convolution kernels under SSIM_DEFAULT; one above 63 is a clear error.
TEST(CudaSsimWindows, DefaultFallsBackAndLimitsAreClear) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Images im = make_images({1, 1, 20, 24}, DType::F32);
  const Tensor xd = im.x.to(Device::cuda(0)), yd = im.y.to(Device::cuda(0));
  const SsimParams wide{33, 4.0};
  const SsimResult ref = kernels::ssim(im.x, im.y, wide, true);
  EXPECT_FALSE(kernels::cuda::ssim_kernel_supports(SsimKernel::SSIM_FUSED, DType::F32, 33));
  const SsimResult got = kernels::cuda::ssim(xd, yd, wide, true);
  EXPECT_TRUE(test::nmse_within(ref.value, got.value));
  EXPECT_TRUE(test::nmse_within(ref.stats.moments, got.stats.moments));
  std::string msg = test::error_of([&] { kernels::cuda::ssim(xd, yd, SsimParams{64, 1.5}); });
  EXPECT_NE(msg.find("window_size"), std::string::npos) << msg;
  msg = test::error_of([&] { kernels::cuda::ssim(xd, yd, wide, false, SsimKernel::SSIM_FUSED); });
  EXPECT_NE(msg.find("does not support"), std::string::npos) << msg;
  msg = test::error_of(
      [&] { kernels::cuda::ssim(xd.to(DType::F64), yd.to(DType::F64), SsimParams{}, false, SsimKernel::SSIM_FUSED); });
  EXPECT_NE(msg.find("does not support"), std::string::npos) << msg;
}

TEST(CudaSsimErrors, ClearMessages) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Images im = make_images({1, 2, 8, 8}, DType::F32);
  const Tensor xd = im.x.to(Device::cuda(0)), yd = im.y.to(Device::cuda(0));
  std::string msg = test::error_of([&] { kernels::cuda::ssim(xd, im.y); });
  EXPECT_NE(msg.find("cpu"), std::string::npos) << msg;
  msg = test::error_of([&] { kernels::cuda::ssim(xd, yd.slice(3, 0, 7)); });
  EXPECT_NE(msg.find("same shape"), std::string::npos) << msg;
  const SsimResult r = kernels::cuda::ssim(xd, yd, SsimParams{}, true);
  // Window 5's statistics have window 11's shape on an 8x8 image (odd windows keep the size): only the parameters
  // the statistics carry tell them apart (kernels::check_ssim_stats, the CPU's check).
  msg = test::error_of([&] { kernels::cuda::ssim_backward(r.value, xd, yd, r.stats, SsimParams{5, 1.5}, true, true); });
  EXPECT_NE(msg.find("window 11"), std::string::npos) << msg;
  EXPECT_NE(msg.find("window 5"), std::string::npos) << msg;
  const kernels::SsimStats other_images{r.stats.moments.slice(4, 0, 7), r.stats.params};
  msg = test::error_of([&] { kernels::cuda::ssim_backward(r.value, xd, yd, other_images, SsimParams{}, true, true); });
  EXPECT_NE(msg.find("forward's stats"), std::string::npos) << msg;
  msg = test::error_of([&] { kernels::cuda::ssim_backward(r.per_channel, xd, yd, r.stats, SsimParams{}, true, true); });
  EXPECT_NE(msg.find("one element"), std::string::npos) << msg;
}

// The entry points of kernels/ssim.h dispatch CUDA tensors to these kernels.
TEST(CudaSsimDispatch, EntryPointsRunOnTheDevice) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Images im = make_images({2, 3, 19, 23}, DType::F32);
  const Tensor xd = im.x.to(Device::cuda(0)), yd = im.y.to(Device::cuda(0));
  const SsimResult ref = kernels::ssim(im.x, im.y, SsimParams{}, true);
  const SsimResult got = kernels::ssim(xd, yd, SsimParams{}, true);
  EXPECT_TRUE(got.value.device().is_cuda());
  EXPECT_TRUE(test::nmse_within(ref.value, got.value));
  EXPECT_TRUE(test::nmse_within(ref.stats.moments, got.stats.moments));
  const Tensor one = Tensor::scalar(1.0);
  const SsimGrads gref = kernels::ssim_backward(one, im.x, im.y, ref.stats, SsimParams{}, true, true);
  const SsimGrads g = kernels::ssim_backward(one.to(Device::cuda(0)), xd, yd, got.stats, SsimParams{}, true, true);
  EXPECT_TRUE(g.x.device().is_cuda());
  EXPECT_TRUE(test::nmse_within(gref.x, g.x));
  EXPECT_TRUE(test::nmse_within(gref.y, g.y));
}

#else  // !FG_WITH_CUDA

TEST(CudaSsim, Skipped) {
  GTEST_SKIP() << test::gpu_skip_reason();
}

#endif  // FG_WITH_CUDA

}  // namespace
}  // namespace fg
