// copy (strided, with dtype conversion), fill and arange on the CPU. copy is the one kernel behind
// contiguous(), astype(), cat/stack and broadcasting materialisation.
#include <algorithm>
#include <cstring>
#include "core/backend.h"
#include "core/dispatch.h"
#include "cpu/strided_loop.h"

namespace ember::cpu {

template <typename To, typename From>
static To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) return static_cast<float>(compute_t<From>(v)) != 0.0f;
  else if constexpr (std::is_same_v<To, float16> || std::is_same_v<To, bfloat16>) return To(float(compute_t<From>(v)));
  else return static_cast<To>(compute_t<From>(v));
}

void copy(const Array& src, Array& dst) {
  if (dst.numel() == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    // Large copies in 1 MiB pieces over the threads: one core cannot saturate memory bandwidth.
    char* d = static_cast<char*>(dst.raw());
    const char* s = static_cast<const char*>(src.raw());
    const int64_t bytes = int64_t(dst.nbytes()), piece = 1 << 20;
    parallel_for((bytes + piece - 1) / piece, 1, [&](int64_t p0, int64_t p1) {
      std::memcpy(d + p0 * piece, s + p0 * piece, size_t(std::min(bytes, p1 * piece) - p0 * piece));
    });
    return;
  }
  const Array* ops[2] = {&dst, &src};
  dispatch_all(dst.dtype(), "copy", [&](auto dt) {
    using To = decltype(dt);
    dispatch_all(src.dtype(), "copy", [&](auto st) {
      using From = decltype(st);
      To* d = dst.data<To>();
      const From* s = src.data<From>();
      strided_loop<2>(dst.shape(), ops, [&](const int64_t* off, const int64_t* inc, int64_t n) {
        To* dp = d + off[0];
        const From* sp = s + off[1];
        if (inc[0] == 1 && inc[1] == 1) {
          for (int64_t i = 0; i < n; ++i) dp[i] = convert<To>(sp[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) dp[i * inc[0]] = convert<To>(sp[i * inc[1]]);
        }
      });
    });
  });
}

void fill(Array& dst, double value) {
  dispatch_all(dst.dtype(), "fill", [&](auto tag) {
    using T = decltype(tag);
    T v = std::is_same_v<T, bool> ? T(value != 0) : static_cast<T>(static_cast<compute_t<T>>(value));
    T* d = dst.data<T>();
    // Every new array is contiguous: one run over its elements, without strided_loop's layout walk
    // (_C.full 32x32 0.47-0.51 -> 0.40-0.44 us, 1 element 0.37-0.40 -> 0.30-0.34, alternating runs).
    if (dst.is_contiguous()) {
      parallel_for(dst.numel(), kGrainElementwise, [&](int64_t b, int64_t e) { std::fill(d + b, d + e, v); });
      return;
    }
    const Array* ops[1] = {&dst};
    strided_loop<1>(dst.shape(), ops, [&](const int64_t* off, const int64_t* inc, int64_t n) {
      for (int64_t i = 0; i < n; ++i) d[off[0] + i * inc[0]] = v;
    });
  });
}

void arange(Array& out, double start, double step) {
  dispatch_numeric(out.dtype(), "arange", [&](auto tag) {
    using T = decltype(tag);
    T* d = out.data<T>();
    parallel_for(out.numel(), kGrainElementwise, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) d[i] = T(compute_t<T>(start + double(i) * step));
    });
  });
}

}  // namespace ember::cpu
