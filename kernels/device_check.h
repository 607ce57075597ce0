// The device check on the CPU path of a kernel entry point: a clear error that says what to do, never a crash on a
// device pointer. Ops without a CUDA kernel: none today; every op family dispatches CUDA tensors to kernels/cuda/
// (or its vendor twin) before its CPU checks, so this check guards only against a tensor that reaches a CPU loop
// some other way. A new op family calls it until its CUDA kernel lands, and is listed here meanwhile.
#pragma once
#include "tensor/tensor.h"

namespace fg::kernels {

inline void require_cpu(const Tensor& t, const char* op) {
  FG_CHECK(!t.defined() || t.device().is_cpu(),
           op << ": " << t.str() << " is on " << t.device().str()
              << ", but the CUDA kernel for this op is not built yet; move the tensor to the CPU");
}

}  // namespace fg::kernels
