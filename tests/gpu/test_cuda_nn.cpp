// CPU-vs-CUDA parity of the network-level pointwise families: activations (kernels/activation.h) forward and
// backward, softmax over every dim (both kernel versions, large and -inf inputs), the pixel losses forward and
// backward (kernels/loss.h), and dropout, whose masks must be bitwise the CPU's. Every supported dtype, with the
// bounds of test::cuda_float_dtypes(): f16 and bf16 against the CPU's f32 on the same rounded inputs. Outputs
// are allocated by the entry points, so out-of-bounds writes are left to tools/gpu_check.sh's memcheck run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/dropout.h"
#include "kernels/loss.h"
#include "kernels/softmax.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct Operand {
  Tensor ref, gpu;
};

// A random operand of `shape` in [lo, hi); permuted: the same values seen through a transposed view of a
// (s1, s0, ...) tensor, so the kernels get a non-contiguous input.
Operand operand(const Shape& shape, uint64_t seed, DType dt, bool permuted = false, double lo = -3, double hi = 3) {
  Shape base = shape;
  if (permuted) std::swap(base[0], base[1]);
  const Tensor x = test::random_tensor(base, seed, DType::F64, lo, hi);
  Operand o{test::ref_input(x, dt), test::gpu_input(x, dt)};
  if (permuted) {
    o.ref = o.ref.transpose(0, 1);
    o.gpu = o.gpu.transpose(0, 1);
  }
  return o;
}

std::string tag(DType dt, const Shape& shape, const std::string& what) {
  return std::string(dtype_name(dt)) + " " + shape_str(shape) + " " + what;
}

// Sizes 1, odd, not multiples of 32 or 256, a non-contiguous one, and one past a million elements (several
// grid-stride steps per thread).
const std::vector<std::pair<Shape, bool>> kPointwiseShapes = {
    {{1}, false}, {{7}, false}, {{3, 5, 11}, false}, {{33, 257}, false}, {{9, 31}, true}, {{1031, 1029}, false}};

TEST(CudaActivation, ForwardAndBackwardMatchCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const auto& [shape, permuted] : kPointwiseShapes) {
      const Operand x = operand(shape, 41, d.dtype, permuted, -6, 6);
      const Operand g = operand(shape, 42, d.dtype, permuted, -1, 1);
      auto check = [&](const Tensor& ref, const Tensor& got, const char* what) {
        EXPECT_TRUE(got.device().is_cuda()) << what;
        EXPECT_TRUE(test::nmse_within(ref, got, d.max_nmse)) << tag(d.dtype, shape, what);
      };
      // Forward; then each backward from the reference forward's output, rounded to the dtype on both sides, so
      // that only the backward's own rounding is compared.
      const auto saved = [&](const Tensor& y_ref) {
        return Operand{test::ref_input(y_ref, d.dtype), test::gpu_input(y_ref, d.dtype)};
      };
      const Tensor relu_ref = kernels::relu(x.ref);
      check(relu_ref, kernels::relu(x.gpu), "relu");
      const Operand relu_y = saved(relu_ref);
      check(kernels::relu_backward(g.ref, relu_y.ref), kernels::relu_backward(g.gpu, relu_y.gpu), "relu_backward");
      check(kernels::leaky_relu(x.ref, 0.2), kernels::leaky_relu(x.gpu, 0.2), "leaky_relu");
      check(kernels::leaky_relu_backward(g.ref, x.ref, 0.2), kernels::leaky_relu_backward(g.gpu, x.gpu, 0.2),
            "leaky_relu_backward");
      const Tensor sig_ref = kernels::sigmoid(x.ref);
      check(sig_ref, kernels::sigmoid(x.gpu), "sigmoid");
      const Operand sig_y = saved(sig_ref);
      check(kernels::sigmoid_backward(g.ref, sig_y.ref), kernels::sigmoid_backward(g.gpu, sig_y.gpu),
            "sigmoid_backward");
      const Tensor tanh_ref = kernels::tanh(x.ref);
      check(tanh_ref, kernels::tanh(x.gpu), "tanh");
      const Operand tanh_y = saved(tanh_ref);
      check(kernels::tanh_backward(g.ref, tanh_y.ref), kernels::tanh_backward(g.gpu, tanh_y.gpu), "tanh_backward");
      check(kernels::sigmoid_range(x.ref, -3.0, 3.0), kernels::sigmoid_range(x.gpu, -3.0, 3.0), "sigmoid_range");
      check(kernels::sigmoid_range_backward(g.ref, x.ref, -3.0, 3.0),
            kernels::sigmoid_range_backward(g.gpu, x.gpu, -3.0, 3.0), "sigmoid_range_backward");
    }
  }
  // NaN passes through relu; zeros take the documented side; extreme inputs saturate without NaN.
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const Tensor special = Tensor::from_vector({nan, 0.0, -0.0, 1e30, -1e30, inf, -inf, -100.0}, {8}, DType::F32);
  const Tensor sg = special.to(Device::cuda(0));
  EXPECT_TRUE(test::nmse_within(kernels::relu(special), kernels::relu(sg)));
  EXPECT_TRUE(test::nmse_within(kernels::sigmoid(special), kernels::sigmoid(sg)));
  EXPECT_TRUE(test::nmse_within(kernels::tanh(special), kernels::tanh(sg)));
  EXPECT_TRUE(test::nmse_within(kernels::leaky_relu(special, 0.1), kernels::leaky_relu(sg, 0.1)));
  const Tensor ones = Tensor::ones({8}, DType::F32);
  EXPECT_TRUE(test::nmse_within(kernels::relu_backward(ones, kernels::relu(special)),
                                kernels::relu_backward(ones.to(Device::cuda(0)), kernels::relu(sg))));
}

