// Recurrent cells on the CPU. Forward: a batch row's hidden units in one pass (float32 through the
// per-ISA vector loop with branch-free sigmoid/tanh); backward: one pass that also adds the output's
// gradient to the next step's. Rows past their sequence's length keep their state and output 0
// (forward), and pass gradients straight through (backward), so padded steps change nothing.
//
// A whole layer runs in ONE parallel region (rnn_sequence_*), shared out in one of two ways
// (sequence_plan):
//  - by batch rows (at least 4 rows per thread): each thread runs its rows through the
//    whole sequence alone: per step it packs its rows of h, multiplies them by the packed W_hh^T
//    (shared, read-only) straight into its rows of the step's input projection, and runs the cell.
//    No barrier and no data between cores, step after step.
//  - by hidden units (smaller batches): thread w owns units [u0, u1) of every gate, whole NR-column
//    panels of the GEMM, computes those columns for all rows and runs the cell on them while they
//    are in its cache; only the new h (forward) or the hidden-side gradient (backward) crosses to
//    the other threads, each packing its part into one shared GEMM operand, one barrier per step.
#include <omp.h>
#include <algorithm>
#include <cmath>
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/rnn_math.h"
#include "core/scalar_math.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"
#include "cpu/simd/kernels.h"

namespace ember::cpu {
namespace {

struct LibmMath {  // float64 (checking) path
  template <typename T> static T sigmoid(T x) { return ember::sigmoid(x); }
  template <typename T> static T tanh(T x) { return std::tanh(x); }
};

template <typename T>
T* ptr(const Array& a, int64_t row = 0) {  // row of a (rows, cols) array with any row stride; null if empty
  return a.defined() ? a.data<T>() + row * (a.ndim() > 1 ? a.strides()[0] : 0) : nullptr;
}

template <typename T>
T* ptr(const Array& a, int64_t i, int64_t row) {  // row of slice i of a (n, rows, cols) array; null if empty
  return a.defined() ? a.data<T>() + i * a.strides()[0] + row * a.strides()[1] : nullptr;
}

bool row_active(const Array& lengths, int64_t b, int64_t t) {
  return !lengths.defined() || t < lengths.data<int64_t>()[b];
}

// One batch row's forward over units [j0, j1): the cell, or for padding the state carried over and
// an output of 0. hn/c/extra/out pointers may be null.
template <typename T>
void forward_row(RnnKind kind, int64_t H, int64_t j0, int64_t j1, bool active, T* a, const T* hn, const T* hp,
                 const T* cp, T* h_new, T* cn, T* extra, T* o) {
  if (!active) {
    for (int64_t j = j0; j < j1; ++j) {
      h_new[j] = hp[j];
      if (cn) cn[j] = cp[j];
      if (o) o[j] = T(0);
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    simd().rnn_forward_row_f32(kind, H, j0, j1, a, hn, hp, cp, h_new, cn, extra);
  } else {
    for (int64_t j = j0; j < j1; ++j) rnn_forward_unit<LibmMath>(kind, H, j, a, hn, hp, cp, h_new, cn, extra);
  }
  if (o)
    for (int64_t j = j0; j < j1; ++j) o[j] = h_new[j];
}

// One batch row's backward over units [j0, j1); for padding the gradients pass through untouched.
// dout is always given; dc_next/dc_prev exactly for the LSTM.
template <typename T>
void backward_row(RnnKind kind, const RnnBackwardRow<T>& r, int64_t H, int64_t j0, int64_t j1, bool active) {
  if (!active) {
    for (int g = 0; g < rnn_gate_count(kind); ++g)
      for (int64_t j = j0; j < j1; ++j) r.dx[g * H + j] = r.dh_side[g * H + j] = T(0);
    for (int64_t j = j0; j < j1; ++j) {
      r.carry[j] = r.dh_next[j];
      if (r.dc_prev) r.dc_prev[j] = r.dc_next[j];
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) simd().rnn_backward_row_f32(kind, H, j0, j1, r);
  else rnn_backward_units<2>(kind, r, H, j0, j1);  // float64: the checking path
}

// The gate math costs several cycles per unit (five nonlinearities for the LSTM), far more than an
// elementwise add, so rows go to threads from 8K gate values on (a 32 x 256 LSTM step: 29 -> ~16 us
// on two cores, measured with the exp-based nonlinearities).
int64_t grain_rows(int64_t H, int gates) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, H * gates)); }

// ---- whole sequences ----------------------------------------------------------------------------

struct Units { int64_t u0, u1; };

// Thread w of n: whole NR-wide panels of the H units, so each gate's columns g*H + [u0, u1) are
// whole panels of the packed W_hh as well.
Units units_of(int w, int n, int64_t H, int nr) {
  const int64_t panels = H / nr;
  return {panels * w / n * nr, panels * (w + 1) / n * nr};
}

// How a layer's loop is shared out. By batch rows when every thread gets at least 4 of them: each
// thread then runs its rows through every step on its own, sharing only the packed W_hh, so no
// barrier and no data crosses cores per step (the benchmark LSTM, B = 32: forward loop 5.2 -> 4.5
// ms; and it stays that fast while another library's threads spin on the same cores, where a
// barrier per step lost 40%). Otherwise by hidden units, which still divides a small batch's work.
// Measured on two threads, LSTM H = 256, T = 50, fwd+bwd, rows against units: B = 2: 3.0 / 2.2 ms,
// B = 4: 3.7 / 2.8, B = 8: 4.7 / 5.1, B = 16: 9.3 / 10.0, B = 64: 36.1 / 38.8. Both need H in whole
// NR-column panels (0 threads: decline, and the core steps through it).
enum class Split { rows, units };
struct Plan { Split split; int threads; };
constexpr int64_t kMinRowsPerThread = 4;

template <typename T>
Plan sequence_plan(int64_t B, int64_t H) {
  const int nr = gemm_nr<T>();
  if (H % nr != 0) return {Split::units, 0};
  const int max_threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (max_threads == 1 || B >= kMinRowsPerThread * max_threads)
    return {Split::rows, int(std::min<int64_t>(max_threads, B))};
  return {Split::units, int(std::min<int64_t>(max_threads, H / nr))};
}

// The batch-row split's start, inside its parallel region: this thread packs its share of the
// NR-column panels of B (k x cols, whole panels, pack_b's layout) into the shared W, waits for the
// others (every thread multiplies by all of W), and gets its batch rows and its own A buffer.
template <typename T>
struct RowShare { int64_t b0, b1; T* A; };

template <typename T>
RowShare<T> start_row_share(const T* b, int64_t rsb, int64_t csb, int64_t k, int64_t cols, T* W, int64_t B,
                            T* a_buffers, int64_t a_size) {
  const int w = omp_get_thread_num(), n = omp_get_num_threads();
  const int64_t nr = gemm_nr<T>(), panels = cols / nr, p0 = panels * w / n, p1 = panels * (w + 1) / n;
  pack_b<T>(b + p0 * nr * csb, rsb, csb, k, (p1 - p0) * nr, W + p0 * nr * k);
#pragma omp barrier
  return {B * w / n, B * (w + 1) / n, a_buffers + w * a_size};
}

// A layer's backward arrays, and the operands of batch row b at loop step i (steps run backwards
// in time: i = 0 is the last step). The gradient reaching h and c comes from h_n's and c_n's at
// i = 0, then from the two (B, H) buffers written in turn, step i into slot i % 2.
template <typename T>
struct BackwardSequence {
  const Array &hs, &cs, &gates, &extra, &dy;
  Array &dxg, &dhg, &dh_buf, &dc_buf;
  bool reverse;
  int64_t steps;

