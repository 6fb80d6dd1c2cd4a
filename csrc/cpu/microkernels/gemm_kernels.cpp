// GEMM micro-kernels, compiled once per ISA (EMBER_ISA = avx512 | avx2 | portable; see CMakeLists).
//
// A micro-kernel multiplies a packed MR x KC panel of A by a packed KC x NR panel of B with the
// MR x NR result held in registers for the whole K loop, then stores it into C (gemm.h: GemmStore).
// Per k it loads NR/lanes vectors of B, broadcasts MR scalars of A and issues MR*NR/lanes FMAs.
//
//   float32, AVX-512: gemm_microkernel_avx512_12x32, intrinsics. 24 zmm accumulators + 2 B + 1
//     broadcast = 27 of 32 registers; 24 FMAs per 2 loads + 12 broadcasts. On AMD Zen 4 (each zmm
//     FMA takes both 256-bit pipes) this is twice the FMAs per load of a 6 x 32 tile, which measured
//     ~10% faster; the same tile written with vector extensions made GCC spill accumulators.
//   float32, AVX2: gemm_microkernel_avx2_6x16, intrinsics: 12 ymm accumulators + 2 B + 1 broadcast
//     = 15 of 16 registers, the classic Haswell tile.
//   float64 everywhere and float32 on the portable build: one template written with GCC/Clang vector
//     extensions (a `Vec` is one register: 16/8/4 floats), MR x 2 vectors.
//   Tiny products, both dtypes, every ISA: gemm_small (R x NV tiles, R <= 12, NV <= 4 vectors) on
//     unpacked operands, edges by masked loads/stores; see its section below.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "core/scalar_math.h"
#include "cpu/microkernels/gemm.h"
#include "cpu/simd/kernels.h"

#define EMBER_CAT_(a, b) a##b
#define EMBER_CAT(a, b) EMBER_CAT_(a, b)
#define EMBER_STR_(a) #a
#define EMBER_STR(a) EMBER_STR_(a)

namespace ember::cpu::EMBER_CAT(gemm_, EMBER_ISA) {
namespace {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
constexpr int MR32 = 12, NV32 = 2, MR64 = 6, NV64 = 2;
#elif defined(__AVX2__)
constexpr int kVecBytes = 32;
constexpr int MR32 = 6, NV32 = 2, MR64 = 6, NV64 = 2;
#else
constexpr int kVecBytes = 16;
constexpr int MR32 = 4, NV32 = 2, MR64 = 4, NV64 = 2;
#endif

template <typename T> struct VecOf;
template <> struct VecOf<float> { typedef float type __attribute__((vector_size(kVecBytes), aligned(4))); };
template <> struct VecOf<double> { typedef double type __attribute__((vector_size(kVecBytes), aligned(8))); };

template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
constexpr int kLanes = kVecBytes / int(sizeof(T));

template <typename T> inline Vec<T> load(const T* p) { Vec<T> v; std::memcpy(&v, p, sizeof(v)); return v; }
template <typename T> inline void store(T* p, Vec<T> v) { std::memcpy(p, &v, sizeof(v)); }
template <typename T> inline Vec<T> splat(T x) { return Vec<T>{} + x; }

// Broadcast straight from memory (one vbroadcastss/sd with a memory operand); the generic splat
// makes GCC load into a register and broadcast from there, an extra instruction per row.
template <typename T> inline Vec<T> bcast(const T* p) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) return (Vec<T>)_mm512_set1_ps(*p);
  else return (Vec<T>)_mm512_set1_pd(*p);
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) return (Vec<T>)_mm256_set1_ps(*p);
  else return (Vec<T>)_mm256_set1_pd(*p);
#else
  return splat(*p);
#endif
}

// One accumulator row (NV vectors) into c[0..n) with the full epilogue of GemmStore. A whole row
// takes the bias in vector adds: a scalar loop here made a 32 x 256 x 1024 product with a bias (an
// RNN step's W_hh h + b_hh) 40% slower than without.
template <typename T, int NV>
inline void store_row(const Vec<T> (&acc)[NV], T* c, int n, const GemmStore<T>& st) {
  constexpr int L = kLanes<T>, W = NV * L;
  const bool read_c = !st.first || st.beta != T(0), add_bias = st.last && st.bias;
  const T beta = st.first ? st.beta : T(1);
  const Activation act = st.last ? st.act : Activation::none;
  T row[W];
  for (int v = 0; v < NV; ++v) {
    Vec<T> r = splat(st.alpha) * acc[v];
    if (n == W && read_c) r += splat(beta) * load(c + v * L);
    if (n == W && add_bias) r += load(st.bias + v * L);
    store(row + v * L, r);
  }
  if (n < W)
    for (int j = 0; j < n; ++j) row[j] += (read_c ? beta * c[j] : T(0)) + (add_bias ? st.bias[j] : T(0));
  // GELU on float32 goes through the vectorised row loop of the SIMD table (its erf is built on a
  // vector exp); the scalar formula would call libm's erf per element.
  const bool vector_gelu = std::is_same_v<T, float> && (act == Activation::gelu || act == Activation::gelu_tanh);
  if (act == Activation::relu) {
    for (int j = 0; j < W; ++j) row[j] = row[j] <= T(0) ? T(0) : row[j];  // NaN stays NaN, as in UnaryOp::relu
  } else if (act != Activation::none && !vector_gelu) {
    for (int j = 0; j < n; ++j) row[j] = apply_activation(act, row[j]);
  }
  std::memcpy(c, row, size_t(n) * sizeof(T));
  if constexpr (std::is_same_v<T, float>) {
    if (vector_gelu) simd().unary_f32(act == Activation::gelu ? UnaryOp::gelu : UnaryOp::gelu_tanh, c, c, n);
  }
}

