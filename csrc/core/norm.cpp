// Batch norm (statistics, apply, backward) and layer norm over the last dim.
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include "core/backend.h"

namespace ember {

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
