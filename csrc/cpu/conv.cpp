// Convolution's data movement on the CPU (the arithmetic is ember's GEMM, driven by core/conv.cpp).
// im2col: row (c, ki, kj) of cols (any row stride: several images may share one buffer) holds, for every output position, the input pixel that kernel tap
// meets (0 in the padding), so a convolution is W (O, C*KH*KW) @ cols (C*KH*KW, Ho*Wo). Each row is a
// strided copy of one input plane; rows go to threads. col2im adds the rows back into the image; rows
// of one channel touch only that channel's plane, so channels go to threads without write conflicts.
#include <algorithm>
#include "core/backend.h"
#include "core/dispatch.h"
#include "cpu/parallel.h"

namespace ember::cpu {
namespace {

struct Tap {  // where kernel tap (ki, kj) reads for output (oh, ow): ih = oh*sh + ih0, iw = ow*sw + iw0
  int64_t ih0, iw0;
};

Tap tap(int64_t ki, int64_t kj, const Conv2dGeom& g) {
  return {ki * g.dilation_h - g.pad_top, kj * g.dilation_w - g.pad_left};
}

// Output rows/columns whose input index o*s + i0 lies in [0, n): [lo, hi).
void valid_range(int64_t i0, int64_t s, int64_t n, int64_t out, int64_t& lo, int64_t& hi) {
  lo = i0 >= 0 ? 0 : (-i0 + s - 1) / s;
  hi = i0 >= n ? 0 : std::min(out, (n - 1 - i0) / s + 1);
  lo = std::min(lo, hi);
}

}  // namespace

void im2col(const Array& x, Array& cols, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  const int64_t C = x.shape(0), H = x.shape(1), W = x.shape(2), L = cols.shape(1);
  const int64_t ho = (H + g.pad_top + g.pad_bottom - g.dilation_h * (kh - 1) - 1) / g.stride_h + 1;
  const int64_t wo = L / ho;
  dispatch_f32_f64(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = cols.data<T>();
    parallel_for(C * kh * kw, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(L, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw;
        const Tap t = tap(ki, kj, g);
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
        valid_range(t.ih0, g.stride_h, H, ho, oh_lo, oh_hi);
        valid_range(t.iw0, g.stride_w, W, wo, ow_lo, ow_hi);
        T* row = dst + r * cols.strides()[0];
        const T* plane = src + c * H * W;
        std::fill(row, row + oh_lo * wo, T(0));
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          T* out = row + oh * wo;
          const T* in = plane + (oh * g.stride_h + t.ih0) * W + t.iw0;
          std::fill(out, out + ow_lo, T(0));
          if (g.stride_w == 1) {
            std::copy(in + ow_lo, in + ow_hi, out + ow_lo);
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow] = in[ow * g.stride_w];
          }
          std::fill(out + ow_hi, out + wo, T(0));
        }
        std::fill(row + oh_hi * wo, row + L, T(0));
      }
    });
  });
}

void col2im(const Array& cols, Array& x, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  const int64_t C = x.shape(0), H = x.shape(1), W = x.shape(2), L = cols.shape(1);
  const int64_t ho = (H + g.pad_top + g.pad_bottom - g.dilation_h * (kh - 1) - 1) / g.stride_h + 1;
  const int64_t wo = L / ho;
  dispatch_f32_f64(x.dtype(), "conv2d_backward_input", [&](auto tag) {
    using T = decltype(tag);
    const T* src = cols.data<T>();
    T* dst = x.data<T>();
    parallel_for(C, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(kh * kw * L, 1)), [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        T* plane = dst + c * H * W;
        for (int64_t ki = 0; ki < kh; ++ki)
          for (int64_t kj = 0; kj < kw; ++kj) {
            const Tap t = tap(ki, kj, g);
            int64_t oh_lo, oh_hi, ow_lo, ow_hi;
            valid_range(t.ih0, g.stride_h, H, ho, oh_lo, oh_hi);
            valid_range(t.iw0, g.stride_w, W, wo, ow_lo, ow_hi);
            const T* row = src + ((c * kh + ki) * kw + kj) * cols.strides()[0];
            for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
              T* out = plane + (oh * g.stride_h + t.ih0) * W + t.iw0;
              const T* in = row + oh * wo;
              for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow * g.stride_w] += in[ow];
            }
          }
      }
    });
  });
}

// The CPU unfolds into its own GEMM (core/conv.cpp): no whole-convolution kernels here.
Array conv2d_direct(const Array&, const Array&, const Array&, const Shape&, const Conv2dGeom&) { return {}; }
Array conv2d_direct_backward_input(const Array&, const Array&, const Shape&, const Conv2dGeom&) { return {}; }
Array conv2d_direct_backward_weight(const Array&, const Array&, const Shape&, const Conv2dGeom&) { return {}; }

// ---- depthwise, direct ------------------------------------------------------------------------
// One channel per group makes each group's GEMM 1 x KH*KW x Ho*Wo: all overhead. Direct loops
// instead: per (image, channel) plane and kernel tap, one pass over the output rows that tap reaches,
// contiguous along the output row when the stride is 1 (vectorised).