// Full-width rows with no activation (a bias at most): all-vector loads and stores straight into C.
// The bias-only case is every linear layer's, and an RNN step's W_hh h + b_hh.
template <typename T, int NV>
inline void store_row_fast(const Vec<T> (&acc)[NV], T* c, const GemmStore<T>& st) {
  constexpr int L = kLanes<T>;
  const Vec<T> alpha = splat(st.alpha);
  const T* bias = st.last ? st.bias : nullptr;
  for (int v = 0; v < NV; ++v) {
    Vec<T> r = alpha * acc[v];
    if (!st.first) r += load(c + v * L);
    else if (st.beta != T(0)) r += splat(st.beta) * load(c + v * L);
    if (bias) r += load(bias + v * L);
    store(c + v * L, r);
  }
}

template <typename T, int MR, int NV>
inline void store_tile(const Vec<T> (&acc)[MR][NV], T* C, int64_t ldc, int m, int n, const GemmStore<T>& st) {
  const bool plain = n == NV * kLanes<T> && !(st.last && st.act != Activation::none);
  for (int i = 0; i < m; ++i) {
    if (plain) store_row_fast<T, NV>(acc[i], C + i * ldc, st);
    else store_row<T, NV>(acc[i], C + i * ldc, n, st);
  }
}

// The intrinsic kernels' accumulator registers (MR rows of two vectors) into C, through store_tile.
template <int MR, typename Reg>
inline void store_registers(const Reg (&c)[MR][2], float* C, int64_t ldc, int m, int n, const GemmStore<float>& st) {
  Vec<float> acc[MR][2];
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = (Vec<float>)c[i][0];
    acc[i][1] = (Vec<float>)c[i][1];
  }
  store_tile<float, MR, 2>(acc, C, ldc, m, n, st);
}

// The generic kernel (float64 everywhere, float32 on the portable build).
template <typename T, int MR, int NV>
void microkernel(int64_t kc, const T* __restrict Ap, const T* __restrict Bp, T* __restrict C, int64_t ldc,
                 int m, int n, const GemmStore<T>& st) {
  constexpr int L = kLanes<T>;
  Vec<T> acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = Vec<T>{};
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    Vec<T> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load(Bp + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const Vec<T> a = bcast(Ap + i);
      for (int v = 0; v < NV; ++v) acc[i][v] += a * b[v];
    }
    Ap += MR;
    Bp += NV * L;
  }
  store_tile<T, MR, NV>(acc, C, ldc, m, n, st);
}

