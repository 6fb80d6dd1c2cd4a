// Reductions on CUDA: sum, mean, prod, max, min, argmax, argmin, var over the n axis of a contiguous
// input viewed as (outer, n, inner); out[o * inner + i] folds x[(o * n + r) * inner + i], r < n.
//
// Accumulators are core/accumulators.h, the CPU's: sums and var in double (int64 for integer input),
// max/min/arg* in the compute type with NaN as the extreme and the first index on ties. Per-thread
// double accumulation costs nothing here: a memory-bound fold needs at most ~1 add per 2-4 bytes read,
// far below any GPU's FP64 add rate, and it keeps a 16M-element float32 sum as exact as the CPU's.
// Every merge happens in a fixed tree order, so results are bitwise the same run to run.
//
// Three kernels, chosen by shape (kBlock = 256 threads = 8 warps, full occupancy on sm_80/90):
//   segments  G lanes per output (G a power of two <= 32) stride its n values and merge by shuffles.
//             inner == 1 with short rows: G ~ n/4 (<= 32), a warp covers 32/G rows, reads coalesced.
//             inner > 1 with many outputs or short n: G = 1, a thread per (o, i) column, coalesced
//             along i. One launch, no shared memory.
//   tiles     a block owns W columns (W = 1 for rows, else the largest power of two <= min(inner, 32))
//             and R = 256 / W row lanes; a warp reads 32 consecutive elements per row step, lanes of a
//             column merge by shuffles, then the 8 warps through shared memory. When the tiles cannot
//             fill the GPU (one long row, a few columns), n is also cut into `splits` slices ...
//   finish    ... and a warp per output merges its slices' partials (pass 2). A 16M-element row thus
//             spreads over ~8 blocks per SM and merges ~1000 partials, not one block's worth.
#include <cmath>
#include "core/accumulators.h"
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarps = kBlock / dev::kWarp;

// Powers of two in [1, 32]: the largest <= v, and the smallest >= v.
int pow2_floor(int64_t v) {
  int p = 1;
  while (p < 32 && p * 2 <= v) p *= 2;
  return p;
}
int pow2_ceil(int64_t v) {
  int p = 1;
  while (p < 32 && p < v) p *= 2;
  return p;
}

template <typename Acc, typename A, typename T, typename Out, typename Finish>
__global__ void __launch_bounds__(kBlock) reduce_segments(const T* x, int64_t outputs, int64_t n, int64_t inner,
                                                          int G, Out* out, Finish finish) {
  const int lane = threadIdx.x % G;
  const int64_t per_block = kBlock / G;
  // `first` is the same for the whole block, so every lane reaches the shuffles together.
  for (int64_t first = blockIdx.x * per_block; first < outputs; first += int64_t(gridDim.x) * per_block) {
    const int64_t t = first + threadIdx.x / G;
    Acc acc;
    if (t < outputs) {
      const int64_t o = t / inner, i = t - o * inner;
      const T* col = x + o * n * inner + i;
      for (int64_t r = lane; r < n; r += G) acc.add(A(compute_t<T>(col[r * inner])), r);
    }
    acc = dev::segment_merge(acc, G);
    if (t < outputs && lane == 0) out[t] = finish(acc);
  }
}

