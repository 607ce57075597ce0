// A block of device memory shared by tensors that view it. CPU blocks are 64-byte aligned (one cache line,
// one AVX-512 register) so kernels may use aligned loads on a fresh tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/device.h"

namespace fg {

class Tensor;

class Storage {
 public:
  // Allocates `bytes` (uninitialised) on `device`. pinned (CPU only): page-locked host memory from the CUDA backend
  // when it is built and a device is usable, ordinary host memory otherwise; pinned() says which it got.
  Storage(size_t bytes, Device device, bool pinned = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool pinned() const { return pinned_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  bool pinned_ = false;
};

constexpr size_t kCpuAlignment = 64;

// The host block cache: freed blocks of 256 KiB and more are kept for requests of the same rounded size; in use plus
// cached within max(1 GiB, the peak in use), or cached within FG_CPU_CACHE_MB if set (0: off; storage.cpp).
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
  // Page-locked host memory; allocate_pinned returns null when no device is usable (the caller falls back).
  void* (*allocate_pinned)(size_t bytes) = nullptr;
  void (*release_pinned)(void* ptr) = nullptr;
  // Element work on CUDA tensors that tensor/ does itself (tensor/cuda/tensor_kernels.h): copies and casts between
  // two views of one device (src already broadcast to dst's shape), fills, and Philox fills (tensor/philox.h; kind
  // 0 uniform [a, b), 1 normal (mean a, stddev b), 2 bernoulli (p = a)).
  void (*copy_strided)(const Tensor& dst, const Tensor& src) = nullptr;
  void (*fill)(const Tensor& dst, double value) = nullptr;
  void (*random_fill)(const Tensor& dst, uint64_t seed, uint64_t first_block, int kind, double a, double b) = nullptr;
};
DeviceAllocatorHooks& cuda_allocator_hooks();

}  // namespace fg
