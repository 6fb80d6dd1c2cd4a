// Cross-entropy with the log-softmax fused in, on the CPU. Forward: one pass per row finds the max,
// a second sums exp(x - max) (log-sum-exp, stable for any logits), and the loss is read from the
// same row while it is in L1: lse - ((1 - eps) * x[target] + eps/C * sum_j x[j]). Nothing of size
// rows x classes is written. Backward recomputes softmax from the saved lse in one pass:
// d loss / d x[j] = g_row * (exp(x[j] - lse) - (1 - eps) [j == target] - eps/C).
// Softmax and log-softmax of rows: the max, then exp(x - max) and its sum in one pass (the vector
// loops of simd/kernels.cpp for float32), then one scaling pass.
#include <cmath>
#include "core/backend.h"
#include "core/dispatch.h"
#include "cpu/parallel.h"
#include "cpu/row_math.h"

namespace ember::cpu {
namespace {

template <typename T>
T row_lse(const T* x, int64_t c) {
  T mx = x[0];
  for (int64_t j = 1; j < c; ++j) mx = x[j] > mx ? x[j] : mx;
  if (std::isinf(mx)) return mx;  // all -inf (lse = -inf) or a +inf logit (lse = +inf)
  T s = 0;
  for (int64_t j = 0; j < c; ++j) s += std::exp(x[j] - mx);
  return mx + std::log(s);
}

template <typename T>
T row_sum(const T* x, int64_t c) {
  T s = 0;
  for (int64_t j = 0; j < c; ++j) s += x[j];
  return s;
}

int64_t grain_rows(int64_t classes) { return std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(classes, 1)); }

}  // namespace

void cross_entropy(const Array& logits, const Array& targets, Array& loss, Array& lse, int64_t ignore_index,
                   double label_smoothing) {
  const int64_t rows = logits.shape(0), c = logits.shape(1);
  dispatch_f32_f64(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const T* x = logits.data<T>();
    const int64_t* t = targets.data<int64_t>();
    T *out = loss.data<T>(), *l = lse.data<T>();
    const T keep = T(1 - label_smoothing), spread = T(label_smoothing / double(c));
    parallel_for(rows, grain_rows(c), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = x + r * c;
        l[r] = row_lse(row, c);
        if (t[r] == ignore_index) { out[r] = 0; continue; }
        T picked = keep * row[t[r]];
        if (spread != T(0)) picked += spread * row_sum(row, c);
        out[r] = l[r] - picked;
      }
    });
  });
}

void cross_entropy_backward(const Array& logits, const Array& targets, const Array& lse, const Array& grad_rows,
                            Array& grad_logits, int64_t ignore_index, double label_smoothing) {
  const int64_t rows = logits.shape(0), c = logits.shape(1);
  dispatch_f32_f64(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const T *x = logits.data<T>(), *l = lse.data<T>(), *g = grad_rows.data<T>();
    const int64_t* t = targets.data<int64_t>();
    T* dx = grad_logits.data<T>();
    const T keep = T(1 - label_smoothing), spread = T(label_smoothing / double(c));
    parallel_for(rows, grain_rows(c), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = x + r * c;
        T* out = dx + r * c;
        if (t[r] == ignore_index) {
          for (int64_t j = 0; j < c; ++j) out[j] = 0;
          continue;
        }
        for (int64_t j = 0; j < c; ++j) out[j] = g[r] * (std::exp(row[j] - l[r]) - spread);
        out[t[r]] -= g[r] * keep;
      }
    });
  });
}

void softmax(const Array& x, Array& out, bool log) {
  const int64_t rows = x.shape(0), n = x.shape(1);
  dispatch_f32_f64(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(rows, grain_rows(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* in = x.data<T>() + r * n;
        T* o = out.data<T>() + r * n;
        const T m = row_max(in, n);
        const T s = exp_shifted(in, m, o, n);
        if (log) {
          const T shift = T(m + std::log(s));
          for (int64_t j = 0; j < n; ++j) o[j] = in[j] - shift;
        } else {
          const T scale = T(1.0 / s);
          for (int64_t j = 0; j < n; ++j) o[j] *= scale;
        }
      }
    });
  });
}

}  // namespace ember::cpu
