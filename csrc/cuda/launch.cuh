// map: the one elementwise launcher of the CUDA backend (copy, fill, unary, binary, where), the
// counterpart of cpu/strided_loop.h. out[e] = f(in_1[e], ..., in_k[e]) over out's shape, one launch on
// ember's stream, with f a __device__ functor taking the inputs' storage values.
//
// Three kernels, chosen on the host:
//   1. packed: out contiguous, every input contiguous or one broadcast value (all strides 0). Each
//      thread moves K elements per operand with one aligned access, K = 16 / (largest element size),
//      so float32 goes as float4 and float16 as 8 halves. Needs each pointer aligned to its pack.
//   2. flat: the same with K = 1, for the misaligned case (views at odd offsets).
//   3. strided: anything else; StridedLayout<N> turns each linear index into operand offsets.
// All loops are grid-stride in int64, so sizes beyond 2^31 elements are fine.
#pragma once
#include <algorithm>
#include <utility>
#include "core/strided.h"
#include "cuda/device/common.cuh"
#include "cuda/runtime.cuh"

namespace ember::cuda {

// An input of map: its storage pointer (typed) and the Array describing its view.
template <typename T>
struct Operand {
  const T* p;
  const Array* a;
};
template <typename T>
Operand<T> operand(const Array& a) { return {a.data<T>(), &a}; }

namespace detail {

// A flat input: contiguous (step 1) or a single broadcast value (step 0).
template <typename T>
struct FlatIn {
  const T* p;
  int64_t step;
};

template <int K, typename T>
__device__ __forceinline__ dev::Pack<T, K> load_in(const FlatIn<T>& in, int64_t i) {
  return in.step == 0 ? dev::splat<K>(*in.p) : dev::load_pack<K>(in.p + i);
}

template <int K, typename Out, typename F, typename... Ins>
__device__ __forceinline__ dev::Pack<Out, K> apply_packs(const F& f, const dev::Pack<Ins, K>&... in) {
  dev::Pack<Out, K> r;
#pragma unroll
  for (int k = 0; k < K; ++k) r.v[k] = f(in.v[k]...);
  return r;
}

template <int K, typename Out, typename F, typename... Ins>
__global__ void __launch_bounds__(kThreads) map_flat(Out* out, int64_t n, F f, FlatIn<Ins>... ins) {
  const int64_t packs = n / K;
  for (int64_t p = dev::global_thread(); p < packs; p += dev::grid_threads())
    dev::store_pack<K>(out + p * K, apply_packs<K, Out>(f, load_in<K>(ins, p * K)...));
  if constexpr (K > 1) {  // the last n % K (< K) elements, one per thread of the first threads
    const int64_t i = packs * K + dev::global_thread();
    if (i < n) out[i] = f(ins.p[i * ins.step]...);
  }
}

template <typename F, typename Out, size_t... Is, typename... Ins>
__device__ __forceinline__ void apply_at(const F& f, Out* out, const int64_t* off, std::index_sequence<Is...>,
                                         const Ins*... ins) {
  out[off[0]] = f(ins[off[Is + 1]]...);
}

template <typename Out, typename F, typename... Ins>
__global__ void __launch_bounds__(kThreads) map_strided(StridedLayout<1 + sizeof...(Ins)> L, int64_t n, Out* out,
                                                        F f, const Ins*... ins) {
  for (int64_t i = dev::global_thread(); i < n; i += dev::grid_threads()) {
    int64_t off[1 + sizeof...(Ins)];
    L.offsets(i, off);
    apply_at(f, out, off, std::index_sequence_for<Ins...>{}, ins...);
  }
}

inline bool all_strides_zero(const Array& a) {
  for (int d = 0; d < a.ndim(); ++d)
    if (a.shape(d) != 1 && a.strides()[d] != 0) return false;
  return true;
}

// step for the flat kernels, or -1 when the input needs the strided kernel.
inline int64_t flat_step(const Array& a) { return a.is_contiguous() ? 1 : (all_strides_zero(a) ? 0 : -1); }

template <typename T>
bool pack_aligned(const T* p, int64_t step, int k) { return step == 0 || is_aligned(p, sizeof(T) * k); }

}  // namespace detail

// out (any strides) = f(ins...) elementwise; inputs have out's shape (broadcast as stride-0 views).
template <typename Out, typename F, typename... Ins>
void map(const char* op, const Array& out, F f, Operand<Ins>... ins) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device, op);
  cudaStream_t stream = stream_of(device);
  Out* o = out.data<Out>();
  const bool flat = out.is_contiguous() && ((detail::flat_step(*ins.a) >= 0) && ...);
  if (flat) {
    constexpr int K = int(16 / std::max({sizeof(Out), sizeof(Ins)...}));
    const bool packed = K > 1 && is_aligned(o, sizeof(Out) * K) &&
                        (detail::pack_aligned(ins.p, detail::flat_step(*ins.a), K) && ...);
    if (packed) {
      detail::map_flat<K, Out><<<grid_for((n + K - 1) / K), kThreads, 0, stream>>>(
          o, n, f, detail::FlatIn<Ins>{ins.p, detail::flat_step(*ins.a)}...);
    } else {
      detail::map_flat<1, Out><<<grid_for(n), kThreads, 0, stream>>>(
          o, n, f, detail::FlatIn<Ins>{ins.p, detail::flat_step(*ins.a)}...);
    }
  } else {
    const Array* arrays[] = {&out, ins.a...};
    detail::map_strided<Out><<<grid_for(n), kThreads, 0, stream>>>(
        make_layout<1 + sizeof...(Ins)>(out.shape(), arrays), n, o, f, ins.p...);
  }
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace ember::cuda
