// The CUDA caching allocator (see tensor/cuda/caching_allocator.h for what it promises).
//
// Design, kept small on purpose: no block splitting. Each cudaMalloc'd block has one size class and is reused only
// for requests of that class on the same stream; the free lists are keyed by (stream, size class). A training step
// asks for the same sizes every time, so after the first step nearly every request is a cache hit. One mutex
// guards everything; cudaMalloc is called with it held, as a rare event.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "tensor/cuda/caching_allocator.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"

namespace fg::cuda {

namespace {

struct Block {
  size_t size = 0;       // the size class: what cudaMalloc gave
  size_t requested = 0;  // what the tensor asked for
  uintptr_t stream = 0;  // the stream it may be reused on
};

struct DeviceState {
  std::unordered_map<void*, Block> active;
  std::multimap<std::pair<uintptr_t, size_t>, void*> free_blocks;  // (stream, size class) -> block
  MemoryStats stats;
};

std::string mib(size_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", double(bytes) / 1048576.0);
  return buf;
}

// Selects `device` without throwing (for release paths that run in destructors); returns false on failure.
bool select_device_nothrow(int device) {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess) return false;
  return current == device || cudaSetDevice(device) == cudaSuccess;
}

class Allocator {
 public:
  Allocator() {
    const char* env = std::getenv("FG_CUDA_NO_CACHING");
    caching_ = !(env && env[0] != '\0' && env[0] != '0');
  }

  bool caching() const { return caching_; }

  void* allocate(size_t bytes, int device) {
    const size_t size = caching_ ? round_allocation_size(bytes) : (bytes == 0 ? 1 : bytes);
    const uintptr_t s = reinterpret_cast<uintptr_t>(stream(device));  // also checks that the device exists
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceState& state = devices_[device];
    ++state.stats.allocations;
    void* p = nullptr;
    if (caching_) {
      auto it = state.free_blocks.find({s, size});
      if (it != state.free_blocks.end()) {
        p = it->second;
        state.free_blocks.erase(it);
        state.stats.cached_bytes -= size;
        --state.stats.cached_blocks;
        ++state.stats.cache_hits;
      }
    }
    if (!p) p = device_malloc(state, size, bytes, device);
    state.active[p] = Block{size, bytes, s};
    MemoryStats& st = state.stats;
    st.allocated_bytes += size;
    st.requested_bytes += bytes;
    ++st.active_blocks;
    if (st.allocated_bytes > st.peak_allocated_bytes) st.peak_allocated_bytes = st.allocated_bytes;
    return p;
  }

  void release(void* ptr, int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceState& state = devices_[device];
    auto it = state.active.find(ptr);
    if (it == state.active.end()) {
      // Runs in Storage's destructor, which must not throw: report the bug instead.
      std::fprintf(stderr, "filmgrad: internal error: freeing a block the CUDA allocator does not know (cuda:%d)\n",
                   device);
      return;
    }
    const Block b = it->second;
    state.active.erase(it);
    MemoryStats& st = state.stats;
    st.allocated_bytes -= b.size;
    st.requested_bytes -= b.requested;
    --st.active_blocks;
    if (caching_) {
      state.free_blocks.emplace(std::make_pair(b.stream, b.size), ptr);
      st.cached_bytes += b.size;
      ++st.cached_blocks;
      return;
    }
    free_block(state, ptr, b.size, device);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [device, state] : devices_) free_cached(state, device);
  }

  MemoryStats stats(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    MemoryStats st = devices_[device].stats;
    st.pinned_bytes = pinned_bytes_;
    return st;
  }

  void reset_peak(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    MemoryStats& st = devices_[device].stats;
    st.peak_allocated_bytes = st.allocated_bytes;
    st.peak_reserved_bytes = st.reserved_bytes;
  }

  void* pinned_allocate(size_t bytes) {
    if (device_count() == 0) return nullptr;
    void* p = nullptr;
    if (cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocPortable) != cudaSuccess) {
      (void)cudaGetLastError();  // not sticky; cleared so the next CUDA_CHECK does not see it
      return nullptr;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    pinned_[p] = bytes;
    pinned_bytes_ += bytes;
    return p;
  }

