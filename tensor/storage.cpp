// Storage: 64-byte aligned host memory (large blocks reused through a bounded cache), or device memory through
// the hooks the CUDA backend installs.
#include "tensor/storage.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <string>

#include "tensor/error.h"
#include "tensor/host_cache.h"
#ifdef FG_WITH_CUDA
#include "tensor/cuda/cuda_runtime.h"
#endif

namespace fg {

namespace {

constexpr size_t kHugePageBytes = size_t(2) << 20;
constexpr size_t kCachedMinBytes = size_t(256) << 10;  // smaller blocks go straight to malloc, which is fast for them

// Rounds a request so that blocks of nearly equal size share a bucket: 64 B for small blocks, 64 KiB up to 2 MiB,
// then whole 2 MiB huge pages.
size_t round_host_bytes(size_t bytes) {
  const size_t step = bytes >= kHugePageBytes ? kHugePageBytes : bytes >= kCachedMinBytes ? (size_t(64) << 10)
                                                                                          : kCpuAlignment;
  return std::max(step, (bytes + step - 1) / step * step);
}

// Freed large host blocks, kept for reuse by exact rounded size. A training step allocates the same activation
// sizes every time; reusing them avoids the kernel zeroing fresh pages (10 % of a CPU step, measured with perf).
// The cache is bounded (FG_CPU_CACHE_MB, default 1024; 0 turns it off) so that memory stays bounded.
class HostBlockCache {
 public:
  static HostBlockCache& instance() {
    static HostBlockCache cache;
    return cache;
  }
  void* take(size_t rounded) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.find(rounded);
    if (it == blocks_.end()) {
      ++stats_.misses;
      return nullptr;
    }
    void* p = it->second;
    blocks_.erase(it);
    stats_.cached_bytes -= rounded;
    ++stats_.hits;
    return p;
  }
  // Keeps the block if it fits under the limit; otherwise frees it.
  void give(void* p, size_t rounded) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stats_.cached_bytes + rounded <= limit_) {
        blocks_.emplace(rounded, p);
        stats_.cached_bytes += rounded;
        return;
      }
    }
    std::free(p);
  }
  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, p] : blocks_) std::free(p);
    blocks_.clear();
    stats_.cached_bytes = 0;
  }
  void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
    // The largest blocks first: fewest frees to get under the new limit.
    while (stats_.cached_bytes > limit_) {
      auto last = std::prev(blocks_.end());
      std::free(last->second);
      stats_.cached_bytes -= last->first;
      blocks_.erase(last);
    }
  }
  HostCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  HostBlockCache() {
    const char* env = std::getenv("FG_CPU_CACHE_MB");
    limit_ = env ? size_t(std::strtoull(env, nullptr, 10)) << 20 : size_t(1024) << 20;
  }
  ~HostBlockCache() { release_all(); }
  std::mutex mutex_;
  std::multimap<size_t, void*> blocks_;
  size_t limit_;
  HostCacheStats stats_;
};

}  // namespace

HostCacheStats host_cache_stats() { return HostBlockCache::instance().stats(); }
void release_host_cache() { HostBlockCache::instance().release_all(); }
void set_host_cache_limit(size_t bytes) { HostBlockCache::instance().set_limit(bytes); }

DeviceAllocatorHooks& cuda_allocator_hooks() {
  static DeviceAllocatorHooks hooks;
#ifdef FG_WITH_CUDA
  // Installed on first use, so that a static library link cannot drop the CUDA runtime layer.
  static const bool installed = (cuda::install_hooks(hooks), true);
  (void)installed;
#endif
  return hooks;
}

Storage::Storage(size_t bytes, Device device, bool pinned) : bytes_(bytes), device_(device) {
  if (pinned && device.is_cpu() && cuda_allocator_hooks().allocate_pinned) {
    ptr_ = cuda_allocator_hooks().allocate_pinned(bytes);
    pinned_ = ptr_ != nullptr;
    if (pinned_) return;
  }
  if (device.is_cpu()) {
    const size_t rounded = round_host_bytes(bytes);
    if (rounded >= kCachedMinBytes) ptr_ = HostBlockCache::instance().take(rounded);
    if (!ptr_) {
      // Large blocks are 2 MiB aligned and ask for transparent huge pages: first touching a fresh 32 MB block costs
      // about 4x more in 4 KiB page faults (measured on the conv benchmarks).
      const bool huge = rounded >= kHugePageBytes;
      ptr_ = std::aligned_alloc(huge ? kHugePageBytes : kCpuAlignment, rounded);
      FG_CHECK(ptr_ != nullptr, "out of host memory: could not allocate " << bytes
                                    << " bytes; use a smaller batch or image size");
      if (huge) ::madvise(ptr_, rounded, MADV_HUGEPAGE);  // advice only: failure changes nothing
    }
  } else {
    auto& hooks = cuda_allocator_hooks();
    FG_CHECK(hooks.allocate != nullptr, "cannot allocate on " << device.str()
                                            << ": this filmgrad was built without CUDA (rebuild with nvcc present)");
    ptr_ = hooks.allocate(bytes, device.index);
  }
}

Storage::~Storage() {
  if (!ptr_) return;
  if (pinned_) {
    cuda_allocator_hooks().release_pinned(ptr_);
  } else if (device_.is_cpu()) {
    const size_t rounded = round_host_bytes(bytes_);
    if (rounded >= kCachedMinBytes) HostBlockCache::instance().give(ptr_, rounded);
    else std::free(ptr_);
  } else if (cuda_allocator_hooks().release) {
    cuda_allocator_hooks().release(ptr_, device_.index);
  }
}

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    const std::string num = text.substr(5);
    FG_CHECK(!num.empty() && num.find_first_not_of("0123456789") == std::string::npos && num.size() < 4,
             "bad device '" << text << "': use cpu, cuda or cuda:N");
    return Device::cuda(std::stoi(num));
  }
  throw Error("bad device '" + text + "': use cpu, cuda or cuda:N");
}

}  // namespace fg