#if defined(__AVX512F__)
// The first ROWS rows of a 12-row packed A panel (Ap advances by 12 per k either way). A ragged last
// panel runs the smallest tile that covers it: M = 32 is 12 + 12 + 8 rows of FMAs, not 12 + 12 + 12
// (an RNN step's 32 x 256 x 1024 product, or a batch of 32, loses 11% to the padding otherwise).
//
// The direct forms (gemm.h: GemmKernels::f32_direct) read an operand in place instead of a packed
// panel. DIRECT_A: Ap is row-major A itself, row i of step k at Ap[i * lda + k], all ROWS rows present;
// a product with few columns then skips A's packing, which would cost about as much as the
// multiply-adds it feeds. DIRECT_B: Bp is row-major B, step k's 32 columns at Bp + k * ldb, all 32
// present; a product with few rows skips B's packing likewise. NV = 1: a panel of at most 16 columns
// (the packed panel is still 32 wide) runs half the FMAs (1024x1024 @ 1024x16: 85 -> 126 GFLOP/s).
template <int ROWS, bool DIRECT_A = false, bool DIRECT_B = false, int NV = 2>
void avx512_tile(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* __restrict C,
                 int64_t ldc, int m, int n, const GemmStore<float>& st, int64_t lda = 0, int64_t ldb = 0) {
  // An FMA's result is ready 4 cycles later and two issue per cycle, so a k step needs 8 independent
  // accumulators to keep both units busy. Tiles with fewer than 16 (a 4-row tile's 8, a 16-column
  // tile's ROWS) run KS steps at once into KS sets, summed at the end: the 4 leftover rows of a
  // 16-row product (an RNN step's rows per thread) took 43% of the 12-row tile's time for a third
  // of its FMAs.
  constexpr int KS = std::max(1, 16 / (ROWS * NV));
  __m512 c[KS][ROWS][2];  // (k sets, rows, NR / 16)
  for (int s = 0; s < KS; ++s)
#pragma GCC unroll 12
    for (int i = 0; i < ROWS; ++i) c[s][i][0] = c[s][i][1] = _mm512_setzero_ps();
  for (int i = 0; i < m; ++i) _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
  auto step = [&](int64_t k, __m512(&acc)[ROWS][2]) __attribute__((always_inline)) {
    const __m512 b0 = DIRECT_B ? _mm512_loadu_ps(Bp) : _mm512_load_ps(Bp);
    const __m512 b1 = NV == 1 ? b0 : DIRECT_B ? _mm512_loadu_ps(Bp + 16) : _mm512_load_ps(Bp + 16);
    // 8 iterations (1 KiB of B, 384 B of A) ahead: the panels stream from L2.
    if (DIRECT_B) {
      _mm_prefetch(reinterpret_cast<const char*>(Bp + 8 * ldb), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(Bp + 8 * ldb + 31), _MM_HINT_T0);
    } else {
      _mm_prefetch(reinterpret_cast<const char*>(Bp + 32 * 8), _MM_HINT_T0);
    }
    if (!DIRECT_A) _mm_prefetch(reinterpret_cast<const char*>(Ap + MR32 * 8), _MM_HINT_T0);
    if (DIRECT_A && (k & 15) == 0)  // 12 rows in place: each row's line 2 lines (32 steps) ahead, once per line
#pragma GCC unroll 12
      for (int i = 0; i < ROWS; ++i) _mm_prefetch(reinterpret_cast<const char*>(Ap + i * lda + 32), _MM_HINT_T0);
#pragma GCC unroll 12
    for (int i = 0; i < ROWS; ++i) {
      const __m512 a = _mm512_set1_ps(DIRECT_A ? Ap[i * lda] : Ap[i]);
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      if (NV == 2) acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
    }
    Ap += DIRECT_A ? 1 : MR32;
    Bp += DIRECT_B ? ldb : 32;
  };
  int64_t k = 0;
  for (; k + KS <= kc; k += KS)
#pragma GCC unroll 4
    for (int s = 0; s < KS; ++s) step(k + s, c[s]);
  for (; k < kc; ++k) step(k, c[0]);
  for (int s = 1; s < KS; ++s)
#pragma GCC unroll 12
    for (int i = 0; i < ROWS; ++i) {
      c[0][i][0] = _mm512_add_ps(c[0][i][0], c[s][i][0]);
      if (NV == 2) c[0][i][1] = _mm512_add_ps(c[0][i][1], c[s][i][1]);
    }
  if (m == ROWS && n == 32 && !(st.last && (st.bias || st.act != Activation::none))) {
    // Full tile, no epilogue: straight from registers into C.
    const __m512 alpha = _mm512_set1_ps(st.alpha), beta = _mm512_set1_ps(st.first ? st.beta : 1.0f);
    const bool read_c = !st.first || st.beta != 0.0f;
#pragma GCC unroll 12
    for (int i = 0; i < ROWS; ++i) {
      float* row = C + i * ldc;
      __m512 r0 = _mm512_mul_ps(alpha, c[0][i][0]), r1 = _mm512_mul_ps(alpha, c[0][i][1]);
      if (read_c) {
        r0 = _mm512_fmadd_ps(beta, _mm512_loadu_ps(row), r0);
        r1 = _mm512_fmadd_ps(beta, _mm512_loadu_ps(row + 16), r1);
      }
      _mm512_storeu_ps(row, r0);
      _mm512_storeu_ps(row + 16, r1);
    }
    return;
  }
  store_registers(c[0], C, ldc, m, n, st);
}

void gemm_microkernel_avx512_12x32(int64_t kc, const float* __restrict Ap, const float* __restrict Bp,
                                   float* __restrict C, int64_t ldc, int m, int n, const GemmStore<float>& st) {
  if (n <= 16) {
    if (m > 8) avx512_tile<12, false, false, 1>(kc, Ap, Bp, C, ldc, m, n, st);
    else if (m > 4) avx512_tile<8, false, false, 1>(kc, Ap, Bp, C, ldc, m, n, st);
    else avx512_tile<4, false, false, 1>(kc, Ap, Bp, C, ldc, m, n, st);
    return;
  }
  if (m > 8) avx512_tile<12>(kc, Ap, Bp, C, ldc, m, n, st);
  else if (m > 4) avx512_tile<8>(kc, Ap, Bp, C, ldc, m, n, st);
  else avx512_tile<4>(kc, Ap, Bp, C, ldc, m, n, st);
}
#define EMBER_F32_KERNEL gemm_microkernel_avx512_12x32

