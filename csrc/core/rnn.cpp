// Recurrent layers' device-neutral driver: a whole layer (one direction) per call, checked once, so
// a 50-step LSTM is one trip from Python, not 100 (the Python loop cost ~60 us of ~170 us per step).
//
// States live in one (T + 1, B, H) array per state (rnn_math.h: step t reads slot rnn_slot_in(t),
// writes rnn_slot_out(t)); the h entering every step, in time order, is one contiguous view, so the
// weight gradient dW_hh = dG^T H_prev is one GEMM over it with no gather. A backend may run the
// whole loop itself (the CPU's fused loop); otherwise it runs here, step by step: the hidden
// projection GEMM (W_hh^T packed once per sequence) and the backend's fused cell kernel.
#include "core/backend.h"
#include "core/ops.h"

namespace ember {

namespace {

Array slot(const Array& a, int64_t i) { return a.slice(0, i, i + 1, 1).squeeze(0); }  // (B, .) view
Array slot_or_empty(const Array& a, int64_t i) { return a.defined() ? slot(a, i) : Array(); }

void check_lengths(const char* op, const Array& h, const Array& lengths) {
  if (!lengths.defined()) return;
  check_same_device(op, h, lengths);
  EMBER_CHECK(lengths.ndim() == 1 && lengths.shape(0) == h.shape(0) && lengths.dtype() == DType::int64 &&
                  lengths.is_contiguous(),
              op, "lengths must be contiguous int64 (", h.shape(0), ",), got ", shape_str(lengths.shape()));
}

void check_sequence(const char* op, RnnKind kind, const Array& xg, const Array& w_hh, const Array& b_hh,
                    const Array& h0, const Array& c0, const Array& lengths) {
  EMBER_CHECK(h0.ndim() == 2, op, "h0 must be (B, H), got shape ", shape_str(h0.shape()));
  EMBER_CHECK_T(TypeError, h0.dtype() == DType::float32 || h0.dtype() == DType::float64, op,
                "expects float32 or float64, got ", dtype_name(h0.dtype()));
  const int64_t B = h0.shape(0), H = h0.shape(1), G = rnn_gate_count(kind);
  EMBER_CHECK(xg.ndim() == 3 && xg.shape(1) == B && xg.shape(2) == G * H && (xg.is_contiguous() || xg.numel() == 0),
              op,
              "the input projection must be a contiguous (T, ", B, ", ", G * H,
              ") array (the layer writes its gates into it), got shape ", shape_str(xg.shape()));
  EMBER_CHECK(w_hh.ndim() == 2 && w_hh.shape(0) == G * H && w_hh.shape(1) == H, op, "W_hh must be (", G * H, ", ", H,
              "), got shape ", shape_str(w_hh.shape()));
  EMBER_CHECK(!b_hh.defined() || (b_hh.ndim() == 1 && b_hh.shape(0) == G * H), op, "b_hh must be (", G * H, ",)");
  for (const Array* a : {&xg, &w_hh, &b_hh, &c0}) {
    if (!a->defined()) continue;
    check_same_device(op, h0, *a);
    EMBER_CHECK_T(TypeError, a->dtype() == h0.dtype(), op, "dtypes differ (", dtype_name(a->dtype()), " and ",
                  dtype_name(h0.dtype()), ")");
  }
  const bool lstm = kind == RnnKind::lstm;
  EMBER_CHECK(lstm == c0.defined(), op, lstm ? "the LSTM needs c0" : "only the LSTM has a cell state");
  EMBER_CHECK(!c0.defined() || c0.shape() == h0.shape(), op, "c0 must be (", B, ", ", H, "), got shape ",
              shape_str(c0.shape()));
  check_lengths(op, h0, lengths);
}

// The loop of one layer, step by step through the backend's cell kernels (backends without a
// whole-sequence kernel). The step's GEMM adds W_hh h (+ b_hh) into the step's row of xg; the GRU's
// n gate needs W_hn h + b_hn on its own, so its GEMM goes to a scratch row and only r, z are added.
void forward_by_steps(RnnSequence& s, const Array& w_hh, const Array& b_hh) {
  const int64_t T = s.gates.shape(0), B = s.hs.shape(1), G = rnn_gate_count(s.kind), H = s.hs.shape(2);
  const bool gru = s.kind == RnnKind::gru;
  const PackedB w_hh_t = gemm_pack_b(w_hh.transpose(0, 1));
  const Array* bias = b_hh.defined() ? &b_hh : nullptr;
  Array hg = gru ? Array::empty({B, G * H}, s.hs.dtype(), s.hs.device()) : Array();  // W_hh h + b_hh
  for (int64_t i = 0; i < T; ++i) {
    const int64_t t = s.reverse ? T - 1 - i : i, in = rnn_slot_in(s.reverse, t), out = rnn_slot_out(s.reverse, t);
    const Array h_prev = slot(s.hs, in);
    Array a = slot(s.gates, t), hn;
    if (gru) {
      matmul_packed_into(h_prev, w_hh_t, hg, 0.0, bias);
      Array rz = a.slice(1, 0, 2 * H, 1);
      copy_(rz, binary(BinaryOp::add, rz, hg.slice(1, 0, 2 * H, 1)));
      hn = hg.slice(1, 2 * H, 3 * H, 1);
    } else {
      matmul_packed_into(h_prev, w_hh_t, a, 1.0, bias);
    }
    Array h_new = slot(s.hs, out), c_new = slot_or_empty(s.cs, out), extra = slot_or_empty(s.extra, t);
    Array y_t = slot(s.y, t);
    EMBER_ON_DEVICE(s.hs.device(), rnn_step_forward, s.kind, a, hn, h_prev, slot_or_empty(s.cs, in), s.lengths, t,
                    h_new, c_new, extra, y_t);
  }
}

void backward_by_steps(const RnnSequence& s, const Array& w_hh, const Array& dy, RnnSequenceGrads& g, Array& dh_buf,
                       Array& dc_buf) {
  const int64_t T = g.dxg.shape(0);
  const PackedB w = gemm_pack_b(w_hh);
  // dh/dc reaching the step: first h_n's and c_n's gradients, then the two buffers in turn.
  Array dh = slot(dy, T), dc = s.cs.defined() ? slot(dy, T + 1) : Array();
  for (int64_t i = 0; i < T; ++i) {
    const int64_t t = s.reverse ? i : T - 1 - i, in = rnn_slot_in(s.reverse, t);
    Array dx = slot(g.dxg, t), dh_side = slot(g.dhg, t), carry = slot(dh_buf, i % 2),
          dc_prev = slot_or_empty(dc_buf, i % 2);
    EMBER_ON_DEVICE(s.hs.device(), rnn_step_backward, s.kind, slot(s.gates, t), slot_or_empty(s.extra, t),
                    slot(s.hs, in), slot_or_empty(s.cs, in), slot(s.hs, rnn_slot_out(s.reverse, t)), slot(dy, t), dh,
                    dc, s.lengths, t, dx, dh_side, carry, dc_prev);
    matmul_packed_into(dh_side, w, carry, 1.0);  // dh_{t-1} = carry + dh_side W_hh
    dh = carry, dc = dc_prev;
  }
}

}  // namespace

Array RnnSequence::h_prevs() const {
  const int64_t T = y.shape(0) - 2;
  return hs.slice(0, reverse ? 1 : 0, reverse ? T + 1 : T, 1);
}

RnnSequence rnn_sequence_forward(RnnKind kind, Array xg, const Array& w_hh, const Array& b_hh_in, const Array& h0,
                                 const Array& c0, const Array& lengths, bool reverse) {
  check_sequence("rnn", kind, xg, w_hh, b_hh_in, h0, c0, lengths);
  const int64_t T = xg.shape(0), B = h0.shape(0), H = h0.shape(1);
  const Device dev = h0.device();
  const Array b_hh = b_hh_in.defined() ? b_hh_in.contiguous() : Array();
  RnnSequence s;
  s.kind = kind, s.reverse = reverse, s.lengths = lengths;
  s.gates = xg;
  s.y = Array::empty({T + 2, B, H}, h0.dtype(), dev);
  s.hs = Array::empty({T + 1, B, H}, h0.dtype(), dev);
  if (c0.defined()) s.cs = Array::empty({T + 1, B, H}, h0.dtype(), dev);
  if (rnn_has_extra(kind)) s.extra = Array::empty({T, B, H}, h0.dtype(), dev);
  const int64_t first = reverse ? T : 0, last = reverse ? 0 : T;  // slots of the initial and final states
  Array h_first = slot(s.hs, first), h_n = slot(s.y, T), c_n = slot(s.y, T + 1);
  copy_(h_first, h0);
  if (c0.defined()) {
    Array c_first = slot(s.cs, first);
    copy_(c_first, c0);
  }
  if (T > 0 &&
      !EMBER_ON_DEVICE(dev, rnn_sequence_forward, kind, s.gates, w_hh, b_hh, lengths, reverse, s.hs, s.cs, s.extra,
                       s.y))
    forward_by_steps(s, w_hh, b_hh);
  copy_(h_n, slot(s.hs, last));
  copy_(c_n, c0.defined() ? slot(s.cs, last) : full({B, H}, 0.0, h0.dtype(), dev));
  return s;
}

RnnSequenceGrads rnn_sequence_backward(const RnnSequence& s, const Array& w_hh, const Array& dy_in) {
  const char* op = "rnn_backward";
  const int64_t T = s.y.shape(0) - 2, B = s.y.shape(1), H = s.y.shape(2), G = rnn_gate_count(s.kind);
  EMBER_CHECK(dy_in.shape() == s.y.shape() && dy_in.dtype() == s.y.dtype(), op, "the output gradient must be ",
              shape_str(s.y.shape()), " like the output, got ", shape_str(dy_in.shape()));
  const Array dy = dy_in.strides()[2] == 1 ? dy_in : dy_in.contiguous();  // rows with unit column stride
  EMBER_CHECK(w_hh.shape() == Shape({G * H, H}) && w_hh.dtype() == s.y.dtype(), op, "W_hh must be (", G * H, ", ", H,
              ")");
  check_same_device(op, s.y, dy);
  check_same_device(op, s.y, w_hh);
  const Device dev = s.y.device();
  const bool lstm = s.kind == RnnKind::lstm;
  RnnSequenceGrads g;
  g.dxg = Array::empty({T, B, G * H}, s.y.dtype(), dev);
  // The pre-activation gradients of the two sides differ only in the GRU's n gate.
  g.dhg = s.kind == RnnKind::gru ? Array::empty({T, B, G * H}, s.y.dtype(), dev) : g.dxg;
  if (T == 0) {
    g.dh0 = slot(dy, T).clone();
    if (lstm) g.dc0 = slot(dy, T + 1).clone();
    return g;
  }
  // The gradients reaching h and c, two of each written in turn, step i into slot i % 2.
  Array dh_buf = Array::empty({2, B, H}, s.y.dtype(), dev), dc_buf;
  if (lstm) dc_buf = Array::empty({2, B, H}, s.y.dtype(), dev);
  if (!EMBER_ON_DEVICE(dev, rnn_sequence_backward, s.kind, w_hh, s.lengths, s.reverse, s.hs, s.cs, s.gates,
                       s.extra, dy, g.dxg, g.dhg, dh_buf, dc_buf))
    backward_by_steps(s, w_hh, dy, g, dh_buf, dc_buf);
  g.dh0 = slot(dh_buf, (T - 1) % 2);
  if (lstm) g.dc0 = slot(dc_buf, (T - 1) % 2);
  return g;
}

}  // namespace ember
