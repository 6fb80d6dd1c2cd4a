// The table of hot float32 loops that are compiled once per ISA (kernels.cpp built with -mavx512f,
// with -mavx2 -mfma, and with no flags) and chosen once at run time by cpu_features.cpp. Everything
// else in csrc/cpu is ISA-neutral and calls through simd().
#pragma once
#include <cstdint>
#include "core/ops.h"
#include "core/optim_math.h"
#include "core/rnn_math.h"

namespace ember::cpu {

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
  // Its backward over the same units from the forward's gates and extra: dh = dh_next + dout,
  // dc_next/dc_prev for the LSTM (else null); writes dx, dh_side (may be one array), carry.
  void (*rnn_backward_row_f32)(RnnKind k, int64_t H, int64_t j0, int64_t j1, const float* gates, const float* extra,
                               const float* h_prev, const float* c_prev, const float* h_new, const float* dout,
                               const float* dh_next, const float* dc_next, float* dx, float* dh_side, float* carry,
                               float* dc_prev);
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
