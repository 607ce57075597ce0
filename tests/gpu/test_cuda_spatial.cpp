// CPU-vs-CUDA parity of the spatial families over the CPU tests' case tables: replication and zero padding
// (tests/ops/test_pad.cpp), max and average pooling (tests/ops/test_pool.cpp: every kernel/stride/padding PyTorch
// accepts), nearest upsampling (tests/ops/test_upsample.cpp, plus sizes where PyTorch's f32 index rounding picks
// the lower index), pixel shuffle and unshuffle (tests/ops/test_pixel_shuffle.cpp), and concat. Copies and
// gathers must be exact: forward results are compared bit for bit, and so are the f32/f64 gradients the kernels
// compute as gathers in the CPU's order (replication pad, average pool, upsample). f16 and bf16 run against the
// CPU's f32 on the same rounded inputs (test::cuda_float_dtypes()). Outputs are allocated by the entry points, so
// their bounds are left to tools/gpu_check.sh's memcheck run.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/concat.h"
#include "kernels/pad.h"
#include "kernels/pixel_shuffle.h"
#include "kernels/pool.h"
#include "kernels/upsample.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct Operand {
  Tensor ref, gpu;
};

// A random (N, C, H, W) (or any rank) operand; channels_last: the same values seen through a permuted view of a
// (N, H, W, C) tensor, as a channels-last activation would be.
Operand operand(const Shape& shape, uint64_t seed, DType dt, bool channels_last = false) {
  if (!channels_last || shape.size() != 4) {
    const Tensor x = test::random_tensor(shape, seed, DType::F64, -2, 2);
    return {test::ref_input(x, dt), test::gpu_input(x, dt)};
  }
  const Tensor x = test::random_tensor({shape[0], shape[2], shape[3], shape[1]}, seed, DType::F64, -2, 2);
  return {test::ref_input(x, dt).permute({0, 3, 1, 2}), test::gpu_input(x, dt).permute({0, 3, 1, 2})};
}

std::string tag(DType dt, const std::string& what) { return std::string(dtype_name(dt)) + " " + what; }

// Exact for copies and for f32/f64 gathers in the CPU's order; otherwise the dtype's NMSE bound.
::testing::AssertionResult matches(const Tensor& ref, const Tensor& got, const test::DtypeCase& d, bool exact) {
  if (!got.device().is_cuda()) return ::testing::AssertionFailure() << "result is not on the GPU";
  if (exact) return test::all_close(ref.to(DType::F64), got.to(Device::cpu()).to(DType::F64), 0, 0);
  return test::nmse_within(ref, got, d.max_nmse);
}

bool wide(DType dt) { return dt == DType::F32 || dt == DType::F64; }

// ---- padding ----

struct PadCase {
  Shape shape;
  kernels::Pad2dParams p;  // left, right, top, bottom
};

const PadCase kPadCases[] = {
    {{1, 1, 2, 2}, {1, 0, 1, 0}},    {{2, 3, 5, 4}, {1, 1, 1, 1}},  {{1, 2, 3, 5}, {3, 2, 4, 1}},
    {{1, 1, 1, 1}, {2, 3, 1, 2}},    {{2, 1, 4, 6}, {0, 0, 0, 0}},  {{1, 2, 5, 7}, {-1, 2, 1, -2}},
    {{3, 4, 7}, {1, 2, 0, 3}},       {{2, 3, 33, 65}, {5, 4, 3, 2}}, {{1, 2, 6, 9}, {-2, -3, -1, -4}},
    {{4, 64, 31, 37}, {1, 1, 1, 1}},
};

