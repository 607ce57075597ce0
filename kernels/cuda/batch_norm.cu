// Hand-written CUDA batch normalisation (kernels/cuda/batch_norm.h): training statistics (Welford), evaluation
// statistics, the normalisation and its backward. x is viewed as (N, C, L), L the product of the dims after C, as in
// the CPU reference (kernels/cpu/batch_norm.cpp), whose formulas every kernel below follows line for line:
//   mean_t = T(mean), m = double(mean_t), squares = sum (x - m)^2, invstd = T(1 / sqrt(squares / n + eps)),
//   running_mean = T(momentum m + (1 - momentum) running_mean),
//   running_var  = T(momentum squares / (n - 1) + (1 - momentum) running_var),
//   y = (x - mean) invstd w + b,
//   dx = (dy - mean(dy) - (x - mean) invstd^2 mean(dy (x - mean))) invstd w  (training),  dx = dy invstd w  (eval),
//   dw = sum dy (x - mean) invstd,  db = sum dy.
// The Welford pass gives the exact mean and M2 = sum (x - mean)^2; the CPU's second pass runs around the rounded
// mean m instead, and sum (x - m)^2 = M2 + n (mean - m)^2 exactly, so the finalize kernel adds that term and the
// variance matches the CPU's without a second read of x.
//
// Indices: every count is checked on the host to fit in 31 bits (N*C*L < 2^31), so the kernels index groups with
// uint32 (g + stride stays below 2^32) and form element offsets in int64. Every global access is inside
// [0, N*C*L) (groups g < G, element g*V + i < G*V = N*C*L) or inside [0, C) for the per-channel vectors.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/common.cuh"
#include "tensor/overlap.h"

namespace fg::kernels::cuda {

namespace {

using ::fg::cuda::from_f64;
using ::fg::cuda::to_f64;

constexpr int kBnThreads = 256;  // a multiple of 32, as the block reductions need
constexpr int kVector = 4;       // elements per vector group

// V consecutive elements moved by one load or store (8, 16 or 32 bytes when V == 4); the launcher only picks V == 4
// when L % 4 == 0 and every pointer is aligned to the pack, so a group never straddles two (n, c) rows.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <typename T, int V>
__device__ inline void load_pack(const T* p, acc_t<T> (&out)[V]) {
  const Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = to_acc(pack.v[i]);
}

template <typename T, int V>
__device__ inline void store_pack(T* p, const acc_t<T> (&in)[V]) {
  Pack<T, V> pack;
#pragma unroll
  for (int i = 0; i < V; ++i) pack.v[i] = from_acc<T>(in[i]);
  *reinterpret_cast<Pack<T, V>*>(p) = pack;
}

// A running (count, mean, M2) of a set of values; M2 = sum (x - mean)^2.
struct Welford {
  double n, mean, m2;
};

// The triple of the union of two disjoint sets (Chan, Golub and LeVeque). Either may be empty.
__device__ inline Welford welford_merge(const Welford& a, const Welford& b) {
  const double n = a.n + b.n;
  if (n == 0.0) return {0.0, 0.0, 0.0};
  const double delta = b.mean - a.mean;
  const double fb = b.n / n;
  return {n, a.mean + delta * fb, a.m2 + b.m2 + delta * delta * a.n * fb};
}

// Merges every thread's triple in a fixed tree (so a result repeats bit for bit); valid in thread 0. Every thread of
// the block must call it once; blockDim.x is a multiple of 32. shared: 32 triples.
__device__ inline Welford block_welford(Welford w, Welford* shared) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const Welford o{__shfl_down_sync(0xffffffffu, w.n, offset), __shfl_down_sync(0xffffffffu, w.mean, offset),
                    __shfl_down_sync(0xffffffffu, w.m2, offset)};
    w = welford_merge(w, o);
  }
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  if (lane == 0) shared[warp] = w;
  __syncthreads();
  if (warp == 0) {
    const int warps = int(blockDim.x) / 32;
    w = lane < warps ? shared[lane] : Welford{0.0, 0.0, 0.0};
    for (int offset = 16; offset > 0; offset /= 2) {
      const Welford o{__shfl_down_sync(0xffffffffu, w.n, offset), __shfl_down_sync(0xffffffffu, w.mean, offset),
                      __shfl_down_sync(0xffffffffu, w.m2, offset)};
      w = welford_merge(w, o);
    }
  }
  return w;
}

