// The CUDA side of tensor/: device memory for Storage from the caching allocator (tensor/cuda/caching_allocator.h),
// page-locked host memory, copies between host and device on the device's stream, and the element kernels of
// tensor/cuda/tensor_kernels.h, all installed into the hooks of tensor/storage.h so that the rest of tensor/
// compiles without CUDA.
//
// Copies are ordered on stream(device) with the kernels. A device-to-host copy waits for the stream before it
// returns (the host reads the result next). A host-to-device copy also waits: the source (a pinned loader buffer
// in particular) may be overwritten or freed as soon as copy_ returns, and the DMA from it must be done by then.
#include <cstdio>

#include "tensor/cuda/caching_allocator.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/cuda_runtime.h"
#include "tensor/cuda/tensor_kernels.h"
#include "tensor/storage.h"

namespace fg::cuda {

void throw_cuda_error(cudaError_t err, const char* statement, const char* file, int line) {
  std::string msg = std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ") in " +
                    statement + " at " + file + ":" + std::to_string(line);
  if (err == cudaErrorMemoryAllocation) {
    size_t free_bytes = 0, total_bytes = 0;
    (void)cudaGetLastError();  // clear the error before querying
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      msg += "; out of memory: " + std::to_string(free_bytes >> 20) + " MiB of " + std::to_string(total_bytes >> 20) +
             " MiB free: use a smaller batch or tile size";
  }
  throw Error(msg);
}

namespace {

void copy_bytes(void* dst, const void* src, size_t bytes, int kind, int device) {
  if (bytes == 0) return;
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  const cudaMemcpyKind k = kind == 0 ? cudaMemcpyHostToDevice : kind == 1 ? cudaMemcpyDeviceToHost
                                                                          : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, s));
  if (kind != 2) CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: report zero devices
    return 0;
  }
  return n;
}

void install_hooks(DeviceAllocatorHooks& hooks) {
  hooks.allocate = &device_allocate;
  hooks.release = &device_release;
  hooks.copy = &copy_bytes;
  hooks.allocate_pinned = &pinned_allocate;
  hooks.release_pinned = &pinned_release;
  hooks.copy_strided = &copy_strided;
  hooks.fill = &fill;
  hooks.random_fill = &random_fill;
}

}  // namespace fg::cuda
