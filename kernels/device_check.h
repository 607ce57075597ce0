// The device check on the CPU path of a kernel entry point: a clear error that says what to do, never a crash on a
// device pointer. Every op family sends CUDA tensors to kernels/cuda/ (or its vendor twin) before its CPU checks,
// choosing by its operands, so a tensor on another device reaches a CPU loop only when the operands are on
// different devices (x on the CPU, a weight on cuda:0): the message says so and what to do.
#pragma once
#include <string>

#include "tensor/tensor.h"

namespace fg::kernels {

inline void require_cpu(const Tensor& t, const std::string& op, const std::string& what = "") {
  FG_CHECK(!t.defined() || t.device().is_cpu(),
           op << ": " << (what.empty() ? t.str() : what) << " is on " << t.device().str()
              << " but this call runs on the CPU, where its other operands are; move every operand to one device "
                 "(tensor.to(...))");
}

}  // namespace fg::kernels
