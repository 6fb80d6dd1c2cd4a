// Reductions on CUDA over the (outer, n, inner) view of a contiguous input, in two launches:
//   1. partials: the n axis is cut into `splits` slices so small outputs still fill the GPU.
//      inner == 1: one 256-thread block per (row, slice), threads stride the slice and merge in
//      shared memory; inner > 1: one thread per (row, slice, column), reading rows coalesced.
//   2. finish: one thread per output merges its slices' partials and writes the result.
// Accumulators are core/accumulators.h (the CPU's), in double for float sums, so a 16M-element
// float32 sum is as accurate as the CPU's.
#include "core/accumulators.h"
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

int sm_count() {
  int dev = 0, sms = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  return sms > 0 ? sms : 80;
}

template <typename Acc, typename A, typename T>
__global__ void partial_rows(const T* x, int64_t n, int64_t splits, int64_t range, Acc* partial) {
  const int64_t o = blockIdx.x / splits, s = blockIdx.x % splits;
  const int64_t r0 = s * range, r1 = min(n, r0 + range);
  Acc acc;
  for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) acc.add(A(compute_t<T>(x[o * n + r])), r);
  Acc total = dev::block_merge(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <typename Acc, typename A, typename T>
__global__ void partial_cols(const T* x, int64_t outer, int64_t n, int64_t inner, int64_t splits, int64_t range,
                             Acc* partial) {
  const int64_t total = outer * splits * inner;
  for (int64_t t = dev::global_thread(); t < total; t += dev::grid_threads()) {
    const int64_t i = t % inner, os = t / inner, s = os % splits, o = os / splits;
    const int64_t r0 = s * range, r1 = min(n, r0 + range);
    Acc acc;
    for (int64_t r = r0; r < r1; ++r) acc.add(A(compute_t<T>(x[(o * n + r) * inner + i])), r);
    partial[t] = acc;
  }
}

template <typename Acc, typename Out, typename Finish>
__global__ void finish_kernel(const Acc* partial, int64_t outer, int64_t inner, int64_t splits, Out* out, Finish f) {
  for (int64_t t = dev::global_thread(); t < outer * inner; t += dev::grid_threads()) {
    const int64_t o = t / inner, i = t % inner;
    Acc acc = partial[(o * splits) * inner + i];
    for (int64_t s = 1; s < splits; ++s) acc.merge(partial[(o * splits + s) * inner + i]);
    out[t] = f(acc);
  }
}

template <typename Acc, typename A, typename T, typename Out, typename Finish>
void fold(const char* op, const Array& x, Array& out, int64_t outer, int64_t n, int64_t inner, Finish f) {
  const int device = out.device().index;
  DeviceGuard guard(device);
  cudaStream_t stream = stream_of(device);
  const int64_t sms = sm_count(), outputs = outer * inner;
  int64_t splits = inner == 1 ? std::max<int64_t>(1, (2 * sms + outer - 1) / outer)
                              : std::max<int64_t>(1, (sms * 1024 + outputs - 1) / outputs);
  splits = std::max<int64_t>(1, std::min(splits, (n + 1023) / 1024));
  const int64_t range = (n + splits - 1) / splits;
  Acc* partial = static_cast<Acc*>(allocate(sizeof(Acc) * size_t(outputs * splits), device));
  if (inner == 1) {
    partial_rows<Acc, A, T><<<unsigned(outer * splits), kThreads, kThreads * sizeof(Acc), stream>>>(
        x.data<T>(), n, splits, range, partial);
  } else {
    partial_cols<Acc, A, T><<<grid_for(outputs * splits, kThreads), kThreads, 0, stream>>>(
        x.data<T>(), outer, n, inner, splits, range, partial);
  }
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) {
    finish_kernel<<<grid_for(outputs, kThreads), kThreads, 0, stream>>>(partial, outer, inner, splits,
                                                                        out.data<Out>(), f);
    e = cudaGetLastError();
  }
  deallocate(partial, device);  // stream-ordered: freed after the kernels that use it
  check(e, op);
}

template <typename T>
void reduce_typed(ReduceOp op, const Array& x, Array& out, int64_t outer, int64_t n, int64_t inner, int64_t correction) {
  using C = compute_t<T>;
  using A = std::conditional_t<std::is_integral_v<C>, int64_t, double>;
  switch (op) {
    case ReduceOp::sum: case ReduceOp::mean: {
      const double scale = op == ReduceOp::mean ? 1.0 / double(n) : 1.0;
      if constexpr (std::is_integral_v<C>)
        fold<SumAcc<A>, A, T, int64_t>("sum", x, out, outer, n, inner, [] __device__(const SumAcc<A>& a) { return a.s; });
      else
        fold<SumAcc<A>, A, T, T>("sum", x, out, outer, n, inner,
                                 [scale] __device__(const SumAcc<A>& a) { return T(C(a.s * scale)); });
      return;
    }
    case ReduceOp::prod:
      if constexpr (std::is_integral_v<C>)
        fold<ProdAcc<A>, A, T, int64_t>("prod", x, out, outer, n, inner, [] __device__(const ProdAcc<A>& a) { return a.p; });
      else
        fold<ProdAcc<A>, A, T, T>("prod", x, out, outer, n, inner, [] __device__(const ProdAcc<A>& a) { return T(C(a.p)); });
      return;
    case ReduceOp::max:
      fold<ExtAcc<C, true>, C, T, T>("max", x, out, outer, n, inner, [] __device__(const ExtAcc<C, true>& a) { return T(a.m); });
      return;
    case ReduceOp::min:
      fold<ExtAcc<C, false>, C, T, T>("min", x, out, outer, n, inner, [] __device__(const ExtAcc<C, false>& a) { return T(a.m); });
      return;
    case ReduceOp::argmax:
      fold<ExtAcc<C, true>, C, T, int64_t>("argmax", x, out, outer, n, inner, [] __device__(const ExtAcc<C, true>& a) { return a.at; });
      return;
    case ReduceOp::argmin:
      fold<ExtAcc<C, false>, C, T, int64_t>("argmin", x, out, outer, n, inner, [] __device__(const ExtAcc<C, false>& a) { return a.at; });
      return;
    case ReduceOp::var:
      if constexpr (!std::is_integral_v<C>) {
        const double denom = double(n - correction);
        fold<VarAcc, double, T, T>("var", x, out, outer, n, inner, [denom] __device__(const VarAcc& a) {
          return T(C(denom > 0 ? a.m2 / denom : __longlong_as_double(0x7ff8000000000000LL)));
        });
      }
      return;
  }
}

}  // namespace

void reduce(ReduceOp op, const Array& x, Array& out, int64_t outer, int64_t n, int64_t inner, int64_t correction) {
  if (out.numel() == 0) return;
  dispatch_numeric(x.dtype(), "reduce", [&](auto tag) { reduce_typed<decltype(tag)>(op, x, out, outer, n, inner, correction); });
}

}  // namespace ember::cuda
