// The device check every kernel entry point makes while only the CPU backend is built: a clear error that says
// what to do, never a crash on a device pointer. The CUDA backend replaces these checks with its dispatch.
#pragma once
#include "tensor/tensor.h"

namespace fg::kernels {

inline void require_cpu(const Tensor& t, const char* op) {
  FG_CHECK(!t.defined() || t.device().is_cpu(),
           op << ": " << t.str() << " is on " << t.device().str()
              << ", but the CUDA kernel for this op is not built yet; move the tensor to the CPU");
}

}  // namespace fg::kernels
