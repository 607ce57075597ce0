// Element conversions on the GPU that give the same bits as the CPU's (tensor/dtype.h, tensor/dtype.cpp and the
// conversion rules of Tensor::copy_ in tensor/tensor.cpp). Include from .cu files only.
//
// The f16/bf16 conversions are line-for-line ports of the CPU functions (round to nearest even, NaN kept quiet
// with the CPU's payload rule) rather than the hardware instructions, so a cast or a copy on the GPU gives
// bitwise what the CPU gives, NaN included. They are a handful of integer operations, which memory-bound kernels
// do not notice. convert<D, S>() follows Tensor::copy_'s rules: float-to-float through float when a 16-bit type
// is involved (one rounding), integers from floating point by round-half-away-from-zero with NaN giving 0.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tensor/dtype.h"

namespace fg::cuda {

__host__ __device__ inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
__host__ __device__ inline float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// tensor/dtype.cpp half_to_float.
__host__ __device__ inline float half_to_f32(half_t h) {
  const uint32_t sign = uint32_t(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t mant = h.bits & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      u = sign | (uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return bits_float(u);
}

// tensor/dtype.cpp float_to_half.
__host__ __device__ inline half_t f32_to_half(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7fffffffu;
  half_t h;
  if (abs >= 0x7f800000u) {  // Inf or NaN
    h.bits = uint16_t(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
    return h;
  }
  if (abs >= 0x477ff000u) {  // rounds to a value >= 65520: overflow to Inf
    h.bits = uint16_t(sign | 0x7c00u);
    return h;
  }
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero, in units of 2^-24
    const float scaled = bits_float(abs) * 16777216.0f;  // exact (power of two)
    uint32_t q = uint32_t(scaled);
    const float rem = scaled - float(q);
    if (rem > 0.5f || (rem == 0.5f && (q & 1u))) ++q;
    h.bits = uint16_t(sign | q);
    return h;
  }
  const uint32_t v = abs - ((127u - 15u) << 23);
  const uint32_t round_bit = 0x1000u, sticky = 0x0fffu;
  uint32_t out = v >> 13;
  if ((v & round_bit) && ((v & sticky) || (out & 1u))) ++out;
  h.bits = uint16_t(sign | out);
  return h;
}

// tensor/dtype.h bf16_to_float / float_to_bf16.
__host__ __device__ inline float bf16_to_f32(bf16_t h) { return bits_float(uint32_t(h.bits) << 16); }
__host__ __device__ inline bf16_t f32_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  bf16_t h;
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) {  // NaN stays a (quiet) NaN
    h.bits = uint16_t((u >> 16) | 0x0040u);
    return h;
  }
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  h.bits = uint16_t((u + rounding) >> 16);
  return h;
}

// f64 <-> f32 as the CPU (x86 cvtsd2ss / cvtss2sd) converts: ordinary values round to nearest even on both, but a
// NaN keeps its sign and the top of its payload on the CPU, where the GPU's instruction returns its canonical NaN.
// The NaN case is built bit by bit so that casts of NaN are bitwise the CPU's too.
__host__ __device__ inline float f64_to_f32(double v) {
  if (v != v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    return bits_float(uint32_t(u >> 32) & 0x80000000u | 0x7fc00000u | uint32_t((u >> 29) & 0x007fffffu));
  }
  return float(v);
}
__host__ __device__ inline double f32_to_f64(float v) {
  if (v != v) {
    const uint32_t u = float_bits(v);
    const uint64_t r = (uint64_t(u & 0x80000000u) << 32) | 0x7ff8000000000000ull | (uint64_t(u & 0x007fffffu) << 29);
    double d;
    memcpy(&d, &r, 8);
    return d;
  }
  return double(v);
}

// Any arithmetic value to float as the CPU's float(v) does.
template <typename S>
__host__ __device__ inline float to_f32_cpu(S v) {
  if constexpr (std::is_same_v<S, double>) return f64_to_f32(v);
  else return float(v);
}

// ---- Tensor::copy_'s conversion rules (tensor/tensor.cpp: to_double, from_double, convert) ----

template <typename T>
__host__ __device__ inline double to_f64(T v) {
  if constexpr (std::is_same_v<T, half_t>) return f32_to_f64(half_to_f32(v));
  else if constexpr (std::is_same_v<T, bf16_t>) return f32_to_f64(bf16_to_f32(v));
  else if constexpr (std::is_same_v<T, float>) return f32_to_f64(v);
  else return double(v);
}

template <typename T>
__host__ __device__ inline T from_f64(double v) {
  if constexpr (std::is_same_v<T, half_t>) {
    return f32_to_half(f64_to_f32(v));
  } else if constexpr (std::is_same_v<T, bf16_t>) {
    return f32_to_bf16(f64_to_f32(v));
  } else if constexpr (std::is_integral_v<T>) {
    if (v != v) return T(0);  // NaN
    return T(llround(v));     // round half away from zero, as std::llround
  } else if constexpr (std::is_same_v<T, float>) {
    return f64_to_f32(v);
  } else {
    return T(v);
  }
}

template <typename D, typename S>
__host__ __device__ inline D convert(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, float> && std::is_same_v<S, double>) {
    return f64_to_f32(v);
  } else if constexpr (std::is_same_v<D, double> && std::is_same_v<S, float>) {
    return f32_to_f64(v);
  } else if constexpr (std::is_same_v<S, half_t> || std::is_same_v<S, bf16_t>) {
    return from_f64<D>(to_f64(v));
  } else if constexpr (std::is_same_v<D, half_t>) {
    return f32_to_half(to_f32_cpu(v));
  } else if constexpr (std::is_same_v<D, bf16_t>) {
    return f32_to_bf16(to_f32_cpu(v));
  } else {
    return from_f64<D>(to_f64(v));
  }
}

// ---- compute types: kernels load 16-bit values as f32, compute in f32 and round once on store ----

template <typename T>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename T>
using acc_t = typename AccType<T>::type;

template <typename T>
__host__ __device__ inline acc_t<T> to_acc(T v) {
  if constexpr (std::is_same_v<T, half_t>) return half_to_f32(v);
  else if constexpr (std::is_same_v<T, bf16_t>) return bf16_to_f32(v);
  else return v;
}

template <typename T>
__host__ __device__ inline T from_acc(acc_t<T> v) {
  if constexpr (std::is_same_v<T, half_t>) return f32_to_half(v);
  else if constexpr (std::is_same_v<T, bf16_t>) return f32_to_bf16(v);
  else return v;
}

}  // namespace fg::cuda
