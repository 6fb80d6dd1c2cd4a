// Validation, output allocation and device dispatch for the ops in ops.h. Backends receive only
// checked, broadcast, same-device operands (see backend.h).
#include "core/ops.h"
#include <algorithm>
#include <cmath>
#include <numeric>
#include "core/backend.h"
#include "core/dispatch.h"

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

Array where(const Array& cond, const Array& a, const Array& b) {
  check_same_device("where", cond, a);
  check_same_device("where", a, b);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  DType t = promote_types(a.dtype(), b.dtype());
  Array c = cond.astype(DType::bool_).expand(shape);
  Array ea = a.astype(t).expand(shape), eb = b.astype(t).expand(shape);
  Array out = Array::empty(shape, t, a.device());
  EMBER_ON_DEVICE(a.device(), where, c, ea, eb, out);
  return out;
}

// ---- reductions ------------------------------------------------------------------------------

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
  if (op == ReduceOp::mean || op == ReduceOp::var) in = float_input(x);
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

// ---- copy, fill, creation ----------------------------------------------------------------------

void copy_(Array& dst, const Array& src_in) {
  Array src = src_in.expand(dst.shape());
  if (src.device() == dst.device()) {
    EMBER_ON_DEVICE(dst.device(), copy, src, dst);
    return;
  }
  // Across devices: cast and compact on the source side, move the bytes, scatter on the target side.
  Array packed = src.astype(dst.dtype()).contiguous();
  Array landing = dst.is_contiguous() ? dst : Array::empty(dst.shape(), dst.dtype(), dst.device());
  cuda::memcpy_bytes(landing.raw(), landing.device(), packed.raw(), packed.device(), packed.nbytes());
  if (!dst.is_contiguous()) EMBER_ON_DEVICE(dst.device(), copy, landing, dst);
}

Array full(const Shape& shape, double value, DType dtype, Device device) {
  Array out = Array::empty(shape, dtype, device);
  EMBER_ON_DEVICE(device, fill, out, value);
  return out;
}

Array arange(double start, double stop, double step, DType dtype, Device device) {
  EMBER_CHECK(step != 0 && std::isfinite(start) && std::isfinite(stop) && std::isfinite(step),
              "arange", "needs finite start/stop and a non-zero step, got (", start, ", ", stop,
              ", ", step, ")");
  double len = std::ceil((stop - start) / step);
  Array out = Array::empty({int64_t(std::max(len, 0.0))}, dtype, device);
  EMBER_ON_DEVICE(device, arange, out, start, step);
  return out;
}

Array cat(const std::vector<Array>& xs, int dim) {
  EMBER_CHECK(!xs.empty(), "cat", "expects a non-empty list of arrays");
  const Array& first = xs[0];
  EMBER_CHECK(first.ndim() > 0, "cat", "zero-dimensional arrays cannot be concatenated");
  dim = normalize_dim(dim, first.ndim(), "cat");
  Shape shape = first.shape();
  DType t = first.dtype();
  shape[dim] = 0;
  for (const Array& x : xs) {
    check_same_device("cat", first, x);
    bool ok = x.ndim() == first.ndim();
    for (int d = 0; ok && d < x.ndim(); ++d) ok = d == dim || x.shape(d) == first.shape(d);
    EMBER_CHECK(ok, "cat", "shapes must match except in dim ", dim, " (shapes ",
                shape_str(first.shape()), " and ", shape_str(x.shape()), ")");
    shape[dim] += x.shape(dim);
    t = promote_types(t, x.dtype());
  }
  Array out = Array::empty(shape, t, first.device());
  int64_t at = 0;
  for (const Array& x : xs) {
    Array part = out.slice(dim, at, at + x.shape(dim), 1);
    copy_(part, x);
    at += x.shape(dim);
  }
  return out;
}

Array stack(const std::vector<Array>& xs, int dim) {
  EMBER_CHECK(!xs.empty(), "stack", "expects a non-empty list of arrays");
  int n = xs[0].ndim() + 1;
  if (dim < -n || dim >= n) fail<std::out_of_range>("stack", "dim ", dim, " out of range");
  std::vector<Array> parts;
  for (const Array& x : xs) {
    EMBER_CHECK(x.shape() == xs[0].shape(), "stack", "all arrays must have one shape, got ",
                shape_str(xs[0].shape()), " and ", shape_str(x.shape()));
    parts.push_back(x.unsqueeze(dim));
  }
  return cat(parts, dim);
}

// ---- random ------------------------------------------------------------------------------------

