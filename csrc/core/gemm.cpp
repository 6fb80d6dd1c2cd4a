// Matrix products: dtype checks, batch broadcasting, the (batch, M, K) x (batch, K, N) views the
// backends' gemm takes, linear layers and the CPU's prepacked B.
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include <algorithm>
#include <numeric>
#include "core/backend.h"

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

}  // namespace ember
