// GEMM on the CPU: C[b] = alpha * A[b] @ B[b] + beta * C[b] (+ bias per column, then an activation),
// float32 and float64, any strides for A and B (transposes are just strides), C with unit column stride.
//
// Algorithm (the BLIS/GotoBLAS loop nest):
//   for jc in N step NC          B block (KC x NC) lives in L3
//     for pc in K step KC        pack B[pc:pc+KC, jc:jc+NC] into NR-wide micro-panels    -> Bp
//       for ic in M step MC      pack A[ic:ic+MC, pc:pc+KC] into MR-tall micro-panels     -> Ap (L2)
//         for jr, ir             micro-kernel: (MR x KC) @ (KC x NR) into registers, then C
// Packing turns any layout into unit-stride, zero-padded panels, so the micro-kernel never sees a
// stride or an edge; edges are handled only when storing the tile.
//
// Block sizes come from the cache sizes read at run time (sysconf), after BLIS's analysis (Low et al.,
// TOMS 2016), with the roles that fit a row-major C: the MR x KC micro-panel of A (broadcast operand)
// stays in L1, so KC = L1 / (2 MR sizeof(T)); the KC x NC block of B (vector operand) stays in L2, so
// NC = L2 / (2 KC sizeof(T)); the B micro-panels stream from it with prefetches (gemm_kernels.cpp).
// EMBER_GEMM_KC / EMBER_GEMM_NC override them, for tuning.
// Products under kSerialFlops (~0.8 MFLOP: 64^3, 8x8x8) skip all of that: one register-tile pass over
// A and B where they lie (gemm_small), on one thread; a batch of them is split over the threads.
// Threads: one parallel region per call, work split by rows or by columns (see gemm_blocked), so 2 to
// 64 cores all get work whether M or N is small. Problems under kSerialFlops stay on one thread (a
// parallel region costs microseconds); many small batched GEMMs run one per thread instead.
#include <omp.h>
#include <unistd.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/scalar_math.h"
#include "cpu/gemm.h"
#include "cpu/microkernels/gemm.h"
#include "cpu/parallel.h"

namespace ember::cpu {

template <> int gemm_mr<float>() { return gemm_kernels().mr; }
template <> int gemm_mr<double>() { return gemm_kernels().mr64; }
template <> int gemm_nr<float>() { return gemm_kernels().nr; }
template <> int gemm_nr<double>() { return gemm_kernels().nr64; }

namespace {

struct Blocking { int64_t kc, nc; };

int64_t cache_bytes(int name, int64_t fallback) {
  long v = sysconf(name);
  return v > 0 ? int64_t(v) : fallback;
}

int64_t env_int(const char* name, int64_t fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::max<int64_t>(1, std::atoll(s)) : fallback;
}

int64_t round_down(int64_t v, int64_t m) { return std::max(m, v / m * m); }

template <typename T> GemmMicrokernel<T> microkernel() {
  if constexpr (std::is_same_v<T, float>) return gemm_kernels().f32;
  else return gemm_kernels().f64;
}

Blocking compute_blocking(int mr, int nr, size_t elem) {
  static const int64_t l1 = cache_bytes(_SC_LEVEL1_DCACHE_SIZE, 32 << 10);
  static const int64_t l2 = cache_bytes(_SC_LEVEL2_CACHE_SIZE, 1 << 20);
  Blocking b;
  b.kc = env_int("EMBER_GEMM_KC", std::clamp<int64_t>(round_down(l1 / (2 * mr * int64_t(elem)), 8), 64, 1024));
  b.nc = env_int("EMBER_GEMM_NC", std::clamp<int64_t>(l2 / (2 * b.kc * int64_t(elem)), nr, 8192));
  b.nc = round_down(b.nc, nr);
  return b;
}

// Blocking for T's register tile, computed once: sysconf and getenv are not free per call.
template <typename T>
const Blocking& blocking() {
  static const Blocking b = compute_blocking(gemm_mr<T>(), gemm_nr<T>(), sizeof(T));
  return b;
}

// The K slice for a product of depth k: K cut into equal slices of at most bl.kc. Cutting 384 as
// 336 + 48 would run a whole extra pass over C (read, add, write) for 48 units of work; 2 x 192 or
// one slice of 384 (when it fits) does not.
int64_t k_slice(const Blocking& bl, int64_t k) {
  const int64_t slices = (k + bl.kc - 1) / bl.kc;
  return (k + slices - 1) / std::max<int64_t>(slices, 1);
}

// The B block width for `cols` columns: equal blocks of at most bl.nc, whole NR panels (512 columns
// as 2 x 256, not 384 + 128: the short block would pack and sweep the A panels for a third of the
// work).
int64_t n_block(const Blocking& bl, int64_t cols, int nr) {
  const int64_t blocks = (cols + bl.nc - 1) / bl.nc;
  return std::min(bl.nc, round_up((cols + blocks - 1) / std::max<int64_t>(blocks, 1), nr));
}

// Per-thread packing buffers, 64-byte aligned, grown on demand and reused across calls.
struct PackBuffer {
  std::unique_ptr<char, decltype(&std::free)> mem{nullptr, &std::free};
  size_t size = 0;
  template <typename T> T* get(size_t n) {
    size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    if (bytes > size) {
      mem.reset(static_cast<char*>(std::aligned_alloc(64, bytes)));
      if (!mem) fail<OutOfMemory>("gemm", "cannot allocate a ", bytes, "-byte packing buffer");
      size = bytes;
    }
    return reinterpret_cast<T*>(mem.get());
  }
};
thread_local PackBuffer tl_a, tl_b;

// Ap[p][k][i] = A[p*MR + i][k]: MR rows of one k contiguous; rows past m are zero.
template <typename T>
void pack_a_panel(const T* a, int64_t rsa, int64_t csa, int64_t rows, int64_t kc, int mr, T* dst) {
  if (rows < mr) std::memset(dst, 0, sizeof(T) * size_t(mr * kc));
  if (csa == 1) {  // row-major A: read each row contiguously
    if constexpr (std::is_same_v<T, float>) return gemm_kernels().pack_transpose_f32(a, rsa, rows, kc, mr, dst);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = 0; k < kc; ++k) dst[k * mr + i] = a[i * rsa + k];
  } else {
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t i = 0; i < rows; ++i) dst[k * mr + i] = a[i * rsa + k * csa];
  }
}

