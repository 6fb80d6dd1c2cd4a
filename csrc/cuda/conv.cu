// Convolution on CUDA. The three passes run as implicit GEMMs (conv2d_direct*): a tiled GEMM whose
// operand tiles are gathered straight from the images into shared memory, so no im2col buffer is
// ever written:
//   forward          y[o, (n, oh, ow)]  = sum_(c, kh, kw)   w[o, (c, kh, kw)] x[n, c, ih, iw]
//   input gradient   dx[c, (n, ih, iw)] = sum_(o, kh, kw)   w[o, (c, kh, kw)] dy[n, o, oh, ow]
//   weight gradient  dw[o, (c, kh, kw)] = sum_(n, oh, ow)   dy[n, o, oh, ow]  x[n, c, ih, iw]
// per group (blockIdx.z), with ih = oh * stride - pad + kh * dilation (the input gradient keeps only
// the (oh, kh) pairs where that division is exact). Each output element is owned by one thread, so
// all three are reproducible without atomics. The tile loop is the GEMM's (cuda/device/tile_gemm.cuh:
// 64 x 64 tiles, K steps of 16, 4 x 4 outputs per thread); float32 and float64 (CUDA cores: no
// tensor cores, since convolutions take float32/float64 only).
// im2col/col2im (a thread per element; col2im gathers, no atomics) remain for the backend interface.
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/device/common.cuh"
#include "cuda/device/tile_gemm.cuh"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

struct Dims {
  int64_t C, H, W, kh, kw, ho, wo;
  int64_t ld = 0;  // cols' row stride (several images may share one buffer)
};