Array random_uniform(const Shape& shape, double lo, double hi, uint64_t seed, uint64_t offset,
                     DType dtype, Device device) {
  EMBER_CHECK_T(TypeError, is_floating(dtype), "rand", "needs a floating dtype, got ", dtype_name(dtype));
  Array out = Array::empty(shape, dtype, device);
  EMBER_ON_DEVICE(device, random_uniform, out, lo, hi, seed, offset);
  return out;
}

Array random_normal(const Shape& shape, double mean, double std, uint64_t seed, uint64_t offset,
                    DType dtype, Device device) {
  EMBER_CHECK_T(TypeError, is_floating(dtype), "randn", "needs a floating dtype, got ", dtype_name(dtype));
  EMBER_CHECK(std >= 0, "randn", "std must be >= 0, got ", std);
  Array out = Array::empty(shape, dtype, device);
  EMBER_ON_DEVICE(device, random_normal, out, mean, std, seed, offset);
  return out;
}

Array random_int(const Shape& shape, int64_t lo, int64_t hi, uint64_t seed, uint64_t offset,
                 DType dtype, Device device) {
  EMBER_CHECK(hi > lo, "randint", "needs low < high, got low=", lo, ", high=", hi);
  Array out = Array::empty(shape, dtype, device);
  EMBER_ON_DEVICE(device, random_int, out, lo, hi, seed, offset);
  return out;
}

// ---- indexing ----------------------------------------------------------------------------------

// Checks every index lies in [-n, n) (negative ones count from the end), with one min/max
// reduction; on CUDA this synchronizes, the price of an exception instead of a device fault.
static void check_index_range(const char* op, const Array& idx, int64_t n, const Shape& xshape) {
  dispatch_index(idx.dtype(), op, [](auto) {});
  if (idx.numel() == 0) return;
  Array mn = reduce(ReduceOp::min, idx, {}, false).astype(DType::int64).to(Device{});
  Array mx = reduce(ReduceOp::max, idx, {}, false).astype(DType::int64).to(Device{});
  int64_t lo = *mn.data<int64_t>(), hi = *mx.data<int64_t>();
  if (lo < -n || hi >= n)
    fail<std::out_of_range>(op, "index ", (lo < -n ? lo : hi), " is out of bounds for size ", n,
                            " (shape ", shape_str(xshape), ")");
}

struct Split { int64_t outer = 1, n = 1, inner = 1; };
static Split split_at(const Shape& s, int dim) {
  Split r;
  for (int d = 0; d < int(s.size()); ++d) (d < dim ? r.outer : d == dim ? r.n : r.inner) *= s[d];
  return r;
}

Array index_select(const Array& x, int dim, const Array& idx) {
  check_same_device("index_select", x, idx);
  EMBER_CHECK(idx.ndim() <= 1, "index_select", "index must be 1-d, got shape ", shape_str(idx.shape()));
  EMBER_CHECK(x.ndim() > 0, "index_select", "cannot index a 0-d array");
  dim = normalize_dim(dim, x.ndim(), "index_select");
  check_index_range("index_select", idx, x.shape(dim), x.shape());
  Shape out_shape = x.shape();
  out_shape[dim] = idx.numel();
  Array out = Array::empty(out_shape, x.dtype(), x.device());
  Split s = split_at(x.shape(), dim);
  EMBER_ON_DEVICE(x.device(), index_select, x.contiguous(), idx.contiguous().reshape({idx.numel()}),
                  out, s.outer, s.n, s.inner);
  return out;
}

Array index_add(const Shape& shape, int dim, const Array& idx, const Array& src) {
  check_same_device("index_add", src, idx);
  dim = normalize_dim(dim, int(shape.size()), "index_add");
  Shape expect = shape;
  expect[dim] = idx.numel();
  EMBER_CHECK(src.shape() == expect, "index_add", "src shape ", shape_str(src.shape()),
              " does not match ", shape_str(expect));
  check_index_range("index_add", idx, shape[dim], shape);
  Array out = full(shape, 0.0, src.dtype(), src.device());
  Split s = split_at(shape, dim);
  EMBER_ON_DEVICE(src.device(), index_add, src.contiguous(), idx.contiguous().reshape({idx.numel()}),
                  out, s.outer, s.n, s.inner);
  return out;
}

static void check_gather_shapes(const char* op, const Shape& xs, const Shape& is, int dim) {
  bool ok = xs.size() == is.size();
  for (size_t d = 0; ok && d < xs.size(); ++d) ok = int(d) == dim || xs[d] == is[d];
  EMBER_CHECK(ok, op, "index shape ", shape_str(is), " must match ", shape_str(xs),
              " except in dim ", dim);
}

