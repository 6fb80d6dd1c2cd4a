// Scaled dot-product attention on CUDA, flash-style: the same algorithm as cpu/attention.cpp (online
// softmax over key tiles, only the per-row log-sum-exp saved, the backward recomputing each
// probability from it), with no Tq x Tk buffer anywhere.
//
// Work split: one block per (batch * head, tile of 16 query rows); 4 warps, each owning 4 query
// rows. Keys come in tiles of 32, staged in shared memory as float32 (K padded to D + 1 floats per
// row, so lane j reading row j hits 32 different banks). Lane j scores key j against each of the
// warp's rows (a full D-long dot product, no reductions), the warp agrees on the running max and
// sum with two butterflies, and every lane then accumulates its D/32 output columns over the 32
// keys, the probabilities broadcast by shuffles. Storage may be float32, float16 or bfloat16; all
// arithmetic is float32. Head dims up to 128 (the per-lane accumulators are 4 x 4 registers).
//
// The backward runs three kernels: Delta_i = dO_i . O_i; dQ by query rows (the forward's layout);
// dK and dV by key rows (the transposed layout: lanes are queries). Each gradient is owned by one
// warp, so nothing is accumulated atomically and results are reproducible.
//
// float16/bfloat16 forwards with D = Dv in {32, 64, 128} run on the tensor cores instead
// (forward_mma_kernel, sm_80+, mma.sync); wgmma/TMA tiles for sm_90a are not written yet.
#include <cmath>
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/philox.h"
#include "cuda/device/common.cuh"
#include "cuda/device/mma.cuh"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

constexpr int kWarps = 4, kRows = 4, kTile = dev::kWarp, kMaxD = 128, kSlots = kMaxD / dev::kWarp;
constexpr int kBlockRows = kWarps * kRows;  // query (or key) rows per block

// A (B, H, T, D) operand: any strides, unit stride along D.
template <typename P>
struct HeadsDev {
  P* p;
  int64_t sb, sh, st, H;
  __device__ P* row(int64_t bh, int64_t i) const { return p + (bh / H) * sb + (bh % H) * sh + i * st; }
};
template <typename P>
HeadsDev<P> heads_dev(const Array& a) {
  return {a.data<std::remove_const_t<P>>(), a.strides()[0], a.strides()[1], a.strides()[2], a.shape(1)};
}

// Masks and dropout, as on the CPU: bool false or additive -inf masks out; causal is top-left
// aligned; dropout draw number (bh * Tq + i) * Tk + j of the Philox stream decides element (i, j).
template <typename T>
struct Rules {
  const void* mask;
  bool mask_bool, causal;
  int64_t sb, sh, si, sj, H, Tq, Tk;
  float scale, drop_p, kept_scale;
  uint64_t seed, offset;

  __device__ float score(float dot, int64_t bh, int64_t i, int64_t j) const {
    if (causal && j > i) return -INFINITY;
    float s = dot * scale;
    if (mask) {
      const int64_t at = (bh / H) * sb + (bh % H) * sh + i * si + j * sj;
      if (mask_bool) s = static_cast<const bool*>(mask)[at] ? s : -INFINITY;
      else s += float(compute_t<T>(static_cast<const T*>(mask)[at]));
    }
    return s;
  }
  __device__ float dropped(float p, int64_t bh, int64_t i, int64_t j) const {
    if (drop_p <= 0.0f) return p;
    const uint64_t idx = uint64_t((bh * Tq + i) * Tk + j);
    const Philox4 r = philox4x32_10(offset + idx / 4, seed);
    return uniform01(r.v[idx % 4]) >= drop_p ? p * kept_scale : 0.0f;
  }
};

template <typename T>
Rules<T> rules_of(const Array& q, const Array& k, const Array& mask, const AttentionArgs& a) {
  Rules<T> r{};
  r.mask = mask.defined() ? mask.raw() : nullptr;
  r.mask_bool = mask.defined() && mask.dtype() == DType::bool_;
  r.causal = a.causal;
  if (mask.defined()) r.sb = mask.strides()[0], r.sh = mask.strides()[1], r.si = mask.strides()[2], r.sj = mask.strides()[3];
  r.H = q.shape(1), r.Tq = q.shape(2), r.Tk = k.shape(2);
  r.scale = float(a.scale), r.drop_p = float(a.dropout_p), r.kept_scale = float(1.0 / (1.0 - a.dropout_p));
  r.seed = a.seed, r.offset = a.offset;
  return r;
}