template <typename T>
__global__ void __launch_bounds__(kThreads) im2col_kernel(const T* x, T* cols, Dims d, Conv2dGeom g) {
  const int64_t L = d.ho * d.wo, total = d.C * d.kh * d.kw * L;
  for (int64_t e = dev::global_thread(); e < total; e += dev::grid_threads()) {
    const int64_t r = e / L, l = e % L, c = r / (d.kh * d.kw), ki = (r / d.kw) % d.kh, kj = r % d.kw;
    const int64_t ih = (l / d.wo) * g.stride_h + ki * g.dilation_h - g.pad_top;
    const int64_t iw = (l % d.wo) * g.stride_w + kj * g.dilation_w - g.pad_left;
    cols[r * d.ld + l] = (ih >= 0 && ih < d.H && iw >= 0 && iw < d.W) ? x[(c * d.H + ih) * d.W + iw] : T(0);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) col2im_kernel(const T* cols, T* x, Dims d, Conv2dGeom g) {
  const int64_t total = d.C * d.H * d.W;
  for (int64_t e = dev::global_thread(); e < total; e += dev::grid_threads()) {
    const int64_t c = e / (d.H * d.W), ih = (e / d.W) % d.H, iw = e % d.W;
    T acc = 0;
    for (int64_t ki = 0; ki < d.kh; ++ki) {
      const int64_t y = ih + g.pad_top - ki * g.dilation_h;
      if (y < 0 || y % g.stride_h || y / g.stride_h >= d.ho) continue;
      for (int64_t kj = 0; kj < d.kw; ++kj) {
        const int64_t x_ = iw + g.pad_left - kj * g.dilation_w;
        if (x_ < 0 || x_ % g.stride_w || x_ / g.stride_w >= d.wo) continue;
        acc += cols[((c * d.kh + ki) * d.kw + kj) * d.ld + (y / g.stride_h) * d.wo + x_ / g.stride_w];
      }
    }
    x[e] += acc;
  }
}

// Depthwise, direct: a thread per output (forward), per input pixel (input gradient, gathering the
// outputs that read it) and per (channel, tap) (weight gradient, summing over images and outputs).
template <typename T>
__global__ void __launch_bounds__(kThreads) depthwise_kernel(const T* x, const T* w, T* y, int64_t N, Dims d,
                                                             Conv2dGeom g) {
  const int64_t total = N * d.C * d.ho * d.wo;
  for (int64_t e = dev::global_thread(); e < total; e += dev::grid_threads()) {
    const int64_t q = e / (d.ho * d.wo), oh = (e / d.wo) % d.ho, ow = e % d.wo, c = q % d.C;
    T acc = 0;
    for (int64_t ki = 0; ki < d.kh; ++ki) {
      const int64_t ih = oh * g.stride_h + ki * g.dilation_h - g.pad_top;
      if (ih < 0 || ih >= d.H) continue;
      for (int64_t kj = 0; kj < d.kw; ++kj) {
        const int64_t iw = ow * g.stride_w + kj * g.dilation_w - g.pad_left;
        if (iw >= 0 && iw < d.W) acc += w[(c * d.kh + ki) * d.kw + kj] * x[(q * d.H + ih) * d.W + iw];
      }
    }
    y[e] = acc;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) depthwise_input_kernel(const T* dy, const T* w, T* dx, int64_t N, Dims d,
                                                                   Conv2dGeom g) {
  const int64_t total = N * d.C * d.H * d.W;
  for (int64_t e = dev::global_thread(); e < total; e += dev::grid_threads()) {
    const int64_t q = e / (d.H * d.W), ih = (e / d.W) % d.H, iw = e % d.W, c = q % d.C;
    T acc = 0;
    for (int64_t ki = 0; ki < d.kh; ++ki) {
      const int64_t y_ = ih + g.pad_top - ki * g.dilation_h;
      if (y_ < 0 || y_ % g.stride_h || y_ / g.stride_h >= d.ho) continue;
      for (int64_t kj = 0; kj < d.kw; ++kj) {
        const int64_t x_ = iw + g.pad_left - kj * g.dilation_w;
        if (x_ < 0 || x_ % g.stride_w || x_ / g.stride_w >= d.wo) continue;
        acc += w[(c * d.kh + ki) * d.kw + kj] * dy[(q * d.ho + y_ / g.stride_h) * d.wo + x_ / g.stride_w];
      }
    }
    dx[e] = acc;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) depthwise_weight_kernel(const T* dy, const T* x, T* dw, int64_t N, Dims d,
                                                                    Conv2dGeom g) {
  const int64_t total = d.C * d.kh * d.kw;
  for (int64_t e = dev::global_thread(); e < total; e += dev::grid_threads()) {
    const int64_t c = e / (d.kh * d.kw), ki = (e / d.kw) % d.kh, kj = e % d.kw;
    T acc = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < d.ho; ++oh) {
        const int64_t ih = oh * g.stride_h + ki * g.dilation_h - g.pad_top;
        if (ih < 0 || ih >= d.H) continue;
        for (int64_t ow = 0; ow < d.wo; ++ow) {
          const int64_t iw = ow * g.stride_w + kj * g.dilation_w - g.pad_left;
          if (iw >= 0 && iw < d.W)
            acc += dy[((n * d.C + c) * d.ho + oh) * d.wo + ow] * x[((n * d.C + c) * d.H + ih) * d.W + iw];
        }
      }
    dw[e] = acc;
  }
}

// (C, H, W, KH, KW, Ho, Wo) of a depthwise problem from x (N, C, H, W), w (C, KH, KW), y (N, C, Ho, Wo).
Dims depthwise_dims(const Array& x, const Array& w, const Array& y) {
  return {x.shape(1), x.shape(2), x.shape(3), w.shape(1), w.shape(2), y.shape(2), y.shape(3)};
}

Dims dims_of(const Array& x, const Array& cols, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  const int64_t H = x.shape(1);
  const int64_t ho = (H + g.pad_top + g.pad_bottom - g.dilation_h * (kh - 1) - 1) / g.stride_h + 1;
  return {x.shape(0), H, x.shape(2), kh, kw, ho, cols.shape(1) / ho, cols.strides()[0]};
}

// ---- implicit GEMM ------------------------------------------------------------------------------

struct ConvDims {
  int64_t N, C, H, W, O, kh, kw, ho, wo, groups;
  __host__ __device__ int64_t cg() const { return C / groups; }
  __host__ __device__ int64_t og() const { return O / groups; }
};

// Element (tap, pixel) of group grp's unfolded input: tap = (c, kh, kw) of the group's channels,
// pixel = (image, oh, ow) of the output; 0 in the padding. The forward's B and the weight
// gradient's B (transposed) are both this.
template <typename T>
__device__ T unfolded_x(const T* x, const ConvDims& d, const Conv2dGeom& g, int64_t grp, int64_t tap, int64_t pixel) {
  const int64_t c = tap / (d.kh * d.kw), ki = (tap / d.kw) % d.kh, kj = tap % d.kw;
  const int64_t img = pixel / (d.ho * d.wo), oh = (pixel / d.wo) % d.ho, ow = pixel % d.wo;
  const int64_t ih = oh * g.stride_h - g.pad_top + ki * g.dilation_h, iw = ow * g.stride_w - g.pad_left + kj * g.dilation_w;
  if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) return T(0);
  return x[((img * d.C + grp * d.cg() + c) * d.H + ih) * d.W + iw];
}

// Forward operands: A = w_g (og x K, K = cg kh kw, rows contiguous), B = the unfolded input (K x N ho wo).
template <typename T>
struct ForwardOps {
  const T *x, *w, *bias;
  T* y;
  ConvDims d;
  Conv2dGeom g;
  __host__ __device__ int64_t M() const { return d.og(); }
  __host__ __device__ int64_t Ncols() const { return d.N * d.ho * d.wo; }
  __host__ __device__ int64_t K() const { return d.cg() * d.kh * d.kw; }
  __device__ T a(int64_t grp, int64_t m, int64_t k) const { return w[(grp * d.og() + m) * K() + k]; }
  __device__ T b(int64_t grp, int64_t k, int64_t n) const { return unfolded_x(x, d, g, grp, k, n); }
  __device__ void store(int64_t grp, int64_t m, int64_t n, T v) const {
    const int64_t o = grp * d.og() + m, img = n / (d.ho * d.wo), l = n % (d.ho * d.wo);
    y[(img * d.O + o) * d.ho * d.wo + l] = v + (bias ? bias[o] : T(0));
  }
};

// Input gradient: A = w_g^T (cg x K, K = og kh kw), B = dy gathered at the outputs that read (ih, iw).
template <typename T>
struct InputGradOps {
  const T *dy, *w;
  T* dx;
  ConvDims d;
  Conv2dGeom g;
  __host__ __device__ int64_t M() const { return d.cg(); }
  __host__ __device__ int64_t Ncols() const { return d.N * d.H * d.W; }
  __host__ __device__ int64_t K() const { return d.og() * d.kh * d.kw; }
  __device__ T a(int64_t grp, int64_t m, int64_t k) const {
    const int64_t o = k / (d.kh * d.kw), tap = k % (d.kh * d.kw);
    return w[((grp * d.og() + o) * d.cg() + m) * d.kh * d.kw + tap];
  }
  __device__ T b(int64_t grp, int64_t k, int64_t n) const {
    const int64_t o = k / (d.kh * d.kw), ki = (k / d.kw) % d.kh, kj = k % d.kw;
    const int64_t img = n / (d.H * d.W), ih = (n / d.W) % d.H, iw = n % d.W;
    const int64_t y_ = ih + g.pad_top - ki * g.dilation_h, x_ = iw + g.pad_left - kj * g.dilation_w;
    if (y_ < 0 || x_ < 0 || y_ % g.stride_h || x_ % g.stride_w) return T(0);
    const int64_t oh = y_ / g.stride_h, ow = x_ / g.stride_w;
    if (oh >= d.ho || ow >= d.wo) return T(0);
    return dy[((img * d.O + grp * d.og() + o) * d.ho + oh) * d.wo + ow];
  }
  __device__ void store(int64_t grp, int64_t m, int64_t n, T v) const {
    const int64_t img = n / (d.H * d.W), l = n % (d.H * d.W);
    dx[(img * d.C + grp * d.cg() + m) * d.H * d.W + l] = v;
  }
};

// Weight gradient: A = dy_g (og x K, K = N ho wo), B = the unfolded input transposed (K x cg kh kw).
template <typename T>
struct WeightGradOps {
  const T *dy, *x;
  T* dw;
  ConvDims d;
  Conv2dGeom g;
  __host__ __device__ int64_t M() const { return d.og(); }
  __host__ __device__ int64_t Ncols() const { return d.cg() * d.kh * d.kw; }
  __host__ __device__ int64_t K() const { return d.N * d.ho * d.wo; }
  __device__ T a(int64_t grp, int64_t m, int64_t k) const {
    const int64_t img = k / (d.ho * d.wo), l = k % (d.ho * d.wo);
    return dy[(img * d.O + grp * d.og() + m) * d.ho * d.wo + l];
  }
  __device__ T b(int64_t grp, int64_t k, int64_t n) const { return unfolded_x(x, d, g, grp, n, k); }
  __device__ void store(int64_t grp, int64_t m, int64_t n, T v) const { dw[(grp * d.og() + m) * Ncols() + n] = v; }
};

// One implicit GEMM per group (blockIdx.z) on the shared tile loop (cuda/device/tile_gemm.cuh).
template <typename T, typename Ops>
__global__ void __launch_bounds__(dev::kTileThreads) implicit_gemm_kernel(Ops ops) {
  dev::gemm_tile<T>(ops, blockIdx.z, ops.M(), ops.Ncols(), ops.K(), int64_t(blockIdx.y) * dev::kTileM,
                    int64_t(blockIdx.x) * dev::kTileN);
}

ConvDims conv_dims(const Shape& x, const Shape& w, int64_t ho, int64_t wo, int64_t groups) {
  return {x[0], x[1], x[2], x[3], w[0], w[2], w[3], ho, wo, groups};
}

template <typename T, typename Ops>
void launch_implicit(const char* op, const Ops& ops, int device) {
  const int64_t M = ops.M(), N = ops.Ncols(), groups = ops.d.groups;
  if (M == 0 || N == 0) return;
  DeviceGuard guard(device, op);
  const dim3 grid(unsigned((N + dev::kTileN - 1) / dev::kTileN), unsigned((M + dev::kTileM - 1) / dev::kTileM),
                  unsigned(groups));
  implicit_gemm_kernel<T><<<grid, dev::kTileThreads, 0, stream_of(device)>>>(ops);
  CUDA_CHECK_LAUNCH(op);
}

// The three whole convolutions are one implicit GEMM each; they differ only in the array they write
// (shape out_shape, dtype and device of `like`) and in the operand roles, which make_ops(tag, out)
// returns as the Ops struct of element type decltype(tag).
template <typename MakeOps>
Array implicit_conv(const char* op, const Shape& out_shape, const Array& like, MakeOps make_ops) {
  Array out = Array::empty(out_shape, like.dtype(), like.device());
  dispatch_f32_f64(like.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch_implicit<T>(op, make_ops(tag, out.data<T>()), like.device().index);
  });
  return out;
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
template <typename T, typename Kernel>
void depthwise_launch(const char* op, Kernel kernel, int64_t total, const T* a, const T* b, T* out, int64_t N,
                      const Dims& d, const Conv2dGeom& g, int device) {
  if (total == 0) return;
  DeviceGuard guard(device, op);
  kernel<<<grid_for(total), kThreads, 0, stream_of(device)>>>(a, b, out, N, d, g);
  CUDA_CHECK_LAUNCH(op);
}
}  // namespace typed

}  // namespace