// The split layout of the per-channel reductions: channel c's N*L values are G = N*L/V groups; group g is row
// n = g / groups_per_row of the channel, elements [r V, r V + V) of it (r = g % groups_per_row). Block (s, c) takes
// groups [s * per_split, min((s + 1) * per_split, G)).
struct ChannelSplit {
  uint32_t C = 0, L = 0, groups_per_row = 0, groups = 0, per_split = 0;
};

// The first element of group g of channel c.
__device__ inline int64_t group_offset(const ChannelSplit& sp, uint32_t c, uint32_t g, int V) {
  const uint32_t n = g / sp.groups_per_row, r = g - n * sp.groups_per_row;
  return (int64_t(n) * sp.C + c) * sp.L + int64_t(r) * V;
}

// Every value of channel c is accumulated relative to this shift, the channel's first element. Welford's update is
// then fed deviations of the size of the standard deviation rather than values of the size of the mean, so a thread's
// f32 partial mean stays accurate to f32 precision of the deviations: with |mean| >> std an unshifted f32 mean
// would be off by several ulps of the mean, and the rounded mean (which the normalisation subtracts) would then
// differ from the CPU's.
template <typename T>
__device__ inline acc_t<T> channel_shift(const T* x, uint32_t c, uint32_t L) {
  return to_acc(x[int64_t(c) * L]);
}

// x: (N, C, L) contiguous, N * L >= 1. partial: (C, splits) triples of the values minus channel_shift, each block
// writing its own.
template <typename T, int V>
__global__ void __launch_bounds__(kBnThreads)
    bn_stats_partial_kernel(const T* __restrict__ x, const ChannelSplit sp, Welford* __restrict__ partial) {
  using A = acc_t<T>;
  __shared__ Welford shared[32];
  const uint32_t c = blockIdx.y, s = blockIdx.x;
  const A shift = channel_shift(x, c, sp.L);
  const uint32_t begin = s * sp.per_split;  // < G + per_split <= 2^31 + 2^31
  const uint32_t end = min(begin + sp.per_split, sp.groups);
  int count = 0;  // this thread's values so far
  A mean = 0, m2 = 0;
#pragma unroll 4
  for (uint32_t g = begin + threadIdx.x; g < end; g += blockDim.x) {
    A v[V];
    load_pack<T, V>(x + group_offset(sp, c, g, V), v);
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] -= shift;
    // The group's own mean and M2, then one Chan merge into the thread's triple: one division per V values.
    A sum = 0;
#pragma unroll
    for (int i = 0; i < V; ++i) sum += v[i];
    const A gmean = sum / A(V);
    A gm2 = 0;
#pragma unroll
    for (int i = 0; i < V; ++i) gm2 += (v[i] - gmean) * (v[i] - gmean);
    const int n_new = count + V;
    const A delta = gmean - mean;
    const A f = A(V) / A(n_new);
    mean += delta * f;
    m2 += gm2 + delta * delta * A(count) * f;
    count = n_new;
  }
  const Welford w = block_welford(Welford{double(count), double(mean), double(m2)}, shared);
  if (threadIdx.x == 0) partial[int64_t(c) * gridDim.x + s] = w;
}

