// The CUDA device context (tensor/cuda/context.h): one non-blocking compute stream per device, created on first
// use; device selection for a scope; events; the device's properties, read once.
#include <mutex>
#include <string>

#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"

namespace fg::cuda {

namespace {

constexpr int kMaxDevices = 64;

// A clear error for a device index this machine does not have (before any CUDA call uses it).
void check_device(int device) {
  const int n = device_count();
  FG_CHECK(n > 0, "cuda:" << device << " does not exist: no CUDA device (or no driver) is present; use the CPU");
  FG_CHECK(device >= 0 && device < n && device < kMaxDevices,
           "cuda:" << device << " does not exist: this machine has " << n
                   << " CUDA device(s); use cuda:0 .. cuda:" << (n - 1) << " or the CPU");
}

}  // namespace

cudaStream_t stream(int device) {
  static std::once_flag created[kMaxDevices];
  static cudaStream_t streams[kMaxDevices] = {};
  check_device(device);
  std::call_once(created[device], [device] {
    DeviceGuard guard(device);
    CUDA_CHECK(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking));
  });
  return streams[device];
}

void synchronize(int device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaStreamSynchronize(stream(device)));
}

DeviceGuard::DeviceGuard(int device) {
  CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int current = previous_;
  // A destructor must not throw; failing to restore the device leaves it selected, which later calls set again.
  if (cudaGetDevice(&current) == cudaSuccess && current != previous_) (void)cudaSetDevice(previous_);
}

Event::Event(int device) : device_(device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaEventCreate(&event_));
}

Event::~Event() {
  if (event_) (void)cudaEventDestroy(event_);
}

void Event::record() {
  DeviceGuard guard(device_);
  CUDA_CHECK(cudaEventRecord(event_, stream(device_)));
}

void Event::synchronize() { CUDA_CHECK(cudaEventSynchronize(event_)); }

float Event::elapsed_ms(const Event& start) const {
  float ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
  return ms;
}

const DeviceProperties& properties(int device) {
  static std::once_flag read[kMaxDevices];
  static DeviceProperties props[kMaxDevices];
  check_device(device);
  std::call_once(read[device], [device] {
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    DeviceProperties& d = props[device];
    d.sm_count = p.multiProcessorCount;
    d.major = p.major;
    d.minor = p.minor;
    d.total_memory = p.totalGlobalMem;
    d.shared_memory_per_block_optin = p.sharedMemPerBlockOptin;
    int memory_clock_khz = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&memory_clock_khz, cudaDevAttrMemoryClockRate, device));
    // Double data rate: two transfers per clock over a bus of memoryBusWidth bits.
    d.memory_bandwidth_gbs = 2.0 * double(memory_clock_khz) * 1e3 * double(p.memoryBusWidth) / 8.0 / 1e9;
    std::snprintf(d.name, sizeof(d.name), "%s", p.name);
  });
  return props[device];
}

}  // namespace fg::cuda
