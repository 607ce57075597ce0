// CUDA dropout (kernels/cuda/dropout.h): the keep-mask drawn from Philox exactly as the CPU draws it
// (kernels/cpu/dropout.cpp, tensor/philox.h), one thread per Philox block of four elements, and y = x * mask with
// each mask element scaling its block of `inner` elements. Outputs are written (=).
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dropout.h"
#include "tensor/cuda/philox.cuh"

namespace fg::kernels::cuda {

namespace {

// mask: (numel) contiguous.
template <typename T>
__global__ void dropout_mask_kernel(T* mask, int64_t numel, uint64_t seed, uint64_t first_block, double keep_prob,
                                    T scale) {
  const int64_t blocks = (numel + 3) / 4;
  FG_CUDA_KERNEL_LOOP(b, blocks) {
    const ::fg::cuda::PhiloxWords words = ::fg::cuda::philox_block(first_block + uint64_t(b), seed);
    for (int r = 0; r < 4 && 4 * b + r < numel; ++r)
      mask[4 * b + r] = double(::fg::cuda::philox_uniform01(words.w[r])) < keep_prob ? scale : T{};
  }
}

// x, y: (rows * inner) contiguous; mask: (rows).
template <typename T>
__global__ void apply_mask_kernel(const T* x, const T* mask, T* y, int64_t n, int64_t inner) {
  FG_CUDA_KERNEL_LOOP(i, n) { store(y + i, load(x + i) * load(mask + i / inner)); }
}

}  // namespace

Tensor dropout_mask(const Shape& shape, double p, Generator& gen, DType dtype, Device device) {
  FG_CHECK(p >= 0.0 && p < 1.0, "dropout: probability p = " << p << " must be in [0, 1)");
  FG_CHECK(device.is_cuda(), "dropout: the CUDA mask was asked for on " << device.str());
  Tensor mask = Tensor::empty(shape, dtype, device);
  const int64_t n = mask.numel();
  DeviceGuard guard(device.index);
  dispatch_float_types(dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    // Reserved inside the dispatch so that an unsupported dtype throws before the generator advances.
    const uint64_t seed = gen.seed();
    const uint64_t first = gen.reserve(uint64_t(n));
    if (n == 0) return;
    // A zero T{} is all-zero bits for every type here (0.0f, 0.0, +0 in f16 and bf16).
    const T scale = ::fg::cuda::convert<T, double>(1.0 / (1.0 - p));
    dropout_mask_kernel<T><<<blocks_for((n + 3) / 4), kThreads, 0, stream_of(mask)>>>(
        mask.data<T>(), n, seed, first, 1.0 - p, scale);
    CUDA_CHECK_LAUNCH();
  });
  return mask;
}

Tensor apply_dropout_mask(const Tensor& x_in, const Tensor& mask_in) {
  check_cuda_input(x_in, "dropout", "input");
  check_cuda_input(mask_in, "dropout", "mask");
  FG_CHECK(x_in.dtype() == mask_in.dtype(),
           "dropout: input is " << dtype_name(x_in.dtype()) << " but the mask is " << dtype_name(mask_in.dtype()));
  FG_CHECK(x_in.device() == mask_in.device(),
           "dropout: input is on " << x_in.device().str() << " but the mask is on " << mask_in.device().str());
  const Shape& xs = x_in.shape();
  const Shape& ms = mask_in.shape();
  FG_CHECK(ms.size() <= xs.size() && std::equal(ms.begin(), ms.end(), xs.begin()),
           "dropout: mask " << shape_str(ms) << " must equal the leading dims of the input " << shape_str(xs));
  const Tensor x = x_in.contiguous(), mask = mask_in.contiguous();
  Tensor y = Tensor::empty(xs, x.dtype(), x.device());
  const int64_t n = x.numel(), rows = mask.numel();
  if (n == 0) return y;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    apply_mask_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(x)>>>(x.data<T>(), mask.data<T>(),
                                                                              y.data<T>(), n, n / rows);
    CUDA_CHECK_LAUNCH();
  });
  return y;
}

}  // namespace fg::kernels::cuda