// partial: (C, splits), of the shifted values of x (N, C, L). mean, invstd: (C) written. running_mean /
// running_var: strided, updated in place, or null.
template <typename T>
__global__ void bn_stats_finalize_kernel(const Welford* __restrict__ partial, int splits, const T* __restrict__ x,
                                         uint32_t L, int64_t C, double eps, T* mean_out, T* invstd_out, T* running_mean,
                                         int64_t rm_stride, T* running_var, int64_t rv_stride, double momentum) {
  FG_CUDA_KERNEL_LOOP(c, C) {
    Welford w{0.0, 0.0, 0.0};
    for (int s = 0; s < splits; ++s) w = welford_merge(w, partial[c * splits + s]);
    w.mean += double(channel_shift(x, uint32_t(c), L));  // M2 does not change with the shift
    const T mean_t = from_f64<T>(w.mean);
    const double m = to_f64(mean_t);
    const double squares = w.m2 + w.n * (w.mean - m) * (w.mean - m);  // sum (x - m)^2, as the CPU's second pass
    mean_out[c] = mean_t;
    invstd_out[c] = from_f64<T>(1.0 / sqrt(squares / w.n + eps));
    if (running_mean) {
      T& r = running_mean[c * rm_stride];
      r = from_f64<T>(momentum * m + (1.0 - momentum) * to_f64(r));
    }
    if (running_var) {
      T& r = running_var[c * rv_stride];
      r = from_f64<T>(momentum * (squares / (w.n - 1.0)) + (1.0 - momentum) * to_f64(r));
    }
  }
}

// running_mean, running_var: (C) strided. mean, invstd: (C) written.
template <typename T>
__global__ void bn_running_stats_kernel(const T* running_mean, int64_t rm_stride, const T* running_var,
                                        int64_t rv_stride, int64_t C, double eps, T* mean, T* invstd) {
  FG_CUDA_KERNEL_LOOP(c, C) {
    mean[c] = running_mean[c * rm_stride];
    invstd[c] = from_f64<T>(1.0 / sqrt(to_f64(running_var[c * rv_stride]) + eps));
  }
}

// x, y: (N, C, L) contiguous, seen as G = N*C*L/V groups; group g lies in row g / groups_per_row, channel
// (g / groups_per_row) % C. mean, invstd: (C); weight, bias: (C) or null (1 and 0). y written.
template <typename T, int V>
__global__ void __launch_bounds__(kBnThreads)
    bn_forward_kernel(const T* __restrict__ x, T* __restrict__ y, uint32_t groups, uint32_t groups_per_row, uint32_t C,
                      const T* __restrict__ mean, const T* __restrict__ invstd, const T* __restrict__ weight,
                      const T* __restrict__ bias) {
  using A = acc_t<T>;
  for (uint32_t g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
    const uint32_t c = (g / groups_per_row) % C;
    const A m = to_acc(mean[c]);
    const A scale = to_acc(invstd[c]) * (weight ? to_acc(weight[c]) : A(1));
    const A shift = bias ? to_acc(bias[c]) : A(0);
    A v[V];
    load_pack<T, V>(x + int64_t(g) * V, v);
    // (x - mean) first: the subtraction of two close values is exact, which the CPU's x * scale + shift (formed
    // in double) also is to f32 precision; an f32 shift = b - mean * scale would not be when |mean| >> std.
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = (v[i] - m) * scale + shift;
    store_pack<T, V>(y + int64_t(g) * V, v);
  }
}

struct SumPair {
  double dy, dy_xmu;
};

// grad_out, x: (N, C, L) contiguous; mean: (C). partial: (C, splits) of (sum dy, sum dy (x - mean)).
template <typename T, int V>
__global__ void __launch_bounds__(kBnThreads)
    bn_backward_reduce_kernel(const T* __restrict__ dy, const T* __restrict__ x, const ChannelSplit sp,
                              const T* __restrict__ mean, SumPair* __restrict__ partial) {
  using A = acc_t<T>;
  __shared__ double shared[32];
  const uint32_t c = blockIdx.y, s = blockIdx.x;
  const uint32_t begin = s * sp.per_split;
  const uint32_t end = min(begin + sp.per_split, sp.groups);
  const A m = to_acc(mean[c]);
  double sum_dy = 0.0, sum_dy_xmu = 0.0;
#pragma unroll 4
  for (uint32_t g = begin + threadIdx.x; g < end; g += blockDim.x) {
    const int64_t off = group_offset(sp, c, g, V);
    A d[V], v[V];
    load_pack<T, V>(dy + off, d);
    load_pack<T, V>(x + off, v);
    // At most V terms in the compute type, then double: the f32 rounding never grows with the channel size.
    A s0 = 0, s1 = 0;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      s0 += d[i];
      s1 += d[i] * (v[i] - m);
    }
    sum_dy += double(s0);
    sum_dy_xmu += double(s1);
  }
  sum_dy = block_sum_double(sum_dy, shared);
  sum_dy_xmu = block_sum_double(sum_dy_xmu, shared);  // block_sum_double syncs before reusing `shared`
  if (threadIdx.x == 0) partial[int64_t(c) * gridDim.x + s] = SumPair{sum_dy, sum_dy_xmu};
}