// The direct forms of the 12 x 32 tile (lda > 0: A in place, 12 rows; ldb > 0: B in place, 32 columns).
void gemm_microkernel_avx512_12x32_direct(int64_t kc, const float* __restrict A, int64_t lda,
                                          const float* __restrict B, int64_t ldb, float* __restrict C, int64_t ldc,
                                          int m, int n, const GemmStore<float>& st) {
  if (lda && ldb) return avx512_tile<12, true, true>(kc, A, B, C, ldc, 12, n, st, lda, ldb);
  if (lda && n <= 16) return avx512_tile<12, true, false, 1>(kc, A, B, C, ldc, 12, n, st, lda);
  if (lda) return avx512_tile<12, true, false>(kc, A, B, C, ldc, 12, n, st, lda);
  if (m > 8) avx512_tile<12, false, true>(kc, A, B, C, ldc, m, n, st, 0, ldb);
  else if (m > 4) avx512_tile<8, false, true>(kc, A, B, C, ldc, m, n, st, 0, ldb);
  else avx512_tile<4, false, true>(kc, A, B, C, ldc, m, n, st, 0, ldb);
}
#define EMBER_F32_DIRECT gemm_microkernel_avx512_12x32_direct
#elif defined(__AVX2__)
void gemm_microkernel_avx2_6x16(int64_t kc, const float* __restrict Ap, const float* __restrict Bp,
                                float* __restrict C, int64_t ldc, int m, int n, const GemmStore<float>& st) {
  __m256 c[6][2];  // (MR, NR / 8)
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
    _mm_prefetch(reinterpret_cast<const char*>(Bp + 16 * 8), _MM_HINT_T0);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      const __m256 a = _mm256_broadcast_ss(Ap + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
    Ap += 6;
    Bp += 16;
  }
  store_registers(c, C, ldc, m, n, st);
}
#define EMBER_F32_KERNEL gemm_microkernel_avx2_6x16
#else
#define EMBER_F32_KERNEL (microkernel<float, MR32, NV32>)
#endif

// Transposing pack (gemm.h). Scalar form: the portable build's, and every ISA's ragged edges.
void pack_transpose_scalar(const float* src, int64_t ld, int64_t j0, int64_t rows, int64_t k0, int64_t kc,
                           int width, float* dst) {
  for (int64_t j = j0; j < rows; ++j)
    for (int64_t k = k0; k < kc; ++k) dst[k * width + j] = src[j * ld + k];
}

#if defined(__AVX2__) || defined(__AVX512F__)
// 8 x 8 blocks transposed in registers (unpack pairs, then 64-bit shuffles, then 128-bit lane swaps:
// 24 shuffles per 64 elements), so each element costs one contiguous load and one contiguous store
// instead of a scalar store 4 * width bytes from its neighbour. 256-bit on both x86 builds: the
// block's rows are 8 floats, and 16 x 16 zmm blocks would need 16 rows of every panel (MR is 12).
inline void transpose8x8(const float* src, int64_t ld, float* dst, int width) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * width, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * width, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// 4 rows x 8 k as two 4 x 4 SSE transposes: the last 4 rows of a 12-row A panel (MR = 12), which
// would otherwise go element by element (a third of every A pack; 9 -> ~5 us for the LSTM's 32 x 1024
// hidden-side gradient per step).
inline void transpose4x8(const float* src, int64_t ld, float* dst, int width) {
  for (int h = 0; h < 8; h += 4) {
    __m128 r0 = _mm_loadu_ps(src + h), r1 = _mm_loadu_ps(src + ld + h), r2 = _mm_loadu_ps(src + 2 * ld + h),
           r3 = _mm_loadu_ps(src + 3 * ld + h);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    _mm_storeu_ps(dst + h * width, r0);
    _mm_storeu_ps(dst + (h + 1) * width, r1);
    _mm_storeu_ps(dst + (h + 2) * width, r2);
    _mm_storeu_ps(dst + (h + 3) * width, r3);
  }
}

