// GEMM on CUDA: C[b] = alpha A[b] B[b] + beta C[b] (+ bias, activation), any strides (transposes
// are strides; batch strides may be 0), any M, N, K. The versions, fastest first per dtype:
//
//   float32, sm_80+   sgemm_pipelined<SimtTile8x8>  exact float32 on CUDA cores: 128 x 128 block tile,
//                     16-wide K slices in a 3-stage cp.async ring, 8 x 8 outputs per thread
//   float32, sm_80+,  sgemm_pipelined<Tf32Tile>     the same tiles on TF32 tensor cores (mma.sync
//     TF32 allowed                                  m16n8k8), 8 warps of 64 x 32
//   16-bit, sm_90a,   wgmma_gemm                    128 x 128 x 64 tiles, TMA (128-byte swizzle) into a
//     K-major A, B                                  4-stage mbarrier ring, wgmma m64n128k16, 3 warpgroups
//   16-bit, sm_80+    mma_gemm_pipelined<T, ...>    128 x 128 x 32 tiles, 3-stage cp.async ring,
//                                                   ldmatrix(.trans) fragments, mma.sync m16n8k16
//   16-bit, sm_80+    mma_gemm                      64 x 64 tiles, plain loads, any strides (fallback)
//   any dtype         gemm_tiled                    CUDA cores, 64 x 64 tiles, any strides (float64,
//                                                   pre-sm_80 GPUs)
//
// Each epilogue goes through StridedOps::store (alpha, beta, bias, ReLU/GELU), element by element.
// Operands are staged in shared memory in their storage dtype; 16-byte copies need the operand to be
// contiguous along the staged row and 16-byte aligned (base, row stride, batch stride); the float32
// kernels otherwise copy 4 bytes per element, the 16-bit ones fall back to mma_gemm (see gemm() for
// the exact rules). Accumulation is float32 (float64 for float64).
#include <cudaTypedefs.h>
#include <atomic>
#include <string_view>
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/scalar_math.h"
#include "core/runtime.h"
#include "cuda/device/mma.cuh"
#include "cuda/device/pipeline.cuh"
#include "cuda/device/tile_gemm.cuh"
#include "cuda/device/wgmma.cuh"
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

// Stores a warp's 64 x 32 block of C held as 4 x 4 MMA tiles of 16 x 8 (the C/D layout of mma.cuh).
template <typename T>
__device__ __forceinline__ void store_warp_64x32(const float (&acc)[4][4][4], const StridedOps<T, float>& ops,
                                                 int64_t p, int64_t M, int64_t N, int64_t m0, int64_t n0) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {  // c0, c1: row g; c2, c3: row g + 8; columns 2t, 2t + 1
        const int64_t m = m0 + 16 * i + g + (c >= 2 ? 8 : 0), n = n0 + 8 * j + 2 * t + (c & 1);
        if (m < M && n < N) ops.store(p, m, n, acc[i][j][c]);
      }
}

// Host side of the 16-byte loaders: can an operand be staged with 16-byte copies along its "inner"
// dimension? Yes when that dimension has unit stride (or extent 1) and the base, the stride of the
// other dimension and the batch stride are multiples of 16 bytes (strides of extent-1 dims don't count).
bool rows_16B(const void* base, size_t elem, int64_t inner_stride, int64_t inner_extent, int64_t outer_stride,
              int64_t outer_extent, int64_t batch_stride, int64_t batch) {
  auto ok = [&](int64_t stride, int64_t extent) { return extent <= 1 || (stride * int64_t(elem)) % 16 == 0; };
  return is_aligned(base, 16) && (inner_stride == 1 || inner_extent <= 1) && ok(outer_stride, outer_extent) &&
         ok(batch_stride, batch);
}

