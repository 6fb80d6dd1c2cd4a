// Recurrent cells on the CPU, one time step over the batch (the input projection of all steps and
// the per-step hidden projection are GEMMs, issued by the Python layer). Forward: each batch row's
// H units in one pass (float32 through the per-ISA vector loop with branch-free sigmoid/tanh);
// backward: one pass that also adds the output's gradient to the next step's. Rows past their
// sequence's length keep their state and output 0 (forward), and pass gradients straight through
// (backward), so padded steps change nothing.
#include <cmath>
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/rnn_math.h"
#include "core/scalar_math.h"
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

bool row_active(const Array& lengths, int64_t b, int64_t t) {
  return !lengths.defined() || t < lengths.data<int64_t>()[b];
}

// One batch row's operands for the backward step (null where absent).
template <typename T>
struct BackwardRow {
  const T *saved, *h_prev, *c_prev, *h_new, *dout, *dh_next, *dc_next;
  T *dx, *dh_side, *carry, *dc_prev;
};

template <RnnKind K, typename T>
void backward_row(const BackwardRow<T>& r, int64_t H) {
  const T *__restrict go = r.dout, *__restrict dn = r.dh_next, *__restrict dcn = r.dc_next;
  T *__restrict cr = r.carry, *__restrict dcp = r.dc_prev;
  for (int64_t j = 0; j < H; ++j) {
    const T dh = dn[j] + (go ? go[j] : T(0));
    T carry = 0, dc_prev = 0;
    rnn_backward_unit(K, H, j, r.saved, r.h_prev, r.c_prev, r.h_new, dh, dcn ? dcn[j] : T(0), r.dx, r.dh_side, carry,
                      dc_prev);
    cr[j] = carry;
    if (dcp) dcp[j] = dc_prev;
  }
}

// The gate math costs ~10 cycles per unit (several exp), far more than an elementwise add, so rows
// go to threads from 8K gate values on (a 32 x 256 LSTM step: 29 -> ~16 us on two cores).
int64_t grain_rows(int64_t H, int gates) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, H * gates)); }

}  // namespace

void rnn_step_forward(RnnKind kind, const Array& xg, const Array& hg, const Array& h_prev, const Array& c_prev,
                      const Array& lengths, int64_t t, Array& h_new, Array& c_new, Array& saved, Array& out) {
  const int64_t B = h_prev.shape(0), H = h_prev.shape(1);
  dispatch_f32_f64(h_prev.dtype(), "rnn_step", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(B, grain_rows(H, rnn_gate_count(kind)), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        T *hn = ptr<T>(h_new, b), *cn = ptr<T>(c_new, b), *o = ptr<T>(out, b);
        const T *hp = ptr<T>(h_prev, b), *cp = ptr<T>(c_prev, b);
        if (!row_active(lengths, b, t)) {  // padding: the state carries over, the output is 0
          for (int64_t j = 0; j < H; ++j) {
            hn[j] = hp[j];
            if (cn) cn[j] = cp[j];
            if (o) o[j] = T(0);
          }
          continue;
        }
        const T *x = ptr<T>(xg, b), *h = ptr<T>(hg, b);
        T* s = ptr<T>(saved, b);
        if constexpr (std::is_same_v<T, float>) {
          simd().rnn_forward_row_f32(kind, H, x, h, hp, cp, hn, cn, s);
        } else {
          for (int64_t j = 0; j < H; ++j) rnn_forward_unit<LibmMath>(kind, H, j, x, h, hp, cp, hn, cn, s);
        }
        if (o)
          for (int64_t j = 0; j < H; ++j) o[j] = hn[j];
      }
    });
  });
}

void rnn_step_backward(RnnKind kind, const Array& saved, const Array& h_prev, const Array& c_prev, const Array& h_new,
                       const Array& dout, const Array& dh_next, const Array& dc_next, const Array& lengths, int64_t t,
                       Array& dx, Array& dh_side, Array& carry, Array& dc_prev) {
  const int64_t B = h_prev.shape(0), H = h_prev.shape(1), G = rnn_gate_count(kind);
  dispatch_f32_f64(h_prev.dtype(), "rnn_step_backward", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(B, grain_rows(H, G), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T *dn = ptr<T>(dh_next, b), *dcn = ptr<T>(dc_next, b), *go = ptr<T>(dout, b);
        T *gx = ptr<T>(dx, b), *gh = ptr<T>(dh_side, b), *cr = ptr<T>(carry, b), *dcp = ptr<T>(dc_prev, b);
        if (!row_active(lengths, b, t)) {  // padding: gradients pass through untouched
          for (int64_t j = 0; j < G * H; ++j) gx[j] = gh[j] = T(0);
          for (int64_t j = 0; j < H; ++j) {
            cr[j] = dn[j];
            if (dcp) dcp[j] = dcn ? dcn[j] : T(0);
          }
          continue;
        }
        const T *s = ptr<T>(saved, b), *hp = ptr<T>(h_prev, b), *cp = ptr<T>(c_prev, b), *hn = ptr<T>(h_new, b);
        BackwardRow<T> row{s, hp, cp, hn, go, dn, dcn, gx, gh, cr, dcp};
        switch (kind) {  // one loop per kind: with the kind a constant, each loop body vectorises
          case RnnKind::lstm: backward_row<RnnKind::lstm>(row, H); break;
          case RnnKind::gru: backward_row<RnnKind::gru>(row, H); break;
          case RnnKind::rnn_tanh: backward_row<RnnKind::rnn_tanh>(row, H); break;
          case RnnKind::rnn_relu: backward_row<RnnKind::rnn_relu>(row, H); break;
        }
      }
    });
  });
}

}  // namespace ember::cpu
