// Scaled dot-product attention on the CPU, flash-style (Dao et al., 2022; FlashAttention-2's
// backward): softmax(scale * Q K^T + mask) V per (batch, head) without ever holding the Tq x Tk
// score matrix. A tile of queries meets the keys one block at a time; an online softmax keeps a
// running max m and running sum l per row, and rescales the output rows by exp(m_old - m_new) when
// the max grows. Only lse = m + log(l) per row is saved; the backward recomputes each probability
// tile from it.
//
// Operands are (B, H, T, D) views of any strides with unit stride along D (no copies for heads sliced
// out of a fused projection); the core lays outputs out as (B, T, H, D) so merging heads is free.
// Every product is the GEMM's own micro-kernel on packed operands (cpu/gemm.h). K^T and V are packed
// once per head (shared by all query tiles), a query tile once per tile; the probability tile is
// packed right after the softmax wrote it, while it is still in L1/L2. Work is split over
// (batch, head, query tile) in the forward pass and over (batch, head) in the backward one, so dK and
// dV accumulate without atomics and the result does not depend on the thread count.
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/philox.h"
#include "cpu/gemm.h"
#include "cpu/row_math.h"
#include "cpu/simd/kernels.h"

namespace ember::cpu {
namespace {

// Tiles: ~64 query rows (rounded to whole micro-panels: 72 for the 12-row AVX-512 kernel) against
// 256 keys. The score tile (72 x 256 floats, 72 KiB), the packed query tile and one packed K and V
// block (256 x 64 floats, 64 KiB each) stay in L2 together; 256 keys is a multiple of every NR (8,
// 16, 32), so the packed blocks of a head sit at fixed offsets. Measured at B=4, H=8, T=2048, D=64:
// 256-key blocks made the forward ~3% faster than 128 (fewer rescalings of the output rows per
// key); 120-row query tiles changed nothing.
constexpr int64_t kKeyBlock = 256;
template <typename T> int64_t query_tile() { return round_up(64, gemm_mr<T>()); }

struct Shape4 {
  int64_t B, H, Tq, Tk, D, Dv;
  int64_t heads() const { return B * H; }
  int64_t key_blocks() const { return (Tk + kKeyBlock - 1) / kKeyBlock; }
};

Shape4 shape_of(const Array& q, const Array& v) {
  return {q.shape(0), q.shape(1), q.shape(2), v.shape(2), q.shape(3), v.shape(3)};
}

// Packed sizes of one head's K^T blocks (D x 256 each) and V blocks (256 x Dv each), the last
// block padded like the others so that block j is at j times the block size.
template <typename T> int64_t kt_head_size(const Shape4& s) { return s.key_blocks() * packed_b_size<T>(s.D, kKeyBlock); }
template <typename T> int64_t kv_head_size(const Shape4& s, int64_t cols) {
  return s.key_blocks() * packed_b_size<T>(kKeyBlock, cols);
}

// The mask as a strided (B, H, Tq, Tk) view (broadcast dims have stride 0), bool (false = masked
// out) or additive; plus causal masking, aligned top-left like PyTorch's (query i sees keys <= i).
template <typename T>
struct Masking {
  const void* data = nullptr;
  bool is_bool = false, causal = false;
  int64_t sb = 0, sh = 0, si = 0, sj = 0;