// A kernel's dynamic shared memory above the default 48 KiB, allowed once per device.
template <auto Kernel>
void allow_smem(int device, int bytes) {
  static std::atomic<uint64_t> done{0};
  if ((done.load() >> device) & 1) return;
  CUDA_CHECK("matmul", cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  done.fetch_or(uint64_t(1) << device);
}

// ---- float32: 128 x 128 tiles through a 3-stage cp.async ring -----------------------------------
// 128 x 128 is the largest tile whose 8 x 8-per-thread accumulators (64 registers) still leave room
// for 256 threads; a 16-wide K slice gives each thread 1024 FMAs per 10 copies, and 3 stages hide a
// global-memory latency of two slices. Both operands are staged k-major, A^T as (BK, BM) and B as
// (BK, BN), so a thread's 8 values of one k are two 16-byte shared loads. The row pad of 8 floats
// keeps rows 16-byte aligned and makes the TF32 fragment reads (lane g + 8t... of row t) hit 32
// distinct banks: row stride 136 = 8 (mod 32).

constexpr int kF32Threads = 256, kF32M = 128, kF32N = 128, kF32K = 16, kF32Stages = 3, kF32Pad = 8;

struct F32Stage {
  float a[kF32K][kF32M + kF32Pad];  // (BK, BM): A^T, m contiguous
  float b[kF32K][kF32N + kF32Pad];  // (BK, BN)
};
constexpr int kF32Smem = kF32Stages * sizeof(F32Stage);  // 52 KiB

// Exact float32 on CUDA cores: 16 x 16 threads, each owning an 8 x 8 block of C as four 4 x 4
// quadrants (rows 4 ty + {0..3} and 64 + 4 ty + {0..3}, columns likewise with tx), so its operands
// per k are four 16-byte shared loads and a warp (two values of ty) reads only two A addresses.
struct SimtTile8x8 {
  float acc[8][8] = {};

  __device__ __forceinline__ void mma(const F32Stage& s) {
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
    for (int k = 0; k < kF32K; ++k) {
      const float4 a0 = *reinterpret_cast<const float4*>(&s.a[k][4 * ty]);
      const float4 a1 = *reinterpret_cast<const float4*>(&s.a[k][64 + 4 * ty]);
      const float4 b0 = *reinterpret_cast<const float4*>(&s.b[k][4 * tx]);
      const float4 b1 = *reinterpret_cast<const float4*>(&s.b[k][64 + 4 * tx]);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  }

  __device__ __forceinline__ void store(const StridedOps<float, float>& ops, int64_t p, int64_t M, int64_t N,
                                        int64_t m0, int64_t n0) const {
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int64_t m = m0 + (i / 4) * 64 + 4 * ty + i % 4, n = n0 + (j / 4) * 64 + 4 * tx + j % 4;
        if (m < M && n < N) ops.store(p, m, n, acc[i][j]);
      }
  }
};

// TF32 tensor cores: 8 warps as 2 (m) x 4 (n), each a 64 x 32 block of C = 4 x 4 m16n8k8 tiles.
// Fragments are read from the k-major stages one element per register (a TF32 fragment register is
// one float) and rounded with cvt.rna.
struct Tf32Tile {
  float acc[4][4][4] = {};

  __device__ __forceinline__ void mma(const F32Stage& s) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
    const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
#pragma unroll
    for (int kk = 0; kk < kF32K; kk += 8) {
      uint32_t af[4][4], bf[4][2];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int m = wm + 16 * i + g;
        af[i][0] = dev::to_tf32(s.a[kk + t][m]), af[i][1] = dev::to_tf32(s.a[kk + t][m + 8]);
        af[i][2] = dev::to_tf32(s.a[kk + t + 4][m]), af[i][3] = dev::to_tf32(s.a[kk + t + 4][m + 8]);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int n = wn + 8 * j + g;
        bf[j][0] = dev::to_tf32(s.b[kk + t][n]), bf[j][1] = dev::to_tf32(s.b[kk + t + 4][n]);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) dev::mma_16x8x8_tf32(acc[i][j], af[i], bf[j]);
    }
  }

  __device__ __forceinline__ void store(const StridedOps<float, float>& ops, int64_t p, int64_t M, int64_t N,
                                        int64_t m0, int64_t n0) const {
    const int warp = threadIdx.x / 32;
    store_warp_64x32(acc, ops, p, M, N, m0 + (warp / 4) * 64, n0 + (warp % 4) * 32);
  }
};