TEST(CudaPad, ReplicationAndZeroMatchCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const PadCase& c : kPadCases) {
      for (bool cl : {false, true}) {
        const std::string where = tag(d.dtype, shape_str(c.shape) + (cl ? " channels-last" : ""));
        const Operand x = operand(c.shape, 81, d.dtype, cl);
        const Tensor rep = kernels::replication_pad2d_forward(x.ref, c.p);
        EXPECT_TRUE(matches(rep, kernels::replication_pad2d_forward(x.gpu, c.p), d, true)) << where << " replication";
        const Operand g = operand(rep.shape(), 82, d.dtype);
        EXPECT_TRUE(matches(kernels::replication_pad2d_backward(g.ref, c.shape, c.p),
                            kernels::replication_pad2d_backward(g.gpu, c.shape, c.p), d, wide(d.dtype)))
            << where << " replication backward";
        const Tensor zero = kernels::zero_pad2d_forward(x.ref, c.p);
        EXPECT_TRUE(matches(zero, kernels::zero_pad2d_forward(x.gpu, c.p), d, true)) << where << " zero";
        EXPECT_TRUE(matches(kernels::zero_pad2d_backward(g.ref, c.shape, c.p),
                            kernels::zero_pad2d_backward(g.gpu, c.shape, c.p), d, true))
            << where << " zero backward";
      }
    }
  }
  // Zero padding takes any rank >= 2 and may produce an empty tensor; errors name the op.
  const Operand two = operand({3, 4}, 83, DType::F32);
  EXPECT_TRUE(matches(kernels::zero_pad2d_forward(two.ref, {1, 2, 3, 0}),
                      kernels::zero_pad2d_forward(two.gpu, {1, 2, 3, 0}), test::cuda_float_dtypes()[0], true));
  EXPECT_EQ(kernels::zero_pad2d_forward(two.gpu, {-2, -2, 0, 0}).numel(), 0);
  EXPECT_NE(test::error_of([&] { kernels::replication_pad2d_forward(two.gpu, {1, 1, 1, 1}); })
                .find("replication_pad2d"),
            std::string::npos);
}

// ---- pooling ----

struct PoolCase {
  Shape shape;
  int64_t kernel, stride, pad;
};

std::vector<PoolCase> pool_cases() {
  std::vector<PoolCase> cases;
  const std::vector<Shape> shapes = {{2, 3, 7, 9}, {1, 2, 8, 8}, {1, 1, 11, 10}};
  for (int64_t k : {1, 2, 3, 4, 7})
    for (int64_t s : {1, 2, 3})
      for (int64_t p : {0, 1}) {
        if (p > k / 2) continue;
        for (const Shape& sh : shapes) {
          if (sh[2] + 2 * p < k || sh[3] + 2 * p < k) continue;
          cases.push_back({sh, k, s, p});
        }
      }
  cases.push_back({{1, 1, 1, 1}, 1, 1, 0});
  cases.push_back({{3, 1, 2, 5}, 2, 3, 1});
  cases.push_back({{8, 64, 64, 64}, 3, 2, 1});  // ResNet34's stem max pool at a 256 px input, batch 8
  cases.push_back({{2, 5, 33, 67}, 2, 2, 0});   // the U-Net's 2x2 pools on odd sizes
  return cases;
}

TEST(CudaPool, MaxAndAverageMatchCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const PoolCase& c : pool_cases()) {
      const bool big = c.shape[1] == 64;
      if (big && d.dtype == DType::F64) continue;  // the large case once per 16/32-bit dtype is enough
      const kernels::Pool2dParams p = kernels::Pool2dParams::square(c.kernel, c.stride, c.pad);
      const std::string where = tag(d.dtype, shape_str(c.shape) + " k" + std::to_string(c.kernel) + " s" +
                                                 std::to_string(c.stride) + " p" + std::to_string(c.pad));
      const Operand x = operand(c.shape, 91, d.dtype, /*channels_last=*/c.kernel == 3);
      Tensor ind_ref, ind_gpu;
      const Tensor y_ref = kernels::max_pool2d_forward(x.ref, p, &ind_ref);
      const Tensor y_gpu = kernels::max_pool2d_forward(x.gpu, p, &ind_gpu);
      EXPECT_TRUE(matches(y_ref, y_gpu, d, true)) << where << " max";
      ASSERT_TRUE(ind_gpu.device().is_cuda());
      EXPECT_EQ(ind_gpu.dtype(), DType::I64);
      EXPECT_EQ(ind_gpu.to_vector(), ind_ref.to_vector()) << where << " max indices";
      const Operand g = operand(y_ref.shape(), 92, d.dtype);
      // Max backward adds with atomics where windows overlap: equal to rounding, in any order.
      EXPECT_TRUE(matches(kernels::max_pool2d_backward(g.ref, ind_ref, c.shape),
                          kernels::max_pool2d_backward(g.gpu, ind_gpu, c.shape), d, false))
          << where << " max backward";
      for (bool cip : {true, false}) {
        const std::string w = where + (cip ? " count_include_pad" : "");
        EXPECT_TRUE(matches(kernels::avg_pool2d_forward(x.ref, p, cip), kernels::avg_pool2d_forward(x.gpu, p, cip), d,
                            wide(d.dtype)))
            << w << " avg";
        EXPECT_TRUE(matches(kernels::avg_pool2d_backward(g.ref, c.shape, p, cip),
                            kernels::avg_pool2d_backward(g.gpu, c.shape, p, cip), d, wide(d.dtype)))
            << w << " avg backward";
      }
    }
  }
}