  void pinned_release(void* ptr) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = pinned_.find(ptr);
      if (it != pinned_.end()) {
        pinned_bytes_ -= it->second;
        pinned_.erase(it);
      }
    }
    const cudaError_t err = cudaFreeHost(ptr);
    if (err != cudaSuccess && err != cudaErrorCudartUnloading)
      std::fprintf(stderr, "filmgrad: warning: cudaFreeHost failed: %s\n", cudaGetErrorString(err));
  }

 private:
  // cudaMalloc with one retry after emptying the device's cache; mutex_ is held.
  void* device_malloc(DeviceState& state, size_t size, size_t requested, int device) {
    DeviceGuard guard(device);
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation && state.stats.cached_blocks > 0) {
      (void)cudaGetLastError();
      ++state.stats.oom_retries;
      free_cached(state, device);
      err = cudaMalloc(&p, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
      throw Error("CUDA out of memory on cuda:" + std::to_string(device) + ": asked for " + mib(requested) +
                  " (" + std::to_string(requested) + " bytes), " + mib(free_bytes) + " of " + mib(total_bytes) +
                  " free on the device; filmgrad holds " + mib(state.stats.allocated_bytes) + " in tensors and " +
                  mib(state.stats.cached_bytes) + " cached. Use a smaller batch or tile size, or free tensors");
    }
    CUDA_CHECK(err);
    MemoryStats& st = state.stats;
    ++st.device_mallocs;
    st.reserved_bytes += size;
    if (st.reserved_bytes > st.peak_reserved_bytes) st.peak_reserved_bytes = st.reserved_bytes;
    return p;
  }

  // cudaFree of one block, never throwing (it runs from destructors). mutex_ is held.
  void free_block(DeviceState& state, void* ptr, size_t size, int device) {
    const cudaError_t err = select_device_nothrow(device) ? cudaFree(ptr) : cudaErrorInvalidDevice;
    // At process exit the runtime may already be gone; the driver reclaims the memory then.
    if (err != cudaSuccess && err != cudaErrorCudartUnloading)
      std::fprintf(stderr, "filmgrad: warning: cudaFree failed on cuda:%d: %s\n", device, cudaGetErrorString(err));
    state.stats.reserved_bytes -= size;
    ++state.stats.device_frees;
  }

  void free_cached(DeviceState& state, int device) {
    for (auto& [key, ptr] : state.free_blocks) free_block(state, ptr, key.second, device);
    state.free_blocks.clear();
    state.stats.cached_bytes = 0;
    state.stats.cached_blocks = 0;
  }

  std::mutex mutex_;
  std::map<int, DeviceState> devices_;
  std::unordered_map<void*, size_t> pinned_;
  size_t pinned_bytes_ = 0;
  bool caching_ = true;
};

// Never destroyed: tensors released during static destruction still find it (their blocks go back to the cache,
// which the driver reclaims at exit).
Allocator& allocator() {
  static Allocator* instance = new Allocator();
  return *instance;
}

}  // namespace

size_t round_allocation_size(size_t bytes) {
  constexpr size_t kMinBlock = 512;
  if (bytes <= kMinBlock) return kMinBlock;
  size_t power = kMinBlock;  // the largest power of two <= bytes
  while (power <= bytes / 2) power *= 2;
  const size_t step = power / 8 > kMinBlock ? power / 8 : kMinBlock;
  return (bytes + step - 1) / step * step;
}

bool caching_enabled() { return allocator().caching(); }

void* device_allocate(size_t bytes, int device) { return allocator().allocate(bytes, device); }
void device_release(void* ptr, int device) { allocator().release(ptr, device); }
void* pinned_allocate(size_t bytes) { return allocator().pinned_allocate(bytes); }
void pinned_release(void* ptr) { allocator().pinned_release(ptr); }
MemoryStats memory_stats(int device) { return allocator().stats(device); }
void reset_peak_memory_stats(int device) { allocator().reset_peak(device); }
void empty_cache() { allocator().empty_cache(); }

std::string print_memory_stats(int device) {
  const MemoryStats s = memory_stats(device);
  std::ostringstream os;
  os << "cuda:" << device << " memory (caching " << (caching_enabled() ? "on" : "off") << ")\n"
     << "  allocated " << mib(s.allocated_bytes) << " in " << s.active_blocks << " blocks (peak "
     << mib(s.peak_allocated_bytes) << "; requested " << mib(s.requested_bytes) << ")\n"
     << "  cached    " << mib(s.cached_bytes) << " in " << s.cached_blocks << " blocks\n"
     << "  reserved  " << mib(s.reserved_bytes) << " (peak " << mib(s.peak_reserved_bytes) << ")\n"
     << "  allocations " << s.allocations << ", cache hits " << s.cache_hits << ", cudaMalloc " << s.device_mallocs
     << ", cudaFree " << s.device_frees << ", out-of-memory retries " << s.oom_retries << "\n"
     << "  pinned host " << mib(s.pinned_bytes) << "\n";
  return os.str();
}

}  // namespace fg::cuda
