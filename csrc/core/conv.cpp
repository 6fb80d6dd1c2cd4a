// Convolution's device-neutral driver: shape checks, then either a backend's whole-convolution
// kernel (conv2d_direct*: CUDA's implicit GEMM) or, where the backend declines (the CPU), per image
// an unfold (im2col, a backend kernel) and one GEMM per group on ember's GEMM (gemm_), so the
// convolution runs as fast as the GEMM does at (O/groups) x (C/groups * KH * KW) x (Ho * Wo). The
// backward passes reuse the same pieces: dx = fold(W^T @ dy) (col2im), dW = sum over images of
// dy @ cols^T (accumulated by the GEMM).
#include "core/ops.h"
#include "core/backend.h"
#include <algorithm>

namespace ember {

namespace {

struct ConvShape {
  int64_t n, c, h, w, o, kh, kw, ho, wo;
};

int64_t out_size(int64_t in, int64_t pad, int64_t k, int64_t dil, int64_t stride) {
  return (in + pad - dil * (k - 1) - 1) / stride + 1;
}

ConvShape conv_shape(const char* op, const Shape& x, const Shape& w, const Conv2dGeom& g) {
  EMBER_CHECK(x.size() == 4 && w.size() == 4, op, "expects x (N, C, H, W) and weight (O, C/groups, KH, KW), got ",
              shape_str(x), " and ", shape_str(w));
  EMBER_CHECK(g.groups >= 1 && x[1] % g.groups == 0 && w[0] % g.groups == 0, op, "groups=", g.groups,
              " must divide the input channels (", x[1], ") and the output channels (", w[0], ")");
  EMBER_CHECK(w[1] * g.groups == x[1], op, "channel mismatch: input has ", x[1], " channels, weight expects ",
              w[1] * g.groups, " (x ", shape_str(x), ", weight ", shape_str(w), ", groups ", g.groups, ")");
  EMBER_CHECK(g.stride_h >= 1 && g.stride_w >= 1 && g.dilation_h >= 1 && g.dilation_w >= 1 && g.pad_top >= 0 &&
                  g.pad_bottom >= 0 && g.pad_left >= 0 && g.pad_right >= 0,
              op, "stride and dilation must be >= 1 and padding >= 0");
  ConvShape s{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0};
  s.ho = out_size(s.h, g.pad_top + g.pad_bottom, s.kh, g.dilation_h, g.stride_h);
  s.wo = out_size(s.w, g.pad_left + g.pad_right, s.kw, g.dilation_w, g.stride_w);
  EMBER_CHECK(s.ho >= 1 && s.wo >= 1, op, "the kernel (", s.kh, "x", s.kw, ", dilation ", g.dilation_h, "x",
              g.dilation_w, ") is larger than the padded input (x ", shape_str(x), ")");
  return s;
}

void check_float(const char* op, const Array& a, const Array& b) {
  check_same_device(op, a, b);
  EMBER_CHECK_T(TypeError, a.dtype() == b.dtype() && (a.dtype() == DType::float32 || a.dtype() == DType::float64),
                op, "expects float32 or float64 operands of one dtype, got ", dtype_name(a.dtype()), " and ",
                dtype_name(b.dtype()));
}

// One input and one output channel per group: the direct depthwise kernels, not im2col + GEMM.
bool depthwise(const ConvShape& s, const Conv2dGeom& g) { return g.groups == s.c && s.o == s.c && s.c > 1; }

// Rows [g*rows, (g+1)*rows) of a 2-d array, as the (1, rows, cols) view gemm_ takes.
Array group_rows(const Array& a, int64_t g, int64_t rows) { return a.slice(0, g * rows, (g + 1) * rows, 1).unsqueeze(0); }

}  // namespace

namespace {

// Images unfolded together: as many as fit in kUnfoldBytes of columns, so small images (LeNet's
// 10x10 outputs) make one large GEMM per group instead of N tiny ones, while large ones (ResNet's
// 56x56) go one at a time and need no reordering copy.
constexpr int64_t kUnfoldBytes = int64_t(16) << 20;

int64_t images_per_chunk(const ConvShape& s, int64_t L, size_t item) {
  const int64_t per_image = s.c * s.kh * s.kw * L * int64_t(item);
  return std::max<int64_t>(1, std::min<int64_t>(s.n, kUnfoldBytes / std::max<int64_t>(per_image, 1)));
}

// Columns [i L, (i + 1) L) of a (rows, nb L) buffer: image i's block.
Array image_cols(const Array& cols, int64_t i, int64_t L) { return cols.slice(1, i * L, (i + 1) * L, 1); }

// Images [n0, n0 + b) of a (N, O, Ho, Wo) array as the (O, b L) operand of the GEMM: a view when b is
// 1, else a reordered copy in `buf`; rows_to_images is the way back.
Array as_rows(const Array& images, int64_t n0, int64_t b, int64_t o, int64_t L, Array& buf) {
  if (b == 1) return images.slice(0, n0, n0 + 1, 1).reshape({o, L});
  Array rows = buf.slice(1, 0, b * L, 1);
  Array dst = rows.reshape({o, b, L});
  copy_(dst, images.slice(0, n0, n0 + b, 1).reshape({b, o, L}).permute({1, 0, 2}));
  return rows;
}

void rows_to_images(const Array& rows, Array& images, int64_t n0, int64_t b, int64_t o, int64_t L) {
  if (b == 1) return;  // the GEMM wrote into the image's view directly
  Array dst = images.slice(0, n0, n0 + b, 1).reshape({b, o, L});
  copy_(dst, rows.reshape({o, b, L}).permute({1, 0, 2}));
}

// im2col of images [n0, n0 + b) into consecutive column blocks of cols.
void unfold(const Array& x, Array& cols, int64_t n0, int64_t b, int64_t L, const ConvShape& s, const Conv2dGeom& g) {
  for (int64_t i = 0; i < b; ++i) {
    Array block = image_cols(cols, i, L);
    EMBER_ON_DEVICE(x.device(), im2col, x.slice(0, n0 + i, n0 + i + 1, 1).squeeze(0), block, s.kh, s.kw, g);
  }
}

Array scratch(int64_t rows, int64_t cols, const Array& like) { return Array::empty({rows, cols}, like.dtype(), like.device()); }

}  // namespace

Array conv2d(const Array& x_in, const Array& w_in, const Array* bias, const Conv2dGeom& g) {
  const char* op = "conv2d";
  check_float(op, x_in, w_in);
  const ConvShape s = conv_shape(op, x_in.shape(), w_in.shape(), g);
  if (bias) {
    check_float(op, x_in, *bias);
    EMBER_CHECK(bias->ndim() == 1 && bias->shape(0) == s.o, op, "bias must be (", s.o, ",), got ",
                shape_str(bias->shape()));
  }
  const Array x = x_in.contiguous(), w = w_in.contiguous().reshape({s.o, -1});
  const int64_t K = (s.c / g.groups) * s.kh * s.kw, L = s.ho * s.wo, og = s.o / g.groups;
  const Shape y_shape{s.n, s.o, s.ho, s.wo};
  if (!depthwise(s, g)) {
    Array y = EMBER_ON_DEVICE(x.device(), conv2d_direct, x, w.reshape(w_in.shape()),
                              bias ? bias->contiguous() : Array(), y_shape, g);
    if (y.defined()) return y;  // bias added by the kernel
  }
  Array out = Array::empty(y_shape, x.dtype(), x.device());
  if (depthwise(s, g)) {
    EMBER_ON_DEVICE(x.device(), depthwise_conv2d, x, w.reshape({s.c, s.kh, s.kw}), out, g);
  } else {
    const int64_t nb = images_per_chunk(s, L, x.itemsize());
    Array cols = scratch(s.c * s.kh * s.kw, nb * L, x), ybuf = nb > 1 ? scratch(s.o, nb * L, x) : Array();
    for (int64_t n0 = 0; n0 < s.n; n0 += nb) {
      const int64_t b = std::min(nb, s.n - n0);
      unfold(x, cols, n0, b, L, s, g);
      Array y = b == 1 ? out.slice(0, n0, n0 + 1, 1).reshape({s.o, L}) : ybuf.slice(1, 0, b * L, 1);
      Array cb = cols.slice(1, 0, b * L, 1);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        Array yg = group_rows(y, gi, og);
        gemm_(group_rows(w, gi, og), group_rows(cb, gi, K), yg, 1.0, 0.0);
      }
      rows_to_images(y, out, n0, b, s.o, L);
    }
  }
  return bias ? binary(BinaryOp::add, out, bias->reshape({1, s.o, 1, 1})) : out;
}