// Per channel: grad_weight / grad_bias (each written or null) and the input-gradient coefficients coef (C, 4) =
// (mean(dy), invstd^2 mean(dy (x - mean)), mean, invstd w), or (0, 0, 0, invstd w) in eval mode, or null.
// partial: (C, splits) sums, or null when neither the sums nor training need them.
template <typename T>
__global__ void bn_backward_finalize_kernel(const SumPair* __restrict__ partial, int splits, int64_t C, double count,
                                            const T* __restrict__ mean, const T* __restrict__ invstd,
                                            const T* __restrict__ weight, bool training, T* grad_weight, T* grad_bias,
                                            acc_t<T>* coef) {
  using A = acc_t<T>;
  FG_CUDA_KERNEL_LOOP(c, C) {
    double sum_dy = 0.0, sum_dy_xmu = 0.0;
    if (partial) {
      for (int s = 0; s < splits; ++s) {
        sum_dy += partial[c * splits + s].dy;
        sum_dy_xmu += partial[c * splits + s].dy_xmu;
      }
    }
    const double is = to_f64(invstd[c]);
    if (grad_weight) grad_weight[c] = from_f64<T>(sum_dy_xmu * is);
    if (grad_bias) grad_bias[c] = from_f64<T>(sum_dy);
    if (coef) {
      const double w = weight ? to_f64(weight[c]) : 1.0;
      A* k = coef + c * 4;
      k[0] = training ? A(sum_dy / count) : A(0);
      k[1] = training ? A(sum_dy_xmu * is * is / count) : A(0);
      k[2] = training ? A(to_f64(mean[c])) : A(0);
      k[3] = A(is * w);
    }
  }
}

// grad_out, x, grad_input: (N, C, L) contiguous, groups as in bn_forward_kernel; coef: (C, 4) from the finalize.
// x is not read in eval mode.
template <typename T, int V, bool kTraining>
__global__ void __launch_bounds__(kBnThreads)
    bn_backward_input_kernel(const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dx, uint32_t groups,
                             uint32_t groups_per_row, uint32_t C, const acc_t<T>* __restrict__ coef) {
  using A = acc_t<T>;
  for (uint32_t g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
    const A* k = coef + int64_t((g / groups_per_row) % C) * 4;
    A d[V];
    load_pack<T, V>(dy + int64_t(g) * V, d);
    if constexpr (kTraining) {
      A v[V];
      load_pack<T, V>(x + int64_t(g) * V, v);
#pragma unroll
      for (int i = 0; i < V; ++i) d[i] = (d[i] - k[0] - (v[i] - k[2]) * k[1]) * k[3];
    } else {
#pragma unroll
      for (int i = 0; i < V; ++i) d[i] = d[i] * k[3];
    }
    store_pack<T, V>(dx + int64_t(g) * V, d);
  }
}

// ---- host side ----

struct NCL {
  int64_t N, C, L;
};

NCL check_x(const Tensor& x, const char* op) {
  check_cuda_input(x, op, "the input");
  FG_CHECK(x.dim() >= 2, op << ": expected x of shape (N, C) or (N, C, ...), got " << shape_str(x.shape()));
  int64_t L = 1;
  for (int64_t d = 2; d < x.dim(); ++d) L *= x.size(d);
  FG_CHECK(x.numel() < (int64_t(1) << 31), op << ": x " << shape_str(x.shape())
                                              << " has 2^31 elements or more, beyond the CUDA kernel's 32-bit "
                                                 "indices; normalise it in smaller batches");
  FG_CHECK(x.size(1) <= 65535, op << ": x has " << x.size(1) << " channels, more than the 65535 the CUDA kernel "
                                  << "launches for; reshape the input");
  return {x.size(0), x.size(1), L};
}