TEST(CudaActivation, ErrorsAreClear) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Tensor a = Tensor::ones({3}, DType::F32, Device::cuda(0));
  EXPECT_NE(test::error_of([&] { kernels::relu_backward(a, Tensor::ones({4}, DType::F32, Device::cuda(0))); })
                .find("same shape"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { kernels::relu_backward(a, Tensor::ones({3}, DType::F32)); }).find("cpu"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { kernels::relu(Tensor::ones({3}, DType::I32, Device::cuda(0))); }).find("cast"),
            std::string::npos);
}

TEST(CudaSoftmax, EveryDimMatchesCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  struct Case {
    Shape shape;
    bool permuted;
  };
  // tests/ops/test_softmax.cpp's shapes, plus rows longer than a warp, the self-attention layout (softmax over
  // dim 1 of (B, N, N)) and a large last dim.
  const Case cases[] = {{{1}, false},       {{1, 1}, false},        {{7}, false},          {{3, 5}, false},
                        {{2, 3, 4}, false}, {{2, 3, 4, 5}, false},  {{5, 4, 3}, true},     {{6, 70}, false},
                        {{2, 100, 100}, false}, {{3, 4097}, false}, {{1, 33, 17}, true}};
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const Case& c : cases) {
      const Operand x = operand(c.shape, 51, d.dtype, c.permuted, -4, 4);
      const Operand g = operand(c.shape, 52, d.dtype, c.permuted, -1, 1);
      const int64_t nd = int64_t(c.shape.size());
      for (int64_t dim = -nd; dim < nd; ++dim) {
        const Tensor y_ref = kernels::softmax(x.ref, dim);
        EXPECT_TRUE(test::nmse_within(y_ref, kernels::softmax(x.gpu, dim), d.max_nmse))
            << tag(d.dtype, c.shape, "softmax dim " + std::to_string(dim));
        // The backward from the forward's output rounded to the dtype on both sides.
        const Tensor y_rounded = test::ref_input(y_ref, d.dtype);
        EXPECT_TRUE(test::nmse_within(kernels::softmax_backward(g.ref, y_rounded, dim),
                                      kernels::softmax_backward(g.gpu, test::gpu_input(y_ref, d.dtype), dim),
                                      d.max_nmse))
            << tag(d.dtype, c.shape, "softmax_backward dim " + std::to_string(dim));
      }
    }
  }
  // Large inputs do not overflow; a row of -inf gives NaN as on the CPU (and PyTorch).
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor big = Tensor::from_vector({1000, 999, -1000, 50, -inf, -inf, -inf, -inf}, {2, 4}, DType::F32);
  EXPECT_TRUE(test::nmse_within(kernels::softmax(big, 1), kernels::softmax(big.to(Device::cuda(0)), 1)));
  EXPECT_TRUE(test::nmse_within(kernels::softmax(big, 0), kernels::softmax(big.to(Device::cuda(0)), 0)));
  EXPECT_NE(test::error_of([] { kernels::softmax(Tensor::ones({2, 3}, DType::F32, Device::cuda(0)), 2); })
                .find("out of range"),
            std::string::npos);
}

