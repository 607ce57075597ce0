// Strided copies and casts, fills and Philox fills on CUDA tensors (see tensor/cuda/tensor_kernels.h).
// One grid-stride kernel per job, templated on the element types; the index math is tensor/cuda/strided.cuh.
#include <cmath>

#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/dtype_convert.cuh"
#include "tensor/cuda/philox.cuh"
#include "tensor/cuda/strided.cuh"
#include "tensor/cuda/tensor_kernels.h"
#include "tensor/overlap.h"

namespace fg::cuda {

namespace {

constexpr int kThreads = 256;

template <typename Fn>
void dispatch_all(DType dt, Fn fn) {
  switch (dt) {
    case DType::F32: fn(float{}); break;
    case DType::F64: fn(double{}); break;
    case DType::F16: fn(half_t{}); break;
    case DType::BF16: fn(bf16_t{}); break;
    case DType::I64: fn(int64_t{}); break;
    case DType::I32: fn(int32_t{}); break;
    case DType::U8: fn(uint8_t{}); break;
  }
}

// dst[off0] = convert(src[off1]) for every logical element.
template <typename D, typename S>
__global__ void copy_kernel(D* dst, const S* src, OffsetCalc<2> calc, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    calc.offsets(i, off);
    dst[off[0]] = convert<D, S>(src[off[1]]);
  }
}

template <typename T>
__global__ void fill_kernel(T* dst, OffsetCalc<1> calc, int64_t n, T value) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[1];
    calc.offsets(i, off);
    dst[off[0]] = value;
  }
}

// One thread per Philox block of four elements (tensor/philox.h): the block is computed once for its four words.
template <typename T>
__global__ void random_fill_kernel(T* dst, OffsetCalc<1> calc, int64_t n, uint64_t seed, uint64_t first_block,
                                   int kind, double a, double b) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t blk = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; blk < blocks;
       blk += int64_t(gridDim.x) * blockDim.x) {
    const PhiloxWords words = philox_block(first_block + uint64_t(blk), seed);
    for (int j = 0; j < 4; ++j) {
      const int64_t i = blk * 4 + j;
      if (i >= n) break;
      double v;
      if (kind == 0) {
        // tensor/philox.cpp: fma(hi - lo, u, lo), one rounding.
        v = fma(b - a, double(philox_uniform01(words.w[j])), a);
      } else if (kind == 1) {
        const int pair = (j / 2) * 2;
        const double u1 = 1.0 - double(philox_uniform01(words.w[pair]));
        const double u2 = double(philox_uniform01(words.w[pair + 1]));
        const double r = sqrt(-2.0 * log(u1));
        const double angle = 2.0 * M_PI * u2;
        const double z = (j % 2 == 0) ? r * cos(angle) : r * sin(angle);
        v = fma(b, z, a);  // mean + stddev * z, as tensor/philox.cpp computes it
      } else {
        v = double(philox_uniform01(words.w[j])) < a ? 1.0 : 0.0;
      }
      int64_t off[1];
      calc.offsets(i, off);
      dst[off[0]] = convert<T, double>(v);
    }
  }
}

}  // namespace

void copy_strided(const Tensor& dst, const Tensor& src_in) {
  FG_ASSERT(dst.shape() == src_in.shape(), "copy_strided: shapes differ");
  FG_ASSERT(dst.device() == src_in.device() && dst.device().is_cuda(), "copy_strided: not one CUDA device");
  const int64_t n = dst.numel();
  if (n == 0) return;
  const int device = dst.device().index;
  DeviceGuard guard(device);
  const Tensor& src = src_in;
  // Tensor::copy_ has refused partial overlap (tensor/overlap.h), so every element either has memory of its own
  // or is copied onto itself, and the threads may run in any order.
  FG_ASSERT(memory_overlap(dst, src) != MemOverlap::PARTIAL, "copy_strided: source and destination overlap");
  if (dst.dtype() == src.dtype() && dst.raw_data() == src.raw_data() && dst.strides() == src.strides()) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDeviceToDevice,
                               stream(device)));
    return;
  }
  const Shape* strides[2] = {&dst.strides(), &src.strides()};
  const OffsetCalc<2> calc = make_offset_calc<2>(dst.shape(), strides);
  dispatch_all(dst.dtype(), [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_all(src.dtype(), [&](auto stag) {
      using S = decltype(stag);
      copy_kernel<D, S><<<grid_for(n, kThreads), kThreads, 0, stream(device)>>>(
          static_cast<D*>(dst.raw_data()), static_cast<const S*>(src.raw_data()), calc, n);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void fill(const Tensor& dst, double value) {
  FG_ASSERT(dst.device().is_cuda(), "fill: not a CUDA tensor");
  const int64_t n = dst.numel();
  if (n == 0) return;
  const int device = dst.device().index;
  DeviceGuard guard(device);
  const Shape* strides[1] = {&dst.strides()};
  const OffsetCalc<1> calc = make_offset_calc<1>(dst.shape(), strides);
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream(device)>>>(static_cast<T*>(dst.raw_data()), calc, n,
                                                                          from_f64<T>(value));
    CUDA_CHECK_LAUNCH();
  });
}

void random_fill(const Tensor& dst, uint64_t seed, uint64_t first_block, int kind, double a, double b) {
  FG_ASSERT(dst.device().is_cuda(), "random_fill: not a CUDA tensor");
  FG_ASSERT(kind >= 0 && kind <= 2, "random_fill: unknown kind " << kind);
  const int64_t n = dst.numel();
  if (n == 0) return;
  const int device = dst.device().index;
  DeviceGuard guard(device);
  const Shape* strides[1] = {&dst.strides()};
  const OffsetCalc<1> calc = make_offset_calc<1>(dst.shape(), strides);
  const int64_t blocks = (n + 3) / 4;
  auto launch = [&](auto tag) {
    using T = decltype(tag);
    random_fill_kernel<T><<<grid_for(blocks, kThreads), kThreads, 0, stream(device)>>>(
        static_cast<T*>(dst.raw_data()), calc, n, seed, first_block, kind, a, b);
    CUDA_CHECK_LAUNCH();
  };
  switch (dst.dtype()) {
    case DType::F32: launch(float{}); break;
    case DType::F64: launch(double{}); break;
    case DType::F16: launch(half_t{}); break;
    case DType::BF16: launch(bf16_t{}); break;
    default: FG_CHECK(false, "random fill: tensor must be floating point, got " << dtype_name(dst.dtype()));
  }
}

}  // namespace fg::cuda
