// The CUDA side of tensor/: device memory for Storage and copies between host and device, installed into the
// hooks of tensor/storage.h so that the rest of tensor/ compiles without CUDA. Plain cudaMalloc/cudaFree for
// now; the caching allocator (stream-ordered reuse, statistics) replaces it in the CUDA backend issue.
#include <cstdio>

#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/cuda_runtime.h"
#include "tensor/storage.h"

namespace fg::cuda {

void throw_cuda_error(cudaError_t err, const char* statement, const char* file, int line) {
  std::string msg = std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ") in " +
                    statement + " at " + file + ":" + std::to_string(line);
  if (err == cudaErrorMemoryAllocation) {
    size_t free_bytes = 0, total_bytes = 0;
    cudaGetLastError();  // clear the sticky error before querying
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      msg += "; " + std::to_string(free_bytes >> 20) + " MiB of " + std::to_string(total_bytes >> 20) +
             " MiB free: use a smaller batch or tile size";
  }
  throw Error(msg);
}

namespace {

void* allocate(size_t bytes, int device) {
  CUDA_CHECK(cudaSetDevice(device));
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
  if (err == cudaErrorMemoryAllocation) {
    size_t free_bytes = 0, total_bytes = 0;
    cudaGetLastError();
    cudaMemGetInfo(&free_bytes, &total_bytes);
    throw Error("CUDA out of memory: asked for " + std::to_string(bytes >> 20) + " MiB on cuda:" +
                std::to_string(device) + ", " + std::to_string(free_bytes >> 20) +
                " MiB free; use a smaller batch or tile size");
  }
  CUDA_CHECK(err);
  return p;
}

void release(void* ptr, int device) {
  // Destructors must not throw: a failure here is reported, not raised.
  if (cudaSetDevice(device) != cudaSuccess || cudaFree(ptr) != cudaSuccess)
    std::fprintf(stderr, "filmgrad: warning: cudaFree failed on cuda:%d\n", device);
}

void copy(void* dst, const void* src, size_t bytes, int kind, int device) {
  CUDA_CHECK(cudaSetDevice(device));
  const cudaMemcpyKind k = kind == 0 ? cudaMemcpyHostToDevice : kind == 1 ? cudaMemcpyDeviceToHost
                                                                          : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, k));
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: report zero devices
    return 0;
  }
  return n;
}

void install_hooks(DeviceAllocatorHooks& hooks) {
  hooks.allocate = &allocate;
  hooks.release = &release;
  hooks.copy = &copy;
}

}  // namespace fg::cuda