// A per-channel vector: (C), x's dtype, on x's device; undefined allowed.
void check_channel_vector(const Tensor& t, const Tensor& x, const char* op, const char* name) {
  if (!t.defined()) return;
  FG_CHECK(t.dim() == 1 && t.size(0) == x.size(1), op << ": " << name << " must have shape (" << x.size(1)
                                                      << ") to match x " << shape_str(x.shape()) << ", got "
                                                      << shape_str(t.shape()));
  FG_CHECK(t.dtype() == x.dtype(), op << ": " << name << " has dtype " << dtype_name(t.dtype()) << " but x has "
                                      << dtype_name(x.dtype()) << "; cast them to the same dtype");
  FG_CHECK(t.device() == x.device(), op << ": " << name << " is on " << t.device().str() << " but x is on "
                                        << x.device().str() << "; move them to one device");
}

// An output buffer: contiguous, of the given shape, x's dtype and device.
void check_output(const Tensor& out, const Shape& shape, const Tensor& x, const char* op, const char* name) {
  FG_CHECK(out.defined() && out.shape() == shape && out.dtype() == x.dtype() && out.device() == x.device() &&
               out.is_contiguous(),
           op << ": the output " << name << " must be a contiguous " << dtype_name(x.dtype()) << shape_str(shape)
              << " tensor on " << x.device().str() << ", got " << (out.defined() ? out.str() : "undefined"));
}

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// The vector path: asked for, L a multiple of the group, and every pointer aligned to a whole pack.
template <typename T>
bool use_vectors(const BatchNormTuning& tuning, int64_t L, std::initializer_list<const void*> pointers) {
  if (!tuning.vectorize || L % kVector != 0) return false;
  for (const void* p : pointers)
    if (p && reinterpret_cast<uintptr_t>(p) % (sizeof(T) * kVector) != 0) return false;
  return true;
}

// Blocks per channel: about one wave of resident blocks over all channels, but at least 4 groups per thread.
ChannelSplit plan_split(const NCL& s, int V, const BatchNormTuning& tuning, int device) {
  ChannelSplit sp;
  sp.C = uint32_t(s.C);
  sp.L = uint32_t(s.L);
  sp.groups_per_row = uint32_t(s.L / V);
  sp.groups = uint32_t(s.N * (s.L / V));
  int64_t splits;
  if (tuning.splits > 0) {
    splits = tuning.splits;
  } else {
    const int64_t wave = int64_t(std::max(1, ::fg::cuda::properties(device).sm_count)) * (2048 / kBnThreads);
    splits = (wave + s.C - 1) / s.C;
    splits = std::min<int64_t>(splits, (int64_t(sp.groups) + 4 * kBnThreads - 1) / (4 * kBnThreads));
  }
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, 65535));
  sp.per_split = uint32_t(std::max<int64_t>(1, (int64_t(sp.groups) + splits - 1) / splits));
  return sp;
}

int splits_of(const ChannelSplit& sp) {
  return int(std::max<int64_t>(1, (int64_t(sp.groups) + sp.per_split - 1) / sp.per_split));
}

// Grid for the elementwise kernels over `groups` groups.
unsigned elementwise_blocks(int64_t groups) {
  return grid_for(groups, kBnThreads);
}

}  // namespace

