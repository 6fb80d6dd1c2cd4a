// The GEMM micro-kernel interface: one register-tile kernel per ISA, chosen at run time with the
// SIMD table (cpu/simd/cpu_features.cpp). gemm_kernels.cpp is compiled once per ISA; gemm.cpp
// (the blocked driver: packing, cache blocking, threads) is ISA-neutral and calls through this table.
#pragma once
#include <cstdint>
#include "core/ops.h"

namespace ember::cpu {

// What the micro-kernel does with its MR x NR accumulator tile when it stores it into C:
//   first K block:  C = alpha * acc + beta * C   (beta == 0: C is not read, so NaN in C cannot leak)
//   later K blocks: C += alpha * acc
//   last K block:   then C += bias[j] and C = act(C), so linear + activation is one pass over C.
template <typename T>
struct GemmStore {
  T alpha, beta;
  bool first, last;
  const T* bias;  // per column, already offset to the tile's first column; nullptr = none
  Activation act;
};

// acc = sum_k Ap[k*MR + i] * Bp[k*NR + j], then stored into C (row stride ldc, unit column stride)
// for the m x n (m <= MR, n <= NR) part that exists. Ap/Bp are packed, zero-padded micro-panels.
template <typename T>
using GemmMicrokernel = void (*)(int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, int m, int n,
                                 const GemmStore<T>& st);

// The packing that transposes: dst[k * width + j] = src[j * ld + k] for j < rows, k < kc: `rows`
// rows of a row-major matrix (each read contiguously along k) interleaved into a k-major panel of
// `width` columns. It packs a row-major A (width MR) and a transposed B such as x @ W^T (width NR).
// Columns rows..width-1 are left as they are (the caller zero-fills short panels).
using PackTransposeF32 = void (*)(const float* src, int64_t ld, int64_t rows, int64_t kc, int width, float* dst);

// Matrix-vector forms for products with one row or one column (M == 1 or N == 1), where a register
// tile would be 1/MR or 1/NR full. Both read the matrix once, straight from memory (no packing):
//   dot:  out[i] = sum_k P[i * ld + k] * v[k]   for i < rows  (rows of P contiguous)
//   axpy: out[j] = sum_k v[k] * P[k * ld + j]   for j < cols  (columns of P contiguous)
template <typename T>
using GemvDot = void (*)(const T* P, int64_t ld, int64_t rows, int64_t k, const T* v, T* out);
template <typename T>
using GemvAxpy = void (*)(const T* P, int64_t ld, int64_t k, int64_t cols, const T* v, T* out);

// The float32 tile reading an operand in place instead of a packed panel: lda > 0, MR whole rows of
// a row-major A (row i at A + i * lda; else A is a packed panel); ldb > 0, NR whole columns of a
// row-major B (step k at B + k * ldb; else B is a packed panel). Null where the ISA has none (then
// both are always packed).
using GemmMicrokernelDirect = void (*)(int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb,
                                       float* C, int64_t ldc, int m, int n, const GemmStore<float>& st);

// Few-row products with both operands contiguous along K (x @ W^T at a small batch), read in place:
//   out[i * ldo + j] = sum_k A[i * lda + k] * B[j * ldb + k]   for i < m, j < n
template <typename T>
using GemmDot = void (*)(const T* A, int64_t lda, const T* B, int64_t ldb, int64_t m, int64_t n, int64_t k, T* out,
                         int64_t ldo);

// Tiny products read in place, no packing: C (m x n, row stride ldc) = A @ B stored through the
// GemmStore epilogue (first and last both hold: the whole K stays in registers), with
// A[i][p] = A[i * rsa + p * csa] (any strides: A is only ever broadcast) and B[p][j] = B[p * rsb + j]
// (unit column stride: B rows are vector loads; the caller copies any other B). For products whose
// operands sit in L1 (gemm.cpp: gemm_small), where packing costs as much as the multiply-adds.
template <typename T>
using GemmSmall = void (*)(int64_t m, int64_t n, int64_t k, const T* A, int64_t rsa, int64_t csa, const T* B,
                           int64_t rsb, T* C, int64_t ldc, const GemmStore<T>& st);

struct GemmKernels {
  const char* name;           // e.g. "avx512_6x32"
  int mr, nr;                 // float32 register tile
  GemmMicrokernel<float> f32;
  int mr64, nr64;             // float64 register tile
  GemmMicrokernel<double> f64;
  PackTransposeF32 pack_transpose_f32;
  GemvDot<float> gemv_dot_f32;
  GemvAxpy<float> gemv_axpy_f32;
  GemvDot<double> gemv_dot_f64;
  GemvAxpy<double> gemv_axpy_f64;
  GemmMicrokernelDirect f32_direct;
  GemmDot<float> gemm_dot_f32;
  GemmDot<double> gemm_dot_f64;
  GemmSmall<float> small_f32;
  GemmSmall<double> small_f64;
};

const GemmKernels& gemm_kernels();  // the table for the ISA in use

}  // namespace ember::cpu
