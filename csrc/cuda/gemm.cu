// GEMM on CUDA, the straightforward tiled version: C[b] = alpha A[b] B[b] + beta C[b] (+ bias, act).
// Each 256-thread block computes a 64 x 64 tile of C; per 16-wide K step it stages A (64 x 16) and
// B (16 x 64) in shared memory (padded by one column against bank conflicts) and every thread
// accumulates a 4 x 4 sub-tile in registers, rows ty + 16 i and columns tx + 16 j so a warp's
// stores to C are coalesced. Loads honour arbitrary strides (transposes are strides), so no
// transposed copies are made. Accumulation in float (double for float64); 16-bit inputs are
// widened on load. Issue #5 replaces this with tensor-core kernels; this one is the correct,
// simple baseline they are checked against.
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/scalar_math.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16;

template <typename T, typename Acc>
__global__ void __launch_bounds__(256) gemm_tiled(
    int64_t batch, int64_t M, int64_t N, int64_t K, const T* A, int64_t sa, int64_t rsa, int64_t csa,
    const T* B, int64_t sb, int64_t rsb, int64_t csb, T* C, int64_t sc, int64_t ldc, Acc alpha, Acc beta,
    const T* bias, Activation act) {
  __shared__ Acc As[BK][BM + 1];  // (BK, BM): A tile, transposed so a k-row is contiguous
  __shared__ Acc Bs[BK][BN + 1];  // (BK, BN)
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t row0 = int64_t(blockIdx.y) * BM, col0 = int64_t(blockIdx.x) * BN;
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z) {
    const T* Ab = A + b * sa;
    const T* Bb = B + b * sb;
    Acc acc[4][4] = {};
    for (int64_t k0 = 0; k0 < K; k0 += BK) {
      for (int e = threadIdx.x; e < BM * BK; e += 256) {
        const int r = e / BK, kk = e % BK;
        const int64_t gr = row0 + r, gk = k0 + kk;
        As[kk][r] = (gr < M && gk < K) ? Acc(compute_t<T>(Ab[gr * rsa + gk * csa])) : Acc(0);
      }
      for (int e = threadIdx.x; e < BK * BN; e += 256) {
        const int kk = e / BN, c = e % BN;
        const int64_t gk = k0 + kk, gc = col0 + c;
        Bs[kk][c] = (gk < K && gc < N) ? Acc(compute_t<T>(Bb[gk * rsb + gc * csb])) : Acc(0);
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        Acc a[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bv[j];
      }
      __syncthreads();
    }
    T* Cb = C + b * sc;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t r = row0 + ty + 16 * i;
      if (r >= M) continue;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t c = col0 + tx + 16 * j;
        if (c >= N) continue;
        T* dst = Cb + r * ldc + c;
        Acc v = alpha * acc[i][j];
        if (beta != Acc(0)) v += beta * Acc(compute_t<T>(*dst));
        if (bias) v += Acc(compute_t<T>(bias[c]));
        *dst = T(compute_t<T>(apply_activation(act, v)));
      }
    }
  }
}

}  // namespace

void gemm(const Array& a, const Array& b, Array& c, double alpha, double beta, const Array* bias, Activation act) {
  const int64_t batch = c.shape(0), M = c.shape(1), N = c.shape(2), K = a.shape(2);
  if (batch == 0 || M == 0 || N == 0) return;
  DeviceGuard guard(c.device().index);
  dim3 grid(unsigned((N + BN - 1) / BN), unsigned((M + BM - 1) / BM), unsigned(std::min<int64_t>(batch, 65535)));
  EMBER_CHECK(grid.y <= 65535, "matmul", "M = ", M, " is too large for the CUDA GEMM");
  dispatch_float(c.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    gemm_tiled<T, Acc><<<grid, 256, 0, stream_of(c.device().index)>>>(
        batch, M, N, K, a.data<T>(), a.strides()[0], a.strides()[1], a.strides()[2], b.data<T>(), b.strides()[0],
        b.strides()[1], b.strides()[2], c.data<T>(), c.strides()[0], c.strides()[1], Acc(alpha), Acc(beta),
        bias ? bias->data<T>() : nullptr, act);
  });
  CUDA_CHECK_LAUNCH("matmul");
}

}  // namespace ember::cuda