// Rows [r0, r0 + n) of one head into shared memory as float32, `ld` floats apart; rows past the end
// are zero.
template <typename T>
__device__ void stage_rows(const HeadsDev<const T>& src, int64_t bh, int64_t r0, int64_t rows_total, int n, int d,
                           float* dst, int ld) {
  for (int e = threadIdx.x; e < n * d; e += blockDim.x) {
    const int r = e / d, c = e % d;
    dst[r * ld + c] = r0 + r < rows_total ? float(compute_t<T>(src.row(bh, r0 + r)[c])) : 0.0f;
  }
}

// acc[sl] += sum_jj w(lane jj) * tile[jj][lane + 32 sl] over the columns < cols: this lane's share
// of a (1 x 32) @ (32 x cols) product whose 32 weights are spread over the warp's lanes.
__device__ void accumulate_tile(float (&acc)[kSlots], float w, const float* tile, int ld, int cols, int lane) {
  for (int jj = 0; jj < kTile; ++jj) {
    const float wj = __shfl_sync(dev::kFullMask, w, jj);
    if (wj == 0.0f) continue;  // masked, dropped or causal-cut: warp-uniform after the shuffle
    for (int sl = 0; sl < kSlots; ++sl) {
      const int c = lane + sl * dev::kWarp;
      if (c < cols) acc[sl] += wj * tile[jj * ld + c];
    }
  }
}

// dst[lane + 32 sl] = scale * acc[sl] for the columns < cols.
template <typename T>
__device__ void store_row(T* dst, const float (&acc)[kSlots], float scale, int cols, int lane) {
  for (int sl = 0; sl < kSlots; ++sl) {
    const int c = lane + sl * dev::kWarp;
    if (c < cols) dst[c] = T(acc[sl] * scale);
  }
}

// Stages key tile j0 (its K and V rows, as float32) for the block and returns true, or returns false
// once causal masking leaves the block's rows (up to last_row) no more keys to see. The answer is
// the same for every thread, so the barriers are never split.
template <typename T>
__device__ bool stage_key_tile(const HeadsDev<const T>& k, const HeadsDev<const T>& v, int64_t bh, int64_t j0,
                               int64_t last_row, const Rules<T>& rules, int D, int Dv, float* ks, float* vs) {
  if (rules.causal && j0 > last_row) return false;
  __syncthreads();  // the previous tile has been read
  stage_rows(k, bh, j0, rules.Tk, kTile, D, ks, D + 1);
  stage_rows(v, bh, j0, rules.Tk, kTile, Dv, vs, Dv + 1);
  __syncthreads();
  return true;
}

__device__ float dot(const float* a, const float* b, int d) {
  float s = 0.0f;
  for (int c = 0; c < d; ++c) s += a[c] * b[c];
  return s;
}

// Shared memory of the kernels below: two staged (32 x D) tiles and the block's own rows of two
// (16 x D) operands: 49 KiB at D = 128, past the 48 KiB a launch gets without opting in.
size_t smem_bytes(int64_t d, int64_t dv) {
  return sizeof(float) * size_t(kTile * (d + 1) + kTile * (dv + 1) + kBlockRows * (d + dv));
}