void batch_norm_batch_stats_into(BatchNormStats& out, const Tensor& x, double eps, const Tensor& running_mean,
                                 const Tensor& running_var, double momentum, const BatchNormTuning& tuning) {
  const char* op = "batch_norm (CUDA)";
  const NCL s = check_x(x, op);
  check_channel_vector(running_mean, x, op, "running_mean");
  check_channel_vector(running_var, x, op, "running_var");
  FG_CHECK(s.N * s.L > 1, op << ": Expected more than 1 value per channel when training, got input size "
                             << shape_str(x.shape()) << "; use a larger batch or eval mode");
  check_output(out.mean, {s.C}, x, op, "mean");
  check_output(out.invstd, {s.C}, x, op, "invstd");
  // tensor/overlap.h: the running statistics are updated in place from statistics of x.
  check_outputs_separate({&out.mean, &out.invstd, &running_mean, &running_var}, {&x}, op);
  if (s.C == 0) return;
  const Tensor xc = x.contiguous();
  const int device = x.device().index;
  DeviceGuard guard(device);
  const cudaStream_t stream = stream_of(x);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const int V = use_vectors<T>(tuning, s.L, {xc.data<T>()}) ? kVector : 1;
    const ChannelSplit sp = plan_split(s, V, tuning, device);
    const int splits = splits_of(sp);
    // Released when this function returns; the caching allocator orders the reuse of its memory on `stream`.
    const Tensor workspace = Tensor::empty({s.C * splits * 3}, DType::F64, x.device());
    Welford* partial = reinterpret_cast<Welford*>(workspace.data<double>());
    const dim3 grid(unsigned(splits), unsigned(s.C));
    if (V == kVector)
      bn_stats_partial_kernel<T, kVector><<<grid, kBnThreads, 0, stream>>>(xc.data<T>(), sp, partial);
    else
      bn_stats_partial_kernel<T, 1><<<grid, kBnThreads, 0, stream>>>(xc.data<T>(), sp, partial);
    CUDA_CHECK_LAUNCH();
    bn_stats_finalize_kernel<T><<<grid_for(s.C, kBnThreads), kBnThreads, 0, stream>>>(
        partial, splits, xc.data<T>(), uint32_t(s.L), s.C, eps, out.mean.data<T>(), out.invstd.data<T>(),
        running_mean.defined() ? running_mean.data<T>() : nullptr, running_mean.defined() ? running_mean.stride(0) : 0,
        running_var.defined() ? running_var.data<T>() : nullptr, running_var.defined() ? running_var.stride(0) : 0,
        momentum);
    CUDA_CHECK_LAUNCH();
  });
}

BatchNormStats batch_norm_batch_stats(const Tensor& x, double eps, const Tensor& running_mean,
                                      const Tensor& running_var, double momentum, const BatchNormTuning& tuning) {
  check_x(x, "batch_norm (CUDA)");
  BatchNormStats out{Tensor::empty({x.size(1)}, x.dtype(), x.device()),
                     Tensor::empty({x.size(1)}, x.dtype(), x.device())};
  batch_norm_batch_stats_into(out, x, eps, running_mean, running_var, momentum, tuning);
  return out;
}

BatchNormStats batch_norm_running_stats(const Tensor& running_mean, const Tensor& running_var, double eps) {
  const char* op = "batch_norm (CUDA)";
  FG_CHECK(running_mean.defined() && running_var.defined(),
           op << ": eval mode needs running_mean and running_var; pass them, or use training mode");
  check_cuda_input(running_mean, op, "running_mean");
  check_cuda_input(running_var, op, "running_var");
  FG_CHECK(running_mean.dim() == 1 && running_var.shape() == running_mean.shape(),
           op << ": running_mean " << shape_str(running_mean.shape()) << " and running_var "
              << shape_str(running_var.shape()) << " must both have shape (C)");
  FG_CHECK(running_mean.dtype() == running_var.dtype(), op << ": running_mean and running_var must share a dtype");
  FG_CHECK(running_mean.device() == running_var.device(), op << ": running_mean and running_var must be on one device");
  const int64_t C = running_mean.size(0);
  BatchNormStats out{Tensor::empty({C}, running_mean.dtype(), running_mean.device()),
                     Tensor::empty({C}, running_mean.dtype(), running_mean.device())};
  if (C == 0) return out;
  DeviceGuard guard(running_mean.device().index);
  dispatch_float_types(running_mean.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    bn_running_stats_kernel<T><<<grid_for(C, kBnThreads), kBnThreads, 0, stream_of(running_mean)>>>(
        running_mean.data<T>(), running_mean.stride(0), running_var.data<T>(), running_var.stride(0), C, eps,
        out.mean.data<T>(), out.invstd.data<T>());
    CUDA_CHECK_LAUNCH();
  });
  return out;
}