// Bp[q][k][j] = B[k][q*NR + j]: NR columns of one k contiguous; columns past n are zero.
template <typename T>
void pack_b_panel(const T* b, int64_t rsb, int64_t csb, int64_t cols, int64_t kc, int nr, T* dst) {
  if (cols < nr) std::memset(dst, 0, sizeof(T) * size_t(nr * kc));
  if (csb == 1) {
    for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * nr, b + k * rsb, sizeof(T) * size_t(cols));
  } else if (rsb == 1) {  // transposed B (x @ W^T): read each column contiguously, 64 k at a time
    // so the 64 x NR piece of the panel being written (8 KiB) stays in L1 across the columns.
    if constexpr (std::is_same_v<T, float>) return gemm_kernels().pack_transpose_f32(b, csb, cols, kc, nr, dst);
    for (int64_t k0 = 0; k0 < kc; k0 += 64) {
      const int64_t k1 = std::min<int64_t>(kc, k0 + 64);
      for (int64_t j = 0; j < cols; ++j)
        for (int64_t k = k0; k < k1; ++k) dst[k * nr + j] = b[j * csb + k];
    }
  } else {
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = 0; j < cols; ++j) dst[k * nr + j] = b[k * rsb + j * csb];
  }
}

template <typename T>
struct Problem {
  int64_t m, n, k;
  const T* a; int64_t rsa, csa;
  const T* b; int64_t rsb, csb;
  T* c; int64_t ldc;
  T alpha, beta;
  const T* bias;
  Activation act;
  // B already packed by gemm_pack_b (then b is unused): for each KC slice of K, all NR-column panels
  // of N in order, panel q of the slice starting at pc * NP * NR + q * NR * kc (NP panels in all).
  const T* packed_b = nullptr;
};

// K == 0: C = beta * C (+ bias, act); nothing to multiply.
template <typename T>
void scale_only(const Problem<T>& p) {
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      T* c = p.c + i * p.ldc + j;
      T v = p.beta == T(0) ? T(0) : p.beta * *c;
      if (p.bias) v += p.bias[j];
      *c = apply_activation(p.act, v);
    }
}

// Buffers for rows [r0, r1) x columns [c0, c1): Ap for the rows' A panels of one K slice, Bp for one
// KC x NC block of B.
template <typename T>
size_t a_buffer_size(const Blocking& bl, int64_t k, int64_t rows, int mr) {
  return size_t(std::min(bl.kc, k) * ((rows + mr - 1) / mr) * mr);
}
template <typename T>
size_t b_buffer_size(const Blocking& bl, int64_t k, int64_t cols, int nr) {
  return size_t(std::min(bl.kc, k) * std::min(bl.nc, (cols + nr - 1) / nr * nr));
}