Array gather(const Array& x, int dim, const Array& idx) {
  check_same_device("gather", x, idx);
  dim = normalize_dim(dim, x.ndim(), "gather");
  check_gather_shapes("gather", x.shape(), idx.shape(), dim);
  check_index_range("gather", idx, x.ndim() ? x.shape(dim) : 1, x.shape());
  Array out = Array::empty(idx.shape(), x.dtype(), x.device());
  Split s = split_at(x.shape(), dim);
  EMBER_ON_DEVICE(x.device(), gather, x.contiguous(), idx.contiguous(), out, s.outer, s.n, s.inner);
  return out;
}

Array scatter_add(const Shape& shape, int dim, const Array& idx, const Array& src) {
  check_same_device("scatter_add", src, idx);
  dim = normalize_dim(dim, int(shape.size()), "scatter_add");
  check_gather_shapes("scatter_add", shape, idx.shape(), dim);
  EMBER_CHECK(src.shape() == idx.shape(), "scatter_add", "src shape ", shape_str(src.shape()),
              " must equal index shape ", shape_str(idx.shape()));
  check_index_range("scatter_add", idx, shape.empty() ? 1 : shape[dim], shape);
  Array out = full(shape, 0.0, src.dtype(), src.device());
  Split s = split_at(shape, dim);
  EMBER_ON_DEVICE(src.device(), scatter_add, src.contiguous(), idx.contiguous(), out, s.outer, s.n, s.inner);
  return out;
}

Array nonzero_flat(const Array& mask) {
  Array m = mask.astype(DType::bool_).contiguous();
  return EMBER_ON_DEVICE(m.device(), nonzero_flat, m);
}

}  // namespace ember

// ---- matrix products ---------------------------------------------------------------------------

