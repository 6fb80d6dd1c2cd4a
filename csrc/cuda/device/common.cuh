// Device-only helpers: grid-stride index ranges and block reductions of any accumulator type.
// Includes nothing outside CUDA and this folder.
#pragma once
#include <cstdint>

namespace ember::cuda::dev {

__device__ __forceinline__ int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

// Merges one Acc per thread into thread 0's through shared memory (blockDim.x a power of two,
// <= 1024). Acc provides merge(); the tree order does not matter for ember's accumulators.
template <typename Acc>
__device__ Acc block_merge(Acc mine) {
  extern __shared__ unsigned char smem_raw[];
  Acc* sh = reinterpret_cast<Acc*>(smem_raw);
  sh[threadIdx.x] = mine;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) sh[threadIdx.x].merge(sh[threadIdx.x + stride]);
    __syncthreads();
  }
  return sh[0];
}

}  // namespace ember::cuda::dev