  int64_t time(int64_t i) const { return reverse ? i : steps - 1 - i; }
  RnnBackwardRow<T> row(int64_t i, int64_t b) const {
    const int64_t t = time(i), in = rnn_slot_in(reverse, t);
    const Array &dh_from = i == 0 ? dy : dh_buf, &dc_from = i == 0 ? dy : dc_buf;
    const int64_t dh_slot = i == 0 ? steps : (i - 1) % 2, dc_slot = i == 0 ? steps + 1 : (i - 1) % 2;
    return {ptr<T>(gates, t, b), ptr<T>(extra, t, b), ptr<T>(hs, in, b), ptr<T>(cs, in, b),
            ptr<T>(hs, rnn_slot_out(reverse, t), b), ptr<T>(dy, t, b), ptr<T>(dh_from, dh_slot, b),
            dc_buf.defined() ? ptr<T>(dc_from, dc_slot, b) : nullptr, ptr<T>(dxg, t, b), ptr<T>(dhg, t, b),
            ptr<T>(dh_buf, i % 2, b), ptr<T>(dc_buf, i % 2, b)};
  }
};

template <typename T>
void sequence_forward_units(RnnKind kind, Array& xg, const Array& w_hh, const Array& b_hh, const Array& lengths,
                      bool reverse, Array& hs, Array& cs, Array& extra, Array& y, int threads) {
  const int64_t steps = xg.shape(0), B = hs.shape(1), H = hs.shape(2), G = rnn_gate_count(kind), GH = G * H;
  const int nr = gemm_nr<T>();
  const int64_t a_size = packed_a_size<T>(B, H);
  Array wp = Array::empty({packed_b_size<T>(H, GH)}, hs.dtype(), hs.device());  // W_hh^T as NR-column panels
  Array ap = Array::empty({2 * a_size}, hs.dtype(), hs.device());  // h packed as the GEMM's A, two in turn
  T *W = wp.data<T>(), *A = ap.data<T>();
  const T *w = w_hh.data<T>(), *bias = b_hh.defined() ? b_hh.data<T>() : nullptr;
  const int64_t ws0 = w_hh.strides()[0], ws1 = w_hh.strides()[1];
#pragma omp parallel num_threads(threads)
  {
    const Units u = units_of(omp_get_thread_num(), omp_get_num_threads(), H, nr);
    for (int64_t g = 0; g < G; ++g) pack_b<T>(w + (g * H + u.u0) * ws0, ws1, ws0, H, u.u1 - u.u0, W + (g * H + u.u0) * H);
    pack_a_columns<T>(ptr<T>(hs, reverse ? steps : 0, 0), H, 1, B, H, u.u0, u.u1, A);
#pragma omp barrier
    for (int64_t i = 0; i < steps; ++i) {
      const int64_t t = reverse ? steps - 1 - i : i, in = rnn_slot_in(reverse, t), out = rnn_slot_out(reverse, t);
      // This thread's columns of W_hh h (+ b_hh), added into the step's input projection (the
      // micro-kernel prefetches that C tile while it multiplies, so the cell then reads it from
      // cache); the GRU's n gate goes to `extra` on its own.
      for (int64_t g = 0; g < G; ++g) {
        const int64_t col = g * H + u.u0;
        const bool own = kind == RnnKind::gru && g == 2;
        gemm_packed<T>(B, u.u1 - u.u0, H, A + (i % 2) * a_size, W + col * H,
                       own ? ptr<T>(extra, t, 0) + u.u0 : ptr<T>(xg, t, 0) + col, own ? H : GH, T(1),
                       own ? T(0) : T(1), bias ? bias + col : nullptr);
      }
      for (int64_t b = 0; b < B; ++b)
        forward_row<T>(kind, H, u.u0, u.u1, row_active(lengths, b, t), ptr<T>(xg, t, b), ptr<T>(extra, t, b),
                       ptr<T>(hs, in, b), ptr<T>(cs, in, b), ptr<T>(hs, out, b), ptr<T>(cs, out, b),
                       ptr<T>(extra, t, b), ptr<T>(y, t, b));
      if (i + 1 < steps) {  // this thread's units of the new h into the next step's operand
        pack_a_columns<T>(ptr<T>(hs, out, 0), H, 1, B, H, u.u0, u.u1, A + ((i + 1) % 2) * a_size);
#pragma omp barrier
      }
    }
  }
}

template <typename T>
void sequence_backward_units(RnnKind kind, const Array& w_hh, const Array& lengths, const BackwardSequence<T>& s,
                             int threads) {
  const int64_t B = s.hs.shape(1), H = s.hs.shape(2), GH = rnn_gate_count(kind) * H;
  const int nr = gemm_nr<T>();
  const int64_t a_size = packed_a_size<T>(B, GH);
  Array wp = Array::empty({packed_b_size<T>(GH, H)}, s.hs.dtype(), s.hs.device());  // W_hh as NR-column panels
  Array ap = Array::empty({2 * a_size}, s.hs.dtype(), s.hs.device());  // dh_side packed as the GEMM's A
  T *W = wp.data<T>(), *A = ap.data<T>();
  const T* w = w_hh.data<T>();
  const int64_t ws0 = w_hh.strides()[0], ws1 = w_hh.strides()[1];
#pragma omp parallel num_threads(threads)
  {
    const Units u = units_of(omp_get_thread_num(), omp_get_num_threads(), H, nr);
    pack_b<T>(w + u.u0 * ws1, ws0, ws1, GH, u.u1 - u.u0, W + u.u0 * GH);
    for (int64_t i = 0; i < s.steps; ++i) {
      const int64_t t = s.time(i);
      for (int64_t b = 0; b < B; ++b) backward_row<T>(kind, s.row(i, b), H, u.u0, u.u1, row_active(lengths, b, t));
      for (int64_t g = 0; g < GH / H; ++g)  // this thread's gate columns of dh_side into the shared operand
        pack_a_columns<T>(ptr<T>(s.dhg, t, 0), GH, 1, B, GH, g * H + u.u0, g * H + u.u1, A + (i % 2) * a_size);
#pragma omp barrier
      // dh_prev[:, units] = carry + dh_side @ W_hh[:, units]
      gemm_packed<T>(B, u.u1 - u.u0, GH, A + (i % 2) * a_size, W + u.u0 * GH, ptr<T>(s.dh_buf, i % 2, 0) + u.u0, H,
                     T(1), T(1));
    }
  }
}

// Batch rows [b0, b1) of thread w, every step: h rows packed (private), W_hh h added into the
// input projection's rows (the GRU's n gate into `extra`), then the cell over all units.
template <typename T>
void sequence_forward_rows(RnnKind kind, Array& xg, const Array& w_hh, const Array& b_hh, const Array& lengths,
                           bool reverse, Array& hs, Array& cs, Array& extra, Array& y, int threads) {
  const int64_t steps = xg.shape(0), B = hs.shape(1), H = hs.shape(2), GH = rnn_gate_count(kind) * H;
  const int64_t a_size = packed_a_size<T>((B + threads - 1) / threads, H);
  Array wp = Array::empty({packed_b_size<T>(H, GH)}, hs.dtype(), hs.device());  // W_hh^T, shared
  Array ap = Array::empty({threads * a_size}, hs.dtype(), hs.device());          // each thread's h rows
  T* W = wp.data<T>();
  const T* bias = b_hh.defined() ? b_hh.data<T>() : nullptr;
  const int64_t hld = hs.strides()[1], xld = xg.strides()[1];
  const bool gru = kind == RnnKind::gru;
#pragma omp parallel num_threads(threads)
  {
    const RowShare<T> r =
        start_row_share<T>(w_hh.data<T>(), w_hh.strides()[1], w_hh.strides()[0], H, GH, W, B, ap.data<T>(), a_size);
    const int64_t rows = r.b1 - r.b0;
    for (int64_t i = 0; i < steps && rows > 0; ++i) {
      const int64_t t = reverse ? steps - 1 - i : i, in = rnn_slot_in(reverse, t), out = rnn_slot_out(reverse, t);
      pack_a<T>(ptr<T>(hs, in, r.b0), hld, 1, rows, H, r.A);
      gemm_packed<T>(rows, gru ? 2 * H : GH, H, r.A, W, ptr<T>(xg, t, r.b0), xld, T(1), T(1), bias);
      if (gru)
        gemm_packed<T>(rows, H, H, r.A, W + 2 * H * H, ptr<T>(extra, t, r.b0), H, T(1), T(0),
                       bias ? bias + 2 * H : nullptr);
      for (int64_t b = r.b0; b < r.b1; ++b)
        forward_row<T>(kind, H, 0, H, row_active(lengths, b, t), ptr<T>(xg, t, b), ptr<T>(extra, t, b),
                       ptr<T>(hs, in, b), ptr<T>(cs, in, b), ptr<T>(hs, out, b), ptr<T>(cs, out, b),
                       ptr<T>(extra, t, b), ptr<T>(y, t, b));
    }
  }
}

// Its backward: per step the cell over this thread's rows, then dh_prev[rows] = carry + dh_side[rows]
// W_hh, with W_hh packed once (each thread packs a share of its panels, then one barrier).
template <typename T>
void sequence_backward_rows(RnnKind kind, const Array& w_hh, const Array& lengths, const BackwardSequence<T>& s,
                            int threads) {
  const int64_t B = s.hs.shape(1), H = s.hs.shape(2), GH = rnn_gate_count(kind) * H;
  const int64_t a_size = packed_a_size<T>((B + threads - 1) / threads, GH);
  Array wp = Array::empty({packed_b_size<T>(GH, H)}, s.hs.dtype(), s.hs.device());  // W_hh, shared
  Array ap = Array::empty({threads * a_size}, s.hs.dtype(), s.hs.device());         // each thread's dh_side
  T* W = wp.data<T>();
  const int64_t gld = s.dhg.strides()[1];
#pragma omp parallel num_threads(threads)
  {
    const RowShare<T> r =
        start_row_share<T>(w_hh.data<T>(), w_hh.strides()[0], w_hh.strides()[1], GH, H, W, B, ap.data<T>(), a_size);
    const int64_t rows = r.b1 - r.b0;
    for (int64_t i = 0; i < s.steps && rows > 0; ++i) {
      const int64_t t = s.time(i);
      for (int64_t b = r.b0; b < r.b1; ++b) backward_row<T>(kind, s.row(i, b), H, 0, H, row_active(lengths, b, t));
      pack_a<T>(ptr<T>(s.dhg, t, r.b0), gld, 1, rows, GH, r.A);
      gemm_packed<T>(rows, H, GH, r.A, W, ptr<T>(s.dh_buf, i % 2, r.b0), H, T(1), T(1));
    }
  }
}

}  // namespace

