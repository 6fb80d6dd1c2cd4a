// GEMM on CUDA, the straightforward tiled version: C[b] = alpha A[b] B[b] + beta C[b] (+ bias, act),
// on the shared tile loop of cuda/device/tile_gemm.cuh (64 x 64 tiles, 4 x 4 outputs per thread).
// Loads honour arbitrary strides (transposes are strides), so no transposed copies are made.
// Accumulation in float (double for float64); 16-bit inputs are widened on load.
//
// bfloat16/float16 on sm_80+ take the tensor cores instead (mma_gemm below): mma.sync m16n8k16 with
// float32 accumulation, the same 64 x 64 block tile with 4 warps of 32 x 32 (2 x 4 MMA tiles each),
// operands staged in shared memory in their 16-bit storage (A as [m][k], B transposed as [n][k], so
// every fragment register is one aligned 32-bit load). Not yet pipelined (no cp.async, no ldmatrix,
// no wgmma/TMA): the first tensor-core version, compiled for sm_90a and not yet run on a GPU.
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/scalar_math.h"
#include "cuda/device/mma.cuh"
#include "cuda/device/tile_gemm.cuh"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

// Strided matrices: problem p is batch entry p (batch strides may be 0: broadcast operands).
template <typename T, typename Acc>
struct StridedOps {
  const T* A;
  int64_t sa, rsa, csa;
  const T* B;
  int64_t sb, rsb, csb;
  T* C;
  int64_t sc, ldc;
  Acc alpha, beta;
  const T* bias;
  Activation act;
  __device__ Acc a(int64_t p, int64_t m, int64_t k) const { return Acc(compute_t<T>(A[p * sa + m * rsa + k * csa])); }
  __device__ Acc b(int64_t p, int64_t k, int64_t n) const { return Acc(compute_t<T>(B[p * sb + k * rsb + n * csb])); }
  __device__ void store(int64_t p, int64_t m, int64_t n, Acc acc) const {
    T* dst = C + p * sc + m * ldc + n;
    Acc v = alpha * acc;
    if (beta != Acc(0)) v += beta * Acc(compute_t<T>(*dst));
    if (bias) v += Acc(compute_t<T>(bias[n]));
    *dst = T(compute_t<T>(apply_activation(act, v)));
  }
};

template <typename T, typename Acc>
__global__ void __launch_bounds__(dev::kTileThreads) gemm_tiled(StridedOps<T, Acc> ops, int64_t batch, int64_t M,
                                                                int64_t N, int64_t K) {
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z)
    dev::gemm_tile<Acc>(ops, b, M, N, K, int64_t(blockIdx.y) * dev::kTileM, int64_t(blockIdx.x) * dev::kTileN);
}

// ---- tensor cores: bfloat16 / float16 ----------------------------------------------------------

constexpr int kMmaThreads = 128, kMmaTileM = 64, kMmaTileN = 64, kMmaK = 16, kPad = 8;

template <typename T>
constexpr bool is_bf16 = std::is_same_v<T, bfloat16>;

template <typename T>
__global__ void __launch_bounds__(kMmaThreads) mma_gemm(StridedOps<T, float> ops, int64_t batch, int64_t M, int64_t N,
                                                        int64_t K) {
  __shared__ alignas(16) T as[kMmaTileM][kMmaK + kPad];  // [m][k]
  __shared__ alignas(16) T bs[kMmaTileN][kMmaK + kPad];  // [n][k]: B transposed, as the .col operand wants
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  const int64_t m0 = int64_t(blockIdx.y) * kMmaTileM, n0 = int64_t(blockIdx.x) * kMmaTileN;
  for (int64_t p = blockIdx.z; p < batch; p += gridDim.z) {
    float acc[2][4][4] = {};
    for (int64_t k0 = 0; k0 < K; k0 += kMmaK) {
      for (int e = threadIdx.x; e < kMmaTileM * kMmaK; e += kMmaThreads) {
        const int r = e / kMmaK, k = e % kMmaK;
        as[r][k] = (m0 + r < M && k0 + k < K) ? ops.A[p * ops.sa + (m0 + r) * ops.rsa + (k0 + k) * ops.csa] : T(0.0f);
        bs[r][k] = (n0 + r < N && k0 + k < K) ? ops.B[p * ops.sb + (k0 + k) * ops.rsb + (n0 + r) * ops.csb] : T(0.0f);
      }
      __syncthreads();
      uint32_t af[2][4], bf[4][2];
      for (int i = 0; i < 2; ++i) {
        const T *r0 = as[wm + 16 * i + g], *r8 = as[wm + 16 * i + g + 8];
        af[i][0] = dev::pair(r0, 2 * t), af[i][1] = dev::pair(r8, 2 * t);
        af[i][2] = dev::pair(r0, 2 * t + 8), af[i][3] = dev::pair(r8, 2 * t + 8);
      }
      for (int j = 0; j < 4; ++j) {
        const T* col = bs[wn + 8 * j + g];
        bf[j][0] = dev::pair(col, 2 * t), bf[j][1] = dev::pair(col, 2 * t + 8);
      }
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 4; ++j) dev::mma_16x8x16<is_bf16<T>>(acc[i][j], af[i], bf[j]);
      __syncthreads();
    }
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 4; ++j)
        for (int c = 0; c < 4; ++c) {  // c0, c1: row g; c2, c3: row g + 8; columns 2t, 2t + 1
          const int64_t m = m0 + wm + 16 * i + g + (c >= 2 ? 8 : 0), n = n0 + wn + 8 * j + 2 * t + (c & 1);
          if (m < M && n < N) ops.store(p, m, n, acc[i][j][c]);
        }
  }
}

}  // namespace

void gemm(const Array& a, const Array& b, Array& c, double alpha, double beta, const Array* bias, Activation act) {
  const int64_t batch = c.shape(0), M = c.shape(1), N = c.shape(2), K = a.shape(2);
  if (batch == 0 || M == 0 || N == 0) return;
  DeviceGuard guard(c.device().index);
  dim3 grid(unsigned((N + dev::kTileN - 1) / dev::kTileN), unsigned((M + dev::kTileM - 1) / dev::kTileM),
            unsigned(std::min<int64_t>(batch, 65535)));
  EMBER_CHECK(grid.y <= 65535, "matmul", "M = ", M, " is too large for the CUDA GEMM");
  dispatch_float(c.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
      if (has_tensor_cores(c.device().index)) {
        const StridedOps<T, float> ops{a.data<T>(), a.strides()[0], a.strides()[1], a.strides()[2],
                                       b.data<T>(), b.strides()[0], b.strides()[1], b.strides()[2],
                                       c.data<T>(), c.strides()[0], c.strides()[1], float(alpha), float(beta),
                                       bias ? bias->data<T>() : nullptr, act};
        mma_gemm<T><<<grid, kMmaThreads, 0, stream_of(c.device().index)>>>(ops, batch, M, N, K);
        return;
      }
    }
    const StridedOps<T, Acc> ops{a.data<T>(), a.strides()[0], a.strides()[1], a.strides()[2],
                                 b.data<T>(), b.strides()[0], b.strides()[1], b.strides()[2],
                                 c.data<T>(), c.strides()[0], c.strides()[1], Acc(alpha), Acc(beta),
                                 bias ? bias->data<T>() : nullptr, act};
    gemm_tiled<T, Acc><<<grid, dev::kTileThreads, 0, stream_of(c.device().index)>>>(ops, batch, M, N, K);
  });
  CUDA_CHECK_LAUNCH("matmul");
}

}  // namespace ember::cuda
