// GEMM micro-kernels, compiled once per ISA (EMBER_ISA = avx512 | avx2 | portable; see CMakeLists).
// Written with GCC/Clang vector extensions: a `Vec` is one machine register of floats (16 lanes with
// AVX-512, 8 with AVX2, 4 with SSE2), so the same template becomes each ISA's kernel.
//
// Register tile MR x NR (NR = NV vectors): the accumulators stay in registers for the whole K loop;
// per k the kernel loads NV vectors of B, broadcasts MR scalars of A and issues MR*NV FMAs.
//   AVX-512 6x32: 12 zmm accumulators + 2 B + 1 broadcast = 15 of 32 registers; 12 FMAs per 8 loads,
//                 enough independent FMAs (12) to cover the 4-cycle latency on 2 FMA pipes.
//   AVX2    6x16: 12 ymm accumulators + 2 B + 1 broadcast = 15 of 16 registers (the classic tile).
//   portable 4x8: 8 xmm accumulators, leaves room on any 16-register machine.
#include <cmath>
#include <cstring>
#include "core/scalar_math.h"
#include "cpu/microkernels/gemm.h"

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

// Stores one accumulator row (NV vectors) into c[0..n): the epilogue of GemmStore.
template <typename T, int NV>
inline void store_row(const Vec<T> (&acc)[NV], T* c, int n, const GemmStore<T>& st) {
  constexpr int L = kLanes<T>;
  T row[NV * L];
  for (int v = 0; v < NV; ++v) store(row + v * L, acc[v]);
  for (int j = 0; j < n; ++j) {
    T r = st.alpha * row[j];
    if (st.first) r = st.beta == T(0) ? r : r + st.beta * c[j];
    else r += c[j];
    if (st.last) {
      if (st.bias) r += st.bias[j];
      r = apply_activation(st.act, r);
    }
    c[j] = r;
  }
}

// Full-width rows with no bias/activation take the all-vector path.
template <typename T, int NV>
inline void store_row_fast(const Vec<T> (&acc)[NV], T* c, const GemmStore<T>& st) {
  constexpr int L = kLanes<T>;
  const Vec<T> alpha = splat(st.alpha);
  for (int v = 0; v < NV; ++v) {
    Vec<T> r = alpha * acc[v];
    if (!st.first) r += load(c + v * L);
    else if (st.beta != T(0)) r += splat(st.beta) * load(c + v * L);
    store(c + v * L, r);
  }
}

template <typename T, int MR, int NV>
void microkernel(int64_t kc, const T* __restrict Ap, const T* __restrict Bp, T* __restrict C, int64_t ldc,
                 int m, int n, const GemmStore<T>& st) {
  constexpr int L = kLanes<T>;
  Vec<T> acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = Vec<T>{};
  for (int64_t k = 0; k < kc; ++k) {
    Vec<T> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load(Bp + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const Vec<T> a = splat(Ap[i]);
      for (int v = 0; v < NV; ++v) acc[i][v] += a * b[v];
    }
    Ap += MR;
    Bp += NV * L;
  }
  const bool plain = n == NV * L && !(st.last && (st.bias || st.act != Activation::none));
  for (int i = 0; i < m; ++i) {
    if (plain) store_row_fast<T, NV>(acc[i], C + i * ldc, st);
    else store_row<T, NV>(acc[i], C + i * ldc, n, st);
  }
}

}  // namespace

extern const GemmKernels table = {
    EMBER_STR(EMBER_ISA),
    MR32, NV32 * kLanes<float>, microkernel<float, MR32, NV32>,
    MR64, NV64 * kLanes<double>, microkernel<double, MR64, NV64>,
};

}  // namespace ember::cpu::EMBER_CAT(gemm_, EMBER_ISA)
