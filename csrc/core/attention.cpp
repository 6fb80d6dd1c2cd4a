// Scaled dot-product attention's device-neutral checks: shapes and dtypes are validated here with
// messages naming the op and the shapes; the kernels (cpu/attention.cpp, cuda/attention.cu) then see
// matching operands with unit stride along the head dim.
#include "core/ops.h"
#include "core/backend.h"

namespace ember {

namespace {

constexpr const char* kSdpa = "scaled_dot_product_attention";

void check_qkv(const Array& q, const Array& k, const Array& v) {
  EMBER_CHECK(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4, kSdpa,
              "expects q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv), got ", shape_str(q.shape()), ", ",
              shape_str(k.shape()), ", ", shape_str(v.shape()));
  const Shape &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
  EMBER_CHECK(qs[0] == ks[0] && qs[0] == vs[0] && qs[1] == ks[1] && qs[1] == vs[1] && qs[3] == ks[3] && ks[2] == vs[2],
              kSdpa, "shapes do not match: q ", shape_str(qs), ", k ", shape_str(ks), ", v ", shape_str(vs),
              " (batch and heads must agree, q and k share D, k and v share the sequence length)");
  EMBER_CHECK(qs[3] >= 1 && vs[3] >= 1, kSdpa, "head dims must be >= 1, got q ", shape_str(qs), ", v ", shape_str(vs));
  check_same_device(kSdpa, q, k);
  check_same_device(kSdpa, q, v);
  EMBER_CHECK_T(TypeError, q.dtype() == k.dtype() && q.dtype() == v.dtype() && is_floating(q.dtype()), kSdpa,
                "q, k, v must share one floating dtype, got ", dtype_name(q.dtype()), ", ", dtype_name(k.dtype()), ", ",
                dtype_name(v.dtype()));
}

// The mask as a (B, H, Tq, Tk) view with stride 0 on broadcast dims: no copy.
Array expand_mask(const Array& mask, const Array& q, const Array& k) {
  if (!mask.defined()) return mask;
  const Shape full{q.shape(0), q.shape(1), q.shape(2), k.shape(2)};
  EMBER_CHECK_T(TypeError, mask.dtype() == DType::bool_ || mask.dtype() == q.dtype(), kSdpa,
                "attn_mask must be bool or q's dtype (", dtype_name(q.dtype()), "), got ", dtype_name(mask.dtype()));
  check_same_device(kSdpa, q, mask);
  bool ok = mask.ndim() <= 4;
  for (int d = 0; ok && d < mask.ndim(); ++d) {
    const int64_t m = mask.shape(mask.ndim() - 1 - d), f = full[3 - d];
    ok = m == f || m == 1;
  }
  EMBER_CHECK(ok, kSdpa, "attn_mask of shape ", shape_str(mask.shape()), " does not broadcast to ", shape_str(full));
  return mask.expand(full);
}

// The kernels read any (B, H, T, D) strides as long as D is unit-stride: no copy for heads sliced
// out of a fused projection.
Array unit_last(const Array& a) { return a.strides()[3] == 1 || a.shape(3) == 1 ? a : a.contiguous(); }

// (B, H, T, D) laid out as (B, T, H, D) in memory: merging the heads afterwards is a free view.
Array heads_array(int64_t B, int64_t H, int64_t T, int64_t D, DType dt, Device dev) {
  return Array::empty({B, T, H, D}, dt, dev).permute({0, 2, 1, 3});
}

}  // namespace

std::pair<Array, Array> attention(const Array& q_in, const Array& k_in, const Array& v_in, const Array& mask,
                                  const AttentionArgs& a) {
  check_qkv(q_in, k_in, v_in);
  EMBER_CHECK(a.dropout_p >= 0 && a.dropout_p < 1, kSdpa, "dropout_p must be in [0, 1), got ", a.dropout_p);
  Array q = unit_last(q_in), k = unit_last(k_in), v = unit_last(v_in);
  const DType lse_dtype = q.dtype() == DType::float64 ? DType::float64 : DType::float32;
  Array out = heads_array(q.shape(0), q.shape(1), q.shape(2), v.shape(3), q.dtype(), q.device());
  Array lse = Array::empty({q.shape(0), q.shape(1), q.shape(2)}, lse_dtype, q.device());
  EMBER_ON_DEVICE(q.device(), attention_forward, q, k, v, expand_mask(mask, q, k), a, out, lse);
  return {out, lse};
}

AttentionGrads attention_backward(const Array& dout_in, const Array& q_in, const Array& k_in, const Array& v_in,
                                  const Array& out, const Array& lse, const Array& mask, const AttentionArgs& a) {
  check_qkv(q_in, k_in, v_in);
  EMBER_CHECK(dout_in.shape() == out.shape(), "scaled_dot_product_attention_backward", "grad has shape ",
              shape_str(dout_in.shape()), ", the output has ", shape_str(out.shape()));
  Array q = unit_last(q_in), k = unit_last(k_in), v = unit_last(v_in);
  Array dout = unit_last(dout_in.astype(q.dtype()));
  const Shape &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
  AttentionGrads g{heads_array(qs[0], qs[1], qs[2], qs[3], q.dtype(), q.device()),
                   heads_array(ks[0], ks[1], ks[2], ks[3], q.dtype(), q.device()),
                   heads_array(vs[0], vs[1], vs[2], vs[3], q.dtype(), q.device())};
  EMBER_ON_DEVICE(q.device(), attention_backward, dout, q, k, v, unit_last(out), lse.contiguous(),
                  expand_mask(mask, q, k), a, g.dq, g.dk, g.dv);
  return g;
}

int64_t attention_workspace_bytes(const Array& q, const Array& k, const Array& v, bool backward) {
  check_qkv(q, k, v);
  return EMBER_ON_DEVICE(q.device(), attention_workspace_bytes, q, k, v, backward);
}

}  // namespace ember