// C[r0:r1, c0:c1]. Per KC slice of K, the thread packs its A rows once (MR-row micro-panels), then
// for each NC-column block of B (packed, stays in L2) runs every A micro-panel (MR x KC, stays in
// L1 while it is used) against all the block's NR-column B micro-panels. Packing A once per K slice,
// not once per B block, matters: transposing A into panels costs about as much per element as an
// MR x NR x 1 update, so it must be amortised over all of N.
// Operands read in place (the micro-kernel table's direct form) instead of packed: a row-major A when
// the thread has few columns, a row-major B when it has few rows. A packed element is then used in
// only that many multiply-adds, about what packing it costs (one thread, AVX-512, GFLOP/s packed ->
// direct: 1024x1024 @ 1024x16 47 -> 85, 4096x256 @ 256x32 99 -> 165, 1000x1000 @ 1000x64 135 -> 204;
// unchanged at 255^3 and 513^3; B in place: 16x1024 @ 1024x1024 70 -> 111, 12x768 @ 768x3072 63 -> 129,
// but 24 rows 96 -> 87, hence 16). Only whole register tiles go direct; ragged edges stay packed
// (zero-padded). EMBER_GEMM_DIRECT_A_COLS / EMBER_GEMM_DIRECT_B_ROWS override the limits, 0 = off.
struct Direct {
  GemmMicrokernelDirect kernel = nullptr;
  bool a = false, b = false;
};

int64_t env_limit(const char* name, int64_t fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::atoll(s) : fallback;
}

template <typename T>
Direct direct_operands(const Problem<T>& p, int64_t rows, int64_t cols) {
  static const int64_t max_cols = env_limit("EMBER_GEMM_DIRECT_A_COLS", 256);
  static const int64_t max_rows = env_limit("EMBER_GEMM_DIRECT_B_ROWS", 16);
  Direct d;
  if constexpr (std::is_same_v<T, float>) {
    d.kernel = gemm_kernels().f32_direct;
    d.a = d.kernel && p.csa == 1 && p.rsa > 0 && cols <= max_cols;
    d.b = d.kernel && !p.packed_b && p.csb == 1 && p.rsb > 0 && rows <= max_rows;
  }
  return d;
}

template <typename T>
void gemm_range(const Problem<T>& p, GemmMicrokernel<T> kernel, int mr, int nr, const Blocking& bl,
                int64_t r0, int64_t r1, int64_t c0, int64_t c1, T* Ap, T* Bp) {
  const int64_t m_panels = (r1 - r0 + mr - 1) / mr;
  const int64_t kc_step = k_slice(bl, p.k), nc_step = n_block(bl, c1 - c0, nr);
  const Direct direct = direct_operands(p, r1 - r0, c1 - c0);
  for (int64_t pc = 0; pc < p.k; pc += kc_step) {
    const int64_t kc = std::min(kc_step, p.k - pc);
    for (int64_t i = 0; i < m_panels; ++i)
      if (!direct.a || r1 - r0 - i * mr < mr)  // direct A: only a ragged last panel is packed
        pack_a_panel(p.a + (r0 + i * mr) * p.rsa + pc * p.csa, p.rsa, p.csa,
                     std::min<int64_t>(mr, r1 - r0 - i * mr), kc, mr, Ap + i * mr * kc);
    GemmStore<T> st{p.alpha, p.beta, pc == 0, pc + kc >= p.k, nullptr, p.act};
    for (int64_t jc = c0; jc < c1; jc += nc_step) {
      const int64_t nc = std::min(nc_step, c1 - jc), nq = (nc + nr - 1) / nr;
      const T* Bb = Bp;
      if (p.packed_b) {  // prepacked: point into it (jc is a multiple of NR)
        Bb = p.packed_b + pc * ((p.n + nr - 1) / nr) * nr + (jc / nr) * nr * kc;
      } else {
        for (int64_t q = 0; q < nq; ++q)
          if (!direct.b || nc - q * nr < nr)  // direct B: only a ragged last panel is packed
            pack_b_panel(p.b + pc * p.rsb + (jc + q * nr) * p.csb, p.rsb, p.csb, std::min<int64_t>(nr, nc - q * nr),
                         kc, nr, Bp + q * nr * kc);
      }
      for (int64_t i = 0; i < m_panels; ++i) {
        const int64_t row = r0 + i * mr;
        const int m = int(std::min<int64_t>(mr, r1 - row));
        for (int64_t q = 0; q < nq; ++q) {
          const int64_t col = jc + q * nr;
          const int n = int(std::min<int64_t>(nr, nc - q * nr));
          st.bias = p.bias ? p.bias + col : nullptr;
          if constexpr (std::is_same_v<T, float>) {
            const bool in_place_a = direct.a && m == mr, in_place_b = direct.b && n == nr;
            if (in_place_a || in_place_b) {
              direct.kernel(kc, in_place_a ? p.a + row * p.rsa + pc : Ap + i * mr * kc, in_place_a ? p.rsa : 0,
                            in_place_b ? p.b + pc * p.rsb + col : Bb + q * nr * kc, in_place_b ? p.rsb : 0,
                            p.c + row * p.ldc + col, p.ldc, m, n, st);
              continue;
            }
          }
          kernel(kc, Ap + i * mr * kc, Bb + q * nr * kc, p.c + row * p.ldc + col, p.ldc, m, n, st);
        }
      }
    }
  }
}

