// Loop helpers shared by the CPU kernels: map a function over contiguous buffers, parallel with OpenMP when the
// work is large enough to pay for the threads. Kept tiny on purpose: a reader sees the loop, not a framework.
#pragma once
#include <cstdint>

namespace fg::cpu {

// Elements below which a loop stays single-threaded.
constexpr int64_t kParallelGrain = 32768;

template <typename T, typename F>
void map1(const T* x, T* y, int64_t n, F f) {
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <typename T, typename F>
void map2(const T* a, const T* b, T* y, int64_t n, F f) {
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}

}  // namespace fg::cpu
