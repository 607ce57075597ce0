// CPU-vs-CUDA parity of kernels/elementwise.h: binary ops with broadcasting (the case table of
// tests/ops/test_elementwise.cpp), unary ops, pow, affine, the in-place add_ and mul_scalar_ (into guarded buffers
// with sentinel bytes), sums over every dim combination (both kernel versions), sum_to_shape, and the scalar
// reductions with NaN and Inf. Every supported dtype: f32 and f64 against the CPU in the same dtype, f16 and bf16
// against the CPU's f32 on the same rounded inputs, with the NMSE bounds of test::cuda_float_dtypes(). Outputs the
// entry points allocate themselves cannot carry sentinels: tools/gpu_check.sh runs this program under
// compute-sanitizer's memcheck with caching off, which catches their out-of-bounds writes instead.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using kernels::BinaryOp;
using kernels::UnaryOp;

// The reference input and the GPU input of one operand: same values (rounded to the dtype), same view.
struct Operand {
  Tensor ref, gpu;
};

// A random operand of `shape`; transposed: built as the transpose of a (s1, s0, ...) tensor, so non-contiguous.
Operand operand(const Shape& shape, uint64_t seed, DType dt, bool transposed = false, double lo = -1, double hi = 1) {
  Shape base = shape;
  if (transposed) std::swap(base[0], base[1]);
  const Tensor x = test::random_tensor(base, seed, DType::F64, lo, hi);
  Operand o{test::ref_input(x, dt), test::gpu_input(x, dt)};
  if (transposed) {
    o.ref = o.ref.transpose(0, 1);
    o.gpu = o.gpu.transpose(0, 1);
  }
  return o;
}

std::string tag(DType dt, const std::string& what) { return std::string(dtype_name(dt)) + " " + what; }

struct BroadcastCase {
  const char* name;
  Shape a, b;
  bool transpose_a;
};

// tests/ops/test_elementwise.cpp's table, plus sizes that are not a multiple of a warp or a block, and one large
// enough that every thread takes several grid-stride steps.
const BroadcastCase kCases[] = {
    {"same", {3, 5}, {3, 5}, false},          {"size1", {1}, {1}, false},
    {"row", {4, 7}, {7}, false},              {"col", {4, 7}, {4, 1}, false},
    {"both", {3, 1, 5}, {1, 4, 1}, false},    {"scalar", {2, 3}, {}, false},
    {"lead", {2, 3, 5}, {3, 5}, false},       {"view", {5, 3}, {5, 3}, true},
    {"view_bcast", {5, 3}, {5, 1}, true},     {"odd", {33, 257}, {257}, false},
    {"bcast_mid", {2, 9, 1, 31}, {9, 7, 1}, false},
    {"large", {1100, 1025}, {1100, 1}, false},
};

TEST(CudaElementwise, BinaryMatchesCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const BroadcastCase& c : kCases) {
      const Operand a = operand(c.a, 1, d.dtype, c.transpose_a), b = operand(c.b, 2, d.dtype, false, 0.5, 2.0);
      for (BinaryOp op : {BinaryOp::ADD, BinaryOp::SUB, BinaryOp::MUL, BinaryOp::DIV}) {
        const Tensor ref = kernels::binary(op, a.ref, b.ref);
        const Tensor got = kernels::binary(op, a.gpu, b.gpu);
        ASSERT_TRUE(got.device().is_cuda());
        ASSERT_EQ(got.dtype(), d.dtype);
        EXPECT_TRUE(test::nmse_within(ref, got, d.max_nmse)) << tag(d.dtype, c.name) << " op " << int(op);
        // Swapped operands broadcast the other way.
        EXPECT_TRUE(test::nmse_within(kernels::binary(op, b.ref, a.ref), kernels::binary(op, b.gpu, a.gpu),
                                      d.max_nmse))
            << tag(d.dtype, c.name) << " swapped op " << int(op);
      }
    }
  }
}