// a_vec / b_vec: the operand is contiguous along m (A) / n (B) and 16-byte aligned (rows_16B), so
// its stages are filled with 16-byte copies; otherwise with one 4-byte copy per element.
template <typename Tile>
__global__ void __launch_bounds__(kF32Threads) sgemm_pipelined(StridedOps<float, float> ops, int64_t batch, int64_t M,
                                                               int64_t N, int64_t K, bool a_vec, bool b_vec) {
  extern __shared__ float4 smem_f32[];
  F32Stage* st = reinterpret_cast<F32Stage*>(smem_f32);
  constexpr int kLdA = kF32M + kF32Pad, kLdB = kF32N + kF32Pad;
  const int64_t m0 = int64_t(blockIdx.y) * kF32M, n0 = int64_t(blockIdx.x) * kF32N;
  for (int64_t p = blockIdx.z; p < batch; p += gridDim.z) {
    const float* A = ops.A + p * ops.sa + m0 * ops.rsa;  // element (k, m) of the tile: A[k csa + m rsa]
    const float* B = ops.B + p * ops.sb + n0 * ops.csb;  // element (k, n): B[k rsb + n csb]
    auto load = [&](int s, int64_t k0) {
      float *a = &st[s].a[0][0], *b = &st[s].b[0][0];
      if (a_vec) dev::copy_tile_16B<float, kF32K, kF32M, kLdA, kF32Threads>(a, A + k0 * ops.csa, ops.csa, K - k0, M - m0);
      else dev::copy_tile_4B<float, kF32K, kF32M, kLdA, kF32Threads>(a, A + k0 * ops.csa, ops.csa, ops.rsa, K - k0, M - m0);
      if (b_vec) dev::copy_tile_16B<float, kF32K, kF32N, kLdB, kF32Threads>(b, B + k0 * ops.rsb, ops.rsb, K - k0, N - n0);
      else dev::copy_tile_4B<float, kF32K, kF32N, kLdB, kF32Threads>(b, B + k0 * ops.rsb, ops.rsb, ops.csb, K - k0, N - n0);
    };
    Tile tile;
    dev::pipelined_k_loop<kF32Stages, kF32K>(K, load, [&](int s) { tile.mma(st[s]); });
    tile.store(ops, p, M, N, m0, n0);
  }
}

// ---- bfloat16 / float16 on sm_80+: 128 x 128 x 32 tiles, 3-stage cp.async ring, ldmatrix --------
// 8 warps as 2 x 4, each a 64 x 32 block of C (4 x 4 m16n8k16 tiles: 16 MMAs per 6 ldmatrix.x4 per
// 16-wide k step). Each operand is staged in the orientation it has in memory so that every copy is
// 16 bytes: k-major ([x][k], rows of BK + 8) when contiguous along k, else x-major ([k][x], rows of
// 128 + 8). ldmatrix reads the first as is and the second with .trans, giving the same fragments.
// The 16-byte row pads make the row strides 80 and 272 bytes: 8 consecutive rows then start in 8
// different 16-byte bank groups, so neither ldmatrix nor the cp.async writes conflict. 3 stages of
// 20 KiB fit two blocks per SM on sm_80 (164 KiB).

constexpr int kHThreads = 256, kHM = 128, kHN = 128, kHK = 32, kHStages = 3, kHPad = 8;

// One operand's stage: (BX, BK) as [x][k] when kKMajor, else (BK, BX) as [k][x].
template <typename T, bool kKMajor, int BX>
struct HalfOperand {
  static constexpr int ld = kKMajor ? kHK + kHPad : BX + kHPad;
  static constexpr int size = kKMajor ? BX * ld : kHK * ld;

