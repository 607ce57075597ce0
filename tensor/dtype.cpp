// dtype names and sizes, and f16 conversions (IEEE binary16, round to nearest even).
#include "tensor/dtype.h"

namespace fg {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::U8: return 1;
  }
  FG_ASSERT(false, "unknown dtype");
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I64: return "i64";
    case DType::I32: return "i32";
    case DType::U8: return "u8";
  }
  return "?";
}

bool dtype_is_floating(DType dt) {
  return dt == DType::F32 || dt == DType::F64 || dt == DType::F16 || dt == DType::BF16;
}

DType dtype_from_name(const std::string& name) {
  for (DType dt : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::U8})
    if (name == dtype_name(dt)) return dt;
  throw Error("unknown dtype '" + name + "': use one of f32, f64, f16, bf16, i64, i32, u8");
}

float half_to_float(half_t h) {
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
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

half_t float_to_half(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
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
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    // value = abs_float; half subnormal unit = 2^-24. Round to nearest even of value / 2^-24.
    float af;
    std::memcpy(&af, &abs, 4);
    const float scaled = af * 16777216.0f;  // exact (power of two)
    uint32_t q = uint32_t(scaled);
    const float rem = scaled - float(q);
    if (rem > 0.5f || (rem == 0.5f && (q & 1u))) ++q;
    h.bits = uint16_t(sign | q);
    return h;
  }
  // normal: rebias exponent, round the 13 dropped mantissa bits to nearest even
  uint32_t v = abs - ((127u - 15u) << 23);
  const uint32_t round_bit = 0x1000u, sticky = 0x0fffu;
  uint32_t out = v >> 13;
  if ((v & round_bit) && ((v & sticky) || (out & 1u))) ++out;
  h.bits = uint16_t(sign | out);
  return h;
}

}  // namespace fg
