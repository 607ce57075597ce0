// Storage: 64-byte aligned host memory, or device memory through the hooks the CUDA backend installs.
#include "tensor/storage.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>
#include <string>

#include "tensor/error.h"
#ifdef FG_WITH_CUDA
#include "tensor/cuda/cuda_runtime.h"
#endif

namespace fg {

namespace {
constexpr size_t kHugePageBytes = size_t(2) << 20;
}

DeviceAllocatorHooks& cuda_allocator_hooks() {
  static DeviceAllocatorHooks hooks;
#ifdef FG_WITH_CUDA
  // Installed on first use, so that a static library link cannot drop the CUDA runtime layer.
  static const bool installed = (cuda::install_hooks(hooks), true);
  (void)installed;
#endif
  return hooks;
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (device.is_cpu()) {
    size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    if (rounded == 0) rounded = kCpuAlignment;
    // Large blocks are 2 MiB aligned and ask for transparent huge pages: first touching a fresh 32 MB activation
    // costs about 4x more in 4 KiB page faults (measured on the conv benchmarks), and activations are large.
    const bool huge = rounded >= kHugePageBytes;
    if (huge) rounded = (rounded + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    ptr_ = std::aligned_alloc(huge ? kHugePageBytes : kCpuAlignment, rounded);
    FG_CHECK(ptr_ != nullptr, "out of host memory: could not allocate " << bytes
                                  << " bytes; use a smaller batch or image size");
    if (huge) ::madvise(ptr_, rounded, MADV_HUGEPAGE);  // advice only: failure changes nothing
  } else {
    auto& hooks = cuda_allocator_hooks();
    FG_CHECK(hooks.allocate != nullptr, "cannot allocate on " << device.str()
                                            << ": this filmgrad was built without CUDA (rebuild with nvcc present)");
    ptr_ = hooks.allocate(bytes, device.index);
  }
}

Storage::~Storage() {
  if (!ptr_) return;
  if (device_.is_cpu()) {
    std::free(ptr_);
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
