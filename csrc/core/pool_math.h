// The pooling windows, written once for both backends: which input rows/columns output cell (i, j)
// reads, and the average's divisor. Max pooling's window is strided by the dilation; average and
// adaptive windows are contiguous.
#pragma once
#include <cstdint>
#include "core/hd.h"
#include "core/ops.h"

namespace ember {

struct PoolWindow {
  int64_t h0, h1, w0, w1;  // [h0, h1) x [w0, w1) before clipping to the input (max: tap indices)
  double divisor;
};

EMBER_HD int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

// Window of output (i, j) over an H x W plane, clipped to it. For max pooling the range is over
// kernel taps k (input index = start + k * dilation); for the averages it is over input indices.
EMBER_HD PoolWindow pool_window(const Pool2dGeom& g, int64_t H, int64_t W, int64_t i, int64_t j) {
  PoolWindow w{};
  if (g.mode == PoolMode::adaptive_avg) {
    w.h0 = floor_div(i * H, g.out_h), w.h1 = floor_div((i + 1) * H + g.out_h - 1, g.out_h);
    w.w0 = floor_div(j * W, g.out_w), w.w1 = floor_div((j + 1) * W + g.out_w - 1, g.out_w);
    w.divisor = double((w.h1 - w.h0) * (w.w1 - w.w0));
    return w;
  }
  const int64_t hs = i * g.stride_h - g.pad_h, ws = j * g.stride_w - g.pad_w;
  if (g.mode == PoolMode::avg) {
    const int64_t he = hs + g.kernel_h < H + g.pad_h ? hs + g.kernel_h : H + g.pad_h;
    const int64_t we = ws + g.kernel_w < W + g.pad_w ? ws + g.kernel_w : W + g.pad_w;
    const int64_t padded_area = (he - hs) * (we - ws);
    w.h0 = hs > 0 ? hs : 0, w.w0 = ws > 0 ? ws : 0;
    w.h1 = he < H ? he : H, w.w1 = we < W ? we : W;
    w.divisor = g.count_include_pad ? double(padded_area) : double((w.h1 - w.h0) * (w.w1 - w.w0));
    return w;
  }
  w.h0 = hs, w.w0 = ws;  // max: start positions; taps k with 0 <= start + k * dilation < size
  w.h1 = g.kernel_h, w.w1 = g.kernel_w;
  w.divisor = 1;
  return w;
}

// Output cell (i, j) of one plane: the window's maximum and its flat index (max; NaN wins, as in
// PyTorch; index -1 if the window holds no input), or its average (index unused).
template <typename T>
EMBER_HD void pool_cell(const Pool2dGeom& g, const T* in, int64_t H, int64_t W, int64_t i, int64_t j, T& value,
                        int64_t& index) {
  const PoolWindow w = pool_window(g, H, W, i, j);
  if (g.mode != PoolMode::max) {
    double s = 0;
    for (int64_t r = w.h0; r < w.h1; ++r)
      for (int64_t c = w.w0; c < w.w1; ++c) s += double(in[r * W + c]);
    value = T(s / w.divisor), index = -1;
    return;
  }
  T best = T(0);
  int64_t at = -1;
  for (int64_t a = 0; a < w.h1; ++a) {
    const int64_t r = w.h0 + a * g.dilation_h;
    if (r < 0 || r >= H) continue;
    for (int64_t b = 0; b < w.w1; ++b) {
      const int64_t c = w.w0 + b * g.dilation_w;
      if (c < 0 || c >= W) continue;
      const T v = in[r * W + c];
      if (at < 0 || v > best || (v != v && best == best)) best = v, at = r * W + c;
    }
  }
  value = best, index = at;
}

}  // namespace ember