// Per thread, a split costs its share of the multiply-adds (rows x cols per unit of K) plus its
// packing (rows of A + cols of B per unit of K, each element copied once). One packed element costs
// about as much as 20 multiply-adds at the micro-kernel's rate (measured on Zen 4: ~0.4 ns against
// ~100 GFLOP/s), so a short, wide C such as a 128 x 256 MLP layer splits by columns (each thread
// packs all of a small A and half of B) and a tall one by rows.
bool split_by_columns(int64_t m_panels, int64_t n_panels, int mr, int nr, int threads) {
  constexpr int64_t kPackCost = 20;
  auto cost = [&](int64_t rows, int64_t cols) { return rows * cols + kPackCost * (rows + cols); };
  const int64_t t = threads;
  const int64_t by_rows = cost((m_panels + t - 1) / t * mr, n_panels * nr);
  const int64_t by_cols = cost(m_panels * mr, (n_panels + t - 1) / t * nr);
  return by_cols < by_rows;
}

// Threads split C by whole MR-row panels: each packs only its own rows of A (the costly
// transposition) and its own copy of each B block (row copies, cheap), and keeps that block in its
// own L2 (private on most x86 parts). When that costs more (split_by_columns) they split by
// NR-column panels instead. Either way the threads never wait for each other inside the call: a version that
// shared the packed B between barriers was as fast alone but 100x slower right after a NumPy call,
// while OpenBLAS's idle threads spin on the same cores (measured: 256^3 took 24 ms instead of 0.2).
template <typename T>
void gemm_blocked(const Problem<T>& p, GemmMicrokernel<T> kernel, int mr, int nr, int threads) {
  const Blocking& bl = blocking<T>();
  const int64_t n_panels = (p.n + nr - 1) / nr, m_panels = (p.m + mr - 1) / mr;
  if (threads <= 1)
    return gemm_range(p, kernel, mr, nr, bl, 0, p.m, 0, p.n, tl_a.get<T>(a_buffer_size<T>(bl, p.k, p.m, mr)),
                      tl_b.get<T>(b_buffer_size<T>(bl, p.k, p.n, nr)));
  const bool by_cols = split_by_columns(m_panels, n_panels, mr, nr, threads);
  const int64_t units = by_cols ? n_panels : m_panels;
  const int nt = int(std::min<int64_t>(threads, units));
  // An exception must not leave an OpenMP region (that would terminate the process): the first one
  // is kept and rethrown after the region (e.g. MemoryError from a packing buffer).
  std::exception_ptr error;
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), n_t = omp_get_num_threads();
    const int64_t u0 = units * t / n_t, u1 = units * (t + 1) / n_t;
    const int64_t r0 = by_cols ? 0 : std::min(p.m, u0 * mr), r1 = by_cols ? p.m : std::min(p.m, u1 * mr);
    const int64_t c0 = by_cols ? std::min(p.n, u0 * nr) : 0, c1 = by_cols ? std::min(p.n, u1 * nr) : p.n;
    try {
      if (r0 < r1 && c0 < c1)
        gemm_range(p, kernel, mr, nr, bl, r0, r1, c0, c1, tl_a.get<T>(a_buffer_size<T>(bl, p.k, r1 - r0, mr)),
                   tl_b.get<T>(b_buffer_size<T>(bl, p.k, c1 - c0, nr)));
    } catch (...) {
#pragma omp critical(ember_gemm_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// Below this a parallel region costs more than it saves, and products run on one thread (the small
// path, gemm_small, takes most of them). Zen 5 (2 cores, quiet moments of a shared machine), us:
// 64^3 (0.52 MFLOP) blocked 3.5 on one thread, 3.2-3.3 on two, small 2.8 on one; 72^3 (0.75 MFLOP)
// small 4.2-4.3, blocked on two 4.4-4.6; 80^3 (1.0 MFLOP) small 5.0-5.2, blocked on two 4.7-6.1.
// (It was 5e5, from 64^3 blocked on Zen 4: 8.0 us on one thread, 6.2 on two.) When the other cores
// are busy, a region can wait a whole scheduler slice (ms) for its second thread: one more reason
// not to fork for a few microseconds of work.
constexpr double kSerialFlops = 8e5;

// ---- one row or one column: matrix-vector ------------------------------------------------------
// C (M x 1) = A @ b or C (1 x N) = a @ B as out[o] = sum_k mat(o, k) * vec(k) over the outputs o, on
// the GEMV forms of the micro-kernel table (no packing, each matrix element read once): the blocked
// path would fill 1 of MR rows (or 1..NR columns) of every register tile. Returns false for a matrix
// operand with neither unit stride, which the blocked path handles.
template <typename T>
struct GemvKernels {
  GemvDot<T> dot;
  GemvAxpy<T> axpy;
};
template <typename T> GemvKernels<T> gemv_kernels() {
  if constexpr (std::is_same_v<T, float>) return {gemm_kernels().gemv_dot_f32, gemm_kernels().gemv_axpy_f32};
  else return {gemm_kernels().gemv_dot_f64, gemm_kernels().gemv_axpy_f64};
}

thread_local PackBuffer tl_vec, tl_out;

// C = act(alpha * acc + beta * C + bias) for a rows x cols block of raw products acc (row-major): the
// GemmStore epilogue of the paths that do not store through a micro-kernel. beta == 0 never reads C.
template <typename T>
void store_products(const Problem<T>& p, const T* acc, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      T* c = p.c + i * p.ldc + j;
      T v = p.alpha * acc[i * cols + j] + (p.beta == T(0) ? T(0) : p.beta * *c);
      if (p.bias) v += p.bias[j];
      *c = apply_activation(p.act, v);
    }
}

