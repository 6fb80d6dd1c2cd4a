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
// Block sizes come from the cache sizes read at run time (sysconf). MC x KC of packed A fills half of
// L2 and KC x NC of packed B a quarter of L3 (Low et al., TOMS 2016). KC is larger than the textbook
// "B micro-panel in half of L1": with the prefetches in the micro-kernel the panels stream well from
// L2, and a long K loop amortises the C tile's load/store. Measured on Zen 4 (32 KiB L1, 1 MiB L2),
// 2048^3 on 2 threads: KC 128 -> 128 GFLOP/s, 256 -> 154, 384 -> 164, 512 -> 176 (see gemm.md).
// KC = L2 / (16 NR sizeof(T)), clamped to [128, 512]. EMBER_GEMM_KC/MC/NC override, for tuning.
// Threads: one parallel region per call, work split by rows or by columns (see gemm_blocked), so 2 to
// 64 cores all get work whether M or N is small. Problems under ~2 MFLOP stay on one thread (a
// parallel region costs microseconds); many small batched GEMMs run one per thread instead.
#include <omp.h>
#include <unistd.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/scalar_math.h"
#include "cpu/microkernels/gemm.h"
#include "cpu/parallel.h"

namespace ember::cpu {
namespace {

struct Blocking { int64_t mc, kc, nc; };

int64_t cache_bytes(int name, int64_t fallback) {
  long v = sysconf(name);
  return v > 0 ? int64_t(v) : fallback;
}

int64_t env_int(const char* name, int64_t fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::max<int64_t>(1, std::atoll(s)) : fallback;
}

int64_t round_down(int64_t v, int64_t m) { return std::max(m, v / m * m); }

Blocking blocking(int mr, int nr, size_t elem) {
  static const int64_t l2 = cache_bytes(_SC_LEVEL2_CACHE_SIZE, 1 << 20);
  static const int64_t l3 = cache_bytes(_SC_LEVEL3_CACHE_SIZE, 8 << 20);
  Blocking b;
  b.kc = env_int("EMBER_GEMM_KC", std::clamp<int64_t>(round_down(l2 / (16 * nr * int64_t(elem)), 8), 128, 512));
  b.mc = env_int("EMBER_GEMM_MC", std::clamp<int64_t>(round_down(l2 / 2 / (b.kc * int64_t(elem)), mr), mr, 1024));
  b.nc = env_int("EMBER_GEMM_NC", std::clamp<int64_t>(round_down(l3 / 4 / (b.kc * int64_t(elem)), nr), nr, 8192));
  b.mc = round_down(b.mc, mr);
  b.nc = round_down(b.nc, nr);
  return b;
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
  } else if (rsb == 1) {  // transposed B (x @ W^T): read each column contiguously
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t k = 0; k < kc; ++k) dst[k * nr + j] = b[j * csb + k];
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

// Multiplies the packed B block (kc x nc at Bp) by rows [r0, r1) of A: packs A into this thread's
// buffer MC rows at a time, then runs the micro-tiles in (B panel, A panel) order.
template <typename T>
void rows_times_block(const Problem<T>& p, GemmMicrokernel<T> kernel, int mr, int nr, int64_t mc_block,
                      int64_t r0, int64_t r1, int64_t jc, int64_t nc, int64_t pc, int64_t kc, const T* Bp) {
  const int64_t nq = (nc + nr - 1) / nr;
  T* Ap = tl_a.get<T>(size_t(kc * ((std::min(mc_block, r1 - r0) + mr - 1) / mr * mr)));
  const GemmStore<T> st0{p.alpha, p.beta, pc == 0, pc + kc >= p.k, nullptr, p.act};
  for (int64_t ic = r0; ic < r1; ic += mc_block) {
    const int64_t mc = std::min(mc_block, r1 - ic), np_ = (mc + mr - 1) / mr;
    for (int64_t i = 0; i < np_; ++i)
      pack_a_panel(p.a + (ic + i * mr) * p.rsa + pc * p.csa, p.rsa, p.csa, std::min<int64_t>(mr, mc - i * mr),
                   kc, mr, Ap + i * mr * kc);
    for (int64_t q = 0; q < nq; ++q) {
      const int64_t col = jc + q * nr;
      GemmStore<T> st = st0;
      st.bias = p.bias ? p.bias + col : nullptr;
      for (int64_t i = 0; i < np_; ++i)
        kernel(kc, Ap + i * mr * kc, Bp + q * nr * kc, p.c + (ic + i * mr) * p.ldc + col, p.ldc,
               int(std::min<int64_t>(mr, mc - i * mr)), int(std::min<int64_t>(nr, nc - q * nr)), st);
    }
  }
}

// Two ways to share the work, chosen per call:
//  - split rows (M has at least two MR panels per thread): each thread packs and keeps its own A rows
//    in its own (private, on most x86 parts) L2 and multiplies them by the shared packed B block;
//    one barrier per B block. This is BLIS's choice of the IC loop for private L2 caches.
//  - split columns (short, wide products such as a small batch through a big layer): every thread
//    multiplies all M rows by its own share of the B panels; threads pack only the B they use.
template <typename T>
void gemm_blocked(const Problem<T>& p, GemmMicrokernel<T> kernel, int mr, int nr, int threads) {
  const Blocking bl = blocking(mr, nr, sizeof(T));
  const int64_t m_panels = (p.m + mr - 1) / mr;
  const bool split_rows = threads <= 1 || m_panels >= 2 * threads;
  const int64_t kc_max = std::min(bl.kc, p.k), nc_max = std::min(bl.nc, (p.n + nr - 1) / nr * nr);
  T* Bp = split_rows ? tl_b.get<T>(size_t(kc_max * nc_max)) : nullptr;

  auto body = [&](int t, int nt) {
    for (int64_t jc = 0; jc < p.n; jc += bl.nc) {
      const int64_t nc = std::min(bl.nc, p.n - jc), nq = (nc + nr - 1) / nr;
      for (int64_t pc = 0; pc < p.k; pc += bl.kc) {
        const int64_t kc = std::min(bl.kc, p.k - pc);
        if (split_rows) {
          for (int64_t q = t; q < nq; q += nt)  // B panels packed cooperatively, shared by all
            pack_b_panel(p.b + pc * p.rsb + (jc + q * nr) * p.csb, p.rsb, p.csb,
                         std::min<int64_t>(nr, nc - q * nr), kc, nr, Bp + q * nr * kc);
          if (nt > 1) {
#pragma omp barrier
          }
          const int64_t per = (m_panels + nt - 1) / nt * mr;  // rows per thread, whole panels
          const int64_t r0 = std::min(p.m, t * per), r1 = std::min(p.m, r0 + per);
          if (r0 < r1) rows_times_block(p, kernel, mr, nr, bl.mc, r0, r1, jc, nc, pc, kc, Bp);
          if (nt > 1) {
#pragma omp barrier
          }
        } else {
          const int64_t per = (nq + nt - 1) / nt;  // B panels per thread
          const int64_t q0 = std::min(nq, t * per), q1 = std::min(nq, q0 + per);
          if (q0 >= q1) continue;
          T* Bt = tl_b.get<T>(size_t(kc * (q1 - q0) * nr));  // this thread's panels only
          for (int64_t q = q0; q < q1; ++q)
            pack_b_panel(p.b + pc * p.rsb + (jc + q * nr) * p.csb, p.rsb, p.csb,
                         std::min<int64_t>(nr, nc - q * nr), kc, nr, Bt + (q - q0) * nr * kc);
          rows_times_block(p, kernel, mr, nr, bl.mc, 0, p.m, jc + q0 * nr, std::min(nc - q0 * nr, (q1 - q0) * nr),
                           pc, kc, Bt);
        }
      }
    }
  };
  if (threads <= 1) {
    body(0, 1);
  } else {
#pragma omp parallel num_threads(threads)
    body(omp_get_thread_num(), omp_get_num_threads());
  }
}

constexpr double kSerialFlops = 2e6;  // below this a parallel region costs more than it saves

template <typename T>
void run(const Problem<T>& p, int threads) {
  if (p.m == 0 || p.n == 0) return;
  if (p.k == 0) return scale_only(p);
  const GemmKernels& g = gemm_kernels();
  if constexpr (std::is_same_v<T, float>) gemm_blocked(p, g.f32, g.mr, g.nr, threads);
  else gemm_blocked(p, g.f64, g.mr64, g.nr64, threads);
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
      const int max_threads = omp_in_parallel() ? 1 : omp_get_max_threads();
      if (batch > 1 && flops < kSerialFlops * max_threads && max_threads > 1) {
        // Many small GEMMs: one per thread, each serial.
#pragma omp parallel for schedule(dynamic, 1) num_threads(int(std::min<int64_t>(batch, max_threads)))
        for (int64_t i = 0; i < batch; ++i) run(problem(i), 1);
        return;
      }
      const int threads = flops < kSerialFlops ? 1 : max_threads;
      for (int64_t i = 0; i < batch; ++i) run(problem(i), threads);
    } else {
      fail<TypeError>("matmul", "CPU GEMM supports float32 and float64, got ", dtype_name(c.dtype()));
    }
  });
}

}  // namespace ember::cpu
