// Recurrent cells on CUDA, one time step: a thread per (batch row, hidden unit), the gate math of
// core/rnn_math.h (the CPU's), coalesced along the hidden units. The projections are GEMMs issued by
// core/rnn.cpp's step loop; this kernel is the fused part between them. Padded rows (t >= lengths[b]) carry
// their state (forward) and pass gradients through (backward). The forward reads the step's summed
// pre-activations from `a` and overwrites them with the gates (core/rnn_math.h).
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/rnn_math.h"
#include "cuda/device/common.cuh"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

struct DevMath {
  template <typename T> __device__ static T sigmoid(T x) { return T(1) / (T(1) + exp(-x)); }
  template <typename T> __device__ static T tanh(T x) { return ::tanh(x); }
};

// A (B, cols) operand: base pointer and row stride (null when absent).
template <typename T>
struct Rows {
  T* p;
  int64_t ld;
  __device__ T* row(int64_t b) const { return p ? p + b * ld : nullptr; }
};
template <typename T>
Rows<T> rows(const Array& a) {
  return {a.defined() ? a.data<T>() : nullptr, a.defined() && a.ndim() > 1 ? a.strides()[0] : 0};
}

__device__ bool active(const int64_t* lengths, int64_t b, int64_t t) { return !lengths || t < lengths[b]; }

template <typename T>
__global__ void __launch_bounds__(kThreads) rnn_forward_kernel(RnnKind k, int64_t B, int64_t H, Rows<T> a,
                                                               Rows<const T> hg_n, Rows<const T> hp, Rows<const T> cp,
                                                               const int64_t* lengths, int64_t t, Rows<T> hn,
                                                               Rows<T> cn, Rows<T> extra, Rows<T> out) {
  for (int64_t e = dev::global_thread(); e < B * H; e += dev::grid_threads()) {
    const int64_t b = e / H, j = e % H;
    if (!active(lengths, b, t)) {
      hn.row(b)[j] = hp.row(b)[j];
      if (cn.p) cn.row(b)[j] = cp.row(b)[j];
      if (out.p) out.row(b)[j] = T(0);
      continue;
    }
    rnn_forward_unit<DevMath>(k, H, j, a.row(b), hg_n.row(b), hp.row(b), cp.row(b), hn.row(b), cn.row(b),
                              extra.row(b));
    if (out.p) out.row(b)[j] = hn.row(b)[j];
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) rnn_backward_kernel(RnnKind k, int64_t B, int64_t H, int G,
                                                                Rows<const T> gates, Rows<const T> extra,
                                                                Rows<const T> hp,
                                                                Rows<const T> cp, Rows<const T> hn,
                                                                Rows<const T> dout, Rows<const T> dhn,
                                                                Rows<const T> dcn, const int64_t* lengths, int64_t t,
                                                                Rows<T> dx, Rows<T> dh_side, Rows<T> carry,
                                                                Rows<T> dcp) {
  for (int64_t e = dev::global_thread(); e < B * H; e += dev::grid_threads()) {
    const int64_t b = e / H, j = e % H;
    const T dc = dcn.p ? dcn.row(b)[j] : T(0);
    if (!active(lengths, b, t)) {
      for (int g = 0; g < G; ++g) dx.row(b)[g * H + j] = dh_side.row(b)[g * H + j] = T(0);
      carry.row(b)[j] = dhn.row(b)[j];
      if (dcp.p) dcp.row(b)[j] = dc;
      continue;
    }
    const T dh = dhn.row(b)[j] + (dout.p ? dout.row(b)[j] : T(0));
    T cr = 0, dc_prev = 0;
    rnn_backward_unit(k, H, j, gates.row(b), extra.row(b), hp.row(b), cp.row(b), hn.row(b), dh, dc, dx.row(b),
                      dh_side.row(b), cr, dc_prev);
    carry.row(b)[j] = cr;
    if (dcp.p) dcp.row(b)[j] = dc_prev;
  }
}

namespace typed {
template <typename T>
void forward(RnnKind k, Array& a, const Array& hn, const Array& h_prev, const Array& c_prev, const Array& lengths,
             int64_t t, Array& h_new, Array& c_new, Array& extra, Array& out) {
  const int64_t B = h_prev.shape(0), H = h_prev.shape(1);
  if (B * H == 0) return;
  const int device = h_prev.device().index;
  DeviceGuard guard(device, "rnn_step");
  rnn_forward_kernel<T><<<grid_for(B * H), kThreads, 0, stream_of(device)>>>(
      k, B, H, rows<T>(a), rows<const T>(hn), rows<const T>(h_prev), rows<const T>(c_prev),
      lengths.defined() ? lengths.data<int64_t>() : nullptr, t, rows<T>(h_new), rows<T>(c_new), rows<T>(extra),
      rows<T>(out));
  CUDA_CHECK_LAUNCH("rnn_step");
}

template <typename T>
void backward(RnnKind k, const Array& gates, const Array& extra, const Array& h_prev, const Array& c_prev,
              const Array& h_new,
              const Array& dout, const Array& dh_next, const Array& dc_next, const Array& lengths, int64_t t,
              Array& dx, Array& dh_side, Array& carry, Array& dc_prev) {
  const int64_t B = h_prev.shape(0), H = h_prev.shape(1);
  if (B * H == 0) return;
  const int device = h_prev.device().index;
  DeviceGuard guard(device, "rnn_step_backward");
  rnn_backward_kernel<T><<<grid_for(B * H), kThreads, 0, stream_of(device)>>>(
      k, B, H, rnn_gate_count(k), rows<const T>(gates), rows<const T>(extra), rows<const T>(h_prev),
      rows<const T>(c_prev),
      rows<const T>(h_new), rows<const T>(dout), rows<const T>(dh_next), rows<const T>(dc_next),
      lengths.defined() ? lengths.data<int64_t>() : nullptr, t, rows<T>(dx), rows<T>(dh_side), rows<T>(carry),
      rows<T>(dc_prev));
  CUDA_CHECK_LAUNCH("rnn_step_backward");
}
}  // namespace typed

}  // namespace