void batch_norm_forward_into(Tensor& y, const Tensor& x, const BatchNormStats& stats, const Tensor& weight,
                             const Tensor& bias, const BatchNormTuning& tuning) {
  const char* op = "batch_norm (CUDA)";
  const NCL s = check_x(x, op);
  FG_CHECK(stats.mean.defined() && stats.invstd.defined(), op << ": the statistics are undefined");
  check_channel_vector(stats.mean, x, op, "mean");
  check_channel_vector(stats.invstd, x, op, "invstd");
  check_channel_vector(weight, x, op, "weight");
  check_channel_vector(bias, x, op, "bias");
  check_output(y, x.shape(), x, op, "y");
  check_outputs_separate({&y}, {&x, &stats.mean, &stats.invstd, &weight, &bias}, op);  // tensor/overlap.h
  if (x.numel() == 0) return;
  const Tensor xc = x.contiguous();
  const Tensor mean = stats.mean.contiguous(), invstd = stats.invstd.contiguous();
  const Tensor w = weight.defined() ? weight.contiguous() : Tensor();
  const Tensor b = bias.defined() ? bias.contiguous() : Tensor();
  DeviceGuard guard(x.device().index);
  const cudaStream_t stream = stream_of(x);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const bool vec = use_vectors<T>(tuning, s.L, {xc.data<T>(), y.data<T>()});
    const int V = vec ? kVector : 1;
    const int64_t groups = x.numel() / V;
    const uint32_t gpr = uint32_t(s.L / V);
    if (vec)
      bn_forward_kernel<T, kVector><<<elementwise_blocks(groups), kBnThreads, 0, stream>>>(
          xc.data<T>(), y.data<T>(), uint32_t(groups), gpr, uint32_t(s.C), mean.data<T>(), invstd.data<T>(),
          ptr_or_null<T>(w), ptr_or_null<T>(b));
    else
      bn_forward_kernel<T, 1><<<elementwise_blocks(groups), kBnThreads, 0, stream>>>(
          xc.data<T>(), y.data<T>(), uint32_t(groups), gpr, uint32_t(s.C), mean.data<T>(), invstd.data<T>(),
          ptr_or_null<T>(w), ptr_or_null<T>(b));
    CUDA_CHECK_LAUNCH();
  });
}

Tensor batch_norm_forward(const Tensor& x, const BatchNormStats& stats, const Tensor& weight, const Tensor& bias,
                          const BatchNormTuning& tuning) {
  check_x(x, "batch_norm (CUDA)");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  batch_norm_forward_into(y, x, stats, weight, bias, tuning);
  return y;
}

