// Convolution's data movement on the CPU (the arithmetic is ember's GEMM, driven by core/conv.cpp).
// im2col: row (c, ki, kj) of cols holds, for every output position, the input pixel that kernel tap
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
        T* row = dst + r * L;
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
            const T* row = src + ((c * kh + ki) * kw + kj) * L;
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

}  // namespace ember::cpu
