// Unary, binary and where: dtype promotion, broadcasting to one shape (stride-0 views), output
// allocation, then the backends' elementwise kernels.
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include <algorithm>
#include "core/backend.h"

namespace ember {

bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq; }

static const char* unary_name(UnaryOp op) {
  static const char* names[] = {"neg", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu",
                                "gelu", "silu", "clamp", "sign", "square", "reciprocal", "gelu_tanh"};
  return names[int(op)];
}

static bool float_only(UnaryOp op) {
  return !(op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::relu || op == UnaryOp::clamp ||
           op == UnaryOp::sign || op == UnaryOp::square);
}

static Array float_input(const Array& x) {
  return is_floating(x.dtype()) ? x : x.astype(DType::float32);
}

Array unary(UnaryOp op, const Array& x, double lo, double hi) {
  const char* name = unary_name(op);
  if (x.dtype() == DType::bool_ && !float_only(op))
    fail<TypeError>(name, "not supported for bool arrays (shape ", shape_str(x.shape()), ")");
  Array in = float_only(op) ? float_input(x) : x;
  Array out = Array::empty(in.shape(), in.dtype(), in.device());
  EMBER_ON_DEVICE(in.device(), unary, op, in, out, lo, hi);
  return out;
}

Array unary_backward(UnaryOp op, const Array& x, const Array& grad, double lo, double hi) {
  const char* name = unary_name(op);
  check_same_device(name, x, grad);
  EMBER_CHECK(x.shape() == grad.shape(), name, "backward: grad shape ", shape_str(grad.shape()),
              " differs from input shape ", shape_str(x.shape()));
  DType t = is_floating(grad.dtype()) ? grad.dtype() : DType::float32;
  Array xin = x.astype(t), g = grad.astype(t);
  Array out = Array::empty(x.shape(), t, x.device());
  EMBER_ON_DEVICE(x.device(), unary_backward, op, xin, g, out, lo, hi);
  return out;
}

Array binary(BinaryOp op, const Array& a, const Array& b) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                "eq", "ne", "lt", "le", "gt", "ge"};
  const char* name = names[int(op)];
  check_same_device(name, a, b);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  DType t = promote_types(a.dtype(), b.dtype());
  if (op == BinaryOp::div && !is_floating(t)) t = DType::float32;  // true division: ints give float32 (PyTorch)
  // Kernels work on numbers: bools are computed as int64. Arithmetic on bools stays int64 (NumPy's
  // counting); comparisons give bool anyway; maximum/minimum of bools give bool back.
  const bool bools = t == DType::bool_;
  const DType compute = bools ? DType::int64 : t;
  Array ea = a.astype(compute).expand(shape), eb = b.astype(compute).expand(shape);
  Array out = Array::empty(shape, is_comparison(op) ? DType::bool_ : compute, a.device());
  EMBER_ON_DEVICE(a.device(), binary, op, ea, eb, out);
  if (bools && (op == BinaryOp::maximum || op == BinaryOp::minimum)) return out.astype(DType::bool_);
  return out;
}

static DType scalar_dtype(ScalarKind kind, DType like) {
  if (kind == ScalarKind::real) return is_floating(like) ? like : DType::float32;
  if (kind == ScalarKind::integer && like == DType::bool_) return DType::int64;
  return like;
}

Array number_like(const Array& like, double value, ScalarKind kind) {
  return full({}, value, scalar_dtype(kind, like.dtype()), like.device());
}

Array binary_scalar(BinaryOp op, const Array& a, double value, ScalarKind kind, bool reversed) {
  const Array number = number_like(a, value, kind);
  return reversed ? binary(op, number, a) : binary(op, a, number);
}

Array where(const Array& cond, const Array& a, const Array& b) {
  check_same_device("where", cond, a);
  check_same_device("where", a, b);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  // As PyTorch: a number condition is refused, not read as "non-zero" (a float mask passed by mistake
  // would pick silently).
  EMBER_CHECK_T(TypeError, cond.dtype() == DType::bool_, "where", "the condition must be bool, got ",
                dtype_name(cond.dtype()), " (shape ", shape_str(cond.shape()), ")");
  DType t = promote_types(a.dtype(), b.dtype());
  Array c = cond.expand(shape);
  Array ea = a.astype(t).expand(shape), eb = b.astype(t).expand(shape);
  Array out = Array::empty(shape, t, a.device());
  EMBER_ON_DEVICE(a.device(), where, c, ea, eb, out);
  return out;
}

}  // namespace ember
