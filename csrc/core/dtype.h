// dtypes: the element types an Array can hold, their sizes and names, and the two 16-bit float
// storage types. float16/bfloat16 are storage only: kernels load them, compute in float32 and
// round back (round-to-nearest-even), so the same code runs on every CPU and on CUDA.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include "core/hd.h"

namespace ember {

enum class DType : uint8_t { float32, float64, float16, bfloat16, int64, int32, bool_ };

size_t itemsize(DType t);
const char* dtype_name(DType t);
DType dtype_from_name(const std::string& name);  // throws std::invalid_argument
bool is_floating(DType t);
DType promote_types(DType a, DType b);  // NumPy/PyTorch-style: bool < ints < floats, wider wins

EMBER_HD uint32_t float_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
EMBER_HD float bits_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// bfloat16: the top 16 bits of a float32. Rounding adds 0x7fff plus the lowest kept bit
// (ties to even); NaN is kept a quiet NaN so the rounding cannot carry it into infinity.
struct bfloat16 {
  uint16_t bits;
  bfloat16() = default;
  EMBER_HD bfloat16(float f) {
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) { bits = uint16_t((u >> 16) | 0x40); return; }
    bits = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  EMBER_HD operator float() const { return bits_float(uint32_t(bits) << 16); }
};

// IEEE binary16, converted in software: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
struct float16 {
  uint16_t bits;
  float16() = default;
  EMBER_HD float16(float f) { bits = from_float(f); }
  EMBER_HD operator float() const { return to_float(bits); }

  EMBER_HD static uint16_t from_float(float f) {
    uint32_t u = float_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (au > 0x7f800000u ? 0x200u : 0u));
    if (au >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: overflow
    if (au < 0x38800000u) {  // result is subnormal (or zero): scale so the float adder rounds for us
      float r = bits_float(au) + 0.5f;  // 0.5 = 2^-1 puts the 2^-24 ulp at the float's last bit
      return uint16_t(sign | (float_bits(r) - 0x3f000000u));
    }
    uint32_t mant_odd = (au >> 13) & 1u;
    au += 0xc8000fffu + mant_odd;  // rebias exponent (127 -> 15) and round to nearest even
    return uint16_t(sign | (au >> 13));
  }
  EMBER_HD static float to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {  // zero or subnormal: value = mant * 2^-24
      float v = float(mant) * 5.9604644775390625e-8f;
      return sign ? -v : v;
    }
    return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  }
};

// Maps a storage type to the type arithmetic is done in.
template <typename T> struct compute_type { using type = T; };
template <> struct compute_type<float16> { using type = float; };
template <> struct compute_type<bfloat16> { using type = float; };
template <> struct compute_type<bool> { using type = int64_t; };
template <> struct compute_type<int32_t> { using type = int64_t; };
template <typename T> using compute_t = typename compute_type<T>::type;

}  // namespace ember
