// CUDA elementwise arithmetic, broadcasting and reductions (kernels/cuda/elementwise.h). Outputs are written (=),
// except add_ and mul_scalar_ which update their destination in place. The CPU reference is
// kernels/cpu/elementwise.cpp; the operation order per element is the same, so f32 results agree to the last bit
// except where the compilers contract a multiply-add differently.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/elementwise.h"
#include "tensor/overlap.h"

namespace fg::kernels::cuda {

namespace {

template <typename A>
__device__ inline A apply_binary(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::ADD: return a + b;
    case BinaryOp::SUB: return a - b;
    case BinaryOp::MUL: return a * b;
    case BinaryOp::DIV: return a / b;
  }
  return A(0);
}

template <typename A>
__device__ inline A apply_unary(UnaryOp op, A a) {
  switch (op) {
    case UnaryOp::NEG: return -a;
    case UnaryOp::SQRT: return dev_sqrt(a);
    case UnaryOp::EXP: return dev_exp(a);
    case UnaryOp::LOG: return dev_log(a);
    case UnaryOp::ABS: return dev_abs(a);
    case UnaryOp::SIGN: return A((a > A(0)) - (a < A(0)));
    case UnaryOp::SQUARE: return a * a;
  }
  return A(0);
}

// a, b: broadcast to y's shape through calc (operands 0, 1); y: contiguous (operand 2).
template <typename T>
__global__ void binary_kernel(BinaryOp op, const T* a, const T* b, T* y, OffsetCalc<3> calc, int64_t n) {
  FG_CUDA_KERNEL_LOOP(i, n) {
    int64_t off[3];
    calc.offsets(i, off);
    store(y + off[2], apply_binary(op, load(a + off[0]), load(b + off[1])));
  }
}

// x, y: (n) contiguous.
template <typename T>
__global__ void unary_kernel(UnaryOp op, const T* x, T* y, int64_t n) {
  FG_CUDA_KERNEL_LOOP(i, n) { store(y + i, apply_unary(op, load(x + i))); }
}

// x, y: (n) contiguous. y = x^e.
template <typename T>
__global__ void pow_kernel(const T* x, T* y, int64_t n, acc_t<T> e) {
  FG_CUDA_KERNEL_LOOP(i, n) { store(y + i, dev_pow(load(x + i), e)); }
}

// x, y: (n) contiguous. y = x * s + t.
template <typename T>
__global__ void affine_kernel(const T* x, T* y, int64_t n, acc_t<T> s, acc_t<T> t) {
  FG_CUDA_KERNEL_LOOP(i, n) { store(y + i, load(x + i) * s + t); }
}

// dst (operand 0, any strides) += alpha * src (operand 1, broadcast).
template <typename T>
__global__ void add_inplace_kernel(T* dst, const T* src, OffsetCalc<2> calc, int64_t n, acc_t<T> alpha) {
  FG_CUDA_KERNEL_LOOP(i, n) {
    int64_t off[2];
    calc.offsets(i, off);
    store(dst + off[0], load(dst + off[0]) + alpha * load(src + off[1]));
  }
}

// dst (any strides) *= s.
template <typename T>
__global__ void mul_scalar_inplace_kernel(T* dst, OffsetCalc<1> calc, int64_t n, acc_t<T> s) {
  FG_CUDA_KERNEL_LOOP(i, n) {
    int64_t off[1];
    calc.offsets(i, off);
    store(dst + off[0], load(dst + off[0]) * s);
  }
}

// out[k] = scale * sum over r of x[kept(k) + reduced(r)], in double, one block per output k: for long reductions.
template <typename T>
__global__ void sum_block_per_output(const T* x, T* out, OffsetCalc<1> kept, OffsetCalc<1> reduced, int64_t K,
                                     int64_t R, double scale) {
  __shared__ double shared[32];
  for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
    int64_t ko[1];
    kept.offsets(k, ko);
    double acc = 0.0;
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) {
      int64_t ro[1];
      reduced.offsets(r, ro);
      acc += double(load(x + ko[0] + ro[0]));
    }
    acc = block_sum_double(acc, shared);
    if (threadIdx.x == 0) out[k] = ::fg::cuda::convert<T, double>(acc * scale);
  }
}

// The same sum with one thread per output: for short reductions over many outputs.
template <typename T>
__global__ void sum_thread_per_output(const T* x, T* out, OffsetCalc<1> kept, OffsetCalc<1> reduced, int64_t K,
                                      int64_t R, double scale) {
  FG_CUDA_KERNEL_LOOP(k, K) {
    int64_t ko[1];
    kept.offsets(k, ko);
    double acc = 0.0;
    for (int64_t r = 0; r < R; ++r) {
      int64_t ro[1];
      reduced.offsets(r, ro);
      acc += double(load(x + ko[0] + ro[0]));
    }
    out[k] = ::fg::cuda::convert<T, double>(acc * scale);
  }
}

enum class ScalarReduce { SUM_SQUARES, MAX_ABS, NONFINITE_COUNT };

