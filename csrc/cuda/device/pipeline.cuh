// Asynchronous global -> shared copies (cp.async, sm_80+) and the tile loaders built on them.
// A cp.async names its source bytes (src-size) apart from the bytes it writes (cp-size): the rest
// is zero-filled, which is how every loader here pads tiles at the matrix edges: out-of-range
// elements are never read, and a partly valid 16-byte chunk copies only its valid bytes.
// Copies are grouped with commit_group and awaited with wait_group<N> ("all but the N most recent
// groups have landed"), which is what a multi-stage ring of shared tiles needs.
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include "cuda/device/common.cuh"

namespace ember::cuda::dev {

// 16 bytes, bypassing L1 (.cg: each tile is read once per block; L2 keeps it for the neighbours).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes)
               : "memory");
#else
  __trap();
#endif
}

// 4 bytes (.ca: the only form below 16 bytes), for operands that are not contiguous along the tile row.
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes)
               : "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// Stages a (ROWS, COLS) tile as dst[r * LD + c] from src[r * s_row + c] (unit stride along c), one
// 16-byte cp.async per chunk of 16 / sizeof(T) elements. Only r < rows and c < cols are read.
// Needs src and s_row * sizeof(T) to be multiples of 16 bytes (and LD * sizeof(T), dst: the caller's).
template <typename T, int ROWS, int COLS, int LD, int THREADS>
__device__ __forceinline__ void copy_tile_16B(T* dst, const T* src, int64_t s_row, int64_t rows, int64_t cols) {
  constexpr int kVec = 16 / sizeof(T), kRowChunks = COLS / kVec, kChunks = ROWS * kRowChunks;
  static_assert(COLS % kVec == 0 && kChunks % THREADS == 0, "whole chunks, the same count per thread");
#pragma unroll
  for (int i = threadIdx.x % THREADS; i < kChunks; i += THREADS) {
    const int r = i / kRowChunks, c = (i % kRowChunks) * kVec;
    const int64_t valid = r < rows ? cols - c : 0;  // may be <= 0 past the right edge
    const int bytes = valid <= 0 ? 0 : int((valid < kVec ? valid : kVec) * sizeof(T));
    cp_async_16(dst + r * LD + c, bytes ? src + r * s_row + c : src, bytes);
  }
}

// The same tile for any strides (src[r * s_row + c * s_col]), one 4-byte cp.async per element.
// Consecutive threads walk whichever of r, c has unit stride in global memory, so a warp's reads
// still share 32-byte sectors when the operand is contiguous along the other dimension.
template <typename T, int ROWS, int COLS, int LD, int THREADS>
__device__ __forceinline__ void copy_tile_4B(T* dst, const T* src, int64_t s_row, int64_t s_col, int64_t rows,
                                             int64_t cols) {
  static_assert(sizeof(T) == 4 && (ROWS * COLS) % THREADS == 0, "4-byte elements, the same count per thread");
  const bool rows_fast = s_row == 1 && s_col != 1;
#pragma unroll
  for (int i = threadIdx.x % THREADS; i < ROWS * COLS; i += THREADS) {
    const int r = rows_fast ? i % ROWS : i / COLS, c = rows_fast ? i / ROWS : i % COLS;
    const bool ok = r < rows && c < cols;
    cp_async_4(dst + r * LD + c, ok ? src + r * s_row + c * s_col : src, ok ? 4 : 0);
  }
}

// The multi-stage main loop over K (kStages shared buffers in a ring): load(stage, k0) issues the
// cp.async copies of the K-slice starting at k0 into a stage, math(stage) consumes one. While the
// tensor or CUDA cores work on slice kt, the copies of slices kt + 1 .. kt + kStages - 1 are in flight.
template <int kStages, int BK, typename Load, typename Math>
__device__ __forceinline__ void pipelined_k_loop(int64_t K, const Load& load, const Math& math) {
  const int64_t tiles = (K + BK - 1) / BK;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles) load(s, int64_t(s) * BK);
    cp_async_commit();
  }
  for (int64_t kt = 0; kt < tiles; ++kt) {
    cp_async_wait<kStages - 2>();  // this thread's copies of slice kt have landed ...
    __syncthreads();               // ... and everyone's; the stage of slice kt - 1 is now free
    const int64_t next = kt + kStages - 1;
    if (next < tiles) load(int(next % kStages), next * BK);
    cp_async_commit();  // possibly empty: keeps "one group per slice" for wait_group's count
    math(int(kt % kStages));
  }
  cp_async_wait<0>();
  __syncthreads();  // the caller's next problem refills every stage
}

}  // namespace ember::cuda::dev
