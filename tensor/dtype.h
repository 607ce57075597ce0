// Element types, their sizes and names, and the f16/bf16 <-> f32 conversions (round to nearest even).
// CPU kernels compute in f32 (and f64 for gradient checks); f16 and bf16 are storage types on the CPU,
// converted with these functions. FG_DISPATCH_FLOATING runs a lambda with `scalar_t` bound to float or double.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "tensor/error.h"

namespace fg {

enum class DType : uint8_t { F32, F64, F16, BF16, I64, I32, U8 };

struct half_t {
  uint16_t bits = 0;
};
struct bf16_t {
  uint16_t bits = 0;
};

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);          // "f32", "f64", "f16", "bf16", "i64", "i32", "u8"
bool dtype_is_floating(DType dt);          // f32, f64, f16, bf16
DType dtype_from_name(const std::string&);  // inverse of dtype_name; throws fg::Error on an unknown name

inline float bf16_to_float(bf16_t h) {
  uint32_t u = uint32_t(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline bf16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  bf16_t h;
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) {  // NaN stays a (quiet) NaN
    h.bits = uint16_t((u >> 16) | 0x0040u);
    return h;
  }
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  h.bits = uint16_t((u + rounding) >> 16);
  return h;
}
float half_to_float(half_t h);
half_t float_to_half(float f);

template <typename T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<half_t> { static constexpr DType value = DType::F16; };
template <> struct dtype_of<bf16_t> { static constexpr DType value = DType::BF16; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };

// Calls fn(float{}) or fn(double{}) according to dt; write fn as [&](auto tag) { using scalar_t = decltype(tag); }.
// Unlike FG_DISPATCH_FLOATING, the body may contain #pragma omp (pragmas cannot appear inside macro arguments).
template <typename Fn>
void dispatch_floating(DType dt, const char* opname, Fn&& fn) {
  switch (dt) {
    case DType::F32: fn(float{}); return;
    case DType::F64: fn(double{}); return;
    default:
      throw Error(std::string(opname) + ": dtype " + dtype_name(dt) +
                  " is not supported on the CPU; cast to f32 (or f64) first");
  }
}

}  // namespace fg

// Runs the lambda (taking no arguments; variadic so that commas inside it are fine) with `scalar_t` = float or double according to DT.
#define FG_DISPATCH_FLOATING(DT, OPNAME, ...)                                                     \
  do {                                                                                           \
    switch (DT) {                                                                                \
      case ::fg::DType::F32: {                                                                   \
        using scalar_t = float;                                                                  \
        (__VA_ARGS__)();                                                                                  \
        break;                                                                                   \
      }                                                                                          \
      case ::fg::DType::F64: {                                                                   \
        using scalar_t = double;                                                                 \
        (__VA_ARGS__)();                                                                                  \
        break;                                                                                   \
      }                                                                                          \
      default:                                                                                   \
        throw ::fg::Error(std::string(OPNAME) + ": dtype " + ::fg::dtype_name(DT) +              \
                          " is not supported on the CPU; cast to f32 (or f64) first");           \
    }                                                                                            \
  } while (0)
