// Helpers for the CPU-vs-CUDA parity suites under tests/gpu/ (ggml test-backend-ops style). They compile in every
// build; without CUDA or without a device, gpu_available() is false and GPU_TEST_SKIP_IF_NO_DEVICE() skips the
// test with a visible reason (ctest reports it as skipped through the "[  SKIPPED ]" marker).
//
// Sentinels: to_device_guarded() places a tensor's device copy in the middle of a larger allocation whose
// surrounding bytes hold a known pattern; check_sentinels() fails the test when a kernel wrote outside its output.
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fg::test {

bool gpu_available();
std::string gpu_skip_reason();  // "filmgrad was built without CUDA" or "no CUDA device present"

#define GPU_TEST_SKIP_IF_NO_DEVICE()                                              \
  do {                                                                            \
    if (!::fg::test::gpu_available()) GTEST_SKIP() << ::fg::test::gpu_skip_reason(); \
  } while (0)

// A CUDA tensor with `guard_bytes` of sentinel pattern (0xA5) before and after its elements.
struct GuardedTensor {
  Tensor tensor;    // the view a kernel writes into (contiguous, on cuda:0)
  Tensor backing;   // the whole allocation (u8)
  int64_t guard_bytes = 0;
};
GuardedTensor empty_guarded(const Shape& shape, DType dtype, int64_t guard_bytes = 256);
GuardedTensor to_device_guarded(const Tensor& host, int64_t guard_bytes = 256);
::testing::AssertionResult sentinels_intact(const GuardedTensor& t);

// NMSE of got (any device; copied to the CPU, as f64) against ref: mse(ref, got) / mse(ref, 0). Fails with the
// first mismatching indices when above max_nmse; NaN/Inf positions must match exactly. For an f16/bf16 `got` and a
// wider `ref`, a reference value that overflows when rounded to got's dtype (|x| > 65504 in f16) is expected as
// that Inf: the 16-bit kernel rounds its result once and must overflow there too.
::testing::AssertionResult nmse_within(const Tensor& ref, const Tensor& got, double max_nmse = 1e-7);

// The floating dtypes the CUDA kernels take, each with the NMSE its results are held to against the CPU reference.
// The reference runs in f32 (f64 for f64) on the inputs rounded to the dtype, so what remains is the rounding of
// the result: f32 computes what the CPU computes (1e-7 leaves room for a different summation order and contracted
// multiply-adds); f64 likewise far below; f16 rounds each result to 11 significant bits (relative error up to
// 2^-11, NMSE up to 2^-22 = 2.4e-7, held to 1e-6); bf16 to 8 bits (2^-16 = 1.5e-5, held to 6e-5).
struct DtypeCase {
  DType dtype;
  double max_nmse;
};
const std::vector<DtypeCase>& cuda_float_dtypes();
// For a CPU tensor `x` (f32 or f64): x rounded to `dtype`, as f32 (f64 when dtype is f64) on the CPU: the
// reference's input. gpu_input: the same values in `dtype` on cuda:0.
Tensor ref_input(const Tensor& x, DType dtype);
Tensor gpu_input(const Tensor& x, DType dtype);
// The dtype a reference runs in for `dtype`: f64 for f64, f32 otherwise.
DType ref_dtype(DType dtype);

}  // namespace fg::test