TEST(CudaElementwise, BinaryErrorsAreClear) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Tensor a = Tensor::ones({2, 3}, DType::F32, Device::cuda(0));
  EXPECT_NE(test::error_of([&] { kernels::add(a, Tensor::ones({2, 3}, DType::F32)); }).find("cpu"), std::string::npos);
  EXPECT_NE(test::error_of([&] { kernels::add(a, Tensor::ones({2, 3}, DType::F16, Device::cuda(0))); }).find("cast"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { kernels::add(a, Tensor::ones({4}, DType::F32, Device::cuda(0))); })
                .find("cannot be broadcast"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { kernels::add(Tensor::ones({2}, DType::I32, Device::cuda(0)),
                                              Tensor::ones({2}, DType::I32, Device::cuda(0))); })
                .find("not supported on CUDA"),
            std::string::npos);
}

TEST(CudaElementwise, UnaryPowAffineMatchCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const std::vector<std::pair<Shape, bool>> shapes = {{{1}, false}, {{3, 4}, false}, {{257}, false},
                                                      {{5, 33}, true}, {{1030, 1033}, false}};
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const auto& [shape, transposed] : shapes) {
      const Operand any = operand(shape, 5, d.dtype, transposed, -3, 3);
      const Operand pos = operand(shape, 6, d.dtype, transposed, 0.05, 4);
      const std::string where = tag(d.dtype, shape_str(shape));
      for (UnaryOp op : {UnaryOp::NEG, UnaryOp::ABS, UnaryOp::SIGN, UnaryOp::SQUARE, UnaryOp::EXP}) {
        EXPECT_TRUE(test::nmse_within(kernels::unary(op, any.ref), kernels::unary(op, any.gpu), d.max_nmse))
            << where << " unary " << int(op);
      }
      for (UnaryOp op : {UnaryOp::SQRT, UnaryOp::LOG}) {
        EXPECT_TRUE(test::nmse_within(kernels::unary(op, pos.ref), kernels::unary(op, pos.gpu), d.max_nmse))
            << where << " unary " << int(op);
      }
      for (double p : {2.0, 0.5, -1.5, 3.0}) {
        EXPECT_TRUE(test::nmse_within(kernels::pow_scalar(pos.ref, p), kernels::pow_scalar(pos.gpu, p), d.max_nmse))
            << where << " pow " << p;
      }
      EXPECT_TRUE(test::nmse_within(kernels::affine(any.ref, -0.75, 2.5), kernels::affine(any.gpu, -0.75, 2.5),
                                    d.max_nmse))
          << where << " affine";
    }
  }
  // NaN, Inf and the edges of the domain propagate as on the CPU (NaN and Inf positions are compared exactly).
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor special = Tensor::from_vector({0.0, -0.0, -1.0, inf, -inf, nan, 1e-30, 100.0}, {8}, DType::F32);
  for (UnaryOp op : {UnaryOp::NEG, UnaryOp::SQRT, UnaryOp::EXP, UnaryOp::LOG, UnaryOp::ABS, UnaryOp::SIGN,
                     UnaryOp::SQUARE})
    EXPECT_TRUE(test::nmse_within(kernels::unary(op, special), kernels::unary(op, special.to(Device::cuda(0)))))
        << "special values, unary " << int(op);
}