template <ScalarReduce kOp>
__device__ inline double reduce_term(double v) {
  if (kOp == ScalarReduce::SUM_SQUARES) return v * v;
  if (kOp == ScalarReduce::MAX_ABS) return fabs(v);
  return isfinite(v) ? 0.0 : 1.0;
}

// partial[block] = the block's reduction of x (n contiguous): a sum, or a NaN-ignoring maximum for MAX_ABS.
template <typename T, ScalarReduce kOp>
__global__ void reduce_partial_kernel(const T* x, int64_t n, double* partial) {
  __shared__ double shared[32];
  constexpr bool kMax = kOp == ScalarReduce::MAX_ABS;
  double acc = 0.0;
  FG_CUDA_KERNEL_LOOP(i, n) {
    const double term = reduce_term<kOp>(double(load(x + i)));
    acc = kMax ? fmax(acc, term) : acc + term;
  }
  acc = block_reduce_double<kMax>(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// result[0] = the reduction of partial[0 .. count), one block.
template <bool kMax>
__global__ void reduce_final_kernel(const double* partial, int64_t count, double* result) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc = kMax ? fmax(acc, partial[i]) : acc + partial[i];
  acc = block_reduce_double<kMax>(acc, shared);
  if (threadIdx.x == 0) result[0] = acc;
}

template <ScalarReduce kOp>
double reduce_to_host(const Tensor& x_in, const char* op) {
  check_cuda_input(x_in, op, "input");
  if (x_in.numel() == 0) return 0.0;
  const Tensor x = x_in.contiguous();
  DeviceGuard guard(x.device().index);
  const int64_t n = x.numel();
  const int64_t blocks = std::min<int64_t>(blocks_for(n), 1024);
  Tensor partial = Tensor::empty({blocks}, DType::F64, x.device());
  Tensor result = Tensor::empty({}, DType::F64, x.device());
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    reduce_partial_kernel<T, kOp><<<unsigned(blocks), kThreads, 0, stream_of(x)>>>(
        static_cast<const T*>(x.raw_data()), n, partial.data<double>());
    CUDA_CHECK_LAUNCH();
  });
  reduce_final_kernel<kOp == ScalarReduce::MAX_ABS><<<1, kThreads, 0, stream_of(x)>>>(
      partial.data<double>(), blocks, result.data<double>());
  CUDA_CHECK_LAUNCH();
  return result.item();
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = "binary op";
  check_cuda_input(a, name, "a");
  check_cuda_input(b, name, "b");
  FG_CHECK(a.dtype() == b.dtype(), "elementwise op on " << dtype_name(a.dtype()) << " and " << dtype_name(b.dtype())
                                                        << " tensors; cast one of them first");
  FG_CHECK(a.device() == b.device(), "elementwise op on " << a.device().str() << " and " << b.device().str()
                                                          << "; move one of them first");
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  DeviceGuard guard(a.device().index);
  const Tensor ea = a.expand(shape), eb = b.expand(shape);
  const Shape* strides[3] = {&ea.strides(), &eb.strides(), &out.strides()};
  const OffsetCalc<3> calc = ::fg::cuda::make_offset_calc<3>(shape, strides);
  dispatch_float_types(a.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    binary_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(out)>>>(
        op, static_cast<const T*>(ea.raw_data()), static_cast<const T*>(eb.raw_data()), out.data<T>(), calc, n);
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor unary(UnaryOp op, const Tensor& a_in) {
  check_cuda_input(a_in, "unary op", "input");
  const Tensor a = a_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  const int64_t n = a.numel();
  if (n == 0) return out;
  DeviceGuard guard(a.device().index);
  dispatch_float_types(a.dtype(), "unary op", [&](auto tag) {
    using T = decltype(tag);
    unary_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(a)>>>(op, a.data<T>(), out.data<T>(), n);
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor pow_scalar(const Tensor& a_in, double p) {
  check_cuda_input(a_in, "pow", "input");
  const Tensor a = a_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  const int64_t n = a.numel();
  if (n == 0) return out;
  DeviceGuard guard(a.device().index);
  dispatch_float_types(a.dtype(), "pow", [&](auto tag) {
    using T = decltype(tag);
    pow_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(a)>>>(a.data<T>(), out.data<T>(), n,
                                                                       scalar_param<T>(p));
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor affine(const Tensor& a_in, double s, double t) {
  check_cuda_input(a_in, "affine", "input");
  const Tensor a = a_in.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  const int64_t n = a.numel();
  if (n == 0) return out;
  DeviceGuard guard(a.device().index);
  dispatch_float_types(a.dtype(), "affine", [&](auto tag) {
    using T = decltype(tag);
    affine_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(a)>>>(a.data<T>(), out.data<T>(), n,
                                                                          scalar_param<T>(s), scalar_param<T>(t));
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

void add_(Tensor& dst, const Tensor& src_in, double alpha) {
  check_cuda_input(dst, "add_", "destination");
  check_cuda_input(src_in, "add_", "source");
  FG_CHECK(dst.dtype() == src_in.dtype(), "add_: dtypes differ (" << dtype_name(dst.dtype()) << " += "
                                                                  << dtype_name(src_in.dtype()) << ")");
  FG_CHECK(dst.device() == src_in.device(),
           "add_: destination on " << dst.device().str() << ", source on " << src_in.device().str());
  FG_CHECK(broadcast_shapes(dst.shape(), src_in.shape()) == dst.shape(),
           "add_: cannot accumulate " << shape_str(src_in.shape()) << " into " << shape_str(dst.shape()));
  // The rule of every in-place op, as on the CPU (tensor/overlap.h): threads run in no order, so a source that
  // shares the destination's memory in another layout is refused rather than read from a copy.
  check_no_partial_overlap(dst, src_in, "add_");
  const int64_t n = dst.numel();
  if (n == 0) return;
  DeviceGuard guard(dst.device().index);
  const Tensor src = src_in.expand(dst.shape());
  const Shape* strides[2] = {&dst.strides(), &src.strides()};
  const OffsetCalc<2> calc = ::fg::cuda::make_offset_calc<2>(dst.shape(), strides);
  dispatch_float_types(dst.dtype(), "add_", [&](auto tag) {
    using T = decltype(tag);
    add_inplace_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(dst)>>>(
        static_cast<T*>(dst.raw_data()), static_cast<const T*>(src.raw_data()), calc, n, scalar_param<T>(alpha));
    CUDA_CHECK_LAUNCH();
  });
}

void mul_scalar_(Tensor& dst, double s) {
  check_cuda_input(dst, "mul_scalar_", "destination");
  check_no_internal_overlap(dst, "mul_scalar_");
  const int64_t n = dst.numel();
  if (n == 0) return;
  DeviceGuard guard(dst.device().index);
  const Shape* strides[1] = {&dst.strides()};
  const OffsetCalc<1> calc = ::fg::cuda::make_offset_calc<1>(dst.shape(), strides);
  dispatch_float_types(dst.dtype(), "mul_scalar_", [&](auto tag) {
    using T = decltype(tag);
    mul_scalar_inplace_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(dst)>>>(
        static_cast<T*>(dst.raw_data()), calc, n, scalar_param<T>(s));
    CUDA_CHECK_LAUNCH();
  });
}

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim, double scale) {
  check_cuda_input(x, "sum", "input");
  std::vector<bool> reduce(size_t(x.dim()), dims_in.empty());
  for (int64_t d : dims_in) {
    const int64_t w = wrap_dim(d, x.dim(), "sum: dim");
    FG_CHECK(!reduce[size_t(w)] || dims_in.empty(), "sum: dim " << d << " given twice");
    reduce[size_t(w)] = true;
  }
  Shape kept_shape, out_shape, kept_sizes, kept_strides, red_sizes, red_strides;
  for (int64_t d = 0; d < x.dim(); ++d) {
    kept_shape.push_back(reduce[size_t(d)] ? 1 : x.size(d));
    if (reduce[size_t(d)]) {
      red_sizes.push_back(x.size(d));
      red_strides.push_back(x.stride(d));
    } else {
      out_shape.push_back(x.size(d));
      kept_sizes.push_back(x.size(d));
      kept_strides.push_back(x.stride(d));
    }
  }
  Tensor out = Tensor::empty(kept_shape, x.dtype(), x.device());
  const int64_t K = shape_numel(kept_sizes), R = shape_numel(red_sizes);
  if (K > 0) {
    DeviceGuard guard(x.device().index);
    const Shape* ks[1] = {&kept_strides};
    const Shape* rs[1] = {&red_strides};
    const OffsetCalc<1> kept = ::fg::cuda::make_offset_calc<1>(kept_sizes, ks);
    const OffsetCalc<1> reduced = ::fg::cuda::make_offset_calc<1>(red_sizes, rs);
    dispatch_float_types(x.dtype(), "sum", [&](auto tag) {
      using T = decltype(tag);
      const T* px = static_cast<const T*>(x.raw_data());
      if (R >= 64) {
        const unsigned blocks = unsigned(std::min<int64_t>(K, 1 << 20));
        sum_block_per_output<T><<<blocks, kThreads, 0, stream_of(x)>>>(px, out.data<T>(), kept, reduced, K, R, scale);
      } else {
        sum_thread_per_output<T>
            <<<blocks_for(K), kThreads, 0, stream_of(x)>>>(px, out.data<T>(), kept, reduced, K, R, scale);
      }
      CUDA_CHECK_LAUNCH();
    });
  }
  return keepdim ? out : out.view(out_shape);
}

double max_abs(const Tensor& x) { return reduce_to_host<ScalarReduce::MAX_ABS>(x, "max_abs"); }
double sum_squares(const Tensor& x) { return reduce_to_host<ScalarReduce::SUM_SQUARES>(x, "sum_squares"); }
bool all_finite(const Tensor& x) { return reduce_to_host<ScalarReduce::NONFINITE_COUNT>(x, "all_finite") == 0.0; }

}  // namespace fg::kernels::cuda
