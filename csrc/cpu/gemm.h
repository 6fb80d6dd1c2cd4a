// The CPU GEMM's building blocks, for kernels that tile their own work and keep operands packed
// across many small products (attention: a query tile is packed once and meets every key block).
// Layouts are gemm.cpp's: an A operand (rows x k) as MR-row micro-panels, a B operand (k x cols) as
// NR-column micro-panels, both zero-padded to whole panels, so sizes are whole panels times k.
#pragma once
#include <cstdint>

namespace ember::cpu {

template <typename T> int gemm_mr();  // the register tile of T's micro-kernel on this CPU
template <typename T> int gemm_nr();

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
template <typename T> int64_t packed_a_size(int64_t rows, int64_t k) { return round_up(rows, gemm_mr<T>()) * k; }
template <typename T> int64_t packed_b_size(int64_t k, int64_t cols) { return round_up(cols, gemm_nr<T>()) * k; }

// A[i][p] = a[i*rsa + p*csa] (rows x k) -> dst; B[p][j] = b[p*rsb + j*csb] (k x cols) -> dst.
template <typename T> void pack_a(const T* a, int64_t rsa, int64_t csa, int64_t rows, int64_t k, T* dst);
template <typename T> void pack_b(const T* b, int64_t rsb, int64_t csb, int64_t k, int64_t cols, T* dst);
// Columns [k0, k1) of A into their place in pack_a's layout for depth k, so that threads can each
// pack their own part of one shared operand.
template <typename T>
void pack_a_columns(const T* a, int64_t rsa, int64_t csa, int64_t rows, int64_t k, int64_t k0, int64_t k1, T* dst);

// C (m x n, row stride ldc) = alpha * Ap @ Bp + beta * C (+ bias[j]) on the calling thread (beta ==
// 0: C is not read). Ap/Bp come from pack_a/pack_b with the same k; bias: n values or null.
template <typename T>
void gemm_packed(int64_t m, int64_t n, int64_t k, const T* Ap, const T* Bp, T* c, int64_t ldc, T alpha, T beta,
                 const T* bias = nullptr);

}  // namespace ember::cpu