namespace {

struct Plane {
  int64_t H, W, ho, wo, kh, kw;
};

Plane plane_of(const Array& x, const Array& w, const Array& y) {
  return {x.shape(2), x.shape(3), y.shape(2), y.shape(3), w.shape(1), w.shape(2)};
}

// body(tap_value_index, input offset of output (oh, 0) for this tap, oh, ow_lo, ow_hi) for every tap
// and every output row that reads inside the input.
template <typename F>
void for_each_tap_row(const Plane& p, const Conv2dGeom& g, F body) {
  for (int64_t ki = 0; ki < p.kh; ++ki)
    for (int64_t kj = 0; kj < p.kw; ++kj) {
      const Tap t = tap(ki, kj, g);
      int64_t oh_lo, oh_hi, ow_lo, ow_hi;
      valid_range(t.ih0, g.stride_h, p.H, p.ho, oh_lo, oh_hi);
      valid_range(t.iw0, g.stride_w, p.W, p.wo, ow_lo, ow_hi);
      for (int64_t oh = oh_lo; oh < oh_hi; ++oh)
        body(ki * p.kw + kj, (oh * g.stride_h + t.ih0) * p.W + t.iw0, oh, ow_lo, ow_hi);
    }
}

// Forward and backward-input of a depthwise convolution are one pass with the roles of the two
// planes swapped: per plane, per tap and per output row, forward gathers y[ow] += w * x[ow * stride]
// and backward scatters dx[ow * stride] += w * dy[ow]. kScatter picks the backward; `src` is the
// plane read (x or dy), `dst` the plane written whole (y or dx).
template <bool kScatter>
void depthwise_tap_pass(const char* op, const Array& src, const Array& w, Array& dst, const Conv2dGeom& g) {
  const Array& x = kScatter ? dst : src;
  const Array& y = kScatter ? src : dst;
  const Plane p = plane_of(x, w, y);
  const int64_t C = x.shape(1), planes = x.shape(0) * C, x_plane = p.H * p.W, y_plane = p.ho * p.wo;
  const int64_t src_plane = kScatter ? y_plane : x_plane, dst_plane = kScatter ? x_plane : y_plane;
  const int64_t sw = g.stride_w;
  dispatch_f32_f64(dst.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    for_each_plane(planes, y_plane * p.kh * p.kw, [&](int64_t q) {
      const T* from = src.data<T>() + q * src_plane;
      const T* wk = w.data<T>() + (q % C) * p.kh * p.kw;
      T* to = dst.data<T>() + q * dst_plane;
      std::fill(to, to + dst_plane, T(0));
      for_each_tap_row(p, g, [&](int64_t k, int64_t at, int64_t oh, int64_t lo, int64_t hi) {
        const T wv = wk[k];
        if constexpr (kScatter) {
          const T* gy = from + oh * p.wo;
          T* gx = to + at;
          for (int64_t ow = lo; ow < hi; ++ow) gx[ow * sw] += wv * gy[ow];
        } else {
          const T* in = from + at;
          T* out = to + oh * p.wo;
          if (sw == 1) {  // unit stride: a plain axpy the compiler vectorises
            for (int64_t ow = lo; ow < hi; ++ow) out[ow] += wv * in[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) out[ow] += wv * in[ow * sw];
          }
        }
      });
    });
  });
}

}  // namespace

void depthwise_conv2d(const Array& x, const Array& w, Array& y, const Conv2dGeom& g) {
  depthwise_tap_pass<false>("conv2d", x, w, y, g);
}

void depthwise_conv2d_backward_input(const Array& dy, const Array& w, Array& dx, const Conv2dGeom& g) {
  depthwise_tap_pass<true>("conv2d_backward_input", dy, w, dx, g);
}

void depthwise_conv2d_backward_weight(const Array& dy, const Array& x, Array& dw, const Conv2dGeom& g) {
  const Plane p = plane_of(x, dw, dy);
  const int64_t N = x.shape(0), C = x.shape(1);
  dispatch_f32_f64(x.dtype(), "conv2d_backward_weight", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(C, 1, [&](int64_t c0, int64_t c1) {  // a channel's taps sum over every image: no conflicts
      for (int64_t c = c0; c < c1; ++c) {
        T* wk = dw.data<T>() + c * p.kh * p.kw;
        std::fill(wk, wk + p.kh * p.kw, T(0));
        for (int64_t n = 0; n < N; ++n) {
          const T* in = x.data<T>() + (n * C + c) * p.H * p.W;
          const T* gy = dy.data<T>() + (n * C + c) * p.ho * p.wo;
          for_each_tap_row(p, g, [&](int64_t k, int64_t at, int64_t oh, int64_t lo, int64_t hi) {
            const T* o = gy + oh * p.wo;
            const T* i = in + at;
            T s = 0;
            for (int64_t ow = lo; ow < hi; ++ow) s += o[ow] * i[ow * g.stride_w];
            wk[k] += s;
          });
        }
      }
    });
  });
}

}  // namespace ember::cpu