TEST(CudaPool, ThreeDimInputsTiesAndNan) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const kernels::Pool2dParams p = kernels::Pool2dParams::square(2, 1, 0);
  // (C, H, W) input; ties (the first maximum wins) and a NaN (it wins) as on the CPU.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = Tensor::from_vector({1, 1, 0, 1, 1, 0, 2, 2, 2, 5, nan, 4}, {1, 3, 4}, DType::F32);
  Tensor ir, ig;
  const Tensor yr = kernels::max_pool2d_forward(x, p, &ir);
  const Tensor yg = kernels::max_pool2d_forward(x.to(Device::cuda(0)), p, &ig);
  EXPECT_TRUE(test::nmse_within(yr, yg));
  EXPECT_EQ(ig.to_vector(), ir.to_vector());
  EXPECT_TRUE(test::nmse_within(kernels::avg_pool2d_forward(x, p, true),
                                kernels::avg_pool2d_forward(x.to(Device::cuda(0)), p, true)));
  EXPECT_NE(test::error_of([] {
              kernels::max_pool2d_forward(Tensor::ones({1, 1, 2, 2}, DType::F32, Device::cuda(0)),
                                          kernels::Pool2dParams::square(3, 1, 0), nullptr);
            }).find("too small"),
            std::string::npos);
}

// ---- nearest upsampling ----

TEST(CudaUpsample, ForwardAndBackwardMatchCpuIncludingF32IndexRounding) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  struct UpCase {
    Shape shape;
    int64_t out_h, out_w;
  };
  const UpCase cases[] = {
      {{2, 3, 3, 5}, 6, 10}, {{1, 2, 4, 4}, 4, 4},  {{1, 1, 3, 3}, 7, 5},     {{2, 1, 5, 7}, 3, 4},
      {{1, 2, 1, 1}, 3, 2},  {{1, 1, 2, 3}, 5, 9},  {{1, 3, 6, 4}, 6, 13},    {{1, 1, 7, 2}, 1, 1},
      {{1, 1, 2, 2}, 82, 82},  // PyTorch's f32 rounding maps output 41 to input 0, not 1
      {{1, 2, 3, 7}, 101, 33}, {{1, 1, 37, 53}, 11, 17}, {{4, 16, 32, 32}, 64, 64}, {{1, 3, 5, 3}, 999, 7}};
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const UpCase& c : cases) {
      const std::string where = tag(d.dtype, shape_str(c.shape) + " -> " + std::to_string(c.out_h) + "x" +
                                                 std::to_string(c.out_w));
      const Operand x = operand(c.shape, 101, d.dtype, true);
      EXPECT_TRUE(matches(kernels::upsample_nearest2d_forward(x.ref, c.out_h, c.out_w),
                          kernels::upsample_nearest2d_forward(x.gpu, c.out_h, c.out_w), d, true))
          << where;
      const Operand g = operand({c.shape[0], c.shape[1], c.out_h, c.out_w}, 102, d.dtype);
      EXPECT_TRUE(matches(kernels::upsample_nearest2d_backward(g.ref, c.shape),
                          kernels::upsample_nearest2d_backward(g.gpu, c.shape), d, wide(d.dtype)))
          << where << " backward";
    }
  }
  // Every source index for many size pairs: an arange plane upsampled must pick the CPU's element everywhere.
  for (int64_t in = 1; in <= 40; in += 3) {
    for (int64_t out : {int64_t(1), int64_t(2), int64_t(3), in, 2 * in, 3 * in + 1, int64_t(82), int64_t(97)}) {
      const Tensor plane = Tensor::arange(in, DType::F32).view({1, 1, 1, in});
      EXPECT_EQ(kernels::upsample_nearest2d_forward(plane.to(Device::cuda(0)), 1, out).to_vector(),
                kernels::upsample_nearest2d_forward(plane, 1, out).to_vector())
          << in << " -> " << out;
    }
  }
}

