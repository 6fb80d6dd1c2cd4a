// GEMM on CUDA, the straightforward tiled version: C[b] = alpha A[b] B[b] + beta C[b] (+ bias, act),
// on the shared tile loop of cuda/device/tile_gemm.cuh (64 x 64 tiles, 4 x 4 outputs per thread).
// Loads honour arbitrary strides (transposes are strides), so no transposed copies are made.
// Accumulation in float (double for float64); 16-bit inputs are widened on load. Issue #5 replaces
// this with tensor-core kernels; this one is the correct, simple baseline they are checked against.
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/scalar_math.h"
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
    const StridedOps<T, Acc> ops{a.data<T>(), a.strides()[0], a.strides()[1], a.strides()[2],
                                 b.data<T>(), b.strides()[0], b.strides()[1], b.strides()[2],
                                 c.data<T>(), c.strides()[0], c.strides()[1], Acc(alpha), Acc(beta),
                                 bias ? bias->data<T>() : nullptr, act};
    gemm_tiled<T, Acc><<<grid, dev::kTileThreads, 0, stream_of(c.device().index)>>>(ops, batch, M, N, K);
  });
  CUDA_CHECK_LAUNCH("matmul");
}

}  // namespace ember::cuda