// alpha = 1, beta = 0, no bias, no activation: C is just the products, so a kernel writes them
// into C itself (store_products' pass over a 16384 x 64 @ 64 x 1 product took 28% of it).
template <typename T>
bool plain_products(const Problem<T>& p) {
  return p.alpha == T(1) && p.beta == T(0) && !p.bias && p.act == Activation::none;
}

template <typename T>
bool gemv(const Problem<T>& p, int threads) {
  const bool column = p.n == 1;  // C = A @ b; otherwise p.m == 1: C = a @ B
  const int64_t outs = column ? p.m : p.n;
  // mat(o, k) = mat[o * ro + k * ko], vec(k) = vec[k * vs]
  const T* mat = column ? p.a : p.b;
  const int64_t ro = column ? p.rsa : p.csb, ko = column ? p.csa : p.rsb;
  const bool dot = ko == 1 || p.k == 1;
  if (!dot && ro != 1 && outs > 1) return false;
  const T* vec = column ? p.b : p.a;
  const int64_t vs = column ? p.rsb : p.csa;
  if (vs != 1) {  // a strided vector is gathered once (K elements) so the kernels stream it
    T* packed = tl_vec.get<T>(size_t(p.k));
    for (int64_t i = 0; i < p.k; ++i) packed[i] = vec[i * vs];
    vec = packed;
  }
  const bool in_place = plain_products(p) && (!column || p.ldc == 1 || outs == 1);
  T* acc = in_place ? p.c : tl_out.get<T>(size_t(outs));
  const GemvKernels<T> kern = gemv_kernels<T>();
  auto part = [&](int64_t o0, int64_t o1) {
    if (dot) kern.dot(mat + o0 * ro, ro, o1 - o0, p.k, vec, acc + o0);
    else kern.axpy(mat + o0, ko, p.k, o1 - o0, vec, acc + o0);
  };
  // Outputs split over the threads in whole vectors' worth (64 bytes) when the matrix is large
  // enough to pay for a region (the same threshold as the blocked path's, in multiply-adds).
  const int64_t grain = std::max<int64_t>(16, int64_t(kSerialFlops / 2) / std::max<int64_t>(p.k, 1));
  if (threads > 1 && outs > grain) {
    parallel_for((outs + 15) / 16, grain / 16, [&](int64_t b0, int64_t b1) { part(b0 * 16, std::min(outs, b1 * 16)); });
  } else {
    part(0, outs);
  }
  if (!in_place) store_products(p, acc, column ? outs : 1, column ? 1 : outs);
  return true;
}

