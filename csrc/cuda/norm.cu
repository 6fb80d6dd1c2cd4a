// Batch normalisation on CUDA, fused: one block per channel for the per-channel sums (double
// accumulators, a fixed shared-memory tree, so results are bitwise reproducible), and a thread per
// element for the normalisation. The backward's block reduces sum(dy) and sum(dy * xhat) for its
// channel and then writes that channel's dx itself. Same formulas as csrc/cpu/norm.cpp.
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/device/common.cuh"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

constexpr int kBlock = 256;

struct Layout {
  int64_t n, c, s;
  __device__ int64_t at(int64_t channel, int64_t i) const { return ((i / s) * c + channel) * s + i % s; }
};

Layout layout(const Array& x) {
  return {x.shape(0), x.shape(1), x.numel() / std::max<int64_t>(1, x.shape(0) * x.shape(1))};
}

// Sum over the block of two doubles; every thread gets both results.
__device__ void block_sum2(double& a, double& b) {
  __shared__ double sa[kBlock], sb[kBlock];
  sa[threadIdx.x] = a, sb[threadIdx.x] = b;
  __syncthreads();
  for (int w = kBlock / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) sa[threadIdx.x] += sa[threadIdx.x + w], sb[threadIdx.x] += sb[threadIdx.x + w];
    __syncthreads();
  }
  a = sa[0], b = sb[0];
  __syncthreads();
}

template <typename T>
__global__ void __launch_bounds__(kBlock) stats_kernel(const T* x, T* mean, T* var, Layout L) {
  const int64_t c = blockIdx.x, m = L.n * L.s;
  double sum = 0, unused = 0;
  for (int64_t i = threadIdx.x; i < m; i += kBlock) sum += double(x[L.at(c, i)]);
  block_sum2(sum, unused);
  const double mu = sum / double(m);
  double sq = 0;
  for (int64_t i = threadIdx.x; i < m; i += kBlock) {
    const double d = double(x[L.at(c, i)]) - mu;
    sq += d * d;
  }
  block_sum2(sq, unused);
  if (threadIdx.x == 0) mean[c] = T(mu), var[c] = T(sq / double(m));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) apply_kernel(const T* x, const T* mean, const T* invstd, const T* weight,
                                                         const T* bias, T* y, Layout L) {
  const int64_t total = L.n * L.c * L.s;
  for (int64_t e = dev::global_thread(); e < total; e += dev::grid_threads()) {
    const int64_t c = (e / L.s) % L.c;
    const T scale = invstd[c] * (weight ? weight[c] : T(1));
    y[e] = (x[e] - mean[c]) * scale + (bias ? bias[c] : T(0));
  }
}

template <typename T>
__global__ void __launch_bounds__(kBlock) backward_kernel(const T* dy, const T* x, const T* mean, const T* invstd,
                                                          const T* weight, bool batch_stats, T* dx, T* dweight,
                                                          T* dbias, Layout L) {
  const int64_t c = blockIdx.x, m = L.n * L.s;
  const T mu = mean[c], is = invstd[c];
  double sum_dy = 0, sum_dy_xhat = 0;
  for (int64_t i = threadIdx.x; i < m; i += kBlock) {
    const int64_t e = L.at(c, i);
    sum_dy += double(dy[e]), sum_dy_xhat += double(dy[e]) * double((x[e] - mu) * is);
  }
  block_sum2(sum_dy, sum_dy_xhat);
  if (threadIdx.x == 0) dbias[c] = T(sum_dy), dweight[c] = T(sum_dy_xhat);
  const T scale = is * (weight ? weight[c] : T(1));
  const T a = batch_stats ? T(sum_dy / double(m)) : T(0), b = batch_stats ? T(sum_dy_xhat / double(m)) : T(0);
  for (int64_t i = threadIdx.x; i < m; i += kBlock) {
    const int64_t e = L.at(c, i);
    dx[e] = scale * (dy[e] - a - (x[e] - mu) * is * b);
  }
}

template <typename T>
const T* opt(const Array& a) { return a.defined() ? a.data<T>() : nullptr; }

}  // namespace

void batch_norm_stats(const Array& x, Array& mean, Array& var) {
  dispatch_f32_f64(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    const Layout L = layout(x);
    if (L.c == 0) return;
    DeviceGuard guard(x.device().index, "batch_norm");
    stats_kernel<T><<<unsigned(L.c), kBlock, 0, stream_of(x.device().index)>>>(x.data<T>(), mean.data<T>(),
                                                                                 var.data<T>(), L);
    CUDA_CHECK_LAUNCH("batch_norm");
  });
}

void batch_norm_apply(const Array& x, const Array& mean, const Array& invstd, const Array& weight, const Array& bias,
                      Array& y) {
  dispatch_f32_f64(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    if (x.numel() == 0) return;
    DeviceGuard guard(x.device().index, "batch_norm");
    apply_kernel<T><<<grid_for(x.numel()), kThreads, 0, stream_of(x.device().index)>>>(
        x.data<T>(), mean.data<T>(), invstd.data<T>(), opt<T>(weight), opt<T>(bias), y.data<T>(), layout(x));
    CUDA_CHECK_LAUNCH("batch_norm");
  });
}

void batch_norm_backward(const Array& dy, const Array& x, const Array& mean, const Array& invstd, const Array& weight,
                         bool batch_stats, Array& dx, Array& dweight, Array& dbias) {
  dispatch_f32_f64(x.dtype(), "batch_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    const Layout L = layout(x);
    if (L.c == 0) return;
    DeviceGuard guard(x.device().index, "batch_norm_backward");
    backward_kernel<T><<<unsigned(L.c), kBlock, 0, stream_of(x.device().index)>>>(
        dy.data<T>(), x.data<T>(), mean.data<T>(), invstd.data<T>(), opt<T>(weight), batch_stats, dx.data<T>(),
        dweight.data<T>(), dbias.data<T>(), L);
    CUDA_CHECK_LAUNCH("batch_norm_backward");
  });
}

}  // namespace ember::cuda
