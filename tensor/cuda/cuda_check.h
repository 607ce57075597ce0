// CUDA_CHECK: every CUDA runtime call goes through it; a failure throws fg::Error naming the statement, the
// file and the line. An out-of-memory failure also says how much was asked for and how much is free.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "tensor/error.h"

namespace fg::cuda {
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* statement, const char* file, int line);
}

#define CUDA_CHECK(statement)                                                   \
  do {                                                                          \
    const cudaError_t fg_cuda_err_ = (statement);                               \
    if (fg_cuda_err_ != cudaSuccess)                                            \
      ::fg::cuda::throw_cuda_error(fg_cuda_err_, #statement, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: catches bad launch configurations at the launch site.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
