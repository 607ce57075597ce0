// Shared test helpers: random inputs from Philox, closeness checks that print the first mismatches, NMSE,
// gradient checks wired into GoogleTest, and access to the PyTorch-written golden files in tests/golden/.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/variable.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"

namespace fg::test {

// Uniform in [lo, hi) from a Philox stream seeded by `seed` (CPU).
Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype = DType::F32, double lo = -1.0, double hi = 1.0);
Tensor random_normal(const Shape& shape, uint64_t seed, DType dtype = DType::F32);

// mse(a, b) / mse(a, 0); 0 when both are all zeros.
double nmse(const Tensor& ref, const Tensor& got);

// Elementwise |got - ref| <= atol + rtol * |ref| (shapes must match, NaN/Inf compared on their own).
// On failure returns an assertion failure listing the first few mismatching indices.
::testing::AssertionResult all_close(const Tensor& ref, const Tensor& got, double atol = 1e-5, double rtol = 1e-4);
#define EXPECT_ALL_CLOSE(ref, got, atol, rtol) EXPECT_TRUE(::fg::test::all_close((ref), (got), (atol), (rtol)))

// Runs fg::gradcheck on f64 copies of `inputs`; fails the test with the checker's message when it disagrees.
::testing::AssertionResult grad_ok(const std::function<Variable(const std::vector<Variable>&)>& f,
                                   const std::vector<Tensor>& inputs, std::vector<bool> requires_grad = {},
                                   GradCheckOptions options = {});
#define EXPECT_GRAD_OK(...) EXPECT_TRUE(::fg::test::grad_ok(__VA_ARGS__))

// The message of the fg::Error that f throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f);

// Runs the built filmgrad program with `args` (a shell-quoted string) and captures stdout and stderr together.
struct CommandResult {
  int status;       // exit status, -1 when the program did not exit normally
  std::string out;  // stdout and stderr together
};
CommandResult run_filmgrad(const std::string& args);
int count_lines(const std::string& s);

// Path of a file in the source tree (FG_SOURCE_DIR is set by CMake), e.g. source_path("tests/golden/x.safetensors").
std::string source_path(const std::string& relative);
// Loads tests/golden/<name>.safetensors (throws with a hint to run tools/make_golden.py when missing).
const SafeTensors& golden(const std::string& name);

// Writes `count` 48x40 PNGs of smooth colour waves, each with its own phases, into `dir` (which must exist):
// a photo folder for the training CLI tests (twelve give an 8:1:1 split of 10/1/1).
void write_wave_photos(const std::string& dir, int count = 12);

}  // namespace fg::test
