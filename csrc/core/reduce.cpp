// Reductions over any set of dims: the input viewed as (outer, n, inner) per reduced run, output
// dtype by op, then the backends' reduce kernel.
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include <algorithm>
#include <numeric>
#include "core/backend.h"

namespace ember {

static const char* reduce_name(ReduceOp op) {
  static const char* names[] = {"sum", "mean", "max", "min", "argmax", "argmin", "var", "prod"};
  return names[int(op)];
}

static DType reduce_out_dtype(ReduceOp op, DType in) {
  switch (op) {
    case ReduceOp::argmax: case ReduceOp::argmin: return DType::int64;
    case ReduceOp::sum: case ReduceOp::prod: return is_floating(in) ? in : DType::int64;
    case ReduceOp::mean: case ReduceOp::var: return in;  // input cast to float first
    default: return in;
  }
}

Array reduce(ReduceOp op, const Array& x, std::vector<int> dims, bool keepdim, int64_t correction) {
  const char* name = reduce_name(op);
  const int nd = x.ndim();
  std::vector<bool> reduced(std::max(nd, 1), false);
  if (dims.empty()) std::fill(reduced.begin(), reduced.end(), true);
  for (int d : dims) {
    int nd_ = normalize_dim(d, nd, name);
    EMBER_CHECK(!reduced[nd_] || dims.empty(), name, "dim ", d, " repeated");
    reduced[nd_] = true;
  }
  Array in = x;
  const bool averages = op == ReduceOp::mean || op == ReduceOp::var;
  if (averages && !is_floating(x.dtype())) in = x.astype(DType::float32);  // integer mean/var in float32
  else if (x.dtype() == DType::bool_) in = x.astype(DType::int64);

  // Output shape, and the (outer, n, inner) view of the input.
  Shape out_shape, kept_shape;
  int64_t n = 1;
  int first = -1, last = -1;
  bool block = true;
  for (int d = 0; d < nd; ++d) {
    if (reduced[d]) {
      n *= x.shape(d);
      if (first < 0) first = d;
      else if (last != d - 1) block = false;
      last = d;
      if (keepdim) out_shape.push_back(1);
    } else {
      out_shape.push_back(x.shape(d));
      kept_shape.push_back(x.shape(d));
    }
  }
  if ((op != ReduceOp::sum && op != ReduceOp::prod && op != ReduceOp::mean) && n == 0)
    fail(name, "cannot reduce over an empty dimension (shape ", shape_str(x.shape()), ")");
  int64_t outer = 1, inner = 1;
  if (nd == 0 || !block) {
    std::vector<int> order;  // kept dims first, then reduced dims, made contiguous
    for (int d = 0; d < nd; ++d) if (!reduced[d]) order.push_back(d);
    for (int d = 0; d < nd; ++d) if (reduced[d]) order.push_back(d);
    in = nd ? in.permute(order).contiguous() : in.contiguous();
    for (int64_t s : kept_shape) outer *= s;
  } else {
    in = in.contiguous();
    for (int d = 0; d < first; ++d) outer *= x.shape(d);
    for (int d = last + 1; d < nd; ++d) inner *= x.shape(d);
  }
  Array out = Array::empty(out_shape, reduce_out_dtype(op, in.dtype()), x.device());
  EMBER_ON_DEVICE(x.device(), reduce, op, in, out, outer, n, inner, correction);
  return out;
}

}  // namespace ember
