// Recurrent layers' device-neutral driver: the checks of the per-step cell ops, and the time loop of
// a whole layer (one direction) in C++, so a 50-step LSTM makes 100 backend calls, not 100 trips
// through Python with their allocations (measured: ~60 us of the ~170 us per step of the Python loop).
//
// States live in one (T + 1, B, H) array per state: step t reads slot in(t) and writes slot out(t),
// forward in = t, out = t + 1; reverse in = t + 1, out = t. Either way the h entering every step,
// in time order, is one contiguous (T, B, H) view (slots 0..T-1 or 1..T), so the weight gradient
// dW_hh = dG^T H_prev is one GEMM over it with no gather.
#include "core/ops.h"
#include "core/backend.h"

namespace ember {

// (B, cols) with unit column stride, on h's device and dtype; empty arrays pass when allowed.
static void check_rnn_rows(const char* op, const Array& h, const Array& a, int64_t cols, const char* what,
                           bool optional) {
  if (!a.defined()) {
    EMBER_CHECK(optional, op, what, " is required");
    return;
  }
  check_same_device(op, h, a);
  EMBER_CHECK(a.ndim() == 2 && a.shape(0) == h.shape(0) && a.shape(1) == cols && (a.strides()[1] == 1 || cols <= 1),
              op, what, " must be (", h.shape(0), ", ", cols, ") with unit column stride, got shape ",
              shape_str(a.shape()));
  EMBER_CHECK_T(TypeError, a.dtype() == h.dtype(), op, what, " is ", dtype_name(a.dtype()), ", h is ",
                dtype_name(h.dtype()));
}

static void check_rnn_lengths(const char* op, const Array& h, const Array& lengths) {
  if (!lengths.defined()) return;
  check_same_device(op, h, lengths);
  EMBER_CHECK(lengths.ndim() == 1 && lengths.shape(0) == h.shape(0) && lengths.dtype() == DType::int64 &&
                  lengths.is_contiguous(),
              op, "lengths must be contiguous int64 (", h.shape(0), ",), got ", shape_str(lengths.shape()));
}

RnnStep rnn_step_forward(RnnKind kind, const Array& xg, const Array& hg, const Array& h_prev, const Array& c_prev,
                         const Array& lengths, int64_t t, Array out) {
  const char* op = "rnn_step";
  EMBER_CHECK(h_prev.ndim() == 2 && h_prev.is_contiguous(), op, "h must be a contiguous (B, H) array, got shape ",
              shape_str(h_prev.shape()));
  EMBER_CHECK_T(TypeError, h_prev.dtype() == DType::float32 || h_prev.dtype() == DType::float64, op,
                "expects float32 or float64, got ", dtype_name(h_prev.dtype()));
  const int64_t B = h_prev.shape(0), H = h_prev.shape(1), G = rnn_gate_count(kind);
  const bool lstm = kind == RnnKind::lstm;
  check_rnn_rows(op, h_prev, xg, G * H, "the input projection", false);
  check_rnn_rows(op, h_prev, hg, G * H, "the hidden projection", false);
  check_rnn_rows(op, h_prev, c_prev, H, "c", !lstm);
  check_rnn_rows(op, h_prev, out, H, "out", true);
  check_rnn_lengths(op, h_prev, lengths);
  EMBER_CHECK(lstm || !c_prev.defined(), op, "only the LSTM has a cell state");
  RnnStep r;
  r.h_new = Array::empty({B, H}, h_prev.dtype(), h_prev.device());
  if (lstm) r.c_new = Array::empty({B, H}, h_prev.dtype(), h_prev.device());
  if (rnn_saved_count(kind)) r.saved = Array::empty({B, rnn_saved_count(kind) * H}, h_prev.dtype(), h_prev.device());
  EMBER_ON_DEVICE(h_prev.device(), rnn_step_forward, kind, xg, hg, h_prev, c_prev, lengths, t, r.h_new, r.c_new,
                  r.saved, out);
  return r;
}

RnnStepGrads rnn_step_backward(RnnKind kind, const Array& saved, const Array& h_prev, const Array& c_prev,
                               const Array& h_new, const Array& dout, const Array& dh_next, const Array& dc_next,
                               const Array& lengths, int64_t t, Array dx_out, Array dh_side_out) {
  const char* op = "rnn_step_backward";
  EMBER_CHECK(h_prev.ndim() == 2 && h_prev.is_contiguous(), op, "h must be a contiguous (B, H) array, got shape ",
              shape_str(h_prev.shape()));
  const int64_t B = h_prev.shape(0), H = h_prev.shape(1), G = rnn_gate_count(kind);
  const bool lstm = kind == RnnKind::lstm;
  check_rnn_rows(op, h_prev, saved, rnn_saved_count(kind) * H, "saved", rnn_saved_count(kind) == 0);
  check_rnn_rows(op, h_prev, h_new, H, "h_new", false);
  check_rnn_rows(op, h_prev, c_prev, H, "c", !lstm);
  check_rnn_rows(op, h_prev, dout, H, "dout", true);
  check_rnn_rows(op, h_prev, dh_next, H, "dh_next", false);
  check_rnn_rows(op, h_prev, dc_next, H, "dc_next", true);
  check_rnn_lengths(op, h_prev, lengths);
  check_rnn_rows(op, h_prev, dx_out, G * H, "dx_out", true);
  check_rnn_rows(op, h_prev, dh_side_out, G * H, "dh_side_out", true);
  RnnStepGrads g;
  g.dx = dx_out.defined() ? dx_out : Array::empty({B, G * H}, h_prev.dtype(), h_prev.device());
  g.dh_side = dh_side_out.defined() ? dh_side_out : Array::empty({B, G * H}, h_prev.dtype(), h_prev.device());
  g.carry = Array::empty({B, H}, h_prev.dtype(), h_prev.device());
  if (lstm) g.dc_prev = Array::empty({B, H}, h_prev.dtype(), h_prev.device());
  EMBER_ON_DEVICE(h_prev.device(), rnn_step_backward, kind, saved, h_prev, c_prev, h_new, dout, dh_next, dc_next,
                  lengths, t, g.dx, g.dh_side, g.carry, g.dc_prev);
  return g;
}

// ---- whole sequences ---------------------------------------------------------------------------

namespace {

Array slot(const Array& a, int64_t i) { return a.slice(0, i, i + 1, 1).squeeze(0); }  // (B, .) view

int64_t slot_in(const RnnSequence& s, int64_t t) { return s.reverse ? t + 1 : t; }
int64_t slot_out(const RnnSequence& s, int64_t t) { return s.reverse ? t : t + 1; }
Array slot_or_empty(const Array& a, int64_t i) { return a.defined() ? slot(a, i) : Array(); }

void check_sequence(const char* op, RnnKind kind, const Array& xg, const PackedB& w_hh_t, const Array& b_hh,
                    const Array& h0, const Array& c0) {
  EMBER_CHECK(h0.ndim() == 2, op, "h0 must be (B, H), got shape ", shape_str(h0.shape()));
  EMBER_CHECK_T(TypeError, h0.dtype() == DType::float32 || h0.dtype() == DType::float64, op,
                "expects float32 or float64, got ", dtype_name(h0.dtype()));
  const int64_t B = h0.shape(0), H = h0.shape(1), G = rnn_gate_count(kind);
  EMBER_CHECK(xg.ndim() == 3 && xg.shape(1) == B && xg.shape(2) == G * H && (xg.strides()[2] == 1 || G * H <= 1), op,
              "the input projection must be (T, ", B, ", ", G * H, ") with unit column stride, got shape ",
              shape_str(xg.shape()));
  EMBER_CHECK(w_hh_t.k == H && w_hh_t.n == G * H, op, "W_hh^T must be (", H, ", ", G * H, "), got (", w_hh_t.k, ", ",
              w_hh_t.n, ")");
  EMBER_CHECK_T(TypeError, xg.dtype() == h0.dtype() && w_hh_t.dtype == h0.dtype(), op, "dtypes differ");
  check_same_device(op, h0, xg);
  check_same_device(op, h0, w_hh_t.data);
  EMBER_CHECK(!b_hh.defined() || (b_hh.ndim() == 1 && b_hh.shape(0) == G * H), op, "b_hh must be (", G * H, ",)");
  const bool lstm = kind == RnnKind::lstm;
  EMBER_CHECK(lstm == c0.defined(), op, lstm ? "the LSTM needs c0" : "only the LSTM has a cell state");
  EMBER_CHECK(!c0.defined() || c0.shape() == h0.shape(), op, "c0 must be (", B, ", ", H, "), got shape ",
              shape_str(c0.shape()));
}

}  // namespace

Array RnnSequence::h_prevs() const {
  const int64_t T = y.shape(0) - 2;
  return hs.slice(0, reverse ? 1 : 0, reverse ? T + 1 : T, 1);
}

RnnSequence rnn_sequence_forward(RnnKind kind, const Array& xg, const PackedB& w_hh_t, const Array& b_hh,
                                 const Array& h0, const Array& c0, const Array& lengths, bool reverse) {
  const char* op = "rnn";
  check_sequence(op, kind, xg, w_hh_t, b_hh, h0, c0);
  check_rnn_lengths(op, h0, lengths);
  const int64_t T = xg.shape(0), B = h0.shape(0), H = h0.shape(1), G = rnn_gate_count(kind);
  const Device dev = h0.device();
  RnnSequence s{kind, reverse, lengths};
  s.y = Array::empty({T + 2, B, H}, h0.dtype(), dev);
  s.hs = Array::empty({T + 1, B, H}, h0.dtype(), dev);
  if (c0.defined()) s.cs = Array::empty({T + 1, B, H}, h0.dtype(), dev);
  if (rnn_saved_count(kind)) s.saved = Array::empty({T, B, rnn_saved_count(kind) * H}, h0.dtype(), dev);
  const int64_t first = reverse ? T : 0, last = reverse ? 0 : T;  // slots of the initial and final states
  Array h_first = slot(s.hs, first);
  copy_(h_first, h0);
  if (c0.defined()) {
    Array c_first = slot(s.cs, first);
    copy_(c_first, c0);
  }
  Array hg = Array::empty({B, G * H}, h0.dtype(), dev);  // W_hh h + b_hh of the current step
  for (int64_t i = 0; i < T; ++i) {
    const int64_t t = reverse ? T - 1 - i : i;
    const Array h_prev = slot(s.hs, slot_in(s, t));
    matmul_packed_into(h_prev, w_hh_t, hg, 0.0, b_hh.defined() ? &b_hh : nullptr);
    Array h_new = slot(s.hs, slot_out(s, t)), c_new = slot_or_empty(s.cs, slot_out(s, t));
    Array saved = slot_or_empty(s.saved, t), out = slot(s.y, t);
    EMBER_ON_DEVICE(dev, rnn_step_forward, kind, slot(xg, t), hg, h_prev, slot_or_empty(s.cs, slot_in(s, t)), lengths,
                    t, h_new, c_new, saved, out);
  }
  Array h_n = slot(s.y, T), c_n = slot(s.y, T + 1);
  copy_(h_n, slot(s.hs, last));
  if (s.cs.defined()) copy_(c_n, slot(s.cs, last));
  else copy_(c_n, full({B, H}, 0.0, h0.dtype(), dev));
  return s;
}

RnnSequenceGrads rnn_sequence_backward(const RnnSequence& s, const PackedB& w_hh, const Array& dy) {
  const char* op = "rnn_backward";
  const int64_t T = s.y.shape(0) - 2, B = s.y.shape(1), H = s.y.shape(2), G = rnn_gate_count(s.kind);
  EMBER_CHECK(dy.shape() == s.y.shape() && dy.dtype() == s.y.dtype() && (dy.strides()[2] == 1 || H == 1), op,
              "the output gradient must be ", shape_str(s.y.shape()), " like the output, got ", shape_str(dy.shape()));
  EMBER_CHECK(w_hh.k == G * H && w_hh.n == H, op, "W_hh must be (", G * H, ", ", H, ")");
  check_same_device(op, s.y, dy);
  const Device dev = s.y.device();
  const bool lstm = s.kind == RnnKind::lstm;
  RnnSequenceGrads g;
  g.dxg = Array::empty({T, B, G * H}, s.y.dtype(), dev);
  // The pre-activation gradients of the two sides differ only in the GRU's n gate.
  g.dhg = s.kind == RnnKind::gru ? Array::empty({T, B, G * H}, s.y.dtype(), dev) : g.dxg;
  // dh/dc reaching the current step: first the output's h_n/c_n gradients (read only), then two
  // buffers in turn, each step writing the one the previous step did not.
  Array dh = slot(dy, T), dc = lstm ? slot(dy, T + 1) : Array();
  Array dh_buf[2], dc_buf[2];
  for (int b = 0; b < 2; ++b) {
    dh_buf[b] = Array::empty({B, H}, s.y.dtype(), dev);
    if (lstm) dc_buf[b] = Array::empty({B, H}, s.y.dtype(), dev);
  }
  for (int64_t i = 0; i < T; ++i) {
    const int64_t t = s.reverse ? i : T - 1 - i;  // the forward's steps, last first
    Array dx = slot(g.dxg, t), dh_side = slot(g.dhg, t), carry = dh_buf[i % 2], dc_prev = dc_buf[i % 2];
    EMBER_ON_DEVICE(dev, rnn_step_backward, s.kind, slot_or_empty(s.saved, t), slot(s.hs, slot_in(s, t)),
                    slot_or_empty(s.cs, slot_in(s, t)), slot(s.hs, slot_out(s, t)), slot(dy, t), dh, dc, s.lengths, t,
                    dx, dh_side, carry, dc_prev);
    matmul_packed_into(dh_side, w_hh, carry, 1.0);  // dh_{t-1} = carry + dh_side W_hh
    dh = carry, dc = dc_prev;
  }
  g.dh0 = T ? dh : dh.clone();
  if (lstm) g.dc0 = T ? dc : dc.clone();
  return g;
}

}  // namespace ember
