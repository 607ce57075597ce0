// The CUDA caching allocator: device memory for Storage (installed through the hooks of tensor/storage.h by
// tensor/cuda/cuda_runtime.cu). Plain C++ header: any file built with FG_WITH_CUDA may include it.
//
// What it promises:
// - Size classes: a request is rounded up to 512 B, then to one of 8 steps per power of two (at most 12.5 % more),
//   so the activations of one training step land in a few classes that the next step reuses.
// - Stream-ordered reuse: a freed block goes to the free list of its device and stream (the device's compute
//   stream, tensor/cuda/context.h) and is handed out again only for work on that stream. Work queued on a stream
//   runs in order, so a kernel that uses the block's new owner runs after every kernel that used the old one; no
//   event is needed. Memory used on another stream (a library with its own stream) must be synchronised first.
// - Out of memory: when cudaMalloc fails, every cached block of the device is freed and the call retried once; if
//   it fails again, fg::Error says how much was asked, how much the device has free, what filmgrad holds, and what
//   to do.
// - Statistics per device: bytes allocated (current and peak), requested, cached, reserved (current and peak),
//   and counts; print_memory_stats() formats them.
// - FG_CUDA_NO_CACHING=1 turns caching off: every tensor is its own cudaMalloc of exactly its size and is freed
//   at once, so compute-sanitizer's memcheck sees each tensor's bounds (tools/gpu_check.sh sets it).
#pragma once
#include <cstddef>
#include <string>

namespace fg::cuda {

struct MemoryStats {
  size_t allocated_bytes = 0;       // in blocks held by tensors now (rounded sizes)
  size_t peak_allocated_bytes = 0;  // the highest allocated_bytes since start or reset_peak_memory_stats()
  size_t requested_bytes = 0;       // what those tensors asked for, before rounding
  size_t cached_bytes = 0;          // in free blocks kept for reuse
  size_t reserved_bytes = 0;        // allocated + cached: what filmgrad holds from cudaMalloc
  size_t peak_reserved_bytes = 0;
  size_t active_blocks = 0, cached_blocks = 0;
  size_t allocations = 0;  // allocate calls
  size_t cache_hits = 0;   // allocate calls served from the cache
  size_t device_mallocs = 0, device_frees = 0;  // cudaMalloc and cudaFree calls
  size_t oom_retries = 0;  // cudaMalloc failures retried after emptying the cache
  size_t pinned_bytes = 0;  // page-locked host memory held (all devices; the same number for every device)
};

// A block of at least `bytes` on `device`, for use on stream(device). Throws fg::Error on out of memory.
void* device_allocate(size_t bytes, int device);
// Returns a block from device_allocate to the device's free list (or to cudaFree without caching).
void device_release(void* ptr, int device);

// Page-locked host memory (cudaHostAlloc), or null when no CUDA device is usable; freed with pinned_release.
void* pinned_allocate(size_t bytes);
void pinned_release(void* ptr);

MemoryStats memory_stats(int device);
void reset_peak_memory_stats(int device);
// Several lines: the statistics above in MiB with counts, for logs and benchmarks.
std::string print_memory_stats(int device);
// Frees every cached block of every device (waits for the devices, as cudaFree does).
void empty_cache();
// The size class of a request (what allocated_bytes counts for it).
size_t round_allocation_size(size_t bytes);
// False when FG_CUDA_NO_CACHING=1.
bool caching_enabled();

}  // namespace fg::cuda