  Masking(const Array& mask, bool causal_) : causal(causal_) {
    if (!mask.defined()) return;
    data = mask.raw();
    is_bool = mask.dtype() == DType::bool_;
    sb = mask.strides()[0], sh = mask.strides()[1], si = mask.strides()[2], sj = mask.strides()[3];
  }
  // Whole key block j0.. beyond every query of the tile starting at i0: skipped by the loops.
  bool skips(int64_t i0, int64_t rows, int64_t j0) const { return causal && j0 > i0 + rows - 1; }
  // Adds the mask to the score tile s (rows x cols, row stride ld) of head (b, h) at (i0, j0).
  void apply(int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t cols, T* s, int64_t ld) const {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    for (int64_t r = 0; r < rows; ++r) {
      T* row = s + r * ld;
      if (data) {
        const int64_t base = b * sb + h * sh + (i0 + r) * si + j0 * sj;
        if (is_bool) {
          const bool* m = static_cast<const bool*>(data) + base;
          for (int64_t c = 0; c < cols; ++c) row[c] = m[c * sj] ? row[c] : ninf;
        } else {
          const T* m = static_cast<const T*>(data) + base;
          for (int64_t c = 0; c < cols; ++c) row[c] += m[c * sj];
        }
      }
      if (causal)
        for (int64_t c = std::max<int64_t>(0, i0 + r + 1 - j0); c < cols; ++c) row[c] = ninf;
    }
  }
};

// Dropout on the probabilities: element (head, i, j) is kept when draw number (head*Tq + i)*Tk + j
// of the Philox stream (seed, offset) is >= p, the same draw em.rand would give a (B, H, Tq, Tk)
// tensor, so forward and backward (and CPU and CUDA) agree without storing a mask.
struct Dropout {
  double p;
  uint64_t seed, offset;
  template <typename T>
  void apply(int64_t first, int64_t n, T* x, T kept_scale) const {
    Philox4 block{};
    for (int64_t c = 0; c < n; ++c) {
      const uint64_t idx = uint64_t(first + c);
      if (c == 0 || idx % 4 == 0) block = philox4x32_10(offset + idx / 4, seed);
      x[c] = uniform01(block.v[idx % 4]) >= p ? x[c] * kept_scale : T(0);
    }
  }
};

// Per-thread scratch, carved out of one allocation; sizes are linear in T, never Tq x Tk.
template <typename T>
struct Carver {
  T* at;
  T* take(int64_t n) { T* p = at; at += round_up(n, 16); return p; }
};

template <typename T> int64_t forward_thread_floats(const Shape4& s) {
  const int64_t bq = query_tile<T>();
  return round_up(packed_a_size<T>(bq, s.D), 16) + round_up(bq * kKeyBlock, 16) +
         round_up(packed_a_size<T>(bq, kKeyBlock), 16) + 2 * round_up(bq, 16);
}
template <typename T> int64_t forward_shared_floats(const Shape4& s) {
  return s.heads() * (kt_head_size<T>(s) + kv_head_size<T>(s, s.Dv));
}
template <typename T> int64_t backward_thread_floats(const Shape4& s) {
  const int64_t bq = query_tile<T>(), tile = bq * kKeyBlock;
  const int64_t pack_t = std::max(packed_a_size<T>(kKeyBlock, bq), packed_a_size<T>(bq, kKeyBlock));
  return kt_head_size<T>(s) + s.key_blocks() * packed_b_size<T>(s.Dv, kKeyBlock) + kv_head_size<T>(s, s.D) +
         round_up(s.Tq, 16) + round_up(packed_a_size<T>(bq, s.D), 16) + round_up(packed_a_size<T>(bq, s.Dv), 16) +
         round_up(packed_b_size<T>(bq, s.D), 16) + round_up(packed_b_size<T>(bq, s.Dv), 16) + 2 * round_up(tile, 16) +
         round_up(pack_t, 16) + 16 * 16;
}

int max_threads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

template <typename T> Array workspace(int64_t floats, const Array& like) {
  return Array::empty({std::max<int64_t>(1, floats)}, like.dtype(), like.device());
}

// One head's (T, D) matrix: rows ld apart, unit stride along D.
template <typename P>
struct Rows {
  P* p;
  int64_t ld;
  P* row(int64_t i) const { return p + i * ld; }
};

// A (B, H, T, D) array of any strides with unit stride along D, e.g. q, k, v sliced out of one
// (B, T, 3, H, D) projection, or outputs laid out (B, T, H, D) so that merging the heads is free.
template <typename P>
struct Heads {
  P* base;
  int64_t sb, sh, st, H;
  Heads(const Array& a) : base(a.data<std::remove_const_t<P>>()), sb(a.strides()[0]), sh(a.strides()[1]),
                          st(a.strides()[2]), H(a.shape(1)) {}
  Rows<P> operator()(int64_t bh) const { return {base + (bh / H) * sb + (bh % H) * sh, st}; }
};

template <typename T>
struct Inputs {
  Shape4 s;
  Heads<const T> q, k, v;
};

// One head's K^T blocks (B operand of S = Q K^T: k = D, cols = keys) into kt, and the blocks of a
// (Tk x cols) matrix m as B operands of a product over keys (P V: k = keys, cols = Dv) into mv.
template <typename T>
void pack_head_keys(const Shape4& s, Rows<const T> k, T* kt) {
  for (int64_t j = 0, kb = 0; j < s.Tk; j += kKeyBlock, ++kb)
    pack_b(k.row(j), int64_t(1), k.ld, s.D, std::min(kKeyBlock, s.Tk - j), kt + kb * packed_b_size<T>(s.D, kKeyBlock));
}
template <typename T>
void pack_head_rows(const Shape4& s, Rows<const T> m, int64_t cols, T* mv) {
  for (int64_t j = 0, kb = 0; j < s.Tk; j += kKeyBlock, ++kb)
    pack_b(m.row(j), m.ld, int64_t(1), std::min(kKeyBlock, s.Tk - j), cols, mv + kb * packed_b_size<T>(kKeyBlock, cols));
}

template <typename T>
void forward_tile(const Inputs<T>& in, const Masking<T>& mask, const Dropout& drop, double scale, int64_t bh,
                  int64_t i0, const T* kt, const T* vp, Rows<T> o, T* lse, Carver<T> ws) {
  const Shape4& s = in.s;
  const int64_t bq = query_tile<T>(), rows = std::min(bq, s.Tq - i0);
  T *ap_q = ws.take(packed_a_size<T>(bq, s.D)), *st = ws.take(bq * kKeyBlock);
  T *ap_p = ws.take(packed_a_size<T>(bq, kKeyBlock)), *m = ws.take(bq), *l = ws.take(bq);
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const Rows<const T> q = in.q(bh);
  pack_a(q.row(i0), q.ld, int64_t(1), rows, s.D, ap_q);
  o.p = o.row(i0);  // this tile's rows
  for (int64_t r = 0; r < rows; ++r) std::fill(o.row(r), o.row(r) + s.Dv, T(0));
  std::fill(m, m + rows, ninf);
  std::fill(l, l + rows, T(0));
  const T kept_scale = T(1.0 / (1.0 - drop.p));
  for (int64_t j0 = 0, kb = 0; j0 < s.Tk; j0 += kKeyBlock, ++kb) {
    if (mask.skips(i0, rows, j0)) break;
    const int64_t cols = std::min(kKeyBlock, s.Tk - j0);
    gemm_packed(rows, cols, s.D, ap_q, kt + kb * packed_b_size<T>(s.D, kKeyBlock), st, kKeyBlock, T(scale), T(0));
    mask.apply(bh / s.H, bh % s.H, i0, rows, j0, cols, st, kKeyBlock);
    for (int64_t r = 0; r < rows; ++r) {
      T* row = st + r * kKeyBlock;
      const T m_new = std::max(m[r], row_max(row, cols));
      if (m_new == ninf) { std::fill(row, row + cols, T(0)); continue; }  // every key so far masked
      const T corr = std::exp(m[r] - m_new);
      l[r] = l[r] * corr + exp_shifted(row, m_new, row, cols);
      m[r] = m_new;
      if (corr != T(1))
        for (int64_t d = 0; d < s.Dv; ++d) o.row(r)[d] *= corr;
      if (drop.p > 0) drop.apply((bh * s.Tq + i0 + r) * s.Tk + j0, cols, row, kept_scale);
    }
    pack_a(st, kKeyBlock, int64_t(1), rows, cols, ap_p);
    gemm_packed(rows, s.Dv, cols, ap_p, vp + kb * packed_b_size<T>(kKeyBlock, s.Dv), o.p, o.ld, T(1), T(1));
  }
  // Rows whose every key is masked out give 0 (and lse = -inf), not NaN.
  for (int64_t r = 0; r < rows; ++r) {
    const T inv = l[r] > T(0) ? T(1) / l[r] : T(0);
    for (int64_t d = 0; d < s.Dv; ++d) o.row(r)[d] *= inv;
    lse[bh * s.Tq + i0 + r] = l[r] > T(0) ? m[r] + std::log(l[r]) : ninf;
  }
}

// The backward of one head (FlashAttention-2's equations; P = exp(S - lse), Delta_i = dO_i . O_i):
//   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - Delta) * scale,  dK += dS^T Q,  dQ += dS K.
template <typename T>
struct HeadGrads {
  const Inputs<T>& in;
  const Masking<T>& mask;
  const Dropout& drop;
  T scale;
  Heads<const T> dout, out;
  const T* lse;
  Heads<T> dq, dk, dv;
};

template <typename T>
void backward_head(const HeadGrads<T>& g, int64_t bh, Carver<T> ws) {
  const Shape4& s = g.in.s;
  const int64_t bq = query_tile<T>(), nkb = s.key_blocks();
  const int64_t kt_block = packed_b_size<T>(s.D, kKeyBlock), vt_block = packed_b_size<T>(s.Dv, kKeyBlock),
                k_block = packed_b_size<T>(kKeyBlock, s.D);
  T *kt = ws.take(kt_head_size<T>(s)), *vt = ws.take(nkb * vt_block), *kp = ws.take(kv_head_size<T>(s, s.D));
  T *delta = ws.take(s.Tq), *ap_q = ws.take(packed_a_size<T>(bq, s.D)), *ap_do = ws.take(packed_a_size<T>(bq, s.Dv));
  T *bp_q = ws.take(packed_b_size<T>(bq, s.D)), *bp_do = ws.take(packed_b_size<T>(bq, s.Dv));
  T *p = ws.take(bq * kKeyBlock), *dp = ws.take(bq * kKeyBlock);
  T* ap_t = ws.take(std::max(packed_a_size<T>(kKeyBlock, bq), packed_a_size<T>(bq, kKeyBlock)));
  const Rows<const T> q = g.in.q(bh), k = g.in.k(bh), v = g.in.v(bh), dout = g.dout(bh), out = g.out(bh);
  const T* lse = g.lse + bh * s.Tq;
  const Rows<T> dq = g.dq(bh), dk = g.dk(bh), dv = g.dv(bh);
  pack_head_keys(s, k, kt);
  for (int64_t j = 0, kb = 0; j < s.Tk; j += kKeyBlock, ++kb)
    pack_b(v.row(j), int64_t(1), v.ld, s.Dv, std::min(kKeyBlock, s.Tk - j), vt + kb * vt_block);
  pack_head_rows(s, k, s.D, kp);
  for (int64_t i = 0; i < s.Tq; ++i) {
    T acc = 0;
    for (int64_t d = 0; d < s.Dv; ++d) acc += dout.row(i)[d] * out.row(i)[d];
    delta[i] = acc;
  }
  for (int64_t i = 0; i < s.Tq; ++i) std::fill(dq.row(i), dq.row(i) + s.D, T(0));
  for (int64_t j = 0; j < s.Tk; ++j) std::fill(dk.row(j), dk.row(j) + s.D, T(0));
  for (int64_t j = 0; j < s.Tk; ++j) std::fill(dv.row(j), dv.row(j) + s.Dv, T(0));
  const T kept_scale = T(1.0 / (1.0 - g.drop.p));
  for (int64_t i0 = 0; i0 < s.Tq; i0 += bq) {
    const int64_t rows = std::min(bq, s.Tq - i0);
    pack_a(q.row(i0), q.ld, int64_t(1), rows, s.D, ap_q);
    pack_a(dout.row(i0), dout.ld, int64_t(1), rows, s.Dv, ap_do);
    pack_b(q.row(i0), q.ld, int64_t(1), rows, s.D, bp_q);
    pack_b(dout.row(i0), dout.ld, int64_t(1), rows, s.Dv, bp_do);
    for (int64_t j0 = 0, kb = 0; j0 < s.Tk; j0 += kKeyBlock, ++kb) {
      if (g.mask.skips(i0, rows, j0)) break;
      const int64_t cols = std::min(kKeyBlock, s.Tk - j0);
      // P, recomputed from lse.
      gemm_packed(rows, cols, s.D, ap_q, kt + kb * kt_block, p, kKeyBlock, g.scale, T(0));
      g.mask.apply(bh / s.H, bh % s.H, i0, rows, j0, cols, p, kKeyBlock);
      for (int64_t r = 0; r < rows; ++r) {
        T* row = p + r * kKeyBlock;
        if (lse[i0 + r] == -std::numeric_limits<T>::infinity()) std::fill(row, row + cols, T(0));
        else exp_shifted(row, lse[i0 + r], row, cols);
      }
      // dV += Pd^T dO, with Pd the dropped-out P (staged in dp, which is free until dP below).
      const T* pd = p;
      if (g.drop.p > 0) {
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(dp + r * kKeyBlock, p + r * kKeyBlock, sizeof(T) * size_t(cols));
          g.drop.apply((bh * s.Tq + i0 + r) * s.Tk + j0, cols, dp + r * kKeyBlock, kept_scale);
        }
        pd = dp;
      }
      pack_a(pd, int64_t(1), kKeyBlock, cols, rows, ap_t);
      gemm_packed(cols, s.Dv, rows, ap_t, bp_do, dv.row(j0), dv.ld, T(1), T(1));
      // dP = dO V^T (through the dropout mask), then dS = P * (dP - Delta) * scale, in place.
      gemm_packed(rows, cols, s.Dv, ap_do, vt + kb * vt_block, dp, kKeyBlock, T(1), T(0));
      for (int64_t r = 0; r < rows; ++r) {
        T* drow = dp + r * kKeyBlock;
        if (g.drop.p > 0) g.drop.apply((bh * s.Tq + i0 + r) * s.Tk + j0, cols, drow, kept_scale);
        const T* prow = p + r * kKeyBlock;
        const T dl = delta[i0 + r];
        for (int64_t c = 0; c < cols; ++c) drow[c] = prow[c] * (drow[c] - dl) * g.scale;
      }
      pack_a(dp, int64_t(1), kKeyBlock, cols, rows, ap_t);
      gemm_packed(cols, s.D, rows, ap_t, bp_q, dk.row(j0), dk.ld, T(1), T(1));
      pack_a(dp, kKeyBlock, int64_t(1), rows, cols, ap_t);
      gemm_packed(rows, s.D, cols, ap_t, kp + kb * k_block, dq.row(i0), dq.ld, T(1), T(1));
    }
  }
}

// Runs body(task, thread) for task in [0, n) with dynamic scheduling: causal tiles differ in cost.
template <typename F>
void for_each_task(int64_t n, F&& body) {
  const int threads = int(std::min<int64_t>(max_threads(), n));
  if (threads <= 1) {
    for (int64_t t = 0; t < n; ++t) body(t, 0);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t t = 0; t < n; ++t) body(t, omp_get_thread_num());
}

template <typename T>
Inputs<T> inputs_of(const Array& q, const Array& k, const Array& v) {
  return {shape_of(q, v), Heads<const T>(q), Heads<const T>(k), Heads<const T>(v)};
}

}  // namespace

