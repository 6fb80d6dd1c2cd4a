// The one tiled GEMM main loop of the CUDA backend, with its operands behind an `Ops` object, so the
// same loop serves plain strided matrices (cuda/gemm.cu) and operands gathered on the fly from
// images (cuda/conv.cu's implicit GEMM: no column buffer):
//   ops.a(p, m, k) -> Acc    element (m, k) of A for problem p (a batch index or a group)
//   ops.b(p, k, n) -> Acc    element (k, n) of B
//   ops.store(p, m, n, acc)  writes C's element (the epilogue: scaling, bias, activation)
// A 256-thread block computes a 64 x 64 tile of C: per 16-wide K step it stages A (64 x 16) and
// B (16 x 64) in shared memory (padded by one column against bank conflicts) and every thread
// accumulates a 4 x 4 sub-tile in registers, rows ty + 16 i and columns tx + 16 j, so a warp's
// stores are coalesced. Out-of-range elements are never read (zeros are staged instead), so any
// M, N, K work. This is the CUDA-core path; the tensor-core kernels of issue #5 are checked against it.
#pragma once
#include <cstdint>

namespace ember::cuda::dev {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kTileThreads = 256;
static_assert(kTileM * kTileK == kTileK * kTileN, "one staging loop fills both tiles");

template <typename Acc, typename Ops>
__device__ void gemm_tile(const Ops& ops, int64_t p, int64_t M, int64_t N, int64_t K, int64_t m0, int64_t n0) {
  __shared__ Acc as[kTileK][kTileM + 1];  // A tile, transposed so a k-row is contiguous
  __shared__ Acc bs[kTileK][kTileN + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  Acc acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
    for (int e = threadIdx.x; e < kTileM * kTileK; e += kTileThreads) {
      const int m = e / kTileK, k = e % kTileK;  // A: consecutive threads walk k
      as[k][m] = (m0 + m < M && k0 + k < K) ? ops.a(p, m0 + m, k0 + k) : Acc(0);
      const int kb = e / kTileN, n = e % kTileN;  // B: consecutive threads walk n
      bs[kb][n] = (k0 + kb < K && n0 + n < N) ? ops.b(p, k0 + kb, n0 + n) : Acc(0);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTileK; ++k) {
      Acc av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = as[k][ty + 16 * i], bv[i] = bs[k][tx + 16 * i];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < M && n < N) ops.store(p, m, n, acc[i][j]);
    }
}

}  // namespace ember::cuda::dev