template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    CUDA_CHECK("scaled_dot_product_attention",
               cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// The query side the forward and dq kernels share: a block owns kBlockRows query rows of one
// (batch * head) bh, kRows per warp, staged once in shared memory; key j = j0 + lane per thread.
struct QueryBlock {
  int lane, warp;
  int64_t bh, i0;
  __device__ QueryBlock()
      : lane(threadIdx.x % dev::kWarp), warp(threadIdx.x / dev::kWarp), bh(blockIdx.y),
        i0(int64_t(blockIdx.x) * kBlockRows) {}
  __device__ int local(int r) const { return warp * kRows + r; }  // row in the staged block
  __device__ int64_t row(int r) const { return i0 + local(r); }    // query index
};

template <typename T>
__global__ void __launch_bounds__(kWarps * dev::kWarp)
    forward_kernel(HeadsDev<const T> q, HeadsDev<const T> k, HeadsDev<const T> v, HeadsDev<T> out, float* lse,
                   Rules<T> rules, int D, int Dv) {
  extern __shared__ float smem[];
  float *ks = smem, *vs = ks + kTile * (D + 1), *qs = vs + kTile * (Dv + 1);
  const QueryBlock b;
  const int64_t Tq = rules.Tq, Tk = rules.Tk;
  stage_rows(q, b.bh, b.i0, Tq, kBlockRows, D, qs, D);
  float m[kRows], l[kRows], o[kRows][kSlots];
  for (int r = 0; r < kRows; ++r) {
    m[r] = -INFINITY, l[r] = 0.0f;
    for (int s = 0; s < kSlots; ++s) o[r][s] = 0.0f;
  }
  const int64_t last_row = min(b.i0 + kBlockRows, Tq) - 1;
  for (int64_t j0 = 0; j0 < Tk; j0 += kTile) {
    if (!stage_key_tile(k, v, b.bh, j0, last_row, rules, D, Dv, ks, vs)) break;
    const int64_t j = j0 + b.lane;
    for (int r = 0; r < kRows; ++r) {
      const int64_t i = b.row(r);
      if (i >= Tq) break;  // warp-uniform
      const float s = j < Tk ? rules.score(dot(qs + b.local(r) * D, ks + b.lane * (D + 1), D), b.bh, i, j) : -INFINITY;
      const float m_new = fmaxf(m[r], dev::warp_all_max(s));
      if (m_new == -INFINITY) continue;  // every key so far masked out
      const float corr = __expf(m[r] - m_new), p = __expf(s - m_new);
      l[r] = l[r] * corr + dev::warp_all_sum(p);
      m[r] = m_new;
      const float pd = rules.dropped(p, b.bh, i, j);
      for (int sl = 0; sl < kSlots; ++sl) o[r][sl] *= corr;
      accumulate_tile(o[r], pd, vs, Dv + 1, Dv, b.lane);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    const int64_t i = b.row(r);
    if (i >= Tq) break;
    store_row(out.row(b.bh, i), o[r], l[r] > 0.0f ? 1.0f / l[r] : 0.0f, Dv, b.lane);
    if (b.lane == 0) lse[b.bh * Tq + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// Delta_i = sum_d dO[i, d] * O[i, d]: one warp per row.
template <typename T>
__global__ void __launch_bounds__(kThreads) delta_kernel(HeadsDev<const T> dout, HeadsDev<const T> out, float* delta,
                                                         int64_t heads, int64_t Tq, int Dv) {
  const int lane = threadIdx.x % dev::kWarp;
  const int64_t row = int64_t(blockIdx.x) * (kThreads / dev::kWarp) + threadIdx.x / dev::kWarp;
  if (row >= heads * Tq) return;
  const int64_t bh = row / Tq, i = row % Tq;
  float s = 0.0f;
  for (int c = lane; c < Dv; c += dev::kWarp)
    s += float(compute_t<T>(dout.row(bh, i)[c])) * float(compute_t<T>(out.row(bh, i)[c]));
  s = dev::warp_all_sum(s);
  if (lane == 0) delta[row] = s;
}

// dQ_i = scale * sum_j P_ij (dP_ij - Delta_i) K_j with dP_ij = dO_i . V_j (through the dropout):
// query rows per warp, key tiles per lane, as in the forward.
template <typename T>
__global__ void __launch_bounds__(kWarps * dev::kWarp)
    dq_kernel(HeadsDev<const T> q, HeadsDev<const T> k, HeadsDev<const T> v, HeadsDev<const T> dout,
              const float* lse, const float* delta, HeadsDev<T> dq, Rules<T> rules, int D, int Dv) {
  extern __shared__ float smem[];
  float *ks = smem, *vs = ks + kTile * (D + 1), *qs = vs + kTile * (Dv + 1), *dos = qs + kBlockRows * D;
  const QueryBlock b;
  const int64_t Tq = rules.Tq, Tk = rules.Tk;
  stage_rows(q, b.bh, b.i0, Tq, kBlockRows, D, qs, D);
  stage_rows(dout, b.bh, b.i0, Tq, kBlockRows, Dv, dos, Dv);
  float acc[kRows][kSlots] = {};
  const int64_t last_row = min(b.i0 + kBlockRows, Tq) - 1;
  for (int64_t j0 = 0; j0 < Tk; j0 += kTile) {
    if (!stage_key_tile(k, v, b.bh, j0, last_row, rules, D, Dv, ks, vs)) break;
    const int64_t j = j0 + b.lane;
    for (int r = 0; r < kRows; ++r) {
      const int64_t i = b.row(r);
      if (i >= Tq) break;
      const float L = lse[b.bh * Tq + i];
      float ds = 0.0f;
      if (j < Tk && L != -INFINITY) {
        const float p = __expf(rules.score(dot(qs + b.local(r) * D, ks + b.lane * (D + 1), D), b.bh, i, j) - L);
        const float dp = rules.dropped(dot(dos + b.local(r) * Dv, vs + b.lane * (Dv + 1), Dv), b.bh, i, j);
        ds = p * (dp - delta[b.bh * Tq + i]) * rules.scale;
      }
      accumulate_tile(acc[r], ds, ks, D + 1, D, b.lane);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    const int64_t i = b.row(r);
    if (i >= Tq) break;
    store_row(dq.row(b.bh, i), acc[r], 1.0f, D, b.lane);
  }
}

// dV_j = sum_i Pd_ij dO_i and dK_j = scale * sum_i P_ij (dP_ij - Delta_i) Q_i: key rows per warp,
// query tiles per lane (the transposed layout of dq_kernel).
template <typename T>
__global__ void __launch_bounds__(kWarps * dev::kWarp)
    dkdv_kernel(HeadsDev<const T> q, HeadsDev<const T> k, HeadsDev<const T> v, HeadsDev<const T> dout,
                const float* lse, const float* delta, HeadsDev<T> dk, HeadsDev<T> dv, Rules<T> rules, int D, int Dv) {
  extern __shared__ float smem[];
  float *qs = smem, *dos = qs + kTile * (D + 1), *ksr = dos + kTile * (Dv + 1), *vsr = ksr + kBlockRows * D;
  const int lane = threadIdx.x % dev::kWarp, warp = threadIdx.x / dev::kWarp;
  const int64_t bh = blockIdx.y, j0 = int64_t(blockIdx.x) * kBlockRows, Tq = rules.Tq, Tk = rules.Tk;
  stage_rows(k, bh, j0, Tk, kBlockRows, D, ksr, D);
  stage_rows(v, bh, j0, Tk, kBlockRows, Dv, vsr, Dv);
  float dk_acc[kRows][kSlots] = {}, dv_acc[kRows][kSlots] = {};
  // Causal: queries before the block's first key see none of its keys.
  const int64_t first_q = rules.causal ? j0 / kTile * kTile : 0;
  for (int64_t q0 = first_q; q0 < Tq; q0 += kTile) {
    __syncthreads();
    stage_rows(q, bh, q0, Tq, kTile, D, qs, D + 1);
    stage_rows(dout, bh, q0, Tq, kTile, Dv, dos, Dv + 1);
    __syncthreads();
    const int64_t i = q0 + lane;
    const float L = i < Tq ? lse[bh * Tq + i] : -INFINITY, dl = i < Tq ? delta[bh * Tq + i] : 0.0f;
    for (int r = 0; r < kRows; ++r) {
      const int64_t j = j0 + warp * kRows + r;
      if (j >= Tk) break;
      float pd = 0.0f, ds = 0.0f;
      if (i < Tq && L != -INFINITY) {
        const float p = __expf(rules.score(dot(qs + lane * (D + 1), ksr + (warp * kRows + r) * D, D), bh, i, j) - L);
        pd = rules.dropped(p, bh, i, j);
        const float dp = rules.dropped(dot(dos + lane * (Dv + 1), vsr + (warp * kRows + r) * Dv, Dv), bh, i, j);
        ds = p * (dp - dl) * rules.scale;
      }
      accumulate_tile(dv_acc[r], pd, dos, Dv + 1, Dv, lane);
      accumulate_tile(dk_acc[r], ds, qs, D + 1, D, lane);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    const int64_t j = j0 + warp * kRows + r;
    if (j >= Tk) break;
    store_row(dk.row(bh, j), dk_acc[r], 1.0f, D, lane);
    store_row(dv.row(bh, j), dv_acc[r], 1.0f, Dv, lane);
  }
}

// ---- tensor cores: the forward for float16/bfloat16 (FlashAttention-2's register layout) -------
//
// One block per (batch * head, 64 query rows): 4 warps of 16 rows. Per 64-key tile (K as [key][d],
// V transposed as [d][key] in shared memory, 16-bit), each warp computes its 16 x 64 scores with
// m16n8k16 MMAs (its Q fragments stay in registers for the whole sequence), updates the running max
// and sum of its two rows per thread (reduced over the 4 lanes that share a row), and feeds the
// probabilities, packed to 16 bits straight from the score accumulators (dev::mma.cuh explains why
// that needs no shuffles), into O += P V on the tensor cores again. Head dim D = Dv in {32, 64, 128}
// (a template parameter, so every fragment array stays in registers). The backward keeps the
// CUDA-core kernels above.
constexpr int kMmaRows = 64, kMmaKeys = 64, kMmaPad = 8, kMmaThreads = 128;

template <typename T>
constexpr bool is_bf16 = std::is_same_v<T, bfloat16>;

template <int D>
size_t mma_smem_bytes() {
  return 2 * size_t(kMmaRows * (D + kMmaPad) + kMmaKeys * (D + kMmaPad) + D * (kMmaKeys + kMmaPad));
}

template <typename T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) { return dev::pack_bits(T(lo).bits, T(hi).bits); }

template <typename T, int D>
__global__ void __launch_bounds__(kMmaThreads)
    forward_mma_kernel(HeadsDev<const T> q, HeadsDev<const T> k, HeadsDev<const T> v, HeadsDev<T> out, float* lse,
                       Rules<T> rules) {
  extern __shared__ __align__(16) unsigned char raw[];
  constexpr int ld = D + kMmaPad, ldv = kMmaKeys + kMmaPad, kSteps = D / 16, kTiles = kMmaKeys / 8;
  T* qs = reinterpret_cast<T*>(raw);      // [64 rows][D]
  T* ks = qs + kMmaRows * ld;             // [64 keys][D]
  T* vt = ks + kMmaKeys * ld;             // [D][64 keys]: V transposed, the .col operand of P V
  const int lane = threadIdx.x % dev::kWarp, warp = threadIdx.x / dev::kWarp, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, i0 = int64_t(blockIdx.x) * kMmaRows, Tq = rules.Tq, Tk = rules.Tk;
  for (int e = threadIdx.x; e < kMmaRows * D; e += kMmaThreads) {
    const int r = e / D, c = e % D;
    qs[r * ld + c] = i0 + r < Tq ? q.row(bh, i0 + r)[c] : T(0.0f);
  }
  __syncthreads();
  uint32_t qf[kSteps][4];
  const T *q_lo = qs + (warp * 16 + g) * ld, *q_hi = q_lo + 8 * ld;
#pragma unroll
  for (int s = 0; s < kSteps; ++s) {
    qf[s][0] = dev::pair(q_lo, 16 * s + 2 * t), qf[s][1] = dev::pair(q_hi, 16 * s + 2 * t);
    qf[s][2] = dev::pair(q_lo, 16 * s + 2 * t + 8), qf[s][3] = dev::pair(q_hi, 16 * s + 2 * t + 8);
  }
  const int64_t row[2] = {i0 + warp * 16 + g, i0 + warp * 16 + g + 8};
  float o[D / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int64_t last_row = min(i0 + kMmaRows, Tq) - 1;
  for (int64_t j0 = 0; j0 < Tk; j0 += kMmaKeys) {
    if (rules.causal && j0 > last_row) break;
    __syncthreads();
    for (int e = threadIdx.x; e < kMmaKeys * D; e += kMmaThreads) {
      const int r = e / D, c = e % D;
      const bool in = j0 + r < Tk;
      ks[r * ld + c] = in ? k.row(bh, j0 + r)[c] : T(0.0f);
      vt[c * ldv + r] = in ? v.row(bh, j0 + r)[c] : T(0.0f);
    }
    __syncthreads();
    float sc[kTiles][4] = {};
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      const T* krow = ks + (8 * j + g) * ld;
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        const uint32_t b[2] = {dev::pair(krow, 16 * s + 2 * t), dev::pair(krow, 16 * s + 2 * t + 8)};
        dev::mma_16x8x16<is_bf16<T>>(sc[j], qf[s], b);
      }
    }
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int j = 0; j < kTiles; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int r = c / 2;
        const int64_t key = j0 + 8 * j + 2 * t + (c & 1);
        sc[j][c] = (row[r] < Tq && key < Tk) ? rules.score(sc[j][c], bh, row[r], key) : -INFINITY;
        mx[r] = fmaxf(mx[r], sc[j][c]);
      }
    float base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // the 4 lanes of a quad hold the same two rows
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(dev::kFullMask, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(dev::kFullMask, mx[r], 2));
      base[r] = mx[r] == -INFINITY ? 0.0f : mx[r];  // all masked so far: keep exp finite (it gives 0)
      const float corr = __expf(m[r] - base[r]);
      m[r] = mx[r], l[r] *= corr;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) o[n][2 * r] *= corr, o[n][2 * r + 1] *= corr;
    }
#pragma unroll
    for (int j = 0; j < kTiles; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int r = c / 2;
        const float p = __expf(sc[j][c] - base[r]);
        l[r] += p;
        sc[j][c] = rules.dropped(p, bh, row[r], j0 + 8 * j + 2 * t + (c & 1));
      }
    uint32_t pf[kMmaKeys / 16][4];
#pragma unroll
    for (int s = 0; s < kMmaKeys / 16; ++s) {
      pf[s][0] = pack_pair<T>(sc[2 * s][0], sc[2 * s][1]), pf[s][1] = pack_pair<T>(sc[2 * s][2], sc[2 * s][3]);
      pf[s][2] = pack_pair<T>(sc[2 * s + 1][0], sc[2 * s + 1][1]);
      pf[s][3] = pack_pair<T>(sc[2 * s + 1][2], sc[2 * s + 1][3]);
    }
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      const T* vrow = vt + (8 * n + g) * ldv;
#pragma unroll
      for (int s = 0; s < kMmaKeys / 16; ++s) {
        const uint32_t b[2] = {dev::pair(vrow, 16 * s + 2 * t), dev::pair(vrow, 16 * s + 2 * t + 8)};
        dev::mma_16x8x16<is_bf16<T>>(o[n], pf[s], b);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(dev::kFullMask, l[r], 1);
    l[r] += __shfl_xor_sync(dev::kFullMask, l[r], 2);
    if (row[r] >= Tq) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    T* dst = out.row(bh, row[r]);
#pragma unroll
    for (int n = 0; n < D / 8; ++n) dst[8 * n + 2 * t] = T(o[n][2 * r] * inv), dst[8 * n + 2 * t + 1] = T(o[n][2 * r + 1] * inv);
    if (t == 0) lse[bh * Tq + row[r]] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

template <typename T, int D>
void launch_forward_mma(const Array& q, const Array& k, const Array& v, Array& out, Array& lse, const Rules<T>& rules) {
  const int64_t heads = q.shape(0) * q.shape(1), Tq = q.shape(2);
  const size_t smem = mma_smem_bytes<D>();
  allow_smem(forward_mma_kernel<T, D>, smem);
  const dim3 grid(unsigned((Tq + kMmaRows - 1) / kMmaRows), unsigned(heads));
  forward_mma_kernel<T, D><<<grid, kMmaThreads, smem, stream_of(q.device().index)>>>(
      heads_dev<const T>(q), heads_dev<const T>(k), heads_dev<const T>(v), heads_dev<T>(out), lse.data<float>(), rules);
}

// The tensor-core forward when it applies: 16-bit storage, sm_80+, D = Dv in {32, 64, 128}.
template <typename T>
bool forward_on_tensor_cores(const Array& q, const Array& k, const Array& v, Array& out, Array& lse,
                             const Rules<T>& rules) {
  if constexpr (std::is_same_v<T, float>) {
    return false;
  } else {
    const int64_t D = q.shape(3);
    if (D != v.shape(3) || !has_tensor_cores(q.device().index)) return false;
    switch (D) {
      case 32: launch_forward_mma<T, 32>(q, k, v, out, lse, rules); return true;
      case 64: launch_forward_mma<T, 64>(q, k, v, out, lse, rules); return true;
      case 128: launch_forward_mma<T, 128>(q, k, v, out, lse, rules); return true;
      default: return false;
    }
  }
}

void check_head_dims(const Array& q, const Array& v) {
  EMBER_CHECK(q.shape(3) <= kMaxD && v.shape(3) <= kMaxD, "scaled_dot_product_attention",
              "CUDA supports head dims up to ", kMaxD, ", got q ", shape_str(q.shape()), ", v ", shape_str(v.shape()));
}

dim3 grid_for_rows(int64_t rows, int64_t heads) {
  return dim3(unsigned((rows + kBlockRows - 1) / kBlockRows), unsigned(heads));
}

template <typename F>
void dispatch_storage(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::float32: return f(float{});
    case DType::float16: return f(float16{});
    case DType::bfloat16: return f(bfloat16{});
    default: fail<TypeError>(op, "CUDA attention supports float32, float16 and bfloat16, got ", dtype_name(t));
  }
}

}  // namespace

int64_t attention_workspace_bytes(const Array& q, const Array&, const Array&, bool backward) {
  return backward ? q.shape(0) * q.shape(1) * q.shape(2) * int64_t(sizeof(float)) : 0;  // Delta
}

void attention_forward(const Array& q, const Array& k, const Array& v, const Array& mask, const AttentionArgs& a,
                       Array& out, Array& lse) {
  check_head_dims(q, v);
  const int64_t heads = q.shape(0) * q.shape(1), Tq = q.shape(2);
  if (heads == 0 || Tq == 0) return;
  dispatch_storage(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using T = decltype(tag);
    DeviceGuard guard(q.device().index, "scaled_dot_product_attention");
    const int D = int(q.shape(3)), Dv = int(v.shape(3));
    const Rules<T> rules = rules_of<T>(q, k, mask, a);
    if (!forward_on_tensor_cores(q, k, v, out, lse, rules)) {
      const size_t smem = smem_bytes(D, Dv);
      allow_smem(forward_kernel<T>, smem);
      forward_kernel<T><<<grid_for_rows(Tq, heads), kWarps * dev::kWarp, smem, stream_of(q.device().index)>>>(
          heads_dev<const T>(q), heads_dev<const T>(k), heads_dev<const T>(v), heads_dev<T>(out), lse.data<float>(),
          rules, D, Dv);
    }
    CUDA_CHECK_LAUNCH("scaled_dot_product_attention");
  });
}

void attention_backward(const Array& dout, const Array& q, const Array& k, const Array& v, const Array& out,
                        const Array& lse, const Array& mask, const AttentionArgs& a, Array& dq, Array& dk,
                        Array& dv) {
  check_head_dims(q, v);
  const int64_t heads = q.shape(0) * q.shape(1), Tq = q.shape(2), Tk = k.shape(2);
  if (heads == 0) return;
  dispatch_storage(q.dtype(), "scaled_dot_product_attention_backward", [&](auto tag) {
    using T = decltype(tag);
    DeviceGuard guard(q.device().index, "scaled_dot_product_attention_backward");
    cudaStream_t stream = stream_of(q.device().index);
    const int D = int(q.shape(3)), Dv = int(v.shape(3));
    Array delta = Array::empty({std::max<int64_t>(1, heads * Tq)}, DType::float32, q.device());
    const Rules<T> rules = rules_of<T>(q, k, mask, a);
    const auto Q = heads_dev<const T>(q), K = heads_dev<const T>(k), V = heads_dev<const T>(v);
    const auto dO = heads_dev<const T>(dout);
    if (Tq > 0) {
      const unsigned warps_per_block = kThreads / dev::kWarp;
      delta_kernel<T><<<unsigned((heads * Tq + warps_per_block - 1) / warps_per_block), kThreads, 0, stream>>>(
          dO, heads_dev<const T>(out), delta.data<float>(), heads, Tq, Dv);
      CUDA_CHECK_LAUNCH("scaled_dot_product_attention_backward");
      allow_smem(dq_kernel<T>, smem_bytes(D, Dv));
      dq_kernel<T><<<grid_for_rows(Tq, heads), kWarps * dev::kWarp, smem_bytes(D, Dv), stream>>>(
          Q, K, V, dO, lse.data<float>(), delta.data<float>(), heads_dev<T>(dq), rules, D, Dv);
      CUDA_CHECK_LAUNCH("scaled_dot_product_attention_backward");
    }
    if (Tk > 0) {
      allow_smem(dkdv_kernel<T>, smem_bytes(D, Dv));
      dkdv_kernel<T><<<grid_for_rows(Tk, heads), kWarps * dev::kWarp, smem_bytes(D, Dv), stream>>>(
          Q, K, V, dO, lse.data<float>(), delta.data<float>(), heads_dev<T>(dk), heads_dev<T>(dv), rules, D, Dv);
      CUDA_CHECK_LAUNCH("scaled_dot_product_attention_backward");
    }
  });
}

}  // namespace ember::cuda