// ---- pixel shuffle ----

TEST(CudaPixelShuffle, ShuffleAndUnshuffleAreTheCpuPermutations) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  struct PsCase {
    Shape shape;  // the shuffle's input
    int64_t r;
  };
  const PsCase cases[] = {{{2, 8, 3, 5}, 2},  {{1, 9, 2, 2}, 3},       {{3, 18, 1, 4}, 3}, {{1, 4, 1, 1}, 2},
                          {{2, 3, 4, 3}, 1},  {{12, 5, 3}, 2},         {{2, 2, 9, 2, 3}, 3},
                          {{4, 256, 16, 16}, 2}};
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const PsCase& c : cases) {
      if (c.shape[c.shape.size() - 3] % (c.r * c.r) != 0) continue;
      const std::string where = tag(d.dtype, shape_str(c.shape) + " r" + std::to_string(c.r));
      const Operand x = operand(c.shape, 111, d.dtype, true);
      const Tensor y_ref = kernels::pixel_shuffle(x.ref, c.r);
      const Tensor y_gpu = kernels::pixel_shuffle(x.gpu, c.r);
      EXPECT_TRUE(matches(y_ref, y_gpu, d, true)) << where << " shuffle";
      EXPECT_TRUE(matches(kernels::pixel_unshuffle(y_ref, c.r), kernels::pixel_unshuffle(y_gpu, c.r), d, true))
          << where << " unshuffle";
      EXPECT_TRUE(matches(x.ref.contiguous(), kernels::pixel_unshuffle(y_gpu, c.r), d, true)) << where << " inverse";
    }
  }
}

// ---- concat ----

TEST(CudaConcat, EveryDimAndDtypeMatchesCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (DType dt : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8}) {
    for (int64_t dim : {0, 1, 2, 3, -1}) {
      Shape sa = {2, 3, 4, 5}, sb = sa, sc = sa;
      const int64_t w = dim < 0 ? 3 : dim;
      sb[size_t(w)] = 1;
      sc[size_t(w)] = 6;
      const Tensor a = test::random_tensor(sa, 121, DType::F64, 0, 100).to(dt);
      const Tensor b = test::random_tensor(sb, 122, DType::F64, 0, 100).to(dt);
      // c arrives as a non-contiguous view.
      Shape sct = sc;
      std::swap(sct[0], sct[2]);
      const Tensor c = test::random_tensor(sct, 123, DType::F64, 0, 100).to(dt).transpose(0, 2);
      const Tensor ref = kernels::concat({a, b, c}, dim);
      const Tensor got = kernels::concat({a.to(Device::cuda(0)), b.to(Device::cuda(0)), c.to(Device::cuda(0))}, dim);
      ASSERT_TRUE(got.device().is_cuda());
      EXPECT_EQ(got.to_vector(), ref.to_vector()) << dtype_name(dt) << " dim " << dim;
    }
  }
  EXPECT_NE(test::error_of([] {
              kernels::concat({Tensor::ones({2}, DType::F32, Device::cuda(0)), Tensor::ones({2}, DType::F32)}, 0);
            }).find("one device"),
            std::string::npos);
}

}  // namespace
}  // namespace fg
