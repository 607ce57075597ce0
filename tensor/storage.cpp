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
// Bounded so that memory stays bounded:
//  - by default, the blocks in use plus the cached ones stay within max(1024 MiB, the most ever in use at once):
//    a step that frees more than 1 GiB (the cross-channel network at 128 px: 11 % of its step zeroing fresh pages
//    with a fixed 1 GiB) gets all of it back next step, yet the footprint never exceeds the peak the process
//    would reach without a cache (a miss that would exceed it frees cached blocks first, largest first);
//  - with FG_CPU_CACHE_MB or set_host_cache_limit(), the cached blocks alone stay within that limit (0: off).
class HostBlockCache {
 public:
  static HostBlockCache& instance() {
    static HostBlockCache cache;
    return cache;
  }
  // A block of `rounded` bytes is about to be in use: a cached one, or null (the caller allocates it).
  void* take(size_t rounded) {
    std::lock_guard<std::mutex> lock(mutex_);
    in_use_ += rounded;
    peak_in_use_ = std::max(peak_in_use_, in_use_);
    auto it = blocks_.find(rounded);
    if (it == blocks_.end()) {
      ++stats_.misses;
      trim_locked();
      return nullptr;
    }
    void* p = it->second;
    blocks_.erase(it);
    stats_.cached_bytes -= rounded;
    ++stats_.hits;
    return p;
  }
  // The caller could not allocate the block take() said to allocate.
  void untake(size_t rounded) {
    std::lock_guard<std::mutex> lock(mutex_);
    in_use_ -= rounded;
  }
  // Keeps the block if it fits under the limit; otherwise frees it.
  void give(void* p, size_t rounded) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      in_use_ -= rounded;
      if (stats_.cached_bytes + rounded <= capacity_locked()) {
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
  void set_limit(size_t bytes, bool fixed) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
    fixed_ = fixed;
    trim_locked();
  }
  HostCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  HostCacheUse use() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {in_use_, peak_in_use_};
  }

 private:
  HostBlockCache() {
    const char* env = std::getenv("FG_CPU_CACHE_MB");
    fixed_ = env != nullptr;
    limit_ = env ? size_t(std::strtoull(env, nullptr, 10)) << 20 : kDefaultLimit;
  }
  ~HostBlockCache() { release_all(); }
  // The bytes the cache may hold now.
  size_t capacity_locked() const {
    if (fixed_) return limit_;
    const size_t bound = std::max(limit_, peak_in_use_);
    return bound > in_use_ ? bound - in_use_ : 0;
  }
  // The largest blocks first: fewest frees to get under the capacity.
  void trim_locked() {
    const size_t capacity = capacity_locked();
    while (stats_.cached_bytes > capacity) {
      auto last = std::prev(blocks_.end());
      std::free(last->second);
      stats_.cached_bytes -= last->first;
      blocks_.erase(last);
    }
  }
  static constexpr size_t kDefaultLimit = size_t(1024) << 20;
  std::mutex mutex_;
  std::multimap<size_t, void*> blocks_;
  size_t limit_;
  bool fixed_;
  HostCacheStats stats_;
  size_t in_use_ = 0, peak_in_use_ = 0;  // blocks handed out by take() and not given back
};

}  // namespace

HostCacheStats host_cache_stats() { return HostBlockCache::instance().stats(); }
void release_host_cache() { HostBlockCache::instance().release_all(); }
void set_host_cache_limit(size_t bytes) { HostBlockCache::instance().set_limit(bytes, true); }
HostCacheUse host_cache_use() { return HostBlockCache::instance().use(); }
void reset_host_cache_limit() { HostBlockCache::instance().set_limit(size_t(1024) << 20, false); }

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
      if (!ptr_ && rounded >= kCachedMinBytes) HostBlockCache::instance().untake(rounded);
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
