// 2-D max and average pooling: geometry checks, outputs allocated as (planes, oh, ow).
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include "core/backend.h"

namespace ember {

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

}  // namespace ember