// Tile = (o, column tile ct, slice s). Writes partial[(o * splits + s) * inner + i] when splitting,
// else the finished out[o * inner + i].
template <typename Acc, typename A, typename T, typename Out, typename Finish>
__global__ void __launch_bounds__(kBlock) reduce_tiles(const T* x, int64_t outer, int64_t n, int64_t inner, int W,
                                                       int64_t col_tiles, int64_t splits, int64_t range,
                                                       Acc* partial, Out* out, Finish finish) {
  __shared__ alignas(16) unsigned char raw[kBlock * sizeof(Acc)];
  Acc* per_warp = reinterpret_cast<Acc*>(raw);  // (kWarps, W): each warp's merged columns
  const int c = threadIdx.x % W, R = kBlock / W, lane = threadIdx.x % dev::kWarp, warp = threadIdx.x / dev::kWarp;
  const int64_t rl = threadIdx.x / W, tiles = outer * col_tiles * splits;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t s = tile % splits, ct = (tile / splits) % col_tiles, o = tile / (splits * col_tiles);
    const int64_t i = ct * W + c, r0 = s * range, r1 = min(n, r0 + range);
    Acc acc;
    if (i < inner)
      for (int64_t r = r0 + rl; r < r1; r += R) acc.add(A(compute_t<T>(x[(o * n + r) * inner + i])), r);
    acc = dev::strided_lane_merge(acc, W);  // lanes < W now hold this warp's columns
    if (lane < W) per_warp[warp * W + lane] = acc;
    __syncthreads();
    if (threadIdx.x < W && i < inner) {  // thread c merges column c over the warps, in warp order
      Acc total = per_warp[threadIdx.x];
      for (int w = 1; w < kWarps; ++w) total.merge(per_warp[w * W + threadIdx.x]);
      if (partial) partial[(o * splits + s) * inner + i] = total;
      else out[o * inner + i] = finish(total);
    }
    __syncthreads();  // per_warp is reused by the next tile
  }
}

template <typename Acc, typename Out, typename Finish>
__global__ void __launch_bounds__(kBlock) reduce_finish(const Acc* partial, int64_t outputs, int64_t inner,
                                                        int64_t splits, Out* out, Finish finish) {
  const int lane = threadIdx.x % dev::kWarp;
  for (int64_t first = int64_t(blockIdx.x) * kWarps; first < outputs; first += int64_t(gridDim.x) * kWarps) {
    const int64_t t = first + threadIdx.x / dev::kWarp;
    Acc acc;
    if (t < outputs) {
      const int64_t o = t / inner, i = t - o * inner;
      for (int64_t s = lane; s < splits; s += dev::kWarp) acc.merge(partial[(o * splits + s) * inner + i]);
    }
    acc = dev::segment_merge(acc, dev::kWarp);
    if (t < outputs && lane == 0) out[t] = finish(acc);
  }
}