void pack_transpose_f32(const float* src, int64_t ld, int64_t rows, int64_t kc, int width, float* dst) {
  const int64_t rows8 = rows / 8 * 8, rows4 = rows / 4 * 4, kc8 = kc / 8 * 8;
  for (int64_t j = 0; j < rows8; j += 8)
    for (int64_t k = 0; k < kc8; k += 8) transpose8x8(src + j * ld + k, ld, dst + k * width + j, width);
  if (rows4 > rows8)
    for (int64_t k = 0; k < kc8; k += 8) transpose4x8(src + rows8 * ld + k, ld, dst + k * width + rows8, width);
  pack_transpose_scalar(src, ld, 0, rows4, kc8, kc, width, dst);   // the last kc % 8 of each full block
  pack_transpose_scalar(src, ld, rows4, rows, 0, kc, width, dst);  // the last rows % 4 rows
}
#else
void pack_transpose_f32(const float* src, int64_t ld, int64_t rows, int64_t kc, int width, float* dst) {
  pack_transpose_scalar(src, ld, 0, rows, 0, kc, width, dst);
}
#endif

// ---- matrix-vector (gemm.h: GemvDot, GemvAxpy) ----------------------------------------------------
// Memory-bound: each matrix element is loaded once and used in one FMA, so the loops keep several
// independent streams in flight (4 rows, or 4 rows of k) rather than chase the FMA peak.

// The sum of a vector's lanes as a tree of halves (16 lanes: 4 shuffle-adds), not a chain of 15
// dependent lane-by-lane adds: a matrix-vector product ends every output in one (one AVX-512
// thread, 16384x64 @ 64x1: 59-63 -> 53-54 us).
template <typename T, int N>
struct LanesOf {
  typedef T type __attribute__((vector_size(N * sizeof(T))));
};
template <typename T, int N>
using Lanes = typename LanesOf<T, N>::type;

template <typename T, int N, size_t... I>
inline T tree_sum(Lanes<T, N> v, std::index_sequence<I...>) {
  if constexpr (N == 1) {
    return v[0];
  } else {
    const Lanes<T, N / 2> half = __builtin_shufflevector(v, v, I...) + __builtin_shufflevector(v, v, (I + N / 2)...);
    return tree_sum<T, N / 2>(half, std::make_index_sequence<N / 4 ? N / 4 : 1>());
  }
}

template <typename T>
inline T hsum(Vec<T> v) {
  constexpr int N = kLanes<T>;
  return tree_sum<T, N>(Lanes<T, N>(v), std::make_index_sequence<N / 2>());
}

// 4 rows at a time against one vector load of v: 4 accumulator chains, 4 memory streams.
template <typename T>
void gemv_dot(const T* P, int64_t ld, int64_t rows, int64_t k, const T* v, T* out) {
  constexpr int L = kLanes<T>;
  const int64_t kv = k / L * L;
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) {
    const T* r[4] = {P + i * ld, P + (i + 1) * ld, P + (i + 2) * ld, P + (i + 3) * ld};
    Vec<T> acc[4] = {};
    for (int64_t p = 0; p < kv; p += L) {
      const Vec<T> x = load(v + p);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) acc[q] += load(r[q] + p) * x;
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      T s = hsum<T>(acc[q]);
      for (int64_t p = kv; p < k; ++p) s += r[q][p] * v[p];
      out[i + q] = s;
    }
  }
  for (; i < rows; ++i) {
    const T* r = P + i * ld;
    Vec<T> acc = {};
    for (int64_t p = 0; p < kv; p += L) acc += load(r + p) * load(v + p);
    T s = hsum<T>(acc);
    for (int64_t p = kv; p < k; ++p) s += r[p] * v[p];
    out[i] = s;
  }
}

// Few-row products with both operands contiguous along K (x @ W^T for a small batch, the inference
// shape of every linear layer): out[i * ldo + j] = sum_k A[i * lda + k] * B[j * ldb + k]. A block of
// DR rows of A against DC rows of B keeps DR x DC vector accumulators and loads DR + DC vectors per
// DR * DC FMAs, straight from the operands (no packing: at a batch of 8 each element of W would be
// packed to be used 8 times). Then one horizontal sum per output. AVX-512's 32 registers hold a
// 4 x 4 block (16 accumulators + 8 loads), AVX2's 16 a 2 x 4 one.
#if defined(__AVX512F__)
constexpr int kDotRows = 4, kDotCols = 4;
#else
constexpr int kDotRows = 2, kDotCols = 4;
#endif

template <typename T, int DR, int DC>
inline void dot_block(const T* A, int64_t lda, const T* B, int64_t ldb, int64_t k, T* out, int64_t ldo) {
  constexpr int L = kLanes<T>;
  const int64_t kv = k / L * L;
  Vec<T> acc[DR][DC] = {};
  for (int64_t p = 0; p < kv; p += L) {
    Vec<T> a[DR], b[DC];
    for (int r = 0; r < DR; ++r) a[r] = load(A + r * lda + p);
    for (int c = 0; c < DC; ++c) b[c] = load(B + c * ldb + p);
    for (int r = 0; r < DR; ++r)
      for (int c = 0; c < DC; ++c) acc[r][c] += a[r] * b[c];
  }
  for (int r = 0; r < DR; ++r)
    for (int c = 0; c < DC; ++c) {
      T s = hsum<T>(acc[r][c]);
      for (int64_t p = kv; p < k; ++p) s += A[r * lda + p] * B[c * ldb + p];
      out[r * ldo + c] = s;
    }
}