// Products of few rows with A and B both contiguous along K (x @ W^T at a small batch): the
// micro-kernel table's dot form, reading both in place. A register tile would be mostly empty rows
// (8 of 12 on AVX-512) and packing W would copy each element to use it `rows` times. Only for
// problems that stay on one thread (under kSerialFlops); larger ones pack and split. And only for a
// long K: each output ends in a horizontal sum of a vector, which at K = 64 cost more than the
// products (one AVX-512 thread, dot vs packed: 8x64 @ 64x64 3.2 vs 1.3 us, 8x256 @ 256x64 5.1 vs 4.6,
// 8x320 @ 320x64 5.4 vs 6.8, 8x784 @ 784x32 4.5 vs 7.7, 3x1000 @ 1000x40 6.6 vs 13.9).
constexpr int64_t kDotMaxRows = 8, kDotMinDepth = 320;

template <typename T>
bool gemm_few_rows(const Problem<T>& p) {
  const double flops = 2.0 * double(p.m) * double(p.n) * double(p.k);
  if (p.m > kDotMaxRows || p.k < kDotMinDepth || p.csa != 1 || p.rsb != 1 || flops >= kSerialFlops) return false;
  const bool in_place = plain_products(p);
  T* acc = in_place ? p.c : tl_out.get<T>(size_t(p.m * p.n));
  const int64_t ld = in_place ? p.ldc : p.n;
  if constexpr (std::is_same_v<T, float>) gemm_kernels().gemm_dot_f32(p.a, p.rsa, p.b, p.csb, p.m, p.n, p.k, acc, ld);
  else gemm_kernels().gemm_dot_f64(p.a, p.rsa, p.b, p.csb, p.m, p.n, p.k, acc, ld);
  if (!in_place) store_products(p, acc, p.m, p.n);
  return true;
}

// ---- tiny products: register tiles on the operands in place ------------------------------------
// Every product that stays on one thread (under kSerialFlops) runs the micro-kernel table's small
// form (gemm.h: GemmSmall): no packing, no K slices, no buffers, one call. The blocked path's fixed
// costs (packing A as a transpose and B into panels, a micro-kernel call per panel with ragged-edge
// stores) are as large as the multiply-adds there. One AVX-512 thread, us small / blocked: 32^3 0.86
// / 1.09, 48^3 1.5 / 2.6, 64^3 2.8 / 3.5, 256x32 @ 32x32 3.1 / 4.4, 32x512 @ 512x32 5.4 / 6.4,
// 32x32 @ 32x512 5.7 / 8.7, 33x7 @ 7x65 1.1 / 2.1, and up to 160^3 (36 / 43), so only the thread
// count bounds it. It also replaced a row-by-row axpy form for depth <= 2 (small / axpy: 512x2 @
// 2x128 3.2-5.3 / 10.5-12, 32x1 @ 1x784 1.8-2.6 / 2.4-2.5). A B without unit column stride (x @ W^T) is first copied to a contiguous
// K x N block on the stack (the small form reads rows of B as vectors), up to kSmallCopyBytes, so
// that it stays in L1 (48 KiB on Zen 5) next to A; a larger one goes to the blocked path.
// EMBER_GEMM_SMALL_FLOPS overrides the bound (0 = off), for tuning.
constexpr int64_t kSmallCopyBytes = 32 << 10;

template <typename T> GemmSmall<T> small_kernel() {
  if constexpr (std::is_same_v<T, float>) return gemm_kernels().small_f32;
  else return gemm_kernels().small_f64;
}

template <typename T>
bool small_applies(const Problem<T>& p) {
  static const double max_flops = double(env_limit("EMBER_GEMM_SMALL_FLOPS", int64_t(kSerialFlops)));
  const double flops = 2.0 * double(p.m) * double(p.n) * double(p.k);
  return !p.packed_b && flops < max_flops && (p.csb == 1 || p.k * p.n * int64_t(sizeof(T)) <= kSmallCopyBytes);
}

// dst[k * n + j] = B[k][j]: a transposed B through the micro-kernel table's 8 x 8 transposes.
template <typename T>
void copy_b(const Problem<T>& p, T* dst) {
  if constexpr (std::is_same_v<T, float>) {
    if (p.rsb == 1) return gemm_kernels().pack_transpose_f32(p.b, p.csb, p.n, p.k, int(p.n), dst);
  }
  for (int64_t k = 0; k < p.k; ++k)
    for (int64_t j = 0; j < p.n; ++j) dst[k * p.n + j] = p.b[k * p.rsb + j * p.csb];
}

