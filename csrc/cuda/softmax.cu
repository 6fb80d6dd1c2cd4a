// Cross-entropy with the log-softmax fused in, on CUDA: one warp per row (8 rows per 256-thread
// block). The warp strides its row three times (max, sum of exp, the target and the row sum for
// label smoothing) with butterfly all-reduces, so every lane ends with the row's log-sum-exp and
// nothing of size rows x classes is written. Class counts up to a few thousand stay in L1 between
// the passes; the backward is one more pass per row from the saved log-sum-exp. Logits are read in
// their storage type (float16/bfloat16 too) and all arithmetic is float32 (float64 for float64).
// Softmax and log-softmax of rows take the same warp per row: max, sum of exp(x - max), one write.
#include <cmath>
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/device/common.cuh"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

constexpr int kRowsPerBlock = kThreads / dev::kWarp;

template <typename A, typename T>
__device__ A warp_row_lse(const T* row, int64_t c, int lane) {
  A mx = -INFINITY;
  for (int64_t j = lane; j < c; j += dev::kWarp) mx = fmax(mx, A(compute_t<T>(row[j])));
  mx = dev::warp_all_max(mx);
  if (isinf(mx)) return mx;  // all -inf (lse = -inf) or a +inf logit (lse = +inf)
  A s = 0;
  for (int64_t j = lane; j < c; j += dev::kWarp) s += exp(A(compute_t<T>(row[j])) - mx);
  return mx + log(dev::warp_all_sum(s));
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) cross_entropy_kernel(const T* x, const int64_t* t, A* loss, A* lse,
                                                                 int64_t rows, int64_t c, int64_t ignore, A keep,
                                                                 A spread) {
  const int lane = threadIdx.x % dev::kWarp;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / dev::kWarp;
  if (r >= rows) return;  // whole warps leave together: r is the same on all 32 lanes
  const T* row = x + r * c;
  const A l = warp_row_lse<A>(row, c, lane);
  A sum = 0;
  if (spread != A(0))
    for (int64_t j = lane; j < c; j += dev::kWarp) sum += A(compute_t<T>(row[j]));
  sum = dev::warp_all_sum(sum);
  if (lane != 0) return;
  lse[r] = l;
  loss[r] = t[r] == ignore ? A(0) : l - keep * A(compute_t<T>(row[t[r]])) - spread * sum;
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) cross_entropy_backward_kernel(const T* x, const int64_t* t, const A* lse,
                                                                          const A* g, T* dx, int64_t rows, int64_t c,
                                                                          int64_t ignore, A keep, A spread) {
  const int lane = threadIdx.x % dev::kWarp;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / dev::kWarp;
  if (r >= rows) return;
  const bool skip = t[r] == ignore;
  for (int64_t j = lane; j < c; j += dev::kWarp) {
    A v = skip ? A(0) : g[r] * (exp(A(compute_t<T>(x[r * c + j])) - lse[r]) - spread - (j == t[r] ? keep : A(0)));
    dx[r * c + j] = T(v);
  }
}

// out = exp(x - m) / s or x - m - log(s): the CPU's formula (m the max, s the sum of exp(x - m)), so
// a row with a NaN (dropped by fmax, but then in s) or an infinity gives NaN on both backends.
template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) softmax_kernel(const T* x, T* out, int64_t rows, int64_t n, bool log_) {
  const int lane = threadIdx.x % dev::kWarp;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / dev::kWarp;
  if (r >= rows) return;
  const T* row = x + r * n;
  A m = -INFINITY;
  for (int64_t j = lane; j < n; j += dev::kWarp) m = fmax(m, A(compute_t<T>(row[j])));
  m = dev::warp_all_max(m);
  A s = 0;
  for (int64_t j = lane; j < n; j += dev::kWarp) s += exp(A(compute_t<T>(row[j])) - m);
  s = dev::warp_all_sum(s);
  const A shift = log_ ? m + log(s) : m, scale = A(1) / s;
  for (int64_t j = lane; j < n; j += dev::kWarp) {
    const A z = A(compute_t<T>(row[j])) - shift;
    out[r * n + j] = T(log_ ? z : exp(z) * scale);
  }
}

unsigned row_blocks(int64_t rows) { return unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

namespace typed {
template <typename T>
void cross_entropy(const Array& logits, const Array& targets, Array& loss, Array& lse, int64_t ignore, double ls) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const int64_t rows = logits.shape(0), c = logits.shape(1);
  if (rows == 0) return;
  DeviceGuard guard(logits.device().index, "cross_entropy");
  cross_entropy_kernel<T, A><<<row_blocks(rows), kThreads, 0, stream_of(logits.device().index)>>>(
      logits.data<T>(), targets.data<int64_t>(), loss.data<A>(), lse.data<A>(), rows, c, ignore, A(1 - ls),
      A(ls / double(c)));
  CUDA_CHECK_LAUNCH("cross_entropy");
}

template <typename T>
void cross_entropy_backward(const Array& logits, const Array& targets, const Array& lse, const Array& g, Array& dx,
                            int64_t ignore, double ls) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const int64_t rows = logits.shape(0), c = logits.shape(1);
  if (rows == 0) return;
  DeviceGuard guard(logits.device().index, "cross_entropy_backward");
  cross_entropy_backward_kernel<T, A><<<row_blocks(rows), kThreads, 0, stream_of(logits.device().index)>>>(
      logits.data<T>(), targets.data<int64_t>(), lse.data<A>(), g.data<A>(), dx.data<T>(), rows, c, ignore,
      A(1 - ls), A(ls / double(c)));
  CUDA_CHECK_LAUNCH("cross_entropy_backward");
}

template <typename T>
void softmax(const Array& x, Array& out, bool log) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const int64_t rows = x.shape(0), n = x.shape(1);
  const char* op = log ? "log_softmax" : "softmax";
  DeviceGuard guard(x.device().index, op);
  softmax_kernel<T, A><<<row_blocks(rows), kThreads, 0, stream_of(x.device().index)>>>(x.data<T>(), out.data<T>(),
                                                                                      rows, n, log);
  CUDA_CHECK_LAUNCH(op);
}
}  // namespace typed

}  // namespace

void cross_entropy(const Array& logits, const Array& targets, Array& loss, Array& lse, int64_t ignore_index,
                   double label_smoothing) {
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    typed::cross_entropy<decltype(tag)>(logits, targets, loss, lse, ignore_index, label_smoothing);
  });
}

void cross_entropy_backward(const Array& logits, const Array& targets, const Array& lse, const Array& grad_rows,
                            Array& grad_logits, int64_t ignore_index, double label_smoothing) {
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    typed::cross_entropy_backward<decltype(tag)>(logits, targets, lse, grad_rows, grad_logits, ignore_index,
                                                 label_smoothing);
  });
}

void softmax(const Array& x, Array& out, bool log) {
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    typed::softmax<decltype(tag)>(x, out, log);
  });
}

}  // namespace ember::cuda