// The rows of A in blocks of kDotRows (then one at a time), each against B in blocks of kDotCols
// (then one at a time): every edge runs the same loop with a smaller block.
template <typename T, int DR>
inline void dot_rows(const T* A, int64_t lda, const T* B, int64_t ldb, int64_t n, int64_t k, T* out, int64_t ldo) {
  int64_t j = 0;
  for (; j + kDotCols <= n; j += kDotCols) dot_block<T, DR, kDotCols>(A, lda, B + j * ldb, ldb, k, out + j, ldo);
  for (; j < n; ++j) dot_block<T, DR, 1>(A, lda, B + j * ldb, ldb, k, out + j, ldo);
}

template <typename T>
void gemm_dot(const T* A, int64_t lda, const T* B, int64_t ldb, int64_t m, int64_t n, int64_t k, T* out, int64_t ldo) {
  int64_t i = 0;
  for (; i + kDotRows <= m; i += kDotRows) dot_rows<T, kDotRows>(A + i * lda, lda, B, ldb, n, k, out + i * ldo, ldo);
  for (; i < m; ++i) dot_rows<T, 1>(A + i * lda, lda, B, ldb, n, k, out + i * ldo, ldo);
}

// out += v[p] * row p of P, 4 rows of P per pass over out (out stays in L1/L2 for every pass).
template <typename T>
void gemv_axpy(const T* P, int64_t ld, int64_t k, int64_t cols, const T* v, T* out) {
  constexpr int L = kLanes<T>;
  const int64_t cv = cols / L * L;
  std::memset(out, 0, sizeof(T) * size_t(cols));
  int64_t p = 0;
  for (; p + 4 <= k; p += 4) {
    const T *r0 = P + p * ld, *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;
    const Vec<T> v0 = splat(v[p]), v1 = splat(v[p + 1]), v2 = splat(v[p + 2]), v3 = splat(v[p + 3]);
    for (int64_t j = 0; j < cv; j += L)
      store(out + j, load(out + j) + v0 * load(r0 + j) + v1 * load(r1 + j) + v2 * load(r2 + j) + v3 * load(r3 + j));
    for (int64_t j = cv; j < cols; ++j) out[j] += v[p] * r0[j] + v[p + 1] * r1[j] + v[p + 2] * r2[j] + v[p + 3] * r3[j];
  }
  for (; p < k; ++p) {
    const T* r = P + p * ld;
    const Vec<T> vp = splat(v[p]);
    for (int64_t j = 0; j < cv; j += L) store(out + j, load(out + j) + vp * load(r + j));
    for (int64_t j = cv; j < cols; ++j) out[j] += v[p] * r[j];
  }
}


// ---- tiny products, operands in place (gemm.h: GemmSmall) ---------------------------------------
// An R-row x NV-vector register tile holds the whole K loop: per k, NV loads of one row of B (unit
// stride, read where it is) and R broadcasts of A (one scalar each, so any stride), R * NV FMAs.
// No packing: at 32^3 packing A (a transpose) and B cost about as much as the 32K multiply-adds.
// Edges run the same loop: the last vector of each row is a masked load/store (AVX-512 k-masks,
// AVX2 vmaskmov, a partial copy on the portable build) and a short row block is a smaller R, so no
// element of C goes through a scalar loop. R * NV accumulators + NV B vectors + one broadcast fit
// the register file: 24 accumulators of 32 zmm (NV up to 4: 64 float32 columns per block), 12 of
// 16 ymm/xmm (NV up to 2); R at most 12.
#if defined(__AVX512F__)
constexpr int kSmallAcc = 24, kSmallMaxVecs = 4;
#else
constexpr int kSmallAcc = 12, kSmallMaxVecs = 2;
#endif
template <int NV> constexpr int small_rows() { return kSmallAcc / NV < 12 ? kSmallAcc / NV : 12; }

// Whole-vector load and store as intrinsics: the memcpy forms (load/store above) applied to the
// tile's accumulators made GCC keep the accumulator array in memory, stored to on every k.
template <typename T> inline Vec<T> loadu(const T* p) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) return (Vec<T>)_mm512_loadu_ps(p);
  else return (Vec<T>)_mm512_loadu_pd(p);
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) return (Vec<T>)_mm256_loadu_ps(p);
  else return (Vec<T>)_mm256_loadu_pd(p);
#else
  return load(p);
#endif
}
template <typename T> inline void storeu(T* p, Vec<T> v) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) _mm512_storeu_ps(p, (__m512)v);
  else _mm512_storeu_pd(p, (__m512d)v);
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) _mm256_storeu_ps(p, (__m256)v);
  else _mm256_storeu_pd(p, (__m256d)v);
