// Pooling on CUDA: the forward is a thread per output cell (core/pool_math.h windows, the CPU's);
// the backward is a thread per plane walking its outputs in order, so overlapping windows add into
// the input gradient in a fixed order with no atomics (bitwise reproducible; planes are many).
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/pool_math.h"
#include "cuda/device/common.cuh"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

template <typename T>
__global__ void __launch_bounds__(kThreads) pool_kernel(const T* x, T* out, int64_t* indices, int64_t planes,
                                                        int64_t H, int64_t W, Pool2dGeom g) {
  const int64_t per = g.out_h * g.out_w;
  for (int64_t e = dev::global_thread(); e < planes * per; e += dev::grid_threads()) {
    const int64_t p = e / per, i = (e % per) / g.out_w, j = e % g.out_w;
    int64_t at;
    pool_cell(g, x + p * H * W, H, W, i, j, out[e], at);
    if (indices) indices[e] = at;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) pool_backward_kernel(const T* grad, const int64_t* indices, T* dx,
                                                                 int64_t planes, int64_t H, int64_t W, Pool2dGeom g) {
  const int64_t per = g.out_h * g.out_w;
  for (int64_t p = dev::global_thread(); p < planes; p += dev::grid_threads()) {
    const T* go = grad + p * per;
    T* d = dx + p * H * W;
    for (int64_t e = 0; e < per; ++e) {
      if (g.mode == PoolMode::max) {
        if (indices[p * per + e] >= 0) d[indices[p * per + e]] += go[e];
        continue;
      }
      const PoolWindow w = pool_window(g, H, W, e / g.out_w, e % g.out_w);
      const T share = T(double(go[e]) / w.divisor);
      for (int64_t r = w.h0; r < w.h1; ++r)
        for (int64_t c = w.w0; c < w.w1; ++c) d[r * W + c] += share;
    }
  }
}

namespace typed {
template <typename T>
void forward(const Array& x, Array& out, Array& indices, const Pool2dGeom& g) {
  if (out.numel() == 0) return;
  const int device = x.device().index;
  DeviceGuard guard(device, "pool2d");
  pool_kernel<T><<<grid_for(out.numel()), kThreads, 0, stream_of(device)>>>(
      x.data<T>(), out.data<T>(), indices.defined() ? indices.data<int64_t>() : nullptr, x.shape(0), x.shape(1),
      x.shape(2), g);
  CUDA_CHECK_LAUNCH("pool2d");
}

template <typename T>
void backward(const Array& grad, const Array& indices, Array& dx, const Pool2dGeom& g) {
  if (dx.numel() == 0) return;
  const int device = dx.device().index;
  DeviceGuard guard(device, "pool2d_backward");
  pool_backward_kernel<T><<<grid_for(dx.shape(0)), kThreads, 0, stream_of(device)>>>(
      grad.data<T>(), indices.defined() ? indices.data<int64_t>() : nullptr, dx.data<T>(), dx.shape(0), dx.shape(1),
      dx.shape(2), g);
  CUDA_CHECK_LAUNCH("pool2d_backward");
}
}  // namespace typed

}  // namespace

void pool2d(const Array& x, Array& out, Array& indices, const Pool2dGeom& g) {
  dispatch_f32_f64(x.dtype(), "pool2d", [&](auto tag) { typed::forward<decltype(tag)>(x, out, indices, g); });
}

void pool2d_backward(const Array& grad, const Array& indices, Array& dx, const Pool2dGeom& g) {
  dispatch_f32_f64(dx.dtype(), "pool2d_backward", [&](auto tag) { typed::backward<decltype(tag)>(grad, indices, dx, g); });
}

}  // namespace ember::cuda