TEST(CudaLoss, ForwardAndBackwardMatchCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (const auto& [shape, permuted] : kPointwiseShapes) {
      const Operand p = operand(shape, 61, d.dtype, permuted, -2, 2);
      const Operand t = operand(shape, 62, d.dtype, permuted, -2, 2);
      const Operand t01 = operand(shape, 63, d.dtype, permuted, 0, 1);  // BCE targets
      // grad_out on the device for the CUDA path, on the CPU for the reference; once on the CPU for the CUDA
      // path too (the kernels accept it there). For f16/bf16 it is scaled by the element count, as loss scaling
      // would, so that grad_out / n is not an f16 subnormal (which holds only a few significant bits).
      const bool half = d.dtype == DType::F16 || d.dtype == DType::BF16;
      const double go = half ? 0.75 * double(shape_numel(shape)) : 0.75;
      const Tensor go_ref = Tensor::full({}, go, test::ref_dtype(d.dtype));
      const Tensor go_gpu = Tensor::full({}, go, test::ref_dtype(d.dtype), Device::cuda(0));  // f16 cannot hold it
      auto check = [&](const Tensor& ref, const Tensor& got, const char* what) {
        ASSERT_TRUE(got.defined()) << what;
        EXPECT_TRUE(got.device().is_cuda()) << what;
        EXPECT_EQ(got.shape(), ref.shape()) << what;
        EXPECT_TRUE(test::nmse_within(ref, got, d.max_nmse)) << tag(d.dtype, shape, what);
      };
      check(kernels::mse_loss(p.ref, t.ref), kernels::mse_loss(p.gpu, t.gpu), "mse_loss");
      check(kernels::l1_loss(p.ref, t.ref), kernels::l1_loss(p.gpu, t.gpu), "l1_loss");
      check(kernels::bce_with_logits(p.ref, t01.ref), kernels::bce_with_logits(p.gpu, t01.gpu), "bce_with_logits");
      check(kernels::mse_loss_backward(go_ref, p.ref, t.ref), kernels::mse_loss_backward(go_gpu, p.gpu, t.gpu),
            "mse_loss_backward");
      check(kernels::mse_loss_backward(go_ref, p.ref, t.ref), kernels::mse_loss_backward(go_ref, p.gpu, t.gpu),
            "mse_loss_backward, grad_out on the CPU");
      check(kernels::l1_loss_backward(go_ref, p.ref, t.ref), kernels::l1_loss_backward(go_gpu, p.gpu, t.gpu),
            "l1_loss_backward");
      const kernels::BceWithLogitsGrads gr = kernels::bce_with_logits_backward(go_ref, p.ref, t01.ref, true, true);
      const kernels::BceWithLogitsGrads gg = kernels::bce_with_logits_backward(go_gpu, p.gpu, t01.gpu, true, true);
      check(gr.logits, gg.logits, "bce_with_logits_backward logits");
      check(gr.target, gg.target, "bce_with_logits_backward target");
      const kernels::BceWithLogitsGrads only_t = kernels::bce_with_logits_backward(go_gpu, p.gpu, t01.gpu, false, true);
      EXPECT_FALSE(only_t.logits.defined());
      check(gr.target, only_t.target, "bce_with_logits_backward target only");
    }
  }
  // L1's backward is 0 where pred == target; huge logits do not overflow.
  const Tensor same = test::random_tensor({5}, 64);
  EXPECT_TRUE(test::nmse_within(kernels::l1_loss_backward(Tensor::scalar(1.0), same, same),
                                kernels::l1_loss_backward(Tensor::scalar(1.0), same.to(Device::cuda(0)),
                                                          same.to(Device::cuda(0)))));
  const Tensor logits = Tensor::from_vector({1e4, -1e4, 88.0, -88.0}, {4});
  const Tensor targets = Tensor::from_vector({1, 0, 0.5, 1}, {4});
  EXPECT_TRUE(test::nmse_within(kernels::bce_with_logits(logits, targets),
                                kernels::bce_with_logits(logits.to(Device::cuda(0)), targets.to(Device::cuda(0)))));
  // An empty input gives NaN, as PyTorch's mean of nothing.
  const Tensor empty = Tensor::zeros({0}, DType::F32, Device::cuda(0));
  EXPECT_TRUE(std::isnan(kernels::mse_loss(empty, empty).item()));
  EXPECT_NE(test::error_of([] {
              kernels::mse_loss(Tensor::ones({3}, DType::F32, Device::cuda(0)), Tensor::ones({1, 3}, DType::F32,
                                                                                             Device::cuda(0)));
            }).find("same shape"),
            std::string::npos);
}

