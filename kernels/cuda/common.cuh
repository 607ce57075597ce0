// Shared pieces of the hand-written CUDA kernels (kernels/cuda/*.cu; include from .cu files only): the float
// dtype dispatch, grid-stride loops, launch geometry, loads and stores through the f32 compute type, block
// reductions in double, and the argument checks every CUDA entry point makes.
//
// Conventions every kernel here follows:
// - one thread per output element (or per row/column where a kernel reduces), in a grid-stride loop with int64
//   indices, so any size works with a capped grid;
// - f16 and bf16 are loaded into f32, computed in f32 and rounded once on store; f64 computes in f64;
// - every launch goes to stream(device) under a DeviceGuard, and is followed by CUDA_CHECK_LAUNCH();
// - a kernel is never launched for zero elements.
#pragma once
#include <cstdint>

#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/dtype_convert.cuh"
#include "tensor/cuda/strided.cuh"
#include "tensor/tensor.h"

namespace fg::kernels::cuda {

using ::fg::cuda::acc_t;
using ::fg::cuda::DeviceGuard;
using ::fg::cuda::from_acc;
using ::fg::cuda::grid_for;
using ::fg::cuda::OffsetCalc;
using ::fg::cuda::to_acc;

constexpr int kThreads = 256;
// Blocks per launch at most: about four waves of resident threads on an H100 (132 SMs x 2048 threads). Larger
// tensors take several grid-stride iterations per thread, which the parity tests reach with a few million elements.
constexpr int64_t kMaxBlocks = 4096;
inline unsigned blocks_for(int64_t n) { return grid_for(n, kThreads, kMaxBlocks); }

// The grid-stride loop over [0, n).
#define FG_CUDA_KERNEL_LOOP(i, n)                                                                   \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

inline cudaStream_t stream_of(const Tensor& t) { return ::fg::cuda::stream(t.device().index); }

// Runs fn(tag) with tag's type one of float, double, half_t, bf16_t according to dt; other dtypes throw.
template <typename Fn>
void dispatch_float_types(DType dt, const char* op, Fn&& fn) {
  switch (dt) {
    case DType::F32: fn(float{}); return;
    case DType::F64: fn(double{}); return;
    case DType::F16: fn(half_t{}); return;
    case DType::BF16: fn(bf16_t{}); return;
    default:
      throw Error(std::string(op) + ": dtype " + dtype_name(dt) +
                  " is not supported on CUDA; cast to f32, f16, bf16 or f64 first");
  }
}

template <typename T>
__device__ inline acc_t<T> load(const T* p) {
  return to_acc(*p);
}
template <typename T>
__device__ inline void store(T* p, acc_t<T> v) {
  *p = from_acc<T>(v);
}

// A scalar parameter rounded as the CPU kernels round it (scalar_t(x)): to f32 for f32/f16/bf16, f64 for f64.
template <typename T>
inline acc_t<T> scalar_param(double x) {
  return acc_t<T>(x);
}

// Overloads that keep f32 arithmetic in f32 (no silent promotion to f64) and f64 in f64. Qualified with :: because
// fg::kernels declares Tensor functions of the same names (tanh, sum).
__device__ inline float dev_exp(float x) { return ::expf(x); }
__device__ inline double dev_exp(double x) { return ::exp(x); }
__device__ inline float dev_log(float x) { return ::logf(x); }
__device__ inline double dev_log(double x) { return ::log(x); }
__device__ inline float dev_sqrt(float x) { return ::sqrtf(x); }
__device__ inline double dev_sqrt(double x) { return ::sqrt(x); }
__device__ inline float dev_tanh(float x) { return ::tanhf(x); }
__device__ inline double dev_tanh(double x) { return ::tanh(x); }
__device__ inline float dev_pow(float x, float e) { return ::powf(x, e); }
__device__ inline double dev_pow(double x, double e) { return ::pow(x, e); }
__device__ inline float dev_abs(float x) { return ::fabsf(x); }
__device__ inline double dev_abs(double x) { return ::fabs(x); }

// Reduction of `v` over the block (blockDim.x a multiple of 32, at most 1024) in double: a sum, or with kMax a
// maximum that ignores NaN (fmax). Every thread of the block must call it; the result is valid in thread 0.
// `shared` holds 32 doubles. A fixed tree, so the result is the same on every run.
template <bool kMax = false>
__device__ inline double block_reduce_double(double v, double* shared) {
  auto combine = [](double a, double b) { return kMax ? fmax(a, b) : a + b; };
  for (int offset = 16; offset > 0; offset /= 2) v = combine(v, __shfl_down_sync(0xffffffffu, v, offset));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = int(blockDim.x) / 32;
  v = threadIdx.x < warps ? shared[threadIdx.x] : (kMax ? -INFINITY : 0.0);
  if (warp == 0)
    for (int offset = 16; offset > 0; offset /= 2) v = combine(v, __shfl_down_sync(0xffffffffu, v, offset));
  return v;
}
__device__ inline double block_sum_double(double v, double* shared) { return block_reduce_double<false>(v, shared); }

// ---- argument checks (fg::Error with one line saying what to do) ----

inline void check_cuda_input(const Tensor& t, const char* op, const char* what) {
  FG_CHECK(t.defined(), op << ": " << what << " is an undefined tensor");
  FG_CHECK(t.device().is_cuda(), op << ": " << what << " is on " << t.device().str()
                                    << " but the other operands are on CUDA; move it with .to(Device::cuda())");
}

// b must match a in shape, dtype and device.
inline void check_same(const Tensor& a, const char* a_name, const Tensor& b, const char* b_name, const char* op) {
  check_cuda_input(a, op, a_name);
  check_cuda_input(b, op, b_name);
  FG_CHECK(a.shape() == b.shape(), op << ": " << a_name << " " << shape_str(a.shape()) << " and " << b_name << " "
                                      << shape_str(b.shape()) << " must have the same shape");
  FG_CHECK(a.dtype() == b.dtype(),
           op << ": " << a_name << " is " << dtype_name(a.dtype()) << " but " << b_name << " is " << dtype_name(b.dtype()));
  FG_CHECK(a.device() == b.device(), op << ": " << a_name << " is on " << a.device().str() << " but " << b_name
                                        << " is on " << b.device().str() << "; move one so they match");
}

}  // namespace fg::kernels::cuda
