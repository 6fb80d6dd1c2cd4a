// Two row passes that softmax (cpu/softmax.cpp) and attention (cpu/attention.cpp) share: a row's
// max and exp(x - shift) with its sum, on the float32 vector loops of simd/kernels.cpp and plain
// loops for float64. Both give NaN for a row holding one, whatever the dtype.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include "cpu/simd/kernels.h"

namespace ember::cpu {

template <typename T> T row_max(const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    return simd().max_f32(x, n);
  } else {
    T m = -std::numeric_limits<T>::infinity();  // an empty row's max, as the vector loop's
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(x[i])) return x[i];
      m = x[i] > m ? x[i] : m;
    }
    return m;
  }
}

// out = exp(x - shift) (out may be x), returning the sum.
template <typename T> T exp_shifted(const T* x, T shift, T* out, int64_t n) {
  if constexpr (std::is_same_v<T, float>) return T(simd().exp_sum_f32(x, shift, out, n));
  T s = 0;
  for (int64_t i = 0; i < n; ++i) s += (out[i] = std::exp(x[i] - shift));
  return s;
}

}  // namespace ember::cpu