namespace ember {

// Views x (batch..., R, C) as (B, R, C) for the given broadcast batch shape, without copying when
// the batch dims merge (contiguous, or all broadcast); otherwise a compact copy.
static Array as_batched(const Array& x, const Shape& batch, int64_t B) {
  Shape full = batch;
  full.push_back(x.shape(x.ndim() - 2));
  full.push_back(x.shape(x.ndim() - 1));
  Array e = x.expand(full);
  Shape three = {B, full[full.size() - 2], full.back()};
  try {
    return e.view(three);
  } catch (const std::invalid_argument&) {
    return e.contiguous().view(three);
  }
}

static DType gemm_dtype(const char* op, const Array& a, const Array& b) {
  DType t = promote_types(a.dtype(), b.dtype());
  EMBER_CHECK_T(TypeError, is_floating(t), op, "expects floating arrays, got ", dtype_name(a.dtype()), " and ",
                dtype_name(b.dtype()));
  return t;
}

Array matmul(const Array& a_in, const Array& b_in, const Array* bias, Activation act) {
  check_same_device("matmul", a_in, b_in);
  EMBER_CHECK(a_in.ndim() >= 2 && b_in.ndim() >= 2, "matmul", "operands need >= 2 dims (shapes a=",
              shape_str(a_in.shape()), ", b=", shape_str(b_in.shape()), ")");
  const int64_t M = a_in.shape(a_in.ndim() - 2), K = a_in.shape(a_in.ndim() - 1);
  const int64_t K2 = b_in.shape(b_in.ndim() - 2), N = b_in.shape(b_in.ndim() - 1);
  EMBER_CHECK(K == K2, "matmul", "inner dimensions differ (shapes a=", shape_str(a_in.shape()), ", b=",
              shape_str(b_in.shape()), ")");
  DType t = gemm_dtype("matmul", a_in, b_in);
  // CPU kernels compute in float32/float64; 16-bit floats are widened there and rounded back.
  DType compute = (a_in.device().kind == Device::cpu && itemsize(t) == 2) ? DType::float32 : t;
  // Operands already in the compute dtype are used as they are: even a no-op astype copies the
  // Array (its shape and stride vectors), and small products pay for every allocation.
  const Array a_cast = a_in.dtype() == compute ? Array() : a_in.astype(compute);
  const Array b_cast = b_in.dtype() == compute ? Array() : b_in.astype(compute);
  const Array &a = a_cast.defined() ? a_cast : a_in, &b = b_cast.defined() ? b_cast : b_in;
  Array bias_c;
  if (bias) {
    check_same_device("matmul", a_in, *bias);
    EMBER_CHECK(bias->ndim() == 1 && bias->shape(0) == N, "matmul", "bias must have shape (", N, ",), got ",
                shape_str(bias->shape()));
    bias_c = bias->astype(compute).contiguous();
  }
  Array out;
  if (a.ndim() == 2 && b.ndim() == 2) {  // the common case, without the batch bookkeeping
    out = Array::empty({1, M, N}, compute, a.device());
    EMBER_ON_DEVICE(a.device(), gemm, a.unsqueeze(0), b.unsqueeze(0), out, 1.0, 0.0, bias ? &bias_c : nullptr, act);
    Array out2 = out.squeeze(0);
    return compute == t ? out2 : out2.astype(t);
  }
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  int64_t B = 1;
  for (int64_t s : batch) B *= s;
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  if (b.ndim() == 2 && a.ndim() > 2 && B > 1) {
    // (batch..., M, K) @ (K, N): fold the batch into M for one large GEMM when the rows merge.
    try {
      Array a2 = a.view({1, B * M, K});
      out = Array::empty({1, B * M, N}, compute, a.device());
      EMBER_ON_DEVICE(a.device(), gemm, a2, b.unsqueeze(0), out, 1.0, 0.0, bias ? &bias_c : nullptr, act);
      return out.view(out_shape).astype(t);
    } catch (const std::invalid_argument&) {
      // not mergeable: fall through to the batched path
    }
  }
  Array a3 = as_batched(a, batch, B), b3 = as_batched(b, batch, B);
  out = Array::empty({B, M, N}, compute, a.device());
  EMBER_ON_DEVICE(a.device(), gemm, a3, b3, out, 1.0, 0.0, bias ? &bias_c : nullptr, act);
  return out.view(out_shape).astype(t);
}

Array linear(const Array& x, const Array& w, const Array* bias, Activation act) {
  EMBER_CHECK(x.ndim() >= 1 && w.ndim() == 2, "linear", "expects x (..., in) and weight (out, in), got shapes ",
              shape_str(x.shape()), " and ", shape_str(w.shape()));
  if (x.ndim() >= 2) return matmul(x, w.transpose(0, 1), bias, act);
  return matmul(x.unsqueeze(0), w.transpose(0, 1), bias, act).squeeze(0);
}

Array linear_backward_weight(const Array& g, const Array& x) {
  EMBER_CHECK(g.ndim() >= 1 && x.ndim() >= 1 && g.numel() / std::max<int64_t>(g.shape(g.ndim() - 1), 1) ==
                  x.numel() / std::max<int64_t>(x.shape(x.ndim() - 1), 1),
              "linear", "gradient and input rows differ (shapes g=", shape_str(g.shape()), ", x=", shape_str(x.shape()), ")");
  const Array g2 = g.ndim() == 2 ? g : g.reshape({-1, g.shape(g.ndim() - 1)});
  const Array x2 = x.ndim() == 2 ? x : x.reshape({-1, x.shape(x.ndim() - 1)});
  return matmul(g2.transpose(0, 1), x2);
}

PackedB gemm_pack_b(const Array& b) {
  EMBER_CHECK(b.ndim() == 2, "gemm_pack_b", "expects a (K, N) matrix, got shape ", shape_str(b.shape()));
  EMBER_CHECK_T(TypeError, b.dtype() == DType::float32 || b.dtype() == DType::float64, "gemm_pack_b",
                "expects float32 or float64, got ", dtype_name(b.dtype()));
  PackedB p;
  p.k = b.shape(0), p.n = b.shape(1), p.dtype = b.dtype();
  p.packed = b.device().kind == Device::cpu;
  p.data = p.packed ? cpu::gemm_pack_b(b) : b;
  return p;
}

void matmul_packed_into(const Array& a, const PackedB& b, Array& c, double beta, const Array* bias) {
  EMBER_CHECK(a.ndim() == 2 && a.shape(1) == b.k, "matmul", "expects a (M, ", b.k, ") left operand, got shape ",
              shape_str(a.shape()));
  EMBER_CHECK_T(TypeError, a.dtype() == b.dtype && c.dtype() == b.dtype, "matmul", "dtypes differ (",
                dtype_name(a.dtype()), ", ", dtype_name(b.dtype), ")");
  EMBER_CHECK(c.ndim() == 2 && c.shape(0) == a.shape(0) && c.shape(1) == b.n && (c.strides()[1] == 1 || b.n == 1),
              "matmul", "the output must be (", a.shape(0), ", ", b.n, ") with unit column stride, got shape ",
              shape_str(c.shape()));
  check_same_device("matmul", a, b.data);
  check_same_device("matmul", a, c);
  EMBER_CHECK(!bias || (bias->ndim() == 1 && bias->shape(0) == b.n && bias->dtype() == a.dtype()), "matmul",
              "bias must be (", b.n, ",) of the operands' dtype");
  Array bias_c = bias ? bias->contiguous() : Array();
  const Array* bias_p = bias ? &bias_c : nullptr;
  if (b.packed) return cpu::gemm_prepacked(a, b.data, b.n, c, beta, bias_p, Activation::none);
  Array c3 = c.unsqueeze(0);
  EMBER_ON_DEVICE(a.device(), gemm, a.unsqueeze(0), b.data.unsqueeze(0), c3, 1.0, beta, bias_p, Activation::none);
}

Array matmul_packed(const Array& a, const PackedB& b, const Array* bias) {
  EMBER_CHECK(a.ndim() == 2, "matmul", "expects a (M, ", b.k, ") left operand, got shape ", shape_str(a.shape()));
  Array out = Array::empty({a.shape(0), b.n}, a.dtype(), a.device());
  matmul_packed_into(a, b, out, 0.0, bias);
  return out;
}

void gemm_(const Array& a, const Array& b, Array& c, double alpha, double beta) {
  check_same_device("gemm", a, b);
  check_same_device("gemm", a, c);
  EMBER_CHECK(a.ndim() == 3 && b.ndim() == 3 && c.ndim() == 3 && a.shape(0) == c.shape(0) &&
                  b.shape(0) == c.shape(0) && a.shape(1) == c.shape(1) && b.shape(2) == c.shape(2) &&
                  a.shape(2) == b.shape(1),
              "gemm", "expects a (B, M, K), b (B, K, N), c (B, M, N) (shapes a=", shape_str(a.shape()),
              ", b=", shape_str(b.shape()), ", c=", shape_str(c.shape()), ")");
  EMBER_CHECK(c.strides()[2] == 1 || c.shape(2) == 1, "gemm", "c needs unit column stride (strides ",
              shape_str(c.strides()), ")");
  EMBER_CHECK_T(TypeError, a.dtype() == c.dtype() && b.dtype() == c.dtype(), "gemm", "dtypes differ (",
                dtype_name(a.dtype()), ", ", dtype_name(b.dtype()), ", ", dtype_name(c.dtype()), ")");
  EMBER_ON_DEVICE(c.device(), gemm, a, b, c, alpha, beta, nullptr, Activation::none);
}


// ---- optimizer updates ----------------------------------------------------------------------

// Every list matches params in length, shape, dtype and device (empty optional lists pass);
// params and states must be contiguous (they are updated through raw pointers). Returns the
// gradients, made contiguous where they were not.
static std::vector<Array> check_optim_lists(const char* op, const std::vector<Array>& params,
                                            const std::vector<Array>& grads,
                                            std::initializer_list<const std::vector<Array>*> states) {
  EMBER_CHECK(grads.size() == params.size(), op, "got ", params.size(), " params but ", grads.size(), " grads");
  for (const auto* s : states)
    EMBER_CHECK(s->empty() || s->size() == params.size(), op, "a state list has ", s->size(), " arrays for ",
                params.size(), " params");
  std::vector<Array> g(grads.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const Array& p = params[i];
    EMBER_CHECK_T(TypeError, p.dtype() == DType::float32 || p.dtype() == DType::float64, op,
                  "params must be float32 or float64, got ", dtype_name(p.dtype()));
    EMBER_CHECK(p.is_contiguous(), op, "param ", i, " is not contiguous (shape ", shape_str(p.shape()), ")");
    auto same = [&](const Array& x, const char* what) {
      check_same_device(op, p, x);
      EMBER_CHECK(x.shape() == p.shape(), op, what, " ", i, " has shape ", shape_str(x.shape()), ", param has ",
                  shape_str(p.shape()));
      EMBER_CHECK_T(TypeError, x.dtype() == p.dtype(), op, what, " ", i, " is ", dtype_name(x.dtype()),
                    ", param is ", dtype_name(p.dtype()));
    };
    same(grads[i], "grad");
    g[i] = grads[i].contiguous();
    for (const auto* s : states)
      if (!s->empty()) {
        same((*s)[i], "state");
        EMBER_CHECK((*s)[i].is_contiguous(), op, "state ", i, " is not contiguous");
      }
    EMBER_CHECK(p.dtype() == params[0].dtype() && p.device() == params[0].device(), op,
                "all params of one step must share dtype and device (param ", i, ")");
  }
  return g;
}

void adam_step_(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& exp_avg,
                const std::vector<Array>& exp_avg_sq, double lr, double beta1, double beta2, double eps,
                double weight_decay, bool decoupled_weight_decay, int64_t step) {
  EMBER_CHECK(exp_avg.size() == params.size() && exp_avg_sq.size() == params.size(), "adam_step",
              "needs exp_avg and exp_avg_sq for every param");
  EMBER_CHECK(step >= 1, "adam_step", "step counts from 1, got ", step);
  std::vector<Array> g = check_optim_lists("adam_step", params, grads, {&exp_avg, &exp_avg_sq});
  if (params.empty()) return;
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2 = 1 - std::pow(beta2, double(step));
  AdamRule rule{beta1, beta2, lr / bc1, 1 / std::sqrt(bc2), eps,
                decoupled_weight_decay ? 0.0 : weight_decay, decoupled_weight_decay ? 1 - lr * weight_decay : 1.0};
  EMBER_ON_DEVICE(params[0].device(), adam_step, params, g, exp_avg, exp_avg_sq, rule);
}

void sgd_step_(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& momentum_buf,
               double lr, double momentum, double dampening, double weight_decay, bool nesterov, bool first_step) {
  EMBER_CHECK(momentum == 0 || momentum_buf.size() == params.size(), "sgd_step", "momentum needs a buffer per param");
  std::vector<Array> g = check_optim_lists("sgd_step", params, grads, {&momentum_buf});
  if (params.empty()) return;
  SgdRule rule{lr, momentum, dampening, weight_decay, nesterov, first_step};
  EMBER_ON_DEVICE(params[0].device(), sgd_step, params, g, momentum == 0 ? std::vector<Array>{} : momentum_buf, rule);
}

void rmsprop_step_(const std::vector<Array>& params, const std::vector<Array>& grads,
                   const std::vector<Array>& square_avg, const std::vector<Array>& momentum_buf,
                   const std::vector<Array>& grad_avg, double lr, double alpha, double eps, double weight_decay,
                   double momentum, bool centered) {
  EMBER_CHECK(square_avg.size() == params.size() && (momentum == 0 || momentum_buf.size() == params.size()) &&
                  (!centered || grad_avg.size() == params.size()),
              "rmsprop_step", "needs square_avg per param, plus momentum_buf with momentum and grad_avg when centered");
  std::vector<Array> g = check_optim_lists("rmsprop_step", params, grads, {&square_avg, &momentum_buf, &grad_avg});
  if (params.empty()) return;
  RmspropRule rule{lr, alpha, eps, weight_decay, momentum, centered};
  EMBER_ON_DEVICE(params[0].device(), rmsprop_step, params, g, square_avg,
                  momentum == 0 ? std::vector<Array>{} : momentum_buf, centered ? grad_avg : std::vector<Array>{}, rule);
}

// ---- cross-entropy --------------------------------------------------------------------------

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

// CPU kernels compute in float32/float64; 16-bit logits are widened there and the results rounded
// back. CUDA reads 16-bit logits as they are. Per-row losses and log-sum-exps are float32 (float64
// for float64 logits) on both.
static DType loss_compute_dtype(const Array& logits) {
  return (logits.device().kind == Device::cpu && itemsize(logits.dtype()) == 2) ? DType::float32 : logits.dtype();
}

std::pair<Array, Array> cross_entropy(const Array& logits_in, const Array& targets_in, int64_t ignore_index,
                                      double label_smoothing) {
  check_cross_entropy(logits_in, targets_in);
  EMBER_CHECK(label_smoothing >= 0 && label_smoothing <= 1, "cross_entropy", "label_smoothing must be in [0, 1], got ",
              label_smoothing);
  Array targets = targets_in.astype(DType::int64).contiguous();
  check_targets(targets, logits_in.shape(1), ignore_index, logits_in.shape());
  DType ct = loss_compute_dtype(logits_in);
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
  DType ct = loss_compute_dtype(logits_in);
  EMBER_CHECK(lse.shape() == Shape{logits_in.shape(0)} && grad_rows.shape() == Shape{logits_in.shape(0)},
              "cross_entropy_backward", "lse and grad_rows must have shape (", logits_in.shape(0), ",)");
  Array logits = logits_in.astype(ct).contiguous(), targets = targets_in.astype(DType::int64).contiguous();
  const DType acc = ct == DType::float64 ? DType::float64 : DType::float32;
  Array g = grad_rows.astype(acc).contiguous(), l = lse.astype(acc).contiguous();
  Array out = Array::empty(logits.shape(), ct, logits.device());
  EMBER_ON_DEVICE(logits.device(), cross_entropy_backward, logits, targets, l, g, out, ignore_index, label_smoothing);
  return out.astype(logits_in.dtype());
}

// ---- pooling ---------------------------------------------------------------------------------

std::pair<Array, Array> pool2d(const Array& x_in, const Pool2dGeom& g) {
  EMBER_CHECK(x_in.ndim() == 4, "pool2d", "expects x (N, C, H, W), got shape ", shape_str(x_in.shape()));
  EMBER_CHECK_T(TypeError, x_in.dtype() == DType::float32 || x_in.dtype() == DType::float64, "pool2d",
                "expects float32 or float64, got ", dtype_name(x_in.dtype()));
  EMBER_CHECK(g.out_h >= 1 && g.out_w >= 1 && g.kernel_h >= 1 && g.kernel_w >= 1 && g.stride_h >= 1 &&
                  g.stride_w >= 1 && g.dilation_h >= 1 && g.dilation_w >= 1,
              "pool2d", "empty output or bad window for x ", shape_str(x_in.shape()));
  EMBER_CHECK(g.mode == PoolMode::adaptive_avg || (2 * g.pad_h <= g.kernel_h && 2 * g.pad_w <= g.kernel_w), "pool2d",
              "padding must be at most half the kernel (kernel ", g.kernel_h, "x", g.kernel_w, ", padding ", g.pad_h,
              "x", g.pad_w, ")");
  const Shape& s = x_in.shape();
  Array x = x_in.contiguous().reshape({s[0] * s[1], s[2], s[3]});
  Array out = Array::empty({s[0], s[1], g.out_h, g.out_w}, x.dtype(), x.device());
  Array idx = g.mode == PoolMode::max ? Array::empty(out.shape(), DType::int64, x.device()) : Array();
  Array out3 = out.reshape({s[0] * s[1], g.out_h, g.out_w}), idx3 = idx.defined() ? idx.reshape(out3.shape()) : idx;
  EMBER_ON_DEVICE(x.device(), pool2d, x, out3, idx3, g);
  return {out, idx};
}

Array pool2d_backward(const Array& grad_in, const Array& indices, const Shape& x_shape, const Pool2dGeom& g) {
  EMBER_CHECK(x_shape.size() == 4 && grad_in.shape() == Shape({x_shape[0], x_shape[1], g.out_h, g.out_w}),
              "pool2d_backward", "grad has shape ", shape_str(grad_in.shape()));
  EMBER_CHECK(g.mode != PoolMode::max || (indices.defined() && indices.shape() == grad_in.shape()), "pool2d_backward",
              "max pooling needs the forward's indices");
  Array grad = grad_in.contiguous().reshape({x_shape[0] * x_shape[1], g.out_h, g.out_w});
  Array dx = full(x_shape, 0.0, grad.dtype(), grad.device());
  Array dx3 = dx.reshape({x_shape[0] * x_shape[1], x_shape[2], x_shape[3]});
  Array idx = indices.defined() ? indices.contiguous().reshape(grad.shape()) : indices;
  EMBER_ON_DEVICE(grad.device(), pool2d_backward, grad, idx, dx3, g);
  return dx;
}

// ---- batch norm ------------------------------------------------------------------------------

static void check_bn(const char* op, const Array& x, std::initializer_list<std::pair<const char*, const Array*>> per_channel) {
  EMBER_CHECK(x.ndim() >= 2, op, "expects x (N, C, ...), got shape ", shape_str(x.shape()));
  EMBER_CHECK_T(TypeError, x.dtype() == DType::float32 || x.dtype() == DType::float64, op,
                "expects float32 or float64, got ", dtype_name(x.dtype()));
  for (const auto& [name, a] : per_channel) {
    if (!a->defined()) continue;
    check_same_device(op, x, *a);
    EMBER_CHECK(a->ndim() == 1 && a->shape(0) == x.shape(1) && a->dtype() == x.dtype(), op, name, " must be (",
                x.shape(1), ",) of x's dtype, got ", shape_str(a->shape()), " ", dtype_name(a->dtype()));
  }
}

std::pair<Array, Array> batch_norm_stats(const Array& x_in) {
  check_bn("batch_norm", x_in, {});
  Array x = x_in.contiguous();
  Array mean = Array::empty({x.shape(1)}, x.dtype(), x.device()), var = Array::empty({x.shape(1)}, x.dtype(), x.device());
  EMBER_ON_DEVICE(x.device(), batch_norm_stats, x, mean, var);
  return {mean, var};
}

Array batch_norm_apply(const Array& x_in, const Array& mean, const Array& invstd, const Array& weight, const Array& bias) {
  check_bn("batch_norm", x_in, {{"mean", &mean}, {"invstd", &invstd}, {"weight", &weight}, {"bias", &bias}});
  Array x = x_in.contiguous(), y = Array::empty(x.shape(), x.dtype(), x.device());
  EMBER_ON_DEVICE(x.device(), batch_norm_apply, x, mean.contiguous(), invstd.contiguous(),
                  weight.defined() ? weight.contiguous() : weight, bias.defined() ? bias.contiguous() : bias, y);
  return y;
}

BatchNormGrads batch_norm_backward(const Array& dy_in, const Array& x_in, const Array& mean, const Array& invstd,
                                   const Array& weight, bool batch_stats) {
  check_bn("batch_norm_backward", x_in, {{"mean", &mean}, {"invstd", &invstd}, {"weight", &weight}});
  EMBER_CHECK(dy_in.shape() == x_in.shape(), "batch_norm_backward", "grad has shape ", shape_str(dy_in.shape()),
              ", x has ", shape_str(x_in.shape()));
  Array dy = dy_in.astype(x_in.dtype()).contiguous(), x = x_in.contiguous();
  BatchNormGrads g{Array::empty(x.shape(), x.dtype(), x.device()), Array::empty({x.shape(1)}, x.dtype(), x.device()),
                   Array::empty({x.shape(1)}, x.dtype(), x.device())};
  EMBER_ON_DEVICE(x.device(), batch_norm_backward, dy, x, mean.contiguous(), invstd.contiguous(),
                  weight.defined() ? weight.contiguous() : weight, batch_stats, g.dx, g.dweight, g.dbias);
  return g;
}

// ---- layer norm ------------------------------------------------------------------------------

namespace {

// x (..., n) as contiguous (rows, n); weight and bias (n,) of x's dtype when given.
Array layer_norm_rows(const char* op, const Array& x, const Array& weight, const Array& bias) {
  EMBER_CHECK(x.ndim() >= 1 && x.shape(x.ndim() - 1) >= 1, op, "expects x (..., n) with n >= 1, got shape ",
              shape_str(x.shape()));
  EMBER_CHECK_T(TypeError, is_floating(x.dtype()), op, "expects a floating dtype, got ", dtype_name(x.dtype()));
  const int64_t n = x.shape(x.ndim() - 1);
  for (const Array* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    check_same_device(op, x, *p);
    EMBER_CHECK(p->ndim() == 1 && p->shape(0) == n && p->dtype() == x.dtype(), op, "weight and bias must be (", n,
                ",) of x's dtype for x ", shape_str(x.shape()), ", got ", shape_str(p->shape()), " ",
                dtype_name(p->dtype()));
  }
  return x.contiguous().reshape({x.numel() / n, n});
}

}  // namespace

LayerNormOut layer_norm(const Array& x_in, const Array& weight, const Array& bias, double eps) {
  Array x = layer_norm_rows("layer_norm", x_in, weight, bias);
  Shape stat_shape(x_in.shape().begin(), x_in.shape().end() - 1);
  const DType stat = x.dtype() == DType::float64 ? DType::float64 : DType::float32;
  LayerNormOut o{Array::empty(x.shape(), x.dtype(), x.device()), Array::empty({x.shape(0)}, stat, x.device()),
                 Array::empty({x.shape(0)}, stat, x.device())};
  EMBER_ON_DEVICE(x.device(), layer_norm, x, weight.defined() ? weight.contiguous() : weight,
                  bias.defined() ? bias.contiguous() : bias, eps, o.y, o.mean, o.rstd);
  return {o.y.reshape(x_in.shape()), o.mean.reshape(stat_shape), o.rstd.reshape(stat_shape)};
}

LayerNormGrads layer_norm_backward(const Array& dy_in, const Array& x_in, const Array& mean, const Array& rstd,
                                   const Array& weight) {
  Array x = layer_norm_rows("layer_norm_backward", x_in, weight, Array());
  EMBER_CHECK(dy_in.shape() == x_in.shape(), "layer_norm_backward", "grad has shape ", shape_str(dy_in.shape()),
              ", x has ", shape_str(x_in.shape()));
  Array dy = dy_in.astype(x.dtype()).contiguous().reshape(x.shape());
  const int64_t n = x.shape(1);
  LayerNormGrads g{Array::empty(x.shape(), x.dtype(), x.device()), Array(), Array()};
  if (weight.defined()) {
    g.dweight = Array::empty({n}, x.dtype(), x.device());
    g.dbias = Array::empty({n}, x.dtype(), x.device());
  }
  EMBER_ON_DEVICE(x.device(), layer_norm_backward, dy, x, mean.contiguous().reshape({x.shape(0)}),
                  rstd.contiguous().reshape({x.shape(0)}), weight.defined() ? weight.contiguous() : weight, g.dx,
                  g.dweight, g.dbias);
  g.dx = g.dx.reshape(x_in.shape());
  return g;
}

}  // namespace ember
