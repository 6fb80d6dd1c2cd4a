// Fused log-softmax + cross-entropy (target range checks, the compute dtype) and softmax itself.
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include <algorithm>
#include "core/backend.h"

namespace ember {

// Targets must lie in [0, classes) unless they equal ignore_index: checked with one masked
// min/max (on CUDA this synchronizes, the price of an exception instead of garbage).
static void check_targets(const Array& targets, int64_t classes, int64_t ignore_index, const Shape& logits_shape) {
  if (targets.numel() == 0) return;
  Array ignore = full({}, double(ignore_index), DType::int64, targets.device());
  Array ignored = binary(BinaryOp::eq, targets, ignore);
  Array lo = reduce(ReduceOp::min, where(ignored, full({}, 0, DType::int64, targets.device()), targets), {}, false);
  Array hi = reduce(ReduceOp::max, where(ignored, full({}, 0, DType::int64, targets.device()), targets), {}, false);
  int64_t mn = *lo.to(Device{}).data<int64_t>(), mx = *hi.to(Device{}).data<int64_t>();
  EMBER_CHECK((mn >= 0 && mx < classes), "cross_entropy", "target ", (mn < 0 ? mn : mx), " is out of range for ",
              classes, " classes (logits shape ", shape_str(logits_shape), ")");
}

static void check_cross_entropy(const Array& logits, const Array& targets) {
  check_same_device("cross_entropy", logits, targets);
  EMBER_CHECK(logits.ndim() == 2 && targets.ndim() == 1 && targets.shape(0) == logits.shape(0), "cross_entropy",
              "expects logits (N, C) and targets (N,) (shapes logits=", shape_str(logits.shape()), ", targets=",
              shape_str(targets.shape()), ")");
  EMBER_CHECK(logits.shape(1) > 0, "cross_entropy", "needs at least one class (shape ", shape_str(logits.shape()), ")");
  EMBER_CHECK_T(TypeError, targets.dtype() == DType::int64 || targets.dtype() == DType::int32, "cross_entropy",
                "targets must be class indices (int64), got ", dtype_name(targets.dtype()));
  EMBER_CHECK_T(TypeError, is_floating(logits.dtype()), "cross_entropy", "logits must be floating, got ",
                dtype_name(logits.dtype()));
}

// CPU kernels compute in float32/float64; 16-bit inputs are widened there and the results rounded
// back. CUDA reads 16-bit inputs as they are. Per-row losses and log-sum-exps are float32 (float64
// for float64 logits) on both.
static DType row_compute_dtype(const Array& x) {
  return (x.device().kind == Device::cpu && itemsize(x.dtype()) == 2) ? DType::float32 : x.dtype();
}

std::pair<Array, Array> cross_entropy(const Array& logits_in, const Array& targets_in, int64_t ignore_index,
                                      double label_smoothing) {
  check_cross_entropy(logits_in, targets_in);
  EMBER_CHECK(label_smoothing >= 0 && label_smoothing <= 1, "cross_entropy", "label_smoothing must be in [0, 1], got ",
              label_smoothing);
  Array targets = targets_in.astype(DType::int64).contiguous();
  check_targets(targets, logits_in.shape(1), ignore_index, logits_in.shape());
  DType ct = row_compute_dtype(logits_in);
  Array logits = logits_in.astype(ct).contiguous();
  const DType acc = ct == DType::float64 ? DType::float64 : DType::float32;  // per-row results
  Array loss = Array::empty({logits.shape(0)}, acc, logits.device());
  Array lse = Array::empty({logits.shape(0)}, acc, logits.device());
  EMBER_ON_DEVICE(logits.device(), cross_entropy, logits, targets, loss, lse, ignore_index, label_smoothing);
  return {loss.astype(logits_in.dtype()), lse};
}

Array cross_entropy_backward(const Array& logits_in, const Array& targets_in, const Array& lse, const Array& grad_rows,
                             int64_t ignore_index, double label_smoothing) {
  check_cross_entropy(logits_in, targets_in);
  DType ct = row_compute_dtype(logits_in);
  EMBER_CHECK(lse.shape() == Shape{logits_in.shape(0)} && grad_rows.shape() == Shape{logits_in.shape(0)},
              "cross_entropy_backward", "lse and grad_rows must have shape (", logits_in.shape(0), ",)");
  Array logits = logits_in.astype(ct).contiguous(), targets = targets_in.astype(DType::int64).contiguous();
  const DType acc = ct == DType::float64 ? DType::float64 : DType::float32;
  Array g = grad_rows.astype(acc).contiguous(), l = lse.astype(acc).contiguous();
  Array out = Array::empty(logits.shape(), ct, logits.device());
  EMBER_ON_DEVICE(logits.device(), cross_entropy_backward, logits, targets, l, g, out, ignore_index, label_smoothing);
  return out.astype(logits_in.dtype());
}

Array softmax(const Array& x_in, int dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  const int nd = x_in.ndim(), d = normalize_dim(dim, std::max(nd, 1), name);
  const Array x = is_floating(x_in.dtype()) ? x_in : x_in.astype(DType::float32);
  if (x.numel() == 0) return Array::empty(x.shape(), x.dtype(), x.device());
  // The kernels take contiguous rows: dim moved last (a view; the copy below compacts it) and back.
  const bool last = nd == 0 || d == nd - 1;
  const Array xt = last ? x : x.transpose(d, nd - 1);
  const DType compute = row_compute_dtype(x);
  const Array xc = (xt.dtype() == compute ? xt : xt.astype(compute)).contiguous();
  const int64_t n = nd == 0 ? 1 : xt.shape(nd - 1);
  const Array rows = xc.reshape({xc.numel() / n, n});
  Array out = Array::empty(rows.shape(), compute, x.device());
  EMBER_ON_DEVICE(x.device(), softmax, rows, out, log);
  out = out.reshape(xt.shape());
  if (compute != x.dtype()) out = out.astype(x.dtype());
  return last ? out : out.transpose(d, nd - 1);
}

}  // namespace ember