void rnn_step_forward(RnnKind kind, Array& a, const Array& hn, const Array& h_prev, const Array& c_prev,
                      const Array& lengths, int64_t t, Array& h_new, Array& c_new, Array& extra, Array& out) {
  const int64_t B = h_prev.shape(0), H = h_prev.shape(1);
  dispatch_f32_f64(h_prev.dtype(), "rnn_step", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(B, grain_rows(H, rnn_gate_count(kind)), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        forward_row<T>(kind, H, 0, H, row_active(lengths, b, t), ptr<T>(a, b), ptr<T>(hn, b), ptr<T>(h_prev, b),
                       ptr<T>(c_prev, b), ptr<T>(h_new, b), ptr<T>(c_new, b), ptr<T>(extra, b), ptr<T>(out, b));
    });
  });
}

void rnn_step_backward(RnnKind kind, const Array& gates, const Array& extra, const Array& h_prev, const Array& c_prev,
                       const Array& h_new, const Array& dout, const Array& dh_next, const Array& dc_next,
                       const Array& lengths, int64_t t, Array& dx, Array& dh_side, Array& carry, Array& dc_prev) {
  const int64_t B = h_prev.shape(0), H = h_prev.shape(1);
  dispatch_f32_f64(h_prev.dtype(), "rnn_step_backward", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(B, grain_rows(H, rnn_gate_count(kind)), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        RnnBackwardRow<T> r{ptr<T>(gates, b), ptr<T>(extra, b), ptr<T>(h_prev, b), ptr<T>(c_prev, b), ptr<T>(h_new, b),
                         ptr<T>(dout, b), ptr<T>(dh_next, b), ptr<T>(dc_next, b), ptr<T>(dx, b), ptr<T>(dh_side, b),
                         ptr<T>(carry, b), ptr<T>(dc_prev, b)};
        backward_row<T>(kind, r, H, 0, H, row_active(lengths, b, t));
      }
    });
  });
}

