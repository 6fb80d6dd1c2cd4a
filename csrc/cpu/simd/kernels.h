// The table of hot float32 loops that are compiled once per ISA (kernels.cpp built with -mavx512f,
// with -mavx2 -mfma, and with no flags) and chosen once at run time by cpu_features.cpp. Everything
// else in csrc/cpu is ISA-neutral and calls through simd().
#pragma once
#include <cstdint>
#include "core/ops.h"
#include "core/optim_math.h"
#include "core/rnn_math.h"

namespace ember::cpu {

// One batch row's operands for a recurrent cell's backward step (null where absent: dc_next and
// dc_prev but for the LSTM, extra for the RNN).
template <typename T>
struct RnnBackwardRow {
  const T *gates, *extra, *h_prev, *c_prev, *h_new, *dout, *dh_next, *dc_next;
  T *dx, *dh_side, *carry, *dc_prev;
};

// The row's backward over units [j0, j1) (core/rnn_math.h): dh = dh_next + dout, and dc_next for the
// LSTM; dx and dh_side may be one array. One loop per cell kind (the switch picks it), so each body
// vectorises, kSimdLen lanes per iteration. Shared by the table's float32 entry (compiled per ISA,
// two vectors wide) and cpu/rnn.cpp's float64 path.
template <int kSimdLen, RnnKind K, typename T>
inline void rnn_backward_units(const RnnBackwardRow<T>& r, int64_t H, int64_t j0, int64_t j1) {
#pragma omp simd simdlen(kSimdLen)
  for (int64_t j = j0; j < j1; ++j) {
    T carry = T(0), dc_prev = T(0);
    rnn_backward_unit(K, H, j, r.gates, r.extra, r.h_prev, r.c_prev, r.h_new, r.dh_next[j] + r.dout[j],
                      K == RnnKind::lstm ? r.dc_next[j] : T(0), r.dx, r.dh_side, carry, dc_prev);
    r.carry[j] = carry;
    if constexpr (K == RnnKind::lstm) r.dc_prev[j] = dc_prev;
  }
}

template <int kSimdLen, typename T>
inline void rnn_backward_units(RnnKind k, const RnnBackwardRow<T>& r, int64_t H, int64_t j0, int64_t j1) {
  switch (k) {
    case RnnKind::lstm: return rnn_backward_units<kSimdLen, RnnKind::lstm>(r, H, j0, j1);
    case RnnKind::gru: return rnn_backward_units<kSimdLen, RnnKind::gru>(r, H, j0, j1);
    case RnnKind::rnn_tanh: return rnn_backward_units<kSimdLen, RnnKind::rnn_tanh>(r, H, j0, j1);
    case RnnKind::rnn_relu: return rnn_backward_units<kSimdLen, RnnKind::rnn_relu>(r, H, j0, j1);
  }
}

struct SimdKernels {
  const char* isa;
  // out[i] = a[i*sa] op b[i*sb], sa/sb in {0, 1} (0 = a broadcast scalar). Returns false when the
  // op has no vector loop here (the caller then takes the generic path).
  bool (*binary_f32)(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n);
  bool (*unary_f32)(UnaryOp op, const float* x, float* out, int64_t n);
  // out[i] = c[i] ? a[i*sa] : b[i*sb], sa/sb in {0, 1}: masks (relu's and dropout's backward).
  void (*where_f32)(const bool* c, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n);
  // Reductions of one contiguous row.
  double (*sum_f32)(const float* x, int64_t n);
  float (*max_f32)(const float* x, int64_t n);  // NaN if any element is NaN
  float (*min_f32)(const float* x, int64_t n);
  // acc[i] += x[r*stride + i] for r < rows, i < width: column sums (the reduced dim is not last).
  void (*sum_cols_f32)(const float* x, int64_t rows, int64_t stride, int64_t width, float* acc);
  // Sustained FMA rate of one core with this ISA (12 independent chains, ~`seconds` long): the
  // benchmarks' FP32 roofline, measured rather than read from a datasheet.
  double (*fma_gflops)(double seconds);
  // Fused optimizer updates over n contiguous elements (core/optim_math.h). Optional state arrays
  // (SGD's momentum buffer, RMSprop's buffer and centred average) may be null when unused.
  void (*adam_f32)(const AdamRule& r, float* p, const float* g, float* m, float* v, int64_t n);
  void (*sgd_f32)(const SgdRule& r, float* p, const float* g, float* buf, int64_t n);
  // One batch row of a recurrent cell's forward step (core/rnn_math.h): units [j0, j1) of H, with
  // the vectorised sigmoid and tanh. `a` (pre-activations in, activations out), hn (GRU only),
  // c_prev/c_new (LSTM only) and extra (RNN: none) may be null when the cell has none.
  void (*rnn_forward_row_f32)(RnnKind k, int64_t H, int64_t j0, int64_t j1, float* a, const float* hn,
                              const float* h_prev, const float* c_prev, float* h_new, float* c_new, float* extra);
  // Its backward over the same units: rnn_backward_units, two vectors per iteration.
  void (*rnn_backward_row_f32)(RnnKind k, int64_t H, int64_t j0, int64_t j1, const RnnBackwardRow<float>& r);
  // out[i] = exp(x[i] - shift) (out may be x); returns the sum of the out[i]: one pass of a softmax.
  double (*exp_sum_f32)(const float* x, float shift, float* out, int64_t n);
  // out[i] = g[i] * f'(x[i]) for the smooth activations (gelu, gelu_tanh, tanh, sigmoid); false
  // for ops without a vector loop here.
  bool (*unary_backward_f32)(UnaryOp op, const float* x, const float* g, float* out, int64_t n);
  // Layer norm of one row of n: y = (x - mean) * rstd * w + b (w, b may be null), writing mean and
  // rstd; and its backward: dx for the row, and dy * xhat, dy added into the column accumulators
  // dw_acc, db_acc (null: skipped).
  void (*layer_norm_row_f32)(const float* x, const float* w, const float* b, int64_t n, float eps, float* y,
                             float* mean, float* rstd);
  void (*layer_norm_backward_row_f32)(const float* dy, const float* x, float mean, float rstd, const float* w,
                                      int64_t n, float* dx, float* dw_acc, float* db_acc);
  void (*rmsprop_f32)(const RmspropRule& r, float* p, const float* g, float* sq, float* buf, float* avg, int64_t n);
};

const SimdKernels& simd();           // the best table this CPU supports (EMBER_SIMD env overrides)
const char* simd_level();            // "avx512", "avx2" or "portable"

}  // namespace ember::cpu
