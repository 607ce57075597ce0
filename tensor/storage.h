// A block of device memory shared by tensors that view it. CPU blocks are 64-byte aligned (one cache line,
// one AVX-512 register) so kernels may use aligned loads on a fresh tensor.
#pragma once
#include <cstddef>
#include <memory>

#include "tensor/device.h"

namespace fg {

class Storage {
 public:
  // Allocates `bytes` (uninitialised) on `device`.
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

constexpr size_t kCpuAlignment = 64;

// The host block cache: freed blocks of 256 KiB and more are kept (up to FG_CPU_CACHE_MB, default 1024 MiB; 0
// disables it) and handed out again for requests of the same rounded size.
struct HostCacheStats {
  size_t cached_bytes = 0;
  size_t hits = 0, misses = 0;
};
HostCacheStats host_cache_stats();
void release_host_cache();  // frees every cached block

// Hooks the CUDA backend installs (tensor/cuda/) so that tensor/ compiles without CUDA. Unset: CUDA tensors throw.
struct DeviceAllocatorHooks {
  void* (*allocate)(size_t bytes, int device) = nullptr;
  void (*release)(void* ptr, int device) = nullptr;
  // Copies between host and device or device and device; kind: 0 host->device, 1 device->host, 2 device->device.
  void (*copy)(void* dst, const void* src, size_t bytes, int kind, int device) = nullptr;
};
DeviceAllocatorHooks& cuda_allocator_hooks();

}  // namespace fg
