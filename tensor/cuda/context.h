// The CUDA device context every CUDA kernel launches into (compiled only with FG_WITH_CUDA; include from .cu files
// and from .cpp files guarded by FG_WITH_CUDA).
//
// filmgrad has no hidden "current device": a kernel runs on the device of its tensors, on that device's stream
// from stream(device). Each device has one compute stream (non-blocking, created on first use); the caching
// allocator (tensor/cuda/caching_allocator.h) orders its reuse of freed blocks on it, so work queued on it never
// sees memory it still uses handed to someone else. Host reads of device memory (Tensor::to(cpu), item()) wait
// for the stream. DeviceGuard sets the runtime's device for a scope and restores it.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace fg::cuda {

int device_count();              // 0 when there is no driver or no device
cudaStream_t stream(int device);  // the device's compute stream
void synchronize(int device);    // waits for the device's stream

class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// An event on a device's stream, for timing (benchmarks) and cross-stream waits.
class Event {
 public:
  explicit Event(int device);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record();                           // on stream(device)
  void synchronize();
  float elapsed_ms(const Event& start) const;  // this event's time minus start's; both recorded and complete

 private:
  cudaEvent_t event_ = nullptr;
  int device_ = 0;
};

struct DeviceProperties {
  int sm_count = 0, major = 0, minor = 0;
  size_t total_memory = 0, shared_memory_per_block_optin = 0;
  double memory_bandwidth_gbs = 0.0;  // from the memory clock and bus width
  char name[256] = {};
};
const DeviceProperties& properties(int device);

// Launch geometry helpers shared by the elementwise kernels.
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline unsigned grid_for(int64_t n, int threads = 256, int64_t max_blocks = 65535LL * 32) {
  int64_t g = ceil_div(n, threads);
  return unsigned(g < 1 ? 1 : (g > max_blocks ? max_blocks : g));
}

}  // namespace fg::cuda
