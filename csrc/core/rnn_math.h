// The recurrent cells' gate math, one hidden unit j of one batch row at a time, written once for both
// backends (EMBER_HD). PyTorch's formulas and gate order, so its weights give the same outputs:
//   RNN:  h' = act(a),                     a = x_proj + h_proj  (act = tanh or relu)
//   LSTM: i, f, g, o = sig(a_i), sig(a_f), tanh(a_g), sig(a_o);  c' = f c + i g;  h' = o tanh(c')
//   GRU:  r, z = sig(a_r), sig(a_z);  n = tanh(x_n + r hn), hn = W_hn h + b_hn;  h' = (1 - z) n + z h
// `a` is one row of the input projection (W_ih x + b_ih, G*H values) to which the step's GEMM has
// already added W_hh h + b_hh, for every gate but the GRU's n (which needs r * (W_hn h + b_hn), so
// hn arrives on its own). `M` supplies sigmoid and tanh: the vectorisable ones on the CPU, the CUDA
// intrinsics on the GPU, libm for float64.
//
// Forward overwrites `a` with the activations backward needs (LSTM i, f, g, o; GRU r, z, n; the RNN
// needs only h' and leaves `a` alone) and keeps one more value per unit in `extra`: LSTM tanh c',
// GRU hn. So a layer's saved state is its input projection's buffer plus one (T, B, H) array, and
// the step's GEMM output goes straight into the row the cell reads.
// Backward gives the gradients of the pre-activations on the input side (dx, feeding dW_ih, db_ih
// and dx) and on the hidden side (dh_side, feeding dW_hh, db_hh and dh through W_hh); they differ
// only for the GRU's n gate (dh_side_n = dx_n * r). `carry` is the part of dh_prev that does not go
// through W_hh (GRU: dh' z); dc_prev is the LSTM's gradient reaching c (unit j's, like carry).
#pragma once
#include <cstdint>
#include "core/hd.h"

namespace ember {

enum class RnnKind : uint8_t { rnn_tanh, rnn_relu, lstm, gru };

EMBER_HD int rnn_gate_count(RnnKind k) { return k == RnnKind::lstm ? 4 : k == RnnKind::gru ? 3 : 1; }
EMBER_HD bool rnn_has_extra(RnnKind k) { return k == RnnKind::lstm || k == RnnKind::gru; }

// A layer's states live in (T + 1, B, H) arrays (core/rnn.cpp): step t reads slot rnn_slot_in and
// writes slot rnn_slot_out, so in either direction the h entering the steps, in time order, is one
// contiguous (T, B, H) view.
EMBER_HD int64_t rnn_slot_in(bool reverse, int64_t t) { return reverse ? t + 1 : t; }
EMBER_HD int64_t rnn_slot_out(bool reverse, int64_t t) { return reverse ? t : t + 1; }

template <typename M, typename T>
EMBER_HD void rnn_forward_unit(RnnKind k, int64_t H, int64_t j, T* a, const T* hn, const T* h_prev, const T* c_prev,
                               T* h_new, T* c_new, T* extra) {
  if (k == RnnKind::lstm) {
    const T i = M::sigmoid(a[j]), f = M::sigmoid(a[H + j]), g = M::tanh(a[2 * H + j]), o = M::sigmoid(a[3 * H + j]);
    const T c = f * c_prev[j] + i * g, tc = M::tanh(c);
    c_new[j] = c;
    h_new[j] = o * tc;
    a[j] = i, a[H + j] = f, a[2 * H + j] = g, a[3 * H + j] = o, extra[j] = tc;
  } else if (k == RnnKind::gru) {
    const T r = M::sigmoid(a[j]), z = M::sigmoid(a[H + j]), hnj = hn[j];
    const T n = M::tanh(a[2 * H + j] + r * hnj);
    h_new[j] = (T(1) - z) * n + z * h_prev[j];
    a[j] = r, a[H + j] = z, a[2 * H + j] = n, extra[j] = hnj;
  } else {
    const T x = a[j];
    h_new[j] = k == RnnKind::rnn_tanh ? M::tanh(x) : (x > T(0) ? x : T(0));
  }
}

// dh: the gradient reaching h' (the output's plus the next step's); dc: reaching c' (LSTM).
template <typename T>
EMBER_HD void rnn_backward_unit(RnnKind k, int64_t H, int64_t j, const T* gates, const T* extra, const T* h_prev,
                                const T* c_prev, const T* h_new, T dh, T dc, T* dx, T* dh_side, T& carry,
                                T& dc_prev) {
  if (k == RnnKind::lstm) {
    const T i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j], t = extra[j];
    const T dct = dc + dh * o * (T(1) - t * t);
    const T gi = dct * g * i * (T(1) - i), gf = dct * c_prev[j] * f * (T(1) - f);
    const T gg = dct * i * (T(1) - g * g), go = dh * t * o * (T(1) - o);
    dx[j] = dh_side[j] = gi;
    dx[H + j] = dh_side[H + j] = gf;
    dx[2 * H + j] = dh_side[2 * H + j] = gg;
    dx[3 * H + j] = dh_side[3 * H + j] = go;
    dc_prev = dct * f;
    carry = T(0);
  } else if (k == RnnKind::gru) {
    const T r = gates[j], z = gates[H + j], n = gates[2 * H + j], hn = extra[j];
    const T dn = dh * (T(1) - z) * (T(1) - n * n);
    const T dz = dh * (h_prev[j] - n) * z * (T(1) - z);
    const T dr = dn * hn * r * (T(1) - r);
    dx[j] = dh_side[j] = dr;
    dx[H + j] = dh_side[H + j] = dz;
    dx[2 * H + j] = dn;
    dh_side[2 * H + j] = dn * r;
    carry = dh * z;
  } else {
    const T h = h_new[j];
    const T d = k == RnnKind::rnn_tanh ? dh * (T(1) - h * h) : (h > T(0) ? dh : T(0));
    dx[j] = dh_side[j] = d;
    carry = T(0);
  }
}

}  // namespace ember
