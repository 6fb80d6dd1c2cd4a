// Device-only helpers shared by the CUDA kernels (MLX's cuda/device/ rule: includes nothing outside
// this folder but CUDA and standard headers):
//   - int64 grid-stride indexing (arrays may hold more than 2^31 elements);
//   - shuffle-based warp merges of any trivially copyable accumulator (sums, Welford, arg-extremes),
//     in a fixed tree order so that a result is bitwise the same run to run;
//   - a block merge built on them (warps first, then one warp over the per-warp results);
//   - Pack<T, K>: K elements moved with one aligned vector access (16 bytes for the fast paths).
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include <cstring>

namespace ember::cuda::dev {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

// A shared-memory pointer as the 32-bit shared-window address that PTX's shared-state operands
// (cp.async, ldmatrix, mbarrier, TMA, wgmma descriptors) take.
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// __shfl_down_sync of any trivially copyable type, one 32-bit word at a time. `width` (a power of two
// <= 32) splits the warp into independent segments, as in the CUDA intrinsic.
template <typename T>
__device__ __forceinline__ T shfl_down(const T& v, unsigned delta, int width = kWarp) {
  static_assert(sizeof(T) % 4 == 0, "shuffled types must be a whole number of 32-bit words");
  constexpr int kWords = sizeof(T) / 4;
  uint32_t w[kWords];
  memcpy(w, &v, sizeof(T));
#pragma unroll
  for (int k = 0; k < kWords; ++k) w[k] = __shfl_down_sync(kFullMask, w[k], delta, width);
  T out;
  memcpy(&out, w, sizeof(T));
  return out;
}

// Butterfly all-reduce of a float/double over the full warp: every lane gets the result, in the
// same order on every lane (so all lanes agree bitwise).
template <typename T>
__device__ __forceinline__ T warp_all_sum(T v) {
  for (int d = kWarp / 2; d > 0; d /= 2) v += __shfl_xor_sync(kFullMask, v, d);
  return v;
}
template <typename T>
__device__ __forceinline__ T warp_all_max(T v) {
  for (int d = kWarp / 2; d > 0; d /= 2) {
    T o = __shfl_xor_sync(kFullMask, v, d);
    v = o > v ? o : v;
  }
  return v;
}

// Merges the accumulators of each aligned segment of `width` lanes (power of two <= 32) into the
// segment's first lane. Every lane of the warp must call it. Only the first lane's result is meaningful.
template <typename Acc>
__device__ __forceinline__ Acc segment_merge(Acc acc, int width) {
  for (int d = width / 2; d > 0; d /= 2) acc.merge(shfl_down(acc, d, width));
  return acc;
}

// Merges the lanes that are congruent modulo `stride` (power of two <= 32): afterwards lane c < stride
// holds the merge of lanes c, c + stride, c + 2 stride, ... Every lane of the warp must call it.
template <typename Acc>
__device__ __forceinline__ Acc strided_lane_merge(Acc acc, int stride) {
  for (int d = kWarp / 2; d >= stride; d /= 2) acc.merge(shfl_down(acc, d));
  return acc;
}

// Merges one accumulator per thread of the block (blockDim.x a multiple of 32, <= 1024) and returns
// the total in thread 0. Accumulators without a trivial constructor cannot be __shared__ variables,
// so the staging area is raw storage. Every thread must call it; it ends with a barrier so it can be
// called again in a loop.
template <typename Acc>
__device__ Acc block_merge(Acc acc) {
  __shared__ alignas(16) unsigned char raw[kWarp * sizeof(Acc)];
  Acc* per_warp = reinterpret_cast<Acc*>(raw);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  acc = segment_merge(acc, kWarp);
  if (lane == 0) per_warp[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    acc = lane < warps ? per_warp[lane] : Acc{};
    acc = segment_merge(acc, kWarp);
  }
  __syncthreads();
  return acc;
}

// K elements of T in one aligned access: K * sizeof(T) must be a power of two <= 16 and the address
// a multiple of it (the host checks before choosing a packed kernel).
template <typename T, int K>
struct alignas(sizeof(T) * K) Pack {
  T v[K];
};

template <int K, typename T>
__device__ __forceinline__ Pack<T, K> load_pack(const T* p) { return *reinterpret_cast<const Pack<T, K>*>(p); }

template <int K, typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, K>& v) { *reinterpret_cast<Pack<T, K>*>(p) = v; }

template <int K, typename T>
__device__ __forceinline__ Pack<T, K> splat(T v) {
  Pack<T, K> p;
#pragma unroll
  for (int k = 0; k < K; ++k) p.v[k] = v;
  return p;
}

}  // namespace ember::cuda::dev