bool rnn_sequence_forward(RnnKind kind, Array& xg, const Array& w_hh, const Array& b_hh, const Array& lengths,
                          bool reverse, Array& hs, Array& cs, Array& extra, Array& y) {
  return dispatch_f32_f64(hs.dtype(), "rnn", [&](auto tag) {
    using T = decltype(tag);
    const Plan plan = sequence_plan<T>(hs.shape(1), hs.shape(2));
    if (plan.threads && plan.split == Split::rows)
      sequence_forward_rows<T>(kind, xg, w_hh, b_hh, lengths, reverse, hs, cs, extra, y, plan.threads);
    else if (plan.threads)
      sequence_forward_units<T>(kind, xg, w_hh, b_hh, lengths, reverse, hs, cs, extra, y, plan.threads);
    return plan.threads > 0;
  });
}

bool rnn_sequence_backward(RnnKind kind, const Array& w_hh, const Array& lengths, bool reverse, const Array& hs,
                           const Array& cs, const Array& gates, const Array& extra, const Array& dy, Array& dxg,
                           Array& dhg, Array& dh_buf, Array& dc_buf) {
  return dispatch_f32_f64(hs.dtype(), "rnn_backward", [&](auto tag) {
    using T = decltype(tag);
    const Plan plan = sequence_plan<T>(hs.shape(1), hs.shape(2));
    const BackwardSequence<T> s{hs, cs, gates, extra, dy, dxg, dhg, dh_buf, dc_buf, reverse, dxg.shape(0)};
    if (plan.threads && plan.split == Split::rows) sequence_backward_rows<T>(kind, w_hh, lengths, s, plan.threads);
    else if (plan.threads) sequence_backward_units<T>(kind, w_hh, lengths, s, plan.threads);
    return plan.threads > 0;
  });
}

}  // namespace ember::cpu