template <typename T>
void gemm_small(const Problem<T>& p) {
  const GemmStore<T> st{p.alpha, p.beta, true, true, p.bias, p.act};
  if (p.csb == 1) return small_kernel<T>()(p.m, p.n, p.k, p.a, p.rsa, p.csa, p.b, p.rsb, p.c, p.ldc, st);
  alignas(64) T b[kSmallCopyBytes / sizeof(T)];  // (K, N)
  copy_b(p, b);
  small_kernel<T>()(p.m, p.n, p.k, p.a, p.rsa, p.csa, b, p.n, p.c, p.ldc, st);
}

template <typename T>
void run(const Problem<T>& p, int threads) {
  if (p.m == 0 || p.n == 0) return;
  if (p.k == 0) return scale_only(p);
  if ((p.m == 1 || p.n == 1) && !p.packed_b && gemv(p, threads)) return;
  if (!p.packed_b && gemm_few_rows(p)) return;
  if (small_applies(p)) return gemm_small(p);
  gemm_blocked(p, microkernel<T>(), gemm_mr<T>(), gemm_nr<T>(), threads);
}

}  // namespace

// a: (batch, M, K), b: (batch, K, N), c: (batch, M, N) with unit column stride; batch strides may be
// 0 (broadcast operands). bias: contiguous (N,) or null.
void gemm(const Array& a, const Array& b, Array& c, double alpha, double beta, const Array* bias, Activation act) {
  dispatch_float(c.dtype(), "gemm", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      const int64_t batch = c.shape(0), m = c.shape(1), n = c.shape(2), k = a.shape(2);
      auto problem = [&](int64_t i) {
        return Problem<T>{m, n, k,
                          a.data<T>() + i * a.strides()[0], a.strides()[1], a.strides()[2],
                          b.data<T>() + i * b.strides()[0], b.strides()[1], b.strides()[2],
                          c.data<T>() + i * c.strides()[0], c.strides()[1],
                          T(alpha), T(beta), bias ? bias->data<T>() : nullptr, act};
      };
      const double flops = 2.0 * double(m) * double(n) * double(k);
      if (m > 0 && n > 0 && k > 0 && small_applies(problem(0))) {
        // Tiny products (4096 x 8^3): contiguous chunks of the batch per thread, each product one
        // call of the small form. Threads only when a thread's share is worth a region.
        const int64_t grain = std::max<int64_t>(1, int64_t(kSerialFlops / flops));
        return parallel_for(batch, grain, [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) gemm_small(problem(i));
        });
      }
      const int max_threads = omp_in_parallel() ? 1 : omp_get_max_threads();
      // A batch goes one GEMM per thread (each serial, no fork/join per product) when its products
      // are small, or when they share out evenly: 16 x (128 x 64 @ 64 x 128), attention's shape,
      // 143 -> 190 GFLOP/s on two threads; 8 x 256^3 unchanged. An uneven few large ones (3 x 512^3)
      // run one after another, each on all threads.
      const bool by_batch = batch > 1 && (flops < kSerialFlops * max_threads || batch % max_threads == 0 ||
                                          batch >= 4 * int64_t(max_threads));
      if (by_batch && max_threads > 1) {
        std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(int(std::min<int64_t>(batch, max_threads)))
        for (int64_t i = 0; i < batch; ++i) {
          try {
            run(problem(i), 1);
          } catch (...) {
#pragma omp critical(ember_gemm_error)
            if (!error) error = std::current_exception();
          }
        }
        if (error) std::rethrow_exception(error);
        return;
      }
      const int threads = flops < kSerialFlops ? 1 : max_threads;
      for (int64_t i = 0; i < batch; ++i) run(problem(i), threads);
    } else {
      fail<TypeError>("matmul", "CPU GEMM supports float32 and float64, got ", dtype_name(c.dtype()));
    }
  });
}

// B (K, N) packed for every KC slice and NR panel, in gemm_range's prepacked layout, so that many
// products with the same B (an RNN's W_hh at every time step) skip its packing entirely.
Array gemm_pack_b(const Array& b) {
  return dispatch_f32_f64(b.dtype(), "gemm_pack_b", [&](auto tag) {
    using T = decltype(tag);
    const int nr = gemm_nr<T>();
    const int64_t k = b.shape(0), n = b.shape(1), np = (n + nr - 1) / nr, kc_max = k_slice(blocking<T>(), k);
    Array out = Array::empty({std::max<int64_t>(1, k * np * nr)}, b.dtype(), b.device());
    T* dst = out.data<T>();
    const T* src = b.data<T>();
    parallel_for(np, 4, [&](int64_t q0, int64_t q1) {
      for (int64_t pc = 0; pc < k; pc += kc_max) {
        const int64_t kc = std::min(kc_max, k - pc);
        for (int64_t q = q0; q < q1; ++q)
          pack_b_panel(src + pc * b.strides()[0] + q * nr * b.strides()[1], b.strides()[0], b.strides()[1],
                       std::min<int64_t>(nr, n - q * nr), kc, nr, dst + pc * np * nr + q * nr * kc);
      }
    });
    return out;
  });
}

