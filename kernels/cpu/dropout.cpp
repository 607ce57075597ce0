// CPU reference for dropout (kernels/dropout.h), f32 and f64: drawing the scaled keep-mask from Philox, and
// multiplying by it. Nothing is accumulated: outputs and gradients are written (=).
#include <algorithm>

#include "kernels/cpu/loops.h"
#include "kernels/device_check.h"
#include "kernels/dropout.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/dropout.h"
#endif

namespace fg::cpu {

// mask: (numel). One Philox block gives the words of four consecutive elements (tensor/philox.h), so the loop runs
// over blocks and computes each block once.
template <typename T>
void dropout_mask(T* mask, int64_t numel, uint64_t seed, uint64_t first_block, double keep_prob, T scale) {
  const int64_t blocks = (numel + 3) / 4;
  const std::array<uint32_t, 2> key = {uint32_t(seed), uint32_t(seed >> 32)};
#pragma omp parallel for if (numel > kParallelGrain) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const uint64_t counter = first_block + uint64_t(b);
    const std::array<uint32_t, 4> words = philox4x32_10({uint32_t(counter), uint32_t(counter >> 32), 0u, 0u}, key);
    const int64_t end = std::min<int64_t>(4, numel - 4 * b);
    for (int64_t r = 0; r < end; ++r)
      mask[4 * b + r] = double(philox_uniform01(words[size_t(r)])) < keep_prob ? scale : T(0);
  }
}

// x, y: (rows, inner); mask: (rows)
template <typename T>
void apply_dropout_mask(const T* x, const T* mask, T* y, int64_t rows, int64_t inner) {
#pragma omp parallel for if (rows * inner > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T m = mask[r];
    const T* xr = x + r * inner;
    T* yr = y + r * inner;
    for (int64_t i = 0; i < inner; ++i) yr[i] = xr[i] * m;
  }
}

}  // namespace fg::cpu

namespace fg::kernels {

Tensor dropout_mask(const Shape& shape, double p, Generator& gen, DType dtype, Device device) {
#ifdef FG_WITH_CUDA
  if (device.is_cuda()) return cuda::dropout_mask(shape, p, gen, dtype, device);
#endif
  FG_CHECK(p >= 0.0 && p < 1.0, "dropout: probability p = " << p << " must be in [0, 1)");
  FG_CHECK(device.is_cpu(), "dropout: a mask on " << device.str()
                                                 << " was asked for, but this build has no CUDA backend (rebuild with "
                                                    "nvcc installed and -DFG_WITH_CUDA=ON), so ask for the CPU");
  Tensor mask = Tensor::empty(shape, dtype, device);
  const int64_t n = mask.numel();
  FG_DISPATCH_FLOATING(dtype, "dropout", [&] {
    // Reserved inside the dispatch so that an unsupported dtype throws before the generator advances.
    const uint64_t seed = gen.seed();
    const uint64_t first = gen.reserve(uint64_t(n));
    cpu::dropout_mask(mask.data<scalar_t>(), n, seed, first, 1.0 - p, scalar_t(1.0 / (1.0 - p)));
  });
  return mask;
}

Tensor apply_dropout_mask(const Tensor& x, const Tensor& mask) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda() || mask.device().is_cuda()) return cuda::apply_dropout_mask(x, mask);
#endif
  FG_CHECK(x.defined() && mask.defined(), "dropout: undefined input or mask");
  FG_CHECK(x.dtype() == mask.dtype(),
           "dropout: input is " << dtype_name(x.dtype()) << " but the mask is " << dtype_name(mask.dtype()));
  FG_CHECK(x.device() == mask.device(),
           "dropout: input is on " << x.device().str() << " but the mask is on " << mask.device().str());
  require_cpu(x, "dropout", "the input");
  const Shape& xs = x.shape();
  const Shape& ms = mask.shape();
  FG_CHECK(ms.size() <= xs.size() && std::equal(ms.begin(), ms.end(), xs.begin()),
           "dropout: mask " << shape_str(ms) << " must equal the leading dims of the input " << shape_str(xs));
  const Tensor xc = x.contiguous(), mc = mask.contiguous();
  Tensor y = Tensor::empty(xs, x.dtype(), x.device());
  const int64_t rows = mask.numel();
  const int64_t inner = rows == 0 ? 0 : x.numel() / rows;
  FG_DISPATCH_FLOATING(x.dtype(), "dropout", [&] {
    cpu::apply_dropout_mask(xc.data<scalar_t>(), mc.data<scalar_t>(), y.data<scalar_t>(), rows, inner);
  });
  return y;
}

}  // namespace fg::kernels
