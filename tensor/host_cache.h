// Control of the host block cache (tensor/storage.h) for programs that embed the library: they cannot always set
// FG_CPU_CACHE_MB before the first allocation. (Declared apart from storage.h, which nearly every file includes.)
#pragma once
#include <cstddef>

namespace fg {

// Sets the cache's limit in bytes for the rest of the process (instead of FG_CPU_CACHE_MB) and frees cached blocks
// beyond it, largest first; 0 turns the cache off.
void set_host_cache_limit(size_t bytes);
// Blocks of 256 KiB and more handed out and not freed yet, now and at most so far (what the default limit follows).
struct HostCacheUse {
  size_t in_use_bytes = 0, peak_in_use_bytes = 0;
};
HostCacheUse host_cache_use();
// Back to the default: blocks in use plus cached ones within max(1024 MiB, the most in use at once so far).
void reset_host_cache_limit();

}  // namespace fg