// c (M, N) = a (M, K) @ B, with B given as gemm_pack_b(B) of a (K, N) matrix; bias (N,) or null.
void gemm_prepacked(const Array& a, const Array& packed, int64_t n, Array& c, double beta, const Array* bias,
                    Activation act) {
  dispatch_f32_f64(c.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const int64_t m = a.shape(0), k = a.shape(1);
    Problem<T> p{m, n, k, a.data<T>(), a.strides()[0], a.strides()[1], nullptr, 0, 0, c.data<T>(), c.strides()[0],
                 T(1), T(beta), bias ? bias->data<T>() : nullptr, act, packed.data<T>()};
    const double flops = 2.0 * double(m) * double(n) * double(k);
    run(p, flops < kSerialFlops || omp_in_parallel() ? 1 : omp_get_max_threads());
  });
}

// The building blocks of gemm.h: whole-operand packing and a serial product of packed operands.

template <typename T>
void pack_a_columns(const T* a, int64_t rsa, int64_t csa, int64_t rows, int64_t k, int64_t k0, int64_t k1, T* dst) {
  const int mr = gemm_mr<T>();
  for (int64_t i = 0; i < rows; i += mr)
    pack_a_panel(a + i * rsa + k0 * csa, rsa, csa, std::min<int64_t>(mr, rows - i), k1 - k0, mr, dst + i * k + k0 * mr);
}

template <typename T>
void pack_a(const T* a, int64_t rsa, int64_t csa, int64_t rows, int64_t k, T* dst) {
  pack_a_columns(a, rsa, csa, rows, k, 0, k, dst);
}

template <typename T>
void pack_b(const T* b, int64_t rsb, int64_t csb, int64_t k, int64_t cols, T* dst) {
  const int nr = gemm_nr<T>();
  for (int64_t j = 0; j < cols; j += nr)
    pack_b_panel(b + j * csb, rsb, csb, std::min<int64_t>(nr, cols - j), k, nr, dst + j * k);
}

template <typename T>
void gemm_packed(int64_t m, int64_t n, int64_t k, const T* Ap, const T* Bp, T* c, int64_t ldc, T alpha, T beta,
                 const T* bias) {
  const int mr = gemm_mr<T>(), nr = gemm_nr<T>();
  const GemmMicrokernel<T> kernel = microkernel<T>();
  GemmStore<T> st{alpha, beta, true, true, nullptr, Activation::none};
  auto tile = [&](int64_t i, int64_t j) {
    st.bias = bias ? bias + j : nullptr;
    kernel(k, Ap + i * k, Bp + j * k, c + i * ldc + j, ldc, int(std::min<int64_t>(mr, m - i)),
           int(std::min<int64_t>(nr, n - j)), st);
  };
  // Rows outside keeps an A micro-panel in L1 while all of B streams past it, once per MR rows. Past
  // KC (blocking()) that panel no longer fits L1, so nothing is gained and B is re-read for nothing:
  // then the columns go outside, each B micro-panel read once and reused from L2 by every row block
  // (an LSTM H = 256 backward, 16 x 1024 @ 1024 x 256 per thread and step: CPU time of 200 passes
  // 1.63-1.73 -> 1.53-1.68 s, 32 rows per thread 2.72-2.88 -> 2.58-2.60 s; its forward, k = 256,
  // measured no better that way).
  if (k > blocking<T>().kc) {
    for (int64_t j = 0; j < n; j += nr)
      for (int64_t i = 0; i < m; i += mr) tile(i, j);
  } else {
    for (int64_t i = 0; i < m; i += mr)
      for (int64_t j = 0; j < n; j += nr) tile(i, j);
  }
}

#define EMBER_GEMM_BLOCKS(T)                                                                          \
  template void pack_a<T>(const T*, int64_t, int64_t, int64_t, int64_t, T*);                           \
  template void pack_b<T>(const T*, int64_t, int64_t, int64_t, int64_t, T*);                           \
  template void pack_a_columns<T>(const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, T*);   \
  template void gemm_packed<T>(int64_t, int64_t, int64_t, const T*, const T*, T*, int64_t, T, T, const T*);
EMBER_GEMM_BLOCKS(float)
EMBER_GEMM_BLOCKS(double)
#undef EMBER_GEMM_BLOCKS

}  // namespace ember::cpu
