// Pooling on the CPU: planes (one image channel each) go to threads; within a plane each output
// cell walks its window (core/pool_math.h). The backward adds each output's gradient back to the
// input positions it read, plane by plane, in a fixed order (deterministic without atomics).
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/pool_math.h"
#include "cpu/parallel.h"

namespace ember::cpu {

void pool2d(const Array& x, Array& out, Array& indices, const Pool2dGeom& g) {
  const int64_t planes = x.shape(0), H = x.shape(1), W = x.shape(2), oh = g.out_h, ow = g.out_w;
  dispatch_f32_f64(x.dtype(), "pool2d", [&](auto tag) {
    using T = decltype(tag);
    for_each_plane(planes, H * W, [&](int64_t p) {
      const T* in = x.data<T>() + p * H * W;
      T* o = out.data<T>() + p * oh * ow;
      int64_t* idx = indices.defined() ? indices.data<int64_t>() + p * oh * ow : nullptr;
      for (int64_t e = 0; e < oh * ow; ++e) {
        int64_t at;
        pool_cell(g, in, H, W, e / ow, e % ow, o[e], at);
        if (idx) idx[e] = at;
      }
    });
  });
}

void pool2d_backward(const Array& grad, const Array& indices, Array& dx, const Pool2dGeom& g) {
  const int64_t planes = dx.shape(0), H = dx.shape(1), W = dx.shape(2), oh = g.out_h, ow = g.out_w;
  dispatch_f32_f64(dx.dtype(), "pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    for_each_plane(planes, H * W, [&](int64_t p) {
      const T* go = grad.data<T>() + p * oh * ow;
      T* d = dx.data<T>() + p * H * W;
      if (g.mode == PoolMode::max) {
        const int64_t* idx = indices.data<int64_t>() + p * oh * ow;
        for (int64_t e = 0; e < oh * ow; ++e)
          if (idx[e] >= 0) d[idx[e]] += go[e];
        return;
      }
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          const PoolWindow w = pool_window(g, H, W, i, j);
          const T share = T(double(go[i * ow + j]) / w.divisor);
          for (int64_t r = w.h0; r < w.h1; ++r)
            for (int64_t c = w.w0; c < w.w1; ++c) d[r * W + c] += share;
        }
    });
  });
}

}  // namespace ember::cpu