TEST(CudaElementwise, InPlaceAddAndScaleStayInsideTheirBuffers) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  struct AddCase {
    Shape dst, src;
    bool transpose_dst;
  };
  const AddCase cases[] = {{{7, 5}, {7, 5}, false}, {{7, 5}, {5}, true},   {{4, 3, 9}, {3, 1}, false},
                           {{1}, {}, false},        {{33, 65}, {33, 1}, true}, {{600, 1900}, {1900}, false}};
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const AddCase& c : cases) {
      Shape base = c.dst;
      if (c.transpose_dst) std::swap(base[0], base[1]);
      const Tensor init = test::random_tensor(base, 11, DType::F64);
      Tensor ref = test::ref_input(init, d.dtype);
      test::GuardedTensor g = test::to_device_guarded(init.to(d.dtype));
      Tensor ref_view = c.transpose_dst ? ref.transpose(0, 1) : ref;
      Tensor gpu_view = c.transpose_dst ? g.tensor.transpose(0, 1) : g.tensor;
      const Operand src = operand(c.src, 12, d.dtype);
      kernels::add_(ref_view, src.ref, -0.5);
      kernels::add_(gpu_view, src.gpu, -0.5);
      EXPECT_TRUE(test::sentinels_intact(g)) << tag(d.dtype, shape_str(c.dst)) << " add_";
      EXPECT_TRUE(test::nmse_within(ref, g.tensor, d.max_nmse)) << tag(d.dtype, shape_str(c.dst)) << " add_";
      kernels::mul_scalar_(ref_view, 1.75);
      kernels::mul_scalar_(gpu_view, 1.75);
      EXPECT_TRUE(test::sentinels_intact(g)) << tag(d.dtype, shape_str(c.dst)) << " mul_scalar_";
      EXPECT_TRUE(test::nmse_within(ref, g.tensor, d.max_nmse)) << tag(d.dtype, shape_str(c.dst)) << " mul_scalar_";
    }
  }
  // A source aliasing its destination (tensor/overlap.h, one rule on both devices): the same layout (x += x) is
  // elementwise and allowed; another layout (x += x^T) is refused on both, where the CPU loop once read elements it
  // had already updated and this kernel read a copy (15 of 36 elements differed); x += x^T.clone() is the way.
  const Tensor x = test::random_tensor({6, 6}, 13);
  Tensor xr = x.clone(), xg = x.to(Device::cuda(0));
  kernels::add_(xr, xr, 1.0);
  kernels::add_(xg, xg, 1.0);
  EXPECT_TRUE(test::nmse_within(xr, xg));
  const std::string cpu_msg = test::error_of([&] { kernels::add_(xr, xr.transpose(0, 1), 1.0); });
  const std::string gpu_msg = test::error_of([&] { kernels::add_(xg, xg.transpose(0, 1), 1.0); });
  EXPECT_NE(cpu_msg.find("clone()"), std::string::npos) << cpu_msg;
  EXPECT_NE(gpu_msg.find("clone()"), std::string::npos) << gpu_msg;
  EXPECT_TRUE(test::nmse_within(xr, xg));  // neither was touched
  kernels::add_(xr, xr.transpose(0, 1).clone(), 1.0);
  kernels::add_(xg, xg.transpose(0, 1).clone(), 1.0);
  EXPECT_TRUE(test::nmse_within(xr, xg));
  Tensor row = Tensor::zeros({5}, DType::F32, Device::cuda(0));
  Tensor rows = row.unsqueeze(0).expand({3, 5});
  EXPECT_THROW(kernels::mul_scalar_(rows, 2.0), Error);
  EXPECT_THROW(kernels::add_(rows, Tensor::ones({3, 5}, DType::F32, Device::cuda(0))), Error);
}