  // Stage the slice k0.. of an operand whose element (x, k) is at src[x s_x + k s_k].
  __device__ __forceinline__ static void load(T* dst, const T* src, int64_t s_x, int64_t s_k, int64_t x_left,
                                              int64_t k_left) {
    if constexpr (kKMajor) dev::copy_tile_16B<T, BX, kHK, ld, kHThreads>(dst, src, s_x, x_left, k_left);
    else dev::copy_tile_16B<T, kHK, BX, ld, kHThreads>(dst, src, s_k, k_left, x_left);
  }

  // The 4 fragment registers of an ldmatrix.x4 whose matrix i covers x0 + 8 (i & xbit ? 1 : 0) and
  // k0 + 8 (i & kbit ? 1 : 0): this lane gives row lane % 8 of matrix lane / 8.
  __device__ __forceinline__ static void frag(uint32_t (&r)[4], const T* s, int x0, int k0, int xbit, int kbit) {
    const int lane = threadIdx.x % 32, i = lane / 8, row = lane % 8;
    const int x = x0 + ((i & xbit) ? 8 : 0), k = k0 + ((i & kbit) ? 8 : 0);
    dev::ldmatrix_x4<!kKMajor>(r, kKMajor ? s + (x + row) * ld + k : s + (k + row) * ld + x);
  }
};

template <typename T, bool kAK, bool kBK>
struct HalfStage {
  using OpA = HalfOperand<T, kAK, kHM>;
  using OpB = HalfOperand<T, kBK, kHN>;
  T a[OpA::size];
  T b[OpB::size];
};

template <typename T, bool kAK, bool kBK>
constexpr int half_smem() { return kHStages * int(sizeof(HalfStage<T, kAK, kBK>)); }

// kAK: A contiguous along k (else along m); kBK: B contiguous along k (else along n); see rows_16B.
template <typename T, bool kAK, bool kBK>
__global__ void __launch_bounds__(kHThreads) mma_gemm_pipelined(StridedOps<T, float> ops, int64_t batch, int64_t M,
                                                                int64_t N, int64_t K) {
  using Stage = HalfStage<T, kAK, kBK>;
  using OpA = typename Stage::OpA;
  using OpB = typename Stage::OpB;
  extern __shared__ float4 smem_h[];
  Stage* st = reinterpret_cast<Stage*>(smem_h);
  const int warp = threadIdx.x / 32, wm = (warp / 4) * 64, wn = (warp % 4) * 32;
  const int64_t m0 = int64_t(blockIdx.y) * kHM, n0 = int64_t(blockIdx.x) * kHN;
  for (int64_t p = blockIdx.z; p < batch; p += gridDim.z) {
    const T* A = ops.A + p * ops.sa + m0 * ops.rsa;
    const T* B = ops.B + p * ops.sb + n0 * ops.csb;
    auto load = [&](int s, int64_t k0) {
      OpA::load(st[s].a, A + k0 * ops.csa, ops.rsa, ops.csa, M - m0, K - k0);
      OpB::load(st[s].b, B + k0 * ops.rsb, ops.csb, ops.rsb, N - n0, K - k0);
    };
    float acc[4][4][4] = {};
    auto math = [&](int s) {
#pragma unroll
      for (int kk = 0; kk < kHK; kk += 16) {
        uint32_t af[4][4], bf[4][2];
        // A fragment (16 x 16): matrices 0..3 = (m, k), (m + 8, k), (m, k + 8), (m + 8, k + 8)
#pragma unroll
        for (int i = 0; i < 4; ++i) OpA::frag(af[i], st[s].a, wm + 16 * i, kk, 1, 2);
        // B fragments of two 8-column tiles: matrices (n, k), (n, k + 8), (n + 8, k), (n + 8, k + 8)
#pragma unroll
        for (int j = 0; j < 4; j += 2) {
          uint32_t r[4];
          OpB::frag(r, st[s].b, wn + 8 * j, kk, 2, 1);
          bf[j][0] = r[0], bf[j][1] = r[1], bf[j + 1][0] = r[2], bf[j + 1][1] = r[3];
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) dev::mma_16x8x16<is_bf16<T>>(acc[i][j], af[i], bf[j]);
      }
    };
    dev::pipelined_k_loop<kHStages, kHK>(K, load, math);
    store_warp_64x32(acc, ops, p, M, N, m0 + wm, n0 + wn);
  }
}