void im2col(const Array& x, Array& cols, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  dispatch_f32_f64(x.dtype(), "conv2d", [&](auto tag) { typed::im2col<decltype(tag)>(x, cols, kh, kw, g); });
}

void col2im(const Array& cols, Array& x, int64_t kh, int64_t kw, const Conv2dGeom& g) {
  dispatch_f32_f64(x.dtype(), "conv2d_backward_input", [&](auto tag) { typed::col2im<decltype(tag)>(cols, x, kh, kw, g); });
}

void depthwise_conv2d(const Array& x, const Array& w, Array& y, const Conv2dGeom& g) {
  dispatch_f32_f64(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    typed::depthwise_launch<T>("conv2d", depthwise_kernel<T>, y.numel(), x.data<T>(), w.data<T>(), y.data<T>(),
                               x.shape(0), depthwise_dims(x, w, y), g, x.device().index);
  });
}

void depthwise_conv2d_backward_input(const Array& dy, const Array& w, Array& dx, const Conv2dGeom& g) {
  dispatch_f32_f64(dx.dtype(), "conv2d_backward_input", [&](auto tag) {
    using T = decltype(tag);
    typed::depthwise_launch<T>("conv2d_backward_input", depthwise_input_kernel<T>, dx.numel(), dy.data<T>(),
                               w.data<T>(), dx.data<T>(), dx.shape(0), depthwise_dims(dx, w, dy), g, dx.device().index);
  });
}

