// The recurrent cells' gate math, one hidden unit j of one batch row at a time, written once for both
// backends (EMBER_HD). PyTorch's formulas and gate order, so its weights give the same outputs:
//   RNN:  h' = act(a),                     a = x_proj + h_proj  (act = tanh or relu)
//   LSTM: i, f, g, o = sig(a_i), sig(a_f), tanh(a_g), sig(a_o);  c' = f c + i g;  h' = o tanh(c')
//   GRU:  r, z = sig(a_r), sig(a_z);  n = tanh(x_n + r hn), hn = W_hn h + b_hn;  h' = (1 - z) n + z h
// x_proj rows hold W_ih x + b_ih for every gate, h_proj rows W_hh h + b_hh (the GRU's n gate needs
// b_hn inside r * (...), so the biases stay on their own sides). `M` supplies sigmoid and tanh: the
// vectorisable ones on the CPU, the CUDA intrinsics on the GPU, libm for float64.
//
// Forward saves what backward needs: LSTM (i, f, g, o, tanh c'), GRU (r, z, n, hn); the RNN only h'.
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
EMBER_HD int rnn_saved_count(RnnKind k) { return k == RnnKind::lstm ? 5 : k == RnnKind::gru ? 4 : 0; }

// A layer's states live in (T + 1, B, H) arrays (core/rnn.cpp): step t reads slot rnn_slot_in and
// writes slot rnn_slot_out, so in either direction the h entering the steps, in time order, is one
// contiguous (T, B, H) view.
EMBER_HD int64_t rnn_slot_in(bool reverse, int64_t t) { return reverse ? t + 1 : t; }
EMBER_HD int64_t rnn_slot_out(bool reverse, int64_t t) { return reverse ? t : t + 1; }

template <typename M, typename T>
EMBER_HD void rnn_forward_unit(RnnKind k, int64_t H, int64_t j, const T* xg, const T* hg, const T* h_prev,
                               const T* c_prev, T* h_new, T* c_new, T* saved) {
  if (k == RnnKind::lstm) {
    const T i = M::sigmoid(xg[j] + hg[j]), f = M::sigmoid(xg[H + j] + hg[H + j]);
    const T g = M::tanh(xg[2 * H + j] + hg[2 * H + j]), o = M::sigmoid(xg[3 * H + j] + hg[3 * H + j]);
    const T c = f * c_prev[j] + i * g, tc = M::tanh(c);
    c_new[j] = c;
    h_new[j] = o * tc;
    saved[j] = i, saved[H + j] = f, saved[2 * H + j] = g, saved[3 * H + j] = o, saved[4 * H + j] = tc;
  } else if (k == RnnKind::gru) {
    const T r = M::sigmoid(xg[j] + hg[j]), z = M::sigmoid(xg[H + j] + hg[H + j]);
    const T hn = hg[2 * H + j], n = M::tanh(xg[2 * H + j] + r * hn);
    h_new[j] = (T(1) - z) * n + z * h_prev[j];
    saved[j] = r, saved[H + j] = z, saved[2 * H + j] = n, saved[3 * H + j] = hn;
  } else {
    const T a = xg[j] + hg[j];
    h_new[j] = k == RnnKind::rnn_tanh ? M::tanh(a) : (a > T(0) ? a : T(0));
  }
}

// dh: the gradient reaching h' (the output's plus the next step's); dc: reaching c' (LSTM).
template <typename T>
EMBER_HD void rnn_backward_unit(RnnKind k, int64_t H, int64_t j, const T* saved, const T* h_prev, const T* c_prev,
                                const T* h_new, T dh, T dc, T* dx, T* dh_side, T& carry, T& dc_prev) {
  if (k == RnnKind::lstm) {
    const T i = saved[j], f = saved[H + j], g = saved[2 * H + j], o = saved[3 * H + j], t = saved[4 * H + j];
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
    const T r = saved[j], z = saved[H + j], n = saved[2 * H + j], hn = saved[3 * H + j];
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
