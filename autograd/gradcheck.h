// Finite-difference gradient checker (f64, CPU). For f(inputs) -> output it compares the analytic gradient of
// L = sum(output * R), R a fixed random projection, with central differences (L(x + eps) - L(x - eps)) / 2 eps
// for every element of every input that requires a gradient.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"

namespace fg {

struct GradCheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  uint64_t seed = 1234;
};

struct GradCheckResult {
  bool ok = true;
  double max_abs_error = 0.0;
  std::string message;  // the first mismatch: which input, which element, analytic vs numeric
};

// inputs must be f64 CPU tensors. requires_grad[i] says which inputs are checked (default: all).
GradCheckResult gradcheck(const std::function<Variable(const std::vector<Variable>&)>& f,
                          const std::vector<Tensor>& inputs, const GradCheckOptions& options = {},
                          std::vector<bool> requires_grad = {});

}  // namespace fg