// ---- bfloat16 / float16 on sm_90a: TMA + 4-stage mbarrier ring + wgmma --------------------------
// Three warpgroups: warpgroup 0 is the producer (one thread issues the TMA copies), warpgroups 1
// and 2 each own 64 rows of the 128 x 128 block tile and issue wgmma m64n128k16 (64 float32
// accumulators per thread). BK = 64 is one 128-byte swizzle row of 16-bit elements, so a stage is
// one TMA box per operand (128 rows x 64: 16 KiB) and four wgmma K steps. full[s] completes when a
// stage's bytes have landed (one arrival + the transaction count), empty[s] when all 256 consumer
// threads are done reading it. 4 stages (128 KiB) keep three slices in flight behind the one being
// multiplied. Both operands must be K-major (see tma_operand); edges are TMA's zero fill and the
// epilogue's bounds check.

constexpr int kWgM = 128, kWgN = 128, kWgK = 64, kWgStages = 4, kWgThreads = 384;
constexpr int kWgTileBytes = kWgM * kWgK * 2;  // one operand's stage: (128, 64) 16-bit
constexpr int kWgSmem = 1024 + kWgStages * 2 * kWgTileBytes + 2 * kWgStages * 8;  // + alignment slack, barriers

template <typename T>
__global__ void __launch_bounds__(kWgThreads) wgmma_gemm(const __grid_constant__ CUtensorMap map_a,
                                                         const __grid_constant__ CUtensorMap map_b,
                                                         StridedOps<T, float> ops, int64_t batch, int64_t M,
                                                         int64_t N, int64_t K) {
#if EMBER_SM90A
  extern __shared__ uint8_t smem_wg[];
  uint8_t* base = smem_wg + (1024 - dev::smem_u32(smem_wg) % 1024) % 1024;  // the swizzle's 1024-byte period
  T* sa = reinterpret_cast<T*>(base);                             // [stage] (128 m, 64 k), swizzled
  T* sb = reinterpret_cast<T*>(base + kWgStages * kWgTileBytes);  // [stage] (128 n, 64 k), swizzled
  uint64_t* full = reinterpret_cast<uint64_t*>(base + 2 * kWgStages * kWgTileBytes);
  uint64_t* empty = full + kWgStages;
  constexpr int kStageElems = kWgTileBytes / 2;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kWgStages; ++s) dev::mbar_init(&full[s], 1), dev::mbar_init(&empty[s], 2 * 128);
    dev::mbar_fence_init();
  }
  __syncthreads();
  const int wg = threadIdx.x / 128;
  const int m0 = int(blockIdx.y) * kWgM, n0 = int(blockIdx.x) * kWgN;
  const int64_t tiles = (K + kWgK - 1) / kWgK;
  if (wg == 0) {  // producer: slice `it` (counted across batch entries) goes to stage it % kWgStages
    if (threadIdx.x == 0) {
      int64_t it = 0;
      for (int64_t p = blockIdx.z; p < batch; p += gridDim.z)
        for (int64_t kt = 0; kt < tiles; ++kt, ++it) {
          const int s = int(it % kWgStages);
          dev::mbar_wait(&empty[s], uint32_t((it / kWgStages) & 1) ^ 1);  // round 0: free at once
          dev::mbar_arrive_expect_tx(&full[s], 2 * kWgTileBytes);
          dev::tma_load_3d(sa + s * kStageElems, &map_a, &full[s], int(kt * kWgK), m0, int(p));
          dev::tma_load_3d(sb + s * kStageElems, &map_b, &full[s], int(kt * kWgK), n0, int(p));
        }
    }
    return;
  }
  const int rows = (wg - 1) * 64;  // this warpgroup's rows of the block tile
  int64_t it = 0;
  for (int64_t p = blockIdx.z; p < batch; p += gridDim.z) {
    float d[64] = {};
    for (int64_t kt = 0; kt < tiles; ++kt, ++it) {
      const int s = int(it % kWgStages);
      dev::mbar_wait(&full[s], uint32_t((it / kWgStages) & 1));
      const T* a = sa + s * kStageElems + rows * kWgK;  // 64 rows of 128 bytes: 1024-byte aligned
      const T* b = sb + s * kStageElems;
      dev::wgmma_fence();  // orders the accumulator's register writes before the async MMAs
#pragma unroll
      for (int kk = 0; kk < kWgK; kk += 16)
        dev::wgmma_m64n128k16<is_bf16<T>>(d, dev::wgmma_desc_k128(a + kk), dev::wgmma_desc_k128(b + kk), true);
      dev::wgmma_commit();
      dev::wgmma_wait<0>();  // the stage may be refilled only after the MMAs have read it
      dev::mbar_arrive(&empty[s]);
    }
    // Epilogue in the accumulator layout of wgmma_m64n128k16 (device/wgmma.cuh).
    const int lane = threadIdx.x % 32, w = (threadIdx.x % 128) / 32, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int j = 0; j < 16; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t m = m0 + rows + 16 * w + g + (i >= 2 ? 8 : 0), n = n0 + 8 * j + 2 * t + (i & 1);
        if (m < M && n < N) ops.store(p, m, n, d[4 * j + i]);
      }
  }