Array conv2d_backward_input(const Array& grad_in, const Array& w_in, const Shape& x_shape, const Conv2dGeom& g) {
  const char* op = "conv2d_backward_input";
  check_float(op, grad_in, w_in);
  const ConvShape s = conv_shape(op, x_shape, w_in.shape(), g);
  EMBER_CHECK(grad_in.shape() == Shape({s.n, s.o, s.ho, s.wo}), op, "grad has shape ", shape_str(grad_in.shape()));
  const Array grad = grad_in.contiguous(), w = w_in.contiguous().reshape({s.o, -1});
  const int64_t K = (s.c / g.groups) * s.kh * s.kw, L = s.ho * s.wo, og = s.o / g.groups;
  if (depthwise(s, g)) {
    Array dx = Array::empty(x_shape, grad.dtype(), grad.device());
    EMBER_ON_DEVICE(grad.device(), depthwise_conv2d_backward_input, grad, w.reshape({s.c, s.kh, s.kw}), dx, g);
    return dx;
  }
  if (Array dx = EMBER_ON_DEVICE(grad.device(), conv2d_direct_backward_input, grad, w.reshape(w_in.shape()), x_shape, g);
      dx.defined())
    return dx;
  Array dx = full(x_shape, 0.0, grad.dtype(), grad.device());
  const int64_t nb = images_per_chunk(s, L, grad.itemsize());
  Array dcols = scratch(s.c * s.kh * s.kw, nb * L, grad), dybuf = nb > 1 ? scratch(s.o, nb * L, grad) : Array();
  for (int64_t n0 = 0; n0 < s.n; n0 += nb) {
    const int64_t b = std::min(nb, s.n - n0);
    Array dy = as_rows(grad, n0, b, s.o, L, dybuf), db = dcols.slice(1, 0, b * L, 1);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      Array dcg = group_rows(db, gi, K);
      gemm_(group_rows(w, gi, og).transpose(1, 2), group_rows(dy, gi, og), dcg, 1.0, 0.0);  // W_g^T dy_g
    }
    for (int64_t i = 0; i < b; ++i) {
      Array image = dx.slice(0, n0 + i, n0 + i + 1, 1).squeeze(0);
      EMBER_ON_DEVICE(grad.device(), col2im, image_cols(dcols, i, L), image, s.kh, s.kw, g);
    }
  }
  return dx;
}

