// CUDA softmax along one dim (kernels/cuda/softmax.h). The tensor is seen as (outer, n, inner), as in the CPU
// reference (kernels/cpu/softmax.cpp). Two kernel versions, chosen by the launcher from the layout:
//   rows    (inner == 1): one warp per row of n contiguous elements, warp-shuffle max and sum;
//   columns (inner > 1):  one thread per (outer, inner) column, walking n with stride inner, so neighbouring
//                         threads read neighbouring addresses (the self-attention softmax over dim 1 of (B, N, N)).
// Each element's value is exp(x - max) * (1 / sum), the CPU's formula; only the order of the sum differs.
// Gradients are written (=).
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/softmax.h"

namespace fg::kernels::cuda {

namespace {

struct Geometry {
  int64_t outer = 1, n = 1, inner = 1;
};

// A 0-d tensor is one element along dim 0 (or -1), as in PyTorch.
Geometry geometry(const Shape& shape, int64_t dim, const char* op) {
  const int64_t nd = int64_t(shape.size());
  const int64_t ext = nd > 1 ? nd : 1;
  FG_CHECK(dim >= -ext && dim < ext, op << ": dim " << dim << " is out of range for a tensor of shape "
                                        << shape_str(shape) << "; use a dim in [" << -ext << ", " << ext - 1 << "]");
  Geometry g;
  if (nd == 0) return g;
  const int64_t d = dim < 0 ? dim + nd : dim;
  for (int64_t i = 0; i < d; ++i) g.outer *= shape[size_t(i)];
  g.n = shape[size_t(d)];
  for (int64_t i = d + 1; i < nd; ++i) g.inner *= shape[size_t(i)];
  return g;
}

template <typename A>
__device__ inline A warp_max(A v) {
  // `o > v ? o : v` ignores NaN like the CPU's std::max(running, x).
  for (int offset = 16; offset > 0; offset /= 2) {
    const A o = __shfl_xor_sync(0xffffffffu, v, offset);
    v = o > v ? o : v;
  }
  return v;
}

template <typename A>
__device__ inline A warp_sum(A v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// x, y: (rows, n) contiguous; one warp per row.
template <typename T>
__global__ void softmax_rows_kernel(const T* x, T* y, int64_t rows, int64_t n) {
  using A = acc_t<T>;
  const int lane = threadIdx.x % 32;
  const int64_t warps = blockDim.x / 32;
  for (int64_t row = int64_t(blockIdx.x) * warps + threadIdx.x / 32; row < rows; row += int64_t(gridDim.x) * warps) {
    const T* xr = x + row * n;
    T* yr = y + row * n;
    A m = -INFINITY;
    for (int64_t k = lane; k < n; k += 32) {
      const A v = load(xr + k);
      m = v > m ? v : m;
    }
    m = warp_max(m);
    A s = 0;
    for (int64_t k = lane; k < n; k += 32) s += dev_exp(load(xr + k) - m);
    const A inv_sum = A(1) / warp_sum(s);
    for (int64_t k = lane; k < n; k += 32) store(yr + k, dev_exp(load(xr + k) - m) * inv_sum);
  }
}

// x, y: (outer, n, inner) contiguous; one thread per (outer, inner) column.
template <typename T>
__global__ void softmax_columns_kernel(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(c, outer * inner) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    A m = -INFINITY;
    for (int64_t k = 0; k < n; ++k) {
      const A v = load(x + base + k * inner);
      m = v > m ? v : m;
    }
    A s = 0;
    for (int64_t k = 0; k < n; ++k) s += dev_exp(load(x + base + k * inner) - m);
    const A inv_sum = A(1) / s;
    for (int64_t k = 0; k < n; ++k) store(y + base + k * inner, dev_exp(load(x + base + k * inner) - m) * inv_sum);
  }
}

// grad_out, out, grad_in: (rows, n) contiguous; grad_in = y (g - sum(g y)); one warp per row.
template <typename T>
__global__ void softmax_backward_rows_kernel(const T* grad_out, const T* out, T* grad_in, int64_t rows, int64_t n) {
  using A = acc_t<T>;
  const int lane = threadIdx.x % 32;
  const int64_t warps = blockDim.x / 32;
  for (int64_t row = int64_t(blockIdx.x) * warps + threadIdx.x / 32; row < rows; row += int64_t(gridDim.x) * warps) {
    const int64_t base = row * n;
    A dot = 0;
    for (int64_t k = lane; k < n; k += 32) dot += load(grad_out + base + k) * load(out + base + k);
    dot = warp_sum(dot);
    for (int64_t k = lane; k < n; k += 32)
      store(grad_in + base + k, load(out + base + k) * (load(grad_out + base + k) - dot));
  }
}

// grad_out, out, grad_in: (outer, n, inner) contiguous; one thread per column.
template <typename T>
__global__ void softmax_backward_columns_kernel(const T* grad_out, const T* out, T* grad_in, int64_t outer, int64_t n,
                                                int64_t inner) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(c, outer * inner) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    A dot = 0;
    for (int64_t k = 0; k < n; ++k) dot += load(grad_out + base + k * inner) * load(out + base + k * inner);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = base + k * inner;
      store(grad_in + i, load(out + i) * (load(grad_out + i) - dot));
    }
  }
}

unsigned row_blocks(int64_t rows) {
  const int64_t warps_per_block = kThreads / 32;
  const int64_t blocks = (rows + warps_per_block - 1) / warps_per_block;
  return unsigned(blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks));
}

}  // namespace

Tensor softmax(const Tensor& x_in, int64_t dim) {
  check_cuda_input(x_in, "softmax", "input");
  const Geometry g = geometry(x_in.shape(), dim, "softmax");
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return y;
  DeviceGuard guard(x.device().index);
  dispatch_float_types(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    if (g.inner == 1) {
      softmax_rows_kernel<T><<<row_blocks(g.outer), kThreads, 0, stream_of(x)>>>(x.data<T>(), y.data<T>(), g.outer,
                                                                                 g.n);
    } else {
      softmax_columns_kernel<T><<<blocks_for(g.outer * g.inner), kThreads, 0, stream_of(x)>>>(
          x.data<T>(), y.data<T>(), g.outer, g.n, g.inner);
    }
    CUDA_CHECK_LAUNCH();
  });
  return y;
}

Tensor softmax_backward(const Tensor& grad_out, const Tensor& out, int64_t dim) {
  check_same(grad_out, "grad_output", out, "output", "softmax_backward");
  const Geometry g = geometry(out.shape(), dim, "softmax_backward");
  const Tensor gc = grad_out.contiguous(), yc = out.contiguous();
  Tensor gx = Tensor::empty(yc.shape(), yc.dtype(), yc.device());
  if (yc.numel() == 0) return gx;
  DeviceGuard guard(yc.device().index);
  dispatch_float_types(yc.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    if (g.inner == 1) {
      softmax_backward_rows_kernel<T><<<row_blocks(g.outer), kThreads, 0, stream_of(yc)>>>(
          gc.data<T>(), yc.data<T>(), gx.data<T>(), g.outer, g.n);
    } else {
      softmax_backward_columns_kernel<T><<<blocks_for(g.outer * g.inner), kThreads, 0, stream_of(yc)>>>(
          gc.data<T>(), yc.data<T>(), gx.data<T>(), g.outer, g.n, g.inner);
    }
    CUDA_CHECK_LAUNCH();
  });
  return gx;
}

}  // namespace fg::kernels::cuda