int64_t attention_workspace_bytes(const Array& q, const Array& k, const Array& v, bool backward) {
  (void)k;
  return dispatch_f32_f64(q.dtype(), "scaled_dot_product_attention", [&](auto tag) -> int64_t {
    using T = decltype(tag);
    const Shape4 s = shape_of(q, v);
    const int64_t threads = std::min<int64_t>(max_threads(), backward ? s.heads() : s.heads() * s.Tq);
    const int64_t floats = backward ? threads * backward_thread_floats<T>(s)
                                    : forward_shared_floats<T>(s) + threads * forward_thread_floats<T>(s);
    return floats * int64_t(sizeof(T));
  });
}

void attention_forward(const Array& q, const Array& k, const Array& v, const Array& mask, const AttentionArgs& a,
                       Array& out, Array& lse) {
  dispatch_f32_f64(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using T = decltype(tag);
    const Inputs<T> in = inputs_of<T>(q, k, v);
    const Shape4& s = in.s;
    const Masking<T> masking(mask, a.causal);
    const Dropout drop{a.dropout_p, a.seed, a.offset};
    const int64_t kt_size = kt_head_size<T>(s), vp_size = kv_head_size<T>(s, s.Dv);
    const int64_t per_thread = forward_thread_floats<T>(s), shared = forward_shared_floats<T>(s);
    Array ws = workspace<T>(cpu::attention_workspace_bytes(q, k, v, false) / int64_t(sizeof(T)), q);
    T* base = ws.data<T>();
    for_each_task(s.heads(), [&](int64_t bh, int) {
      pack_head_keys(s, in.k(bh), base + bh * (kt_size + vp_size));
      pack_head_rows(s, in.v(bh), s.Dv, base + bh * (kt_size + vp_size) + kt_size);
    });
    const int64_t tiles = (s.Tq + query_tile<T>() - 1) / query_tile<T>();
    const Heads<T> o(out);
    for_each_task(s.heads() * tiles, [&](int64_t task, int thread) {
      const int64_t bh = task / tiles, i0 = (task % tiles) * query_tile<T>();
      const T* kt = base + bh * (kt_size + vp_size);
      forward_tile(in, masking, drop, a.scale, bh, i0, kt, kt + kt_size, o(bh), lse.data<T>(),
                   Carver<T>{base + shared + thread * per_thread});
    });
  });
}

void attention_backward(const Array& dout, const Array& q, const Array& k, const Array& v, const Array& out,
                        const Array& lse, const Array& mask, const AttentionArgs& a, Array& dq, Array& dk,
                        Array& dv) {
  dispatch_f32_f64(q.dtype(), "scaled_dot_product_attention_backward", [&](auto tag) {
    using T = decltype(tag);
    const Inputs<T> in = inputs_of<T>(q, k, v);
    const Masking<T> masking(mask, a.causal);
    const Dropout drop{a.dropout_p, a.seed, a.offset};
    const HeadGrads<T> g{in, masking, drop, T(a.scale), Heads<const T>(dout), Heads<const T>(out), lse.data<T>(),
                         Heads<T>(dq), Heads<T>(dk), Heads<T>(dv)};
    const int64_t per_thread = backward_thread_floats<T>(in.s);
    Array ws = workspace<T>(cpu::attention_workspace_bytes(q, k, v, true) / int64_t(sizeof(T)), q);
    T* base = ws.data<T>();
    for_each_task(in.s.heads(), [&](int64_t bh, int thread) {
      backward_head(g, bh, Carver<T>{base + thread * per_thread});
    });
  });
}

}  // namespace ember::cpu