#else
  store(p, v);
#endif
}

// Lanes [0, n) of one vector (n in 1..lanes): loaded with the rest zero, stored without touching
// memory past them (so a tile may end at the end of an allocation).
template <typename T>
struct Tail {
  int n;
#if defined(__AVX512F__)
  uint16_t bits;
  explicit Tail(int lanes) : n(lanes), bits(uint16_t((1u << lanes) - 1)) {}
  Vec<T> load(const T* p) const {
    if constexpr (std::is_same_v<T, float>) return (Vec<T>)_mm512_maskz_loadu_ps(__mmask16(bits), p);
    else return (Vec<T>)_mm512_maskz_loadu_pd(__mmask8(bits), p);
  }
  void store(T* p, Vec<T> v) const {
    if constexpr (std::is_same_v<T, float>) _mm512_mask_storeu_ps(p, __mmask16(bits), (__m512)v);
    else _mm512_mask_storeu_pd(p, __mmask8(bits), (__m512d)v);
  }
#elif defined(__AVX2__)
  __m256i mask;
  explicit Tail(int lanes) : n(lanes) {
    if constexpr (std::is_same_v<T, float>)
      mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    else
      mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(lanes), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  Vec<T> load(const T* p) const {
    if constexpr (std::is_same_v<T, float>) return (Vec<T>)_mm256_maskload_ps(p, mask);
    else return (Vec<T>)_mm256_maskload_pd(p, mask);
  }
  void store(T* p, Vec<T> v) const {
    if constexpr (std::is_same_v<T, float>) _mm256_maskstore_ps(p, mask, (__m256)v);
    else _mm256_maskstore_pd(p, mask, (__m256d)v);
  }
#else
  explicit Tail(int lanes) : n(lanes) {}
  Vec<T> load(const T* p) const {  // a whole vector as one load: a copy of n elements is a libc call
    if (n == kLanes<T>) return loadu(p);
    Vec<T> v{};
    std::memcpy(&v, p, sizeof(T) * size_t(n));
    return v;
  }
  void store(T* p, Vec<T> v) const {
    if (n == kLanes<T>) return storeu(p, v);
    std::memcpy(p, &v, sizeof(T) * size_t(n));
  }
#endif
};

// GELU and its tanh form over a stored row: float32 through the SIMD table's vector erf/tanh, as in
// store_row; float64 per element.
template <typename T>
void activate_row(Activation act, T* c, int n) {
  if constexpr (std::is_same_v<T, float>) {
    simd().unary_f32(act == Activation::gelu ? UnaryOp::gelu : UnaryOp::gelu_tanh, c, c, n);
  } else {
    for (int j = 0; j < n; ++j) c[j] = apply_activation(act, c[j]);
  }
}

// The epilogue of a tile spilled to `acc` (rows x nv vectors, row-major, alpha applied): GemmStore's
// for a single K block, beta (0: C is not read), bias, then ReLU as a vector select (NaN stays NaN, as in
// store_row) or GELU on each stored row. Not inlined into the tile on purpose: with the epilogue's
// extra registers in the same function, GCC spilled 16 of the 24 accumulators on every k.
template <typename T>
__attribute__((noinline)) void store_small(const T* acc, int rows, int nv, T* C, int64_t ldc, const Tail<T>& tail,
                                           const GemmStore<T>& st) {
  constexpr int L = kLanes<T>;
  const Vec<T> beta = splat(st.beta), zero{};
  const bool read_c = st.beta != T(0), relu = st.act == Activation::relu;
  for (int i = 0; i < rows; ++i) {
    T* c = C + i * ldc;
    for (int v = 0; v < nv; ++v) {
      const bool edge = v == nv - 1;
      Vec<T> r = loadu(acc + (i * nv + v) * L);
      if (st.bias) r += edge ? tail.load(st.bias + v * L) : loadu(st.bias + v * L);
      if (read_c) r += beta * (edge ? tail.load(c + v * L) : loadu(c + v * L));
      if (relu) r = r <= zero ? zero : r;
      if (edge) tail.store(c + v * L, r);
      else storeu(c + v * L, r);
    }
    if (st.act != Activation::none && !relu) activate_row(st.act, c, (nv - 1) * L + tail.n);
  }
}

// A: R rows (row i at A + i * rsa, step k at + k * csa); B: the block's columns, row k at B + k * rsb.
template <typename T, int R, int NV>
void small_tile(int64_t k, const T* __restrict A, int64_t rsa, int64_t csa, const T* __restrict B, int64_t rsb,
                T* __restrict C, int64_t ldc, const Tail<T>& tail, const GemmStore<T>& st) {
  constexpr int L = kLanes<T>;
  Vec<T> acc[R][NV];  // (R, NV * L)
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = Vec<T>{};
  for (int64_t p = 0; p < k; ++p) {
    Vec<T> b[NV];
    for (int v = 0; v < NV - 1; ++v) b[v] = loadu(B + v * L);
    b[NV - 1] = tail.load(B + (NV - 1) * L);
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {
      const Vec<T> a = bcast(A + i * rsa);
      for (int v = 0; v < NV; ++v) acc[i][v] += a * b[v];
    }
    A += csa;
    B += rsb;
  }
  // alpha * acc goes straight into C, or, when the epilogue has more to do, into `spill` for
  // store_small. One store loop for both: with two, GCC kept acc in memory (stores on every k).
  const bool plain = st.beta == T(0) && !st.bias && st.act == Activation::none;
  alignas(64) T spill[R * NV * L];  // (R, NV * L)
  T* const out = plain ? C : spill;
  const int64_t ldo = plain ? ldc : NV * L;
  const Vec<T> alpha = splat(st.alpha);
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) {
    for (int v = 0; v < NV - 1; ++v) storeu(out + i * ldo + v * L, alpha * acc[i][v]);
    tail.store(out + i * ldo + (NV - 1) * L, alpha * acc[i][NV - 1]);
  }
  if (!plain) store_small(spill, R, NV, C, ldc, tail, st);
}