Array conv2d_backward_weight(const Array& grad_in, const Array& x_in, const Shape& w_shape, const Conv2dGeom& g) {
  const char* op = "conv2d_backward_weight";
  check_float(op, grad_in, x_in);
  const ConvShape s = conv_shape(op, x_in.shape(), w_shape, g);
  EMBER_CHECK(grad_in.shape() == Shape({s.n, s.o, s.ho, s.wo}), op, "grad has shape ", shape_str(grad_in.shape()));
  const Array grad = grad_in.contiguous(), x = x_in.contiguous();
  const int64_t K = (s.c / g.groups) * s.kh * s.kw, L = s.ho * s.wo, og = s.o / g.groups;
  if (depthwise(s, g)) {
    Array dw = Array::empty({s.c, s.kh, s.kw}, grad.dtype(), grad.device());
    EMBER_ON_DEVICE(grad.device(), depthwise_conv2d_backward_weight, grad, x, dw, g);
    return dw.reshape(w_shape);
  }
  if (Array dw = EMBER_ON_DEVICE(grad.device(), conv2d_direct_backward_weight, grad, x, w_shape, g); dw.defined())
    return dw;
  Array dw = full({s.o, K}, 0.0, grad.dtype(), grad.device());
  const int64_t nb = images_per_chunk(s, L, x.itemsize());
  Array cols = scratch(s.c * s.kh * s.kw, nb * L, x), dybuf = nb > 1 ? scratch(s.o, nb * L, x) : Array();
  for (int64_t n0 = 0; n0 < s.n; n0 += nb) {
    const int64_t b = std::min(nb, s.n - n0);
    unfold(x, cols, n0, b, L, s, g);
    Array dy = as_rows(grad, n0, b, s.o, L, dybuf), cb = cols.slice(1, 0, b * L, 1);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      Array dwg = group_rows(dw, gi, og);
      gemm_(group_rows(dy, gi, og), group_rows(cb, gi, K).transpose(1, 2), dwg, 1.0, 1.0);  // += dy_g cols_g^T
    }
  }
  return dw.reshape(w_shape);
}

}  // namespace ember