void batch_norm_backward_into(BatchNormGrads& out, const Tensor& grad_out, const Tensor& x, const BatchNormStats& stats,
                              const Tensor& weight, bool training, const BatchNormTuning& tuning) {
  const char* op = "batch_norm backward (CUDA)";
  const NCL s = check_x(x, op);
  FG_CHECK(grad_out.defined() && grad_out.shape() == x.shape() && grad_out.dtype() == x.dtype() &&
               grad_out.device() == x.device(),
           op << ": grad_out must match x " << x.str() << ", got " << (grad_out.defined() ? grad_out.str() : "none"));
  FG_CHECK(stats.mean.defined() && stats.invstd.defined(), op << ": the statistics are undefined");
  check_channel_vector(stats.mean, x, op, "mean");
  check_channel_vector(stats.invstd, x, op, "invstd");
  check_channel_vector(weight, x, op, "weight");
  if (out.input.defined()) check_output(out.input, x.shape(), x, op, "input gradient");
  if (out.weight.defined()) check_output(out.weight, {s.C}, x, op, "weight gradient");
  if (out.bias.defined()) check_output(out.bias, {s.C}, x, op, "bias gradient");
  check_outputs_separate({&out.input, &out.weight, &out.bias}, {&grad_out, &x, &stats.mean, &stats.invstd, &weight},
                         op);  // tensor/overlap.h
  const bool need_input = out.input.defined() && x.numel() > 0;
  const bool need_sums = out.weight.defined() || out.bias.defined() || (need_input && training);
  if (s.C == 0 || (!need_input && !need_sums)) return;
  const Tensor xc = x.contiguous(), dyc = grad_out.contiguous();
  const Tensor mean = stats.mean.contiguous(), invstd = stats.invstd.contiguous();
  const Tensor w = weight.defined() ? weight.contiguous() : Tensor();
  const int device = x.device().index;
  DeviceGuard guard(device);
  const cudaStream_t stream = stream_of(x);
  dispatch_float_types(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const bool vec =
        use_vectors<T>(tuning, s.L, {xc.data<T>(), dyc.data<T>(), need_input ? out.input.data<T>() : nullptr});
    const int V = vec ? kVector : 1;
    Tensor partial_buffer;
    SumPair* partial = nullptr;
    int splits = 0;
    if (need_sums) {
      const ChannelSplit sp = plan_split(s, V, tuning, device);
      splits = splits_of(sp);
      partial_buffer = Tensor::empty({s.C * splits * 2}, DType::F64, x.device());
      partial = reinterpret_cast<SumPair*>(partial_buffer.data<double>());
      const dim3 grid(unsigned(splits), unsigned(s.C));
      if (vec)
        bn_backward_reduce_kernel<T, kVector>
            <<<grid, kBnThreads, 0, stream>>>(dyc.data<T>(), xc.data<T>(), sp, mean.data<T>(), partial);
      else
        bn_backward_reduce_kernel<T, 1>
            <<<grid, kBnThreads, 0, stream>>>(dyc.data<T>(), xc.data<T>(), sp, mean.data<T>(), partial);
      CUDA_CHECK_LAUNCH();
    }
    const Tensor coef =
        need_input ? Tensor::empty({s.C * 4}, sizeof(A) == 8 ? DType::F64 : DType::F32, x.device()) : Tensor();
    bn_backward_finalize_kernel<T><<<grid_for(s.C, kBnThreads), kBnThreads, 0, stream>>>(
        partial, splits, s.C, double(s.N * s.L), mean.data<T>(), invstd.data<T>(), ptr_or_null<T>(w), training,
        out.weight.defined() ? out.weight.data<T>() : nullptr, out.bias.defined() ? out.bias.data<T>() : nullptr,
        need_input ? coef.data<A>() : nullptr);
    CUDA_CHECK_LAUNCH();
    if (!need_input) return;
    const int64_t groups = x.numel() / V;
    const uint32_t gpr = uint32_t(s.L / V);
    const unsigned blocks = elementwise_blocks(groups);
    const A* k = coef.data<A>();
    if (vec && training)
      bn_backward_input_kernel<T, kVector, true><<<blocks, kBnThreads, 0, stream>>>(
          dyc.data<T>(), xc.data<T>(), out.input.data<T>(), uint32_t(groups), gpr, uint32_t(s.C), k);
    else if (vec)
      bn_backward_input_kernel<T, kVector, false><<<blocks, kBnThreads, 0, stream>>>(
          dyc.data<T>(), xc.data<T>(), out.input.data<T>(), uint32_t(groups), gpr, uint32_t(s.C), k);
    else if (training)
      bn_backward_input_kernel<T, 1, true><<<blocks, kBnThreads, 0, stream>>>(
          dyc.data<T>(), xc.data<T>(), out.input.data<T>(), uint32_t(groups), gpr, uint32_t(s.C), k);
    else
      bn_backward_input_kernel<T, 1, false><<<blocks, kBnThreads, 0, stream>>>(
          dyc.data<T>(), xc.data<T>(), out.input.data<T>(), uint32_t(groups), gpr, uint32_t(s.C), k);
    CUDA_CHECK_LAUNCH();
  });
}

BatchNormGrads batch_norm_backward(const Tensor& grad_out, const Tensor& x, const BatchNormStats& stats,
                                   const Tensor& weight, bool training, bool need_input, bool need_weight,
                                   bool need_bias, const BatchNormTuning& tuning) {
  check_x(x, "batch_norm backward (CUDA)");
  BatchNormGrads g;
  if (need_input) g.input = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (need_weight) g.weight = Tensor::empty({x.size(1)}, x.dtype(), x.device());
  if (need_bias) g.bias = Tensor::empty({x.size(1)}, x.dtype(), x.device());
  batch_norm_backward_into(g, grad_out, x, stats, weight, training, tuning);
  return g;
}

}  // namespace fg::kernels::cuda
