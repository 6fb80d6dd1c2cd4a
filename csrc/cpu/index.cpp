// Indexing on the CPU. Arrays are viewed as (outer, n, inner) around the indexed dim; indices are
// already range-checked by core/index.cpp, and negative ones count from the end. The scatter-add
// backward ops parallelise over (outer, inner) positions and walk the indices in order, so the sums
// are the same run to run (no atomics).
#include <cstring>
#include "core/backend.h"
#include "core/dispatch.h"
#include "cpu/parallel.h"

namespace ember::cpu {

template <typename I>
static inline int64_t wrap(I i, int64_t n) { return i < 0 ? int64_t(i) + n : int64_t(i); }

void index_select(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t m = idx.numel();
  const size_t row_bytes = size_t(inner) * x.itemsize();
  const char* src = static_cast<const char*>(x.raw());
  char* dst = static_cast<char*>(out.raw());
  dispatch_index(idx.dtype(), "index_select", [&](auto tag) {
    const auto* ip = idx.data<decltype(tag)>();
    parallel_for(outer * m, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(inner, 1)),
                 [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        int64_t o = t / m, j = t % m;
        std::memcpy(dst + size_t(t) * row_bytes, src + size_t(o * n + wrap(ip[j], n)) * row_bytes, row_bytes);
      }
    });
  });
}

void index_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t m = idx.numel();
  dispatch_numeric(out.dtype(), "index_add", [&](auto vt) {
    using T = decltype(vt);
    using C = compute_t<T>;
    const T* s = src.data<T>();
    T* o_ = out.data<T>();
    dispatch_index(idx.dtype(), "index_add", [&](auto it) {
      const auto* ip = idx.data<decltype(it)>();
      parallel_for(outer * inner, 1024, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          int64_t o = p / inner, i = p % inner;
          for (int64_t j = 0; j < m; ++j) {
            T& d = o_[(o * n + wrap(ip[j], n)) * inner + i];
            d = T(C(C(d) + C(s[(o * m + j) * inner + i])));
          }
        }
      });
    });
  });
}

void gather(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t m = idx.numel() / std::max<int64_t>(outer * inner, 1);
  dispatch_all(x.dtype(), "gather", [&](auto vt) {
    using T = decltype(vt);
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    dispatch_index(idx.dtype(), "gather", [&](auto it) {
      const auto* ip = idx.data<decltype(it)>();
      parallel_for(outer * m * inner, kGrainElementwise, [&](int64_t e0, int64_t e1) {
        for (int64_t e = e0; e < e1; ++e) {
          int64_t i = e % inner, o = e / (m * inner);
          op[e] = xp[(o * n + wrap(ip[e], n)) * inner + i];
        }
      });
    });
  });
}

void scatter_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t m = idx.numel() / std::max<int64_t>(outer * inner, 1);
  dispatch_numeric(out.dtype(), "scatter_add", [&](auto vt) {
    using T = decltype(vt);
    using C = compute_t<T>;
    const T* s = src.data<T>();
    T* op = out.data<T>();
    dispatch_index(idx.dtype(), "scatter_add", [&](auto it) {
      const auto* ip = idx.data<decltype(it)>();
      parallel_for(outer * inner, 1024, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          int64_t o = p / inner, i = p % inner;
          for (int64_t j = 0; j < m; ++j) {
            int64_t e = (o * m + j) * inner + i;
            T& d = op[(o * n + wrap(ip[e], n)) * inner + i];
            d = T(C(C(d) + C(s[e])));
          }
        }
      });
    });
  });
}

Array nonzero_flat(const Array& mask) {
  const bool* m = mask.data<bool>();
  int64_t n = mask.numel(), count = 0;
  for (int64_t i = 0; i < n; ++i) count += m[i];
  Array out = Array::empty({count}, DType::int64, mask.device());
  int64_t* o = out.data<int64_t>();
  for (int64_t i = 0, k = 0; i < n; ++i)
    if (m[i]) o[k++] = i;
  return out;
}

}  // namespace ember::cpu