void rnn_step_forward(RnnKind kind, Array& a, const Array& hn, const Array& h_prev, const Array& c_prev,
                      const Array& lengths, int64_t t, Array& h_new, Array& c_new, Array& extra, Array& out) {
  dispatch_f32_f64(h_prev.dtype(), "rnn_step", [&](auto tag) {
    typed::forward<decltype(tag)>(kind, a, hn, h_prev, c_prev, lengths, t, h_new, c_new, extra, out);
  });
}

void rnn_step_backward(RnnKind kind, const Array& gates, const Array& extra, const Array& h_prev, const Array& c_prev,
                       const Array& h_new, const Array& dout, const Array& dh_next, const Array& dc_next,
                       const Array& lengths, int64_t t, Array& dx, Array& dh_side, Array& carry, Array& dc_prev) {
  dispatch_f32_f64(h_prev.dtype(), "rnn_step_backward", [&](auto tag) {
    typed::backward<decltype(tag)>(kind, gates, extra, h_prev, c_prev, h_new, dout, dh_next, dc_next, lengths, t, dx,
                                   dh_side, carry, dc_prev);
  });
}

// The time loop stays in the core (a GEMM and a cell kernel per step, queued on one stream): a
// persistent kernel holding W_hh in shared memory across steps is the GPU's form of the CPU's fused
// loop, not written yet.
bool rnn_sequence_forward(RnnKind, Array&, const Array&, const Array&, const Array&, bool, Array&, Array&, Array&,
                          Array&) {
  return false;
}

bool rnn_sequence_backward(RnnKind, const Array&, const Array&, bool, const Array&, const Array&, const Array&,
                           const Array&, const Array&, Array&, Array&, Array&, Array&) {
  return false;
}

}  // namespace ember::cuda