// The raw bytes of a tensor's elements (contiguous, on the CPU).
std::vector<uint8_t> bytes_of(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  std::vector<uint8_t> out(c.nbytes());
  if (!out.empty()) std::memcpy(out.data(), c.raw_data(), out.size());
  return out;
}

TEST(CudaDropout, MasksAreBitwiseTheCpuMasks) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (const test::DtypeCase& d : test::cuda_float_dtypes()) {
    for (double p : {0.0, 0.1, 0.5, 0.9}) {
      for (const Shape& shape : {Shape{1}, Shape{3}, Shape{4, 6, 5, 7}, Shape{3, 5, 9}, Shape{1031, 1029}}) {
        Generator gc(1234, 17), gg(1234, 17);
        // The CPU mask in f32 (or f64): its dtype rounding of 1 / (1 - p) is the one the GPU's dtype does only
        // when they are the same dtype, so the bitwise check is in f32/f64 and f16/bf16 compare values.
        const Tensor mc = kernels::dropout_mask(shape, p, gc, test::ref_dtype(d.dtype), Device::cpu());
        const Tensor mg = kernels::dropout_mask(shape, p, gg, d.dtype, Device::cuda(0));
        EXPECT_EQ(gc.offset(), gg.offset());
        ASSERT_EQ(mg.shape(), shape);
        if (d.dtype == test::ref_dtype(d.dtype)) {
          EXPECT_TRUE(bytes_of(mg) == bytes_of(mc)) << tag(d.dtype, shape, "mask p " + std::to_string(p));
        } else {
          EXPECT_TRUE(bytes_of(mg) == bytes_of(mc.to(d.dtype))) << tag(d.dtype, shape, "mask p " + std::to_string(p));
        }
        // dropout (mask over all dims) and dropout2d (mask over the leading two dims).
        const Operand x = operand(shape, 71, d.dtype);
        EXPECT_TRUE(test::nmse_within(kernels::apply_dropout_mask(x.ref, test::ref_input(mc, d.dtype)),
                                      kernels::apply_dropout_mask(x.gpu, mg), d.max_nmse))
            << tag(d.dtype, shape, "apply");
        if (shape.size() >= 3) {
          const Shape lead = {shape[0], shape[1]};
          Generator hc(99), hg(99);
          const Tensor m2c = kernels::dropout_mask(lead, p, hc, test::ref_dtype(d.dtype), Device::cpu());
          const Tensor m2g = kernels::dropout_mask(lead, p, hg, d.dtype, Device::cuda(0));
          const Tensor xv = x.gpu.transpose(0, 1).contiguous().transpose(0, 1);  // same values, strided view
          EXPECT_TRUE(test::nmse_within(kernels::apply_dropout_mask(x.ref, test::ref_input(m2c, d.dtype)),
                                        kernels::apply_dropout_mask(xv, m2g), d.max_nmse))
              << tag(d.dtype, shape, "apply2d");
        }
      }
    }
  }
  Generator g(1);
  EXPECT_NE(test::error_of([&] { kernels::dropout_mask({3}, 1.0, g, DType::F32, Device::cuda(0)); }).find("[0, 1)"),
            std::string::npos);
  EXPECT_EQ(g.offset(), 0u);
}

}  // namespace
}  // namespace fg
