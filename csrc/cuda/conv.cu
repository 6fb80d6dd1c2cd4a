// Convolution's data movement on CUDA (the arithmetic is ember's GEMM, driven by core/conv.cpp).
// im2col: a thread per element of cols (coalesced writes along the output positions). col2im: a
// thread per input pixel that gathers every (tap, output) pair that read it: no atomics, so the
// input gradient is bitwise reproducible.
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/device/common.cuh"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

struct Dims {
  int64_t C, H, W, kh, kw, ho, wo;
};

template <typename T>
__global__ void __launch_bounds__(kThreads) im2col_kernel(const T* x, T* cols, Dims d, Conv2dGeom g) {
  const int64_t L = d.ho * d.wo, total = d.C * d.kh * d.kw * L;
  for (int64_t e = dev::global_thread(); e < total; e += dev::grid_threads()) {
    const int64_t r = e / L, l = e % L, c = r / (d.kh * d.kw), ki = (r / d.kw) % d.kh, kj = r % d.kw;
    const int64_t ih = (l / d.wo) * g.stride_h + ki * g.dilation_h - g.pad_top;
    const int64_t iw = (l % d.wo) * g.stride_w + kj * g.dilation_w - g.pad_left;
    cols[e] = (ih >= 0 && ih < d.H && iw >= 0 && iw < d.W) ? x[(c * d.H + ih) * d.W + iw] : T(0);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) col2im_kernel(const T* cols, T* x, Dims d, Conv2dGeom g) {
  const int64_t L = d.ho * d.wo, total = d.C * d.H * d.W;
  for (int64_t e = dev::global_thread(); e < total; e += dev::grid_threads()) {
    const int64_t c = e / (d.H * d.W), ih = (e / d.W) % d.H, iw = e % d.W;
    T acc = 0;
    for (int64_t ki = 0; ki < d.kh; ++ki) {
      const int64_t y = ih + g.pad_top - ki * g.dilation_h;
      if (y < 0 || y % g.stride_h || y / g.stride_h >= d.ho) continue;
      for (int64_t kj = 0; kj < d.kw; ++kj) {
        const int64_t x_ = iw + g.pad_left - kj * g.dilation_w;
        if (x_ < 0 || x_ % g.stride_w || x_ / g.stride_w >= d.wo) continue;
        acc += cols[((c * d.kh + ki) * d.kw + kj) * L + (y / g.stride_h) * d.wo + x_ / g.stride_w];
      }
    }
    x[e] += acc;
  }
}

Dims dims_of(const Array& x, const Array& cols, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  const int64_t H = x.shape(1);
  const int64_t ho = (H + g.pad_top + g.pad_bottom - g.dilation_h * (kh - 1) - 1) / g.stride_h + 1;
  return {x.shape(0), H, x.shape(2), kh, kw, ho, cols.shape(1) / ho};
}

namespace typed {
template <typename T>
void im2col(const Array& x, Array& cols, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  const Dims d = dims_of(x, cols, kh, kw, g);
  const int64_t total = cols.numel();
  if (total == 0) return;
  DeviceGuard guard(x.device().index, "conv2d");
  im2col_kernel<T><<<grid_for(total), kThreads, 0, stream_of(x.device().index)>>>(x.data<T>(), cols.data<T>(), d, g);
  CUDA_CHECK_LAUNCH("conv2d");
}

template <typename T>
void col2im(const Array& cols, Array& x, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  const Dims d = dims_of(x, cols, kh, kw, g);
  const int64_t total = x.numel();
  if (total == 0) return;
  DeviceGuard guard(x.device().index, "conv2d_backward_input");
  col2im_kernel<T><<<grid_for(total), kThreads, 0, stream_of(x.device().index)>>>(cols.data<T>(), x.data<T>(), d, g);
  CUDA_CHECK_LAUNCH("conv2d_backward_input");
}
}  // namespace typed

}  // namespace

void im2col(const Array& x, Array& cols, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  dispatch_f32_f64(x.dtype(), "conv2d", [&](auto tag) { typed::im2col<decltype(tag)>(x, cols, kh, kw, g); });
}

void col2im(const Array& cols, Array& x, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  dispatch_f32_f64(x.dtype(), "conv2d_backward_input", [&](auto tag) { typed::col2im<decltype(tag)>(cols, x, kh, kw, g); });
}

}  // namespace ember::cuda