#else
  __trap();  // launched only on sm_90 devices from a build with sm_90a code (sm90_ready)
#endif
}

}  // namespace

namespace {

template <typename T, typename Acc>
StridedOps<T, Acc> strided_ops(const Array& a, const Array& b, Array& c, double alpha, double beta, const Array* bias,
                               Activation act) {
  return {a.data<T>(), a.strides()[0], a.strides()[1], a.strides()[2],
          b.data<T>(), b.strides()[0], b.strides()[1], b.strides()[2],
          c.data<T>(), c.strides()[0], c.strides()[1], Acc(alpha), Acc(beta),
          bias ? bias->data<T>() : nullptr, act};
}

// Blocks for tiles of tm x tn over (M, N) and the batch (a block loops over batch entries past 65535).
dim3 tile_grid(int64_t batch, int64_t M, int64_t N, int tm, int tn) {
  const int64_t gy = (M + tm - 1) / tm;
  EMBER_CHECK(gy <= 65535, "matmul", "M = ", M, " is too large for the CUDA GEMM");
  return dim3(unsigned((N + tn - 1) / tn), unsigned(gy), unsigned(std::min<int64_t>(batch, 65535)));
}

// float32 on sm_80+: any strides (the 4-byte copies take what the 16-byte ones cannot).
void sgemm(const StridedOps<float, float>& ops, int64_t batch, int64_t M, int64_t N, int64_t K, int device,
           bool tf32) {
  const bool a_vec = rows_16B(ops.A, 4, ops.rsa, M, ops.csa, K, ops.sa, batch);
  const bool b_vec = rows_16B(ops.B, 4, ops.csb, N, ops.rsb, K, ops.sb, batch);
  const dim3 grid = tile_grid(batch, M, N, kF32M, kF32N);
  cudaStream_t stream = stream_of(device);
  if (tf32) {
    allow_smem<sgemm_pipelined<Tf32Tile>>(device, kF32Smem);
    sgemm_pipelined<Tf32Tile><<<grid, kF32Threads, kF32Smem, stream>>>(ops, batch, M, N, K, a_vec, b_vec);
  } else {
    allow_smem<sgemm_pipelined<SimtTile8x8>>(device, kF32Smem);
    sgemm_pipelined<SimtTile8x8><<<grid, kF32Threads, kF32Smem, stream>>>(ops, batch, M, N, K, a_vec, b_vec);
  }
}

// ---- sm_90a host side: tensor maps ------------------------------------------------------------

// cuTensorMapEncodeTiled from the driver through the runtime, so the build needs no -lcuda.
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static const auto fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found{};
    CUDA_CHECK("matmul", cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                                          &found));
    EMBER_CHECK_T(std::runtime_error, found == cudaDriverEntryPointSuccess && p, "matmul",
                  "the CUDA driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// A K-major operand (element (r, k) of batch entry p at base[p bstride + r rstride + k]) as TMA sees
// it: the strides TMA needs, or nothing when it cannot be described. TMA's rules: 16-byte aligned
// base, strides multiples of 16 bytes, unit stride along K; ours: rows and batch entries that don't
// overlap, coordinates within int32. Strides of extent-1 dims are replaced by harmless ones.
struct TmaOperand {
  bool ok = false;
  int64_t rstride = 0, bstride = 0;
};
TmaOperand tma_operand(const void* base, int64_t kstride, int64_t rstride, int64_t bstride, int64_t K, int64_t rows,
                       int64_t batch) {
  TmaOperand t;
  const int64_t big = int64_t(1) << 31;
  if (!is_aligned(base, 16) || (kstride != 1 && K > 1) || K >= big || rows >= big || batch >= big) return t;
  t.rstride = rows > 1 ? rstride : (K + 7) / 8 * 8;
  t.bstride = batch > 1 ? bstride : rows * t.rstride;
  t.ok = t.rstride % 8 == 0 && t.rstride >= K && t.bstride % 8 == 0 && t.bstride >= rows * t.rstride;
  return t;
}

// The (K, rows, batch) tensor map of an operand, read in (64, 128, 1) boxes with the 128-byte swizzle.
template <typename T>
CUtensorMap tensor_map(const T* base, const TmaOperand& op, int64_t K, int64_t rows, int64_t batch) {
  CUtensorMap map;
  const cuuint64_t dims[3] = {cuuint64_t(K), cuuint64_t(rows), cuuint64_t(batch)};
  const cuuint64_t strides[2] = {cuuint64_t(op.rstride) * sizeof(T), cuuint64_t(op.bstride) * sizeof(T)};
  const cuuint32_t box[3] = {kWgK, kWgM, 1}, unit[3] = {1, 1, 1};
  const auto dtype = is_bf16<T> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const CUresult r = encode_tiled()(&map, dtype, 3, const_cast<T*>(base), dims, strides, box, unit,
                                    CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  EMBER_CHECK_T(std::runtime_error, r == CUDA_SUCCESS, "matmul", "cuTensorMapEncodeTiled failed (error ", int(r), ")");
  return map;
}

// The sm_90a kernel runs on a compute-capability-9.0 device when this build holds sm_90a code.
bool sm90_ready(int device) {
  static const bool built = std::string_view(EMBER_CUDA_ARCHS).find("90a") != std::string_view::npos;
  return built && compute_major(device) == 9;
}

// Launches wgmma_gemm when both operands are K-major and TMA can describe them; false otherwise.
template <typename T>
bool wgmma_gemm_if_possible(const StridedOps<T, float>& ops, int64_t batch, int64_t M, int64_t N, int64_t K,
                            int device) {
  const TmaOperand ta = tma_operand(ops.A, ops.csa, ops.rsa, ops.sa, K, M, batch);  // A (m, k): rows m
  const TmaOperand tb = tma_operand(ops.B, ops.rsb, ops.csb, ops.sb, K, N, batch);  // B (k, n): rows n
  if (!ta.ok || !tb.ok) return false;
  const CUtensorMap map_a = tensor_map(ops.A, ta, K, M, batch), map_b = tensor_map(ops.B, tb, K, N, batch);
  allow_smem<wgmma_gemm<T>>(device, kWgSmem);
  wgmma_gemm<T><<<tile_grid(batch, M, N, kWgM, kWgN), kWgThreads, kWgSmem, stream_of(device)>>>(map_a, map_b, ops,
                                                                                                 batch, M, N, K);
  return true;
}

template <typename T, bool kAK, bool kBK>
void launch_mma_pipelined(const StridedOps<T, float>& ops, int64_t batch, int64_t M, int64_t N, int64_t K,
                          int device) {
  constexpr int smem = half_smem<T, kAK, kBK>();
  allow_smem<mma_gemm_pipelined<T, kAK, kBK>>(device, smem);
  mma_gemm_pipelined<T, kAK, kBK><<<tile_grid(batch, M, N, kHM, kHN), kHThreads, smem, stream_of(device)>>>(
      ops, batch, M, N, K);
}

// 16-bit on sm_80+: wgmma_gemm on sm_90 when both operands are K-major and TMA-describable, else
// the pipelined kernel when each operand is contiguous along one of its dims with
// 16-byte aligned rows (rows_16B; A along k or m, B along k or n), else mma_gemm (any strides).
template <typename T>
void hgemm(const StridedOps<T, float>& ops, int64_t batch, int64_t M, int64_t N, int64_t K, int device) {
  if (sm90_ready(device) && wgmma_gemm_if_possible(ops, batch, M, N, K, device)) return;
  const bool a_k = rows_16B(ops.A, 2, ops.csa, K, ops.rsa, M, ops.sa, batch);
  const bool a_m = rows_16B(ops.A, 2, ops.rsa, M, ops.csa, K, ops.sa, batch);
  const bool b_k = rows_16B(ops.B, 2, ops.rsb, K, ops.csb, N, ops.sb, batch);
  const bool b_n = rows_16B(ops.B, 2, ops.csb, N, ops.rsb, K, ops.sb, batch);
  if (a_k && b_k) return launch_mma_pipelined<T, true, true>(ops, batch, M, N, K, device);
  if (a_k && b_n) return launch_mma_pipelined<T, true, false>(ops, batch, M, N, K, device);
  if (a_m && b_k) return launch_mma_pipelined<T, false, true>(ops, batch, M, N, K, device);
  if (a_m && b_n) return launch_mma_pipelined<T, false, false>(ops, batch, M, N, K, device);
  mma_gemm<T><<<tile_grid(batch, M, N, kMmaTileM, kMmaTileN), kMmaThreads, 0, stream_of(device)>>>(ops, batch, M,
                                                                                                  N, K);
}

}  // namespace

void gemm(const Array& a, const Array& b, Array& c, double alpha, double beta, const Array* bias, Activation act) {
  const int64_t batch = c.shape(0), M = c.shape(1), N = c.shape(2), K = a.shape(2);
  if (batch == 0 || M == 0 || N == 0) return;
  const int device = c.device().index;
  DeviceGuard guard(device);
  const bool sm80 = has_tensor_cores(device);  // cp.async, ldmatrix, mma.sync: sm_80+
  dispatch_float(c.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const auto ops = strided_ops<T, Acc>(a, b, c, alpha, beta, bias, act);
    if constexpr (std::is_same_v<T, float>) {
      if (sm80) return sgemm(ops, batch, M, N, K, device, float32_matmul_allows_tf32());
    }
    if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
      if (sm80) return hgemm<T>(ops, batch, M, N, K, device);
    }
    gemm_tiled<T, Acc><<<tile_grid(batch, M, N, dev::kTileM, dev::kTileN), dev::kTileThreads, 0,
                         stream_of(device)>>>(ops, batch, M, N, K);
  });
  CUDA_CHECK_LAUNCH("matmul");
}

}  // namespace ember::cuda