TEST(CudaReduce, SumOverEveryDimCombination) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  // Short reductions (< 64 elements per output: one thread per output) and long ones (one block per output).
  const std::vector<Shape> shapes = {{1}, {3, 5, 7}, {2, 65, 3}, {4, 1, 300}, {8, 64, 17, 19}};
  const std::vector<std::vector<int64_t>> dim_sets = {{}, {0}, {1}, {-1}, {0, 2}, {1, 2}, {0, 1, 2}};
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const Shape& shape : shapes) {
      for (bool transposed : {false, true}) {
        if (transposed && shape.size() < 2) continue;
        const Operand x = operand(shape, 17, d.dtype, transposed);
        for (const auto& dims : dim_sets) {
          bool valid = true;
          for (int64_t dd : dims) valid = valid && (dd < int64_t(shape.size()) && dd >= -int64_t(shape.size()));
          if (!valid) continue;
          for (bool keep : {false, true}) {
            const Tensor ref = kernels::sum(x.ref, dims, keep), got = kernels::sum(x.gpu, dims, keep);
            std::string where = tag(d.dtype, shape_str(shape)) + (transposed ? " transposed" : "") + " dims {";
            for (int64_t dd : dims) where += std::to_string(dd) + " ";
            where += keep ? "} keepdim" : "}";
            ASSERT_EQ(got.shape(), ref.shape()) << where;
            EXPECT_TRUE(test::nmse_within(ref, got, d.max_nmse)) << where;
            // Sums also hold elementwise: double accumulation on both sides, one rounding to the dtype.
            const double rtol = d.dtype == DType::F64 ? 1e-12 : d.dtype == DType::F32 ? 1e-6 : 1e-2;
            EXPECT_TRUE(test::all_close(ref.to(DType::F64), got.to(Device::cpu()).to(DType::F64), 1e-6, rtol))
                << where;
          }
        }
      }
    }
  }
  // sum_to_shape and sum_all go through sum().
  const Operand g = operand({4, 3, 5}, 18, DType::F32);
  EXPECT_TRUE(test::nmse_within(kernels::sum_to_shape(g.ref, {3, 1}), kernels::sum_to_shape(g.gpu, {3, 1})));
  EXPECT_NEAR(kernels::sum_all(g.gpu), kernels::sum_all(g.ref), 1e-5);
  // Large: several grid-stride steps per thread.
  const Operand big = operand({3000, 1100}, 19, DType::F32);
  EXPECT_TRUE(test::nmse_within(kernels::sum(big.ref, {0}), kernels::sum(big.gpu, {0})));
  EXPECT_TRUE(test::nmse_within(kernels::sum(big.ref, {1}), kernels::sum(big.gpu, {1})));
  EXPECT_TRUE(test::nmse_within(kernels::sum(big.ref), kernels::sum(big.gpu)));
  // Empty reductions give zeros.
  EXPECT_EQ(kernels::sum(Tensor::zeros({0, 3}, DType::F32, Device::cuda(0)), {0}).to_vector(),
            (std::vector<double>{0, 0, 0}));
}

TEST(CudaReduce, ScalarReductionsMatchCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const Shape& shape : {Shape{1}, Shape{7, 9}, Shape{1 << 21}}) {
      const Operand x = operand(shape, 23, d.dtype, false, -5, 5);
      const double rel = d.dtype == DType::F64 ? 1e-12 : 1e-8;  // double accumulation on both sides
      EXPECT_NEAR(kernels::sum_squares(x.gpu), kernels::sum_squares(x.ref), rel * kernels::sum_squares(x.ref))
          << tag(d.dtype, shape_str(shape));
      EXPECT_EQ(kernels::max_abs(x.gpu), kernels::max_abs(x.ref)) << tag(d.dtype, shape_str(shape));
      EXPECT_TRUE(kernels::all_finite(x.gpu));
    }
  }
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor with_nan = Tensor::from_vector({1.0, nan, -3.0}, {3}).to(Device::cuda(0));
  const Tensor with_inf = Tensor::from_vector({1.0, -inf, 2.0}, {3}).to(Device::cuda(0));
  EXPECT_FALSE(kernels::all_finite(with_nan));
  EXPECT_FALSE(kernels::all_finite(with_inf));
  EXPECT_EQ(kernels::max_abs(with_nan), 3.0);  // NaN is ignored, as by the CPU's std::max
  EXPECT_EQ(kernels::max_abs(with_inf), inf);
  EXPECT_TRUE(kernels::all_finite(Tensor::zeros({0}, DType::F32, Device::cuda(0))));
  EXPECT_EQ(kernels::sum_squares(Tensor::zeros({0}, DType::F32, Device::cuda(0))), 0.0);
  // A strided input is read through its view.
  const Tensor m = test::random_tensor({40, 30}, 29);
  EXPECT_EQ(kernels::max_abs(m.to(Device::cuda(0)).transpose(0, 1).slice(0, 0, 30, 7)),
            kernels::max_abs(m.transpose(0, 1).slice(0, 0, 30, 7)));
}

}  // namespace
}  // namespace fg
