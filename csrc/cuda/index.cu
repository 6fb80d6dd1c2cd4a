// Indexing on CUDA over the (outer, n, inner) view around the indexed dim. Indices were range-checked
// by core/ops.cpp; negative ones count from the end. The scatter-add backward ops give each thread
// one output position (outer, inner) and walk the indices in order: no atomics, so the sums are
// bitwise reproducible run to run (at the price of less parallelism than an atomic version).
// nonzero_flat copies the mask to the host (the result's size is data-dependent, so the caller must
// wait for it anyway), finds the positions there and copies them back.
#include <vector>
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

template <typename I>
__device__ __forceinline__ int64_t wrap(I i, int64_t n) { return i < 0 ? int64_t(i) + n : int64_t(i); }

template <typename F>
__global__ void grid_loop(int64_t total, F f) {
  for (int64_t t = dev::global_thread(); t < total; t += dev::grid_threads()) f(t);
}

template <typename F>
void launch(const char* op, const Array& out, int64_t total, F f) {
  if (total == 0) return;
  DeviceGuard guard(out.device().index);
  grid_loop<<<grid_for(total, kThreads), kThreads, 0, stream_of(out.device().index)>>>(total, f);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace

namespace typed {  // device lambdas may not live in dispatch's generic lambdas: named templates
template <typename T, typename I>
void index_select(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t m = idx.numel();
  const T* xp = x.data<T>();
  const I* ip = idx.data<I>();
  T* op = out.data<T>();
  launch("index_select", out, outer * m * inner, [=] __device__(int64_t e) {
    const int64_t i = e % inner, j = (e / inner) % m, o = e / (inner * m);
    op[e] = xp[(o * n + wrap(ip[j], n)) * inner + i];
  });
}

template <typename T, typename I>
void index_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  using C = compute_t<T>;
  const int64_t m = idx.numel();
  const T* s = src.data<T>();
  const I* ip = idx.data<I>();
  T* op = out.data<T>();
  launch("index_add", out, outer * inner, [=] __device__(int64_t p) {
    const int64_t o = p / inner, i = p % inner;
    for (int64_t j = 0; j < m; ++j) {
      T& d = op[(o * n + wrap(ip[j], n)) * inner + i];
      d = T(C(C(d) + C(s[(o * m + j) * inner + i])));
    }
  });
}

template <typename T, typename I>
void gather(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t m = idx.numel() / std::max<int64_t>(outer * inner, 1);
  const T* xp = x.data<T>();
  const I* ip = idx.data<I>();
  T* op = out.data<T>();
  launch("gather", out, outer * m * inner, [=] __device__(int64_t e) {
    const int64_t i = e % inner, o = e / (m * inner);
    op[e] = xp[(o * n + wrap(ip[e], n)) * inner + i];
  });
}

template <typename T, typename I>
void scatter_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  using C = compute_t<T>;
  const int64_t m = idx.numel() / std::max<int64_t>(outer * inner, 1);
  const T* s = src.data<T>();
  const I* ip = idx.data<I>();
  T* op = out.data<T>();
  launch("scatter_add", out, outer * inner, [=] __device__(int64_t p) {
    const int64_t o = p / inner, i = p % inner;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t e = (o * m + j) * inner + i;
      T& d = op[(o * n + wrap(ip[e], n)) * inner + i];
      d = T(C(C(d) + C(s[e])));
    }
  });
}
}  // namespace typed

#define EMBER_INDEX_OP(name, dispatch_values, values, index)                                          \
  void name(const Array& values, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) { \
    dispatch_values(out.dtype(), #name, [&](auto vt) {                                                \
      dispatch_index(idx.dtype(), #name, [&](auto it) {                                              \
        typed::name<decltype(vt), decltype(it)>(values, idx, out, outer, n, inner);                  \
      });                                                                                            \
    });                                                                                              \
  }
EMBER_INDEX_OP(index_select, dispatch_all, x, idx)
EMBER_INDEX_OP(index_add, dispatch_numeric, src, idx)
EMBER_INDEX_OP(gather, dispatch_all, x, idx)
EMBER_INDEX_OP(scatter_add, dispatch_numeric, src, idx)
#undef EMBER_INDEX_OP

Array nonzero_flat(const Array& mask) {
  const int64_t n = mask.numel();
  std::vector<char> host(size_t(std::max<int64_t>(n, 1)));
  memcpy_bytes(host.data(), Device{}, mask.raw(), mask.device(), size_t(n));
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < n; ++i)
    if (host[size_t(i)]) pos.push_back(i);
  Array out = Array::empty({int64_t(pos.size())}, DType::int64, mask.device());
  memcpy_bytes(out.raw(), out.device(), pos.data(), Device{}, pos.size() * sizeof(int64_t));
  return out;
}

}  // namespace ember::cuda