// `rows` (1..R) rows: the tile of exactly that many rows.
template <typename T, int NV, int R = small_rows<NV>()>
void small_block(int rows, int64_t k, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb, T* C,
                 int64_t ldc, const Tail<T>& tail, const GemmStore<T>& st) {
  if constexpr (R > 1)
    if (rows < R) return small_block<T, NV, R - 1>(rows, k, A, rsa, csa, B, rsb, C, ldc, tail, st);
  small_tile<T, R, NV>(k, A, rsa, csa, B, rsb, C, ldc, tail, st);
}

// All m rows against one block of NV vectors' columns, in row blocks of at most small_rows<NV>()
// spread evenly: 13 rows as 7 + 6, not 12 + 1, whose one row would have only NV independent FMA
// chains and wait on their latency.
template <typename T, int NV>
void small_columns(int64_t m, int64_t k, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb, T* C,
                   int64_t ldc, const Tail<T>& tail, const GemmStore<T>& st) {
  constexpr int MR = small_rows<NV>();
  const int64_t blocks = (m + MR - 1) / MR;
  for (int64_t b = 0, i0 = 0; b < blocks; ++b) {
    const int64_t i1 = m * (b + 1) / blocks;
    small_block<T, NV>(int(i1 - i0), k, A + i0 * rsa, rsa, csa, B, rsb, C + i0 * ldc, ldc, tail, st);
    i0 = i1;
  }
}

// Column blocks of kSmallMaxVecs vectors; the last one has fewer vectors and a masked last lane set.
template <typename T>
void gemm_small(int64_t m, int64_t n, int64_t k, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb,
                T* C, int64_t ldc, const GemmStore<T>& st) {
  constexpr int L = kLanes<T>, W = kSmallMaxVecs * L;
  for (int64_t j = 0; j < n; j += W) {
    const int cols = int(n - j < W ? n - j : W), nv = (cols + L - 1) / L;
    const Tail<T> tail(cols - (nv - 1) * L);
    GemmStore<T> s = st;
    s.bias = st.bias ? st.bias + j : nullptr;
    if (nv == 1) small_columns<T, 1>(m, k, A, rsa, csa, B + j, rsb, C + j, ldc, tail, s);
    else if (nv == 2) small_columns<T, 2>(m, k, A, rsa, csa, B + j, rsb, C + j, ldc, tail, s);
    if constexpr (kSmallMaxVecs == 4) {
      if (nv == 3) small_columns<T, 3>(m, k, A, rsa, csa, B + j, rsb, C + j, ldc, tail, s);
      else if (nv == 4) small_columns<T, 4>(m, k, A, rsa, csa, B + j, rsb, C + j, ldc, tail, s);
    }
  }
}

}  // namespace

#ifndef EMBER_F32_DIRECT
#define EMBER_F32_DIRECT nullptr  // this ISA always packs
#endif

extern const GemmKernels table = {
    EMBER_STR(EMBER_ISA),
    MR32, NV32 * kLanes<float>, EMBER_F32_KERNEL,
    MR64, NV64 * kLanes<double>, microkernel<double, MR64, NV64>,
    pack_transpose_f32,
    gemv_dot<float>, gemv_axpy<float>, gemv_dot<double>, gemv_axpy<double>,
    EMBER_F32_DIRECT,
    gemm_dot<float>, gemm_dot<double>,
    gemm_small<float>, gemm_small<double>,
};

}  // namespace ember::cpu::EMBER_CAT(gemm_, EMBER_ISA)