// Picks the kernels for one reduction; see the header for the rules.
template <typename Acc, typename A, typename T, typename Out, typename Finish>
void fold(const char* op, const Array& x, Array& out, int64_t outer, int64_t n, int64_t inner, Finish finish) {
  const int device = out.device().index;
  DeviceGuard guard(device, op);
  cudaStream_t stream = stream_of(device);
  const T* xp = x.data<T>();
  Out* o = out.data<Out>();
  const int64_t outputs = outer * inner, sms = sm_count(device);
  const int64_t resident = sms * 2048;  // threads the GPU holds at once
  // Rows: a warp per row up to 1024 values, or up to 16384 when the rows alone fill the GPU (64
  // warps per SM); longer rows get a block each. Columns: a thread each when they fill the GPU.
  const bool segments = inner == 1 ? (n <= 1024 || (n <= 16384 && outer >= sms * 64))
                                   : (outputs >= resident || n <= 32);
  if (segments) {
    const int G = inner == 1 ? pow2_ceil((n + 3) / 4) : 1;  // ~4+ values per lane
    reduce_segments<Acc, A><<<grid_for(outputs * G, kBlock), kBlock, 0, stream>>>(xp, outputs, n, inner, G, o,
                                                                                  finish);
    CUDA_CHECK_LAUNCH(op);
    return;
  }
  const int W = inner == 1 ? 1 : pow2_floor(inner);
  const int64_t R = kBlock / W, col_tiles = (inner + W - 1) / W, tiles = outer * col_tiles;
  const int64_t target = 8 * sms;  // blocks for a full GPU
  int64_t splits = 1;
  if (tiles < target) splits = std::max<int64_t>(1, std::min((target + tiles - 1) / tiles, n / (R * 8)));
  const int64_t range = (n + splits - 1) / splits;
  splits = (n + range - 1) / range;  // no empty slices
  const unsigned grid = unsigned(std::min(tiles * splits, sms * 32));
  if (splits == 1) {
    reduce_tiles<Acc, A><<<grid, kBlock, 0, stream>>>(xp, outer, n, inner, W, col_tiles, 1, range,
                                                      static_cast<Acc*>(nullptr), o, finish);
    CUDA_CHECK_LAUNCH(op);
    return;
  }
  Scratch partial(sizeof(Acc) * size_t(outputs * splits), device);
  reduce_tiles<Acc, A><<<grid, kBlock, 0, stream>>>(xp, outer, n, inner, W, col_tiles, splits, range,
                                                    partial.as<Acc>(), o, finish);
  CUDA_CHECK_LAUNCH(op);
  reduce_finish<<<grid_for(outputs * dev::kWarp, kBlock), kBlock, 0, stream>>>(partial.as<Acc>(), outputs, inner,
                                                                              splits, o, finish);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace

namespace typed {  // nvcc allows no device lambdas inside dispatch's generic lambdas: named templates
template <typename T>
void reduce(ReduceOp op, const Array& x, Array& out, int64_t outer, int64_t n, int64_t inner, int64_t correction) {
  using C = compute_t<T>;
  using A = std::conditional_t<std::is_integral_v<C>, int64_t, double>;  // as csrc/cpu/reduce.cpp
  using Max = ExtAcc<C, true>;
  using Min = ExtAcc<C, false>;
  switch (op) {
    case ReduceOp::sum: case ReduceOp::mean: {
      const double scale = op == ReduceOp::mean ? 1.0 / double(n) : 1.0;  // n == 0: mean is 0 * inf = NaN
      const char* name = op == ReduceOp::mean ? "mean" : "sum";
      if constexpr (std::is_integral_v<C>)
        fold<SumAcc<A>, A, T, int64_t>(name, x, out, outer, n, inner,
                                       [] __device__(const SumAcc<A>& a) { return a.s; });
      else
        fold<SumAcc<A>, A, T, T>(name, x, out, outer, n, inner,
                                 [scale] __device__(const SumAcc<A>& a) { return T(C(a.s * scale)); });
      return;
    }
    case ReduceOp::prod:
      if constexpr (std::is_integral_v<C>)
        fold<ProdAcc<A>, A, T, int64_t>("prod", x, out, outer, n, inner,
                                        [] __device__(const ProdAcc<A>& a) { return a.p; });
      else
        fold<ProdAcc<A>, A, T, T>("prod", x, out, outer, n, inner,
                                  [] __device__(const ProdAcc<A>& a) { return T(C(a.p)); });
      return;
    case ReduceOp::max:
      fold<Max, C, T, T>("max", x, out, outer, n, inner, [] __device__(const Max& a) { return T(a.m); });
      return;
    case ReduceOp::min:
      fold<Min, C, T, T>("min", x, out, outer, n, inner, [] __device__(const Min& a) { return T(a.m); });
      return;
    case ReduceOp::argmax:
      fold<Max, C, T, int64_t>("argmax", x, out, outer, n, inner, [] __device__(const Max& a) { return a.at; });
      return;
    case ReduceOp::argmin:
      fold<Min, C, T, int64_t>("argmin", x, out, outer, n, inner, [] __device__(const Min& a) { return a.at; });
      return;
    case ReduceOp::var:
      if constexpr (!std::is_integral_v<C>) {  // core/reduce.cpp casts integer input to float first
        const double denom = double(n - correction), nan = std::nan("");  // n - correction <= 0: NaN
        fold<VarAcc, double, T, T>("var", x, out, outer, n, inner, [denom, nan] __device__(const VarAcc& a) {
          return T(C(denom > 0 ? a.m2 / denom : nan));
        });
      }
      return;
  }
}
}  // namespace typed

void reduce(ReduceOp op, const Array& x, Array& out, int64_t outer, int64_t n, int64_t inner, int64_t correction) {
  if (out.numel() == 0) return;
  dispatch_numeric(x.dtype(), "reduce", [&](auto tag) {
    typed::reduce<decltype(tag)>(op, x, out, outer, n, inner, correction);
  });
}

}  // namespace ember::cuda
