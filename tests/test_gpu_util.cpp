// The comparison the CPU-vs-CUDA parity suites (tests/gpu/) rely on, checked where it runs without a GPU: NMSE
// bounds, NaN/Inf positions, and a 16-bit result whose reference overflows the 16-bit range.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/support/gpu_util.h"

namespace fg {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(NmseWithin, BoundsAndSpecialValues) {
  const Tensor ref = Tensor::from_vector({1.0, -2.0, 3.0, 4.0}, {4});
  EXPECT_TRUE(test::nmse_within(ref, ref));
  EXPECT_TRUE(test::nmse_within(ref, Tensor::from_vector({1.0, -2.0, 3.0, 4.001}, {4}), 1e-7));
  EXPECT_FALSE(test::nmse_within(ref, Tensor::from_vector({1.0, -2.0, 3.0, 4.1}, {4}), 1e-7));
  EXPECT_FALSE(test::nmse_within(ref, Tensor::from_vector({1.0, -2.0, 3.0}, {3})));
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor special = Tensor::from_vector({1.0, inf, nan}, {3});
  EXPECT_TRUE(test::nmse_within(special, special));
  EXPECT_FALSE(test::nmse_within(special, Tensor::from_vector({1.0, -inf, nan}, {3})));
  EXPECT_FALSE(test::nmse_within(special, Tensor::from_vector({1.0, inf, 0.0}, {3})));
}

// tests/gpu/test_cuda_elementwise's "f16 large swapped op 3": an f32 reference of 3.1e6 against the f16 kernel's
// Inf. The kernel is right (the quotient overflows f16); the comparison used to demand a finite value there.
TEST(NmseWithin, A16BitResultOverflowsWhereItsReferenceDoes) {
  const Tensor ref = Tensor::from_vector({3.1e6, -7.0e4, 1.5, 65504.0}, {4});  // f32, as the parity suites use
  const Tensor f16 = ref.to(DType::F16);
  ASSERT_FALSE(std::isfinite(f16.to_vector()[0]));
  ASSERT_FALSE(std::isfinite(f16.to_vector()[1]));
  EXPECT_TRUE(test::nmse_within(ref, f16, 1e-6));
  // The rounded reference only decides where Inf is expected: a finite result there still fails, and so does an
  // Inf of the wrong sign or one where the reference stays in range.
  EXPECT_FALSE(test::nmse_within(ref, Tensor::from_vector({65504.0, -kInf, 1.5, 65504.0}, {4}).to(DType::F16)));
  EXPECT_FALSE(test::nmse_within(ref, Tensor::from_vector({kInf, kInf, 1.5, 65504.0}, {4}).to(DType::F16)));
  EXPECT_FALSE(test::nmse_within(ref, Tensor::from_vector({kInf, -kInf, 1.5, kInf}, {4}).to(DType::F16)));
  // bf16 keeps f32's range: nothing overflows, and the NMSE is bf16's rounding.
  EXPECT_TRUE(test::nmse_within(ref, ref.to(DType::BF16), 6e-5));
}

}  // namespace
}  // namespace fg