void depthwise_conv2d_backward_weight(const Array& dy, const Array& x, Array& dw, const Conv2dGeom& g) {
  dispatch_f32_f64(x.dtype(), "conv2d_backward_weight", [&](auto tag) {
    using T = decltype(tag);
    typed::depthwise_launch<T>("conv2d_backward_weight", depthwise_weight_kernel<T>, dw.numel(), dy.data<T>(),
                               x.data<T>(), dw.data<T>(), x.shape(0), depthwise_dims(x, dw, dy), g, x.device().index);
  });
}

// x (N, C, H, W), w (O, C/groups, KH, KW), y (N, O, Ho, Wo), all contiguous; bias (O,) or empty.
Array conv2d_direct(const Array& x, const Array& w, const Array& bias, const Shape& y_shape, const Conv2dGeom& g) {
  const ConvDims d = conv_dims(x.shape(), w.shape(), y_shape[2], y_shape[3], g.groups);
  return implicit_conv("conv2d", y_shape, x, [&](auto tag, auto* y) {
    using T = decltype(tag);
    return ForwardOps<T>{x.data<T>(), w.data<T>(), bias.defined() ? bias.data<T>() : nullptr, y, d, g};
  });
}

Array conv2d_direct_backward_input(const Array& dy, const Array& w, const Shape& x_shape, const Conv2dGeom& g) {
  const ConvDims d = conv_dims(x_shape, w.shape(), dy.shape(2), dy.shape(3), g.groups);
  return implicit_conv("conv2d_backward_input", x_shape, dy, [&](auto tag, auto* dx) {
    using T = decltype(tag);
    return InputGradOps<T>{dy.data<T>(), w.data<T>(), dx, d, g};
  });
}

Array conv2d_direct_backward_weight(const Array& dy, const Array& x, const Shape& w_shape, const Conv2dGeom& g) {
  const ConvDims d = conv_dims(x.shape(), w_shape, dy.shape(2), dy.shape(3), g.groups);
  return implicit_conv("conv2d_backward_weight", w_shape, dy, [&](auto tag, auto* dw) {
    using T = decltype(tag);
    return WeightGradOps<T>{dy.data<T>(), x.data<T>(), dw, d, g};
  });
}

}  // namespace ember::cuda
