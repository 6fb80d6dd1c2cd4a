// Batch normalisation on CUDA, fused: one block per channel for the per-channel sums (double
// accumulators, a fixed shared-memory tree, so results are bitwise reproducible), and a thread per
// element for the normalisation. The backward's block reduces sum(dy) and sum(dy * xhat) for its
// channel and then writes that channel's dx itself. Same formulas as csrc/cpu/norm.cpp.
// Layer norm: one warp per row (mean, then the variance around it, then the output: three passes
// over a row that stays in L1), float32 arithmetic for 16-bit storage. Its backward writes dx per
// row the same way; dweight and dbias are column sums, taken per 256-row chunk and then added in
// chunk order, so they are reproducible without atomics.
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

// ---- layer norm ------------------------------------------------------------------------------

namespace {

constexpr int kRowsPerBlock = kThreads / dev::kWarp;
constexpr int64_t kChunkRows = 256;

template <typename A, typename T>
__device__ A ld(const T* p, int64_t i) { return A(compute_t<T>(p[i])); }

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) layer_norm_kernel(const T* x, const T* w, const T* b, T* y, A* mean,
                                                              A* rstd, int64_t rows, int64_t n, A eps) {
  const int lane = threadIdx.x % dev::kWarp;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / dev::kWarp;
  if (r >= rows) return;
  const T* in = x + r * n;
  A s = 0;
  for (int64_t i = lane; i < n; i += dev::kWarp) s += ld<A>(in, i);
  const A mu = dev::warp_all_sum(s) / A(n);
  A ss = 0;
  for (int64_t i = lane; i < n; i += dev::kWarp) {
    const A d = ld<A>(in, i) - mu;
    ss += d * d;
  }
  const A is = A(1) / sqrt(dev::warp_all_sum(ss) / A(n) + eps);
  for (int64_t i = lane; i < n; i += dev::kWarp) {
    A v = (ld<A>(in, i) - mu) * is;
    if (w) v *= ld<A>(w, i);
    if (b) v += ld<A>(b, i);
    y[r * n + i] = T(v);
  }
  if (lane == 0) mean[r] = mu, rstd[r] = is;
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) layer_norm_dx_kernel(const T* dy, const T* x, const A* mean, const A* rstd,
                                                                 const T* w, T* dx, int64_t rows, int64_t n) {
  const int lane = threadIdx.x % dev::kWarp;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / dev::kWarp;
  if (r >= rows) return;
  const T *g = dy + r * n, *in = x + r * n;
  const A mu = mean[r], is = rstd[r];
  A sg = 0, sgx = 0;
  for (int64_t i = lane; i < n; i += dev::kWarp) {
    const A gw = ld<A>(g, i) * (w ? ld<A>(w, i) : A(1));
    sg += gw;
    sgx += gw * (ld<A>(in, i) - mu) * is;
  }
  const A a = dev::warp_all_sum(sg) / A(n), c = dev::warp_all_sum(sgx) / A(n);
  for (int64_t i = lane; i < n; i += dev::kWarp) {
    const A gw = ld<A>(g, i) * (w ? ld<A>(w, i) : A(1));
    dx[r * n + i] = T(is * (gw - a - (ld<A>(in, i) - mu) * is * c));
  }
}

// partial[chunk][0 or 1][j]: sums of dy * xhat and dy over the chunk's rows, for column j.
template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) layer_norm_dw_partial_kernel(const T* dy, const T* x, const A* mean,
                                                                         const A* rstd, A* partial, int64_t rows,
                                                                         int64_t n) {
  const int64_t j = int64_t(blockIdx.x) * kThreads + threadIdx.x, chunk = blockIdx.y;
  if (j >= n) return;
  A sw = 0, sb = 0;
  for (int64_t r = chunk * kChunkRows; r < min(rows, (chunk + 1) * kChunkRows); ++r) {
    const A g = ld<A>(dy, r * n + j);
    sw += g * (ld<A>(x, r * n + j) - mean[r]) * rstd[r];
    sb += g;
  }
  partial[(chunk * 2) * n + j] = sw;
  partial[(chunk * 2 + 1) * n + j] = sb;
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) layer_norm_dw_total_kernel(const A* partial, T* dw, T* db, int64_t chunks,
                                                                       int64_t n) {
  const int64_t j = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (j >= n) return;
  A sw = 0, sb = 0;
  for (int64_t c = 0; c < chunks; ++c) sw += partial[(c * 2) * n + j], sb += partial[(c * 2 + 1) * n + j];
  dw[j] = T(sw), db[j] = T(sb);
}

template <typename T>
const T* data_or_null(const Array& a) { return a.defined() ? a.data<T>() : nullptr; }

}  // namespace

void layer_norm(const Array& x, const Array& weight, const Array& bias, double eps, Array& y, Array& mean,
                Array& rstd) {
  const int64_t rows = x.shape(0), n = x.shape(1);
  if (rows == 0) return;
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    DeviceGuard guard(x.device().index, "layer_norm");
    layer_norm_kernel<T, A><<<unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock), kThreads, 0,
                              stream_of(x.device().index)>>>(x.data<T>(), data_or_null<T>(weight),
                                                             data_or_null<T>(bias), y.data<T>(), mean.data<A>(),
                                                             rstd.data<A>(), rows, n, A(eps));
    CUDA_CHECK_LAUNCH("layer_norm");
  });
}

void layer_norm_backward(const Array& dy, const Array& x, const Array& mean, const Array& rstd, const Array& weight,
                         Array& dx, Array& dweight, Array& dbias) {
  const int64_t rows = x.shape(0), n = x.shape(1);
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    DeviceGuard guard(x.device().index, "layer_norm_backward");
    cudaStream_t stream = stream_of(x.device().index);
    if (rows > 0) {
      layer_norm_dx_kernel<T, A><<<unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock), kThreads, 0, stream>>>(
          dy.data<T>(), x.data<T>(), mean.data<A>(), rstd.data<A>(), data_or_null<T>(weight), dx.data<T>(), rows, n);
      CUDA_CHECK_LAUNCH("layer_norm_backward");
    }
    if (!weight.defined()) return;
    const int64_t chunks = std::max<int64_t>(1, (rows + kChunkRows - 1) / kChunkRows);
    Array partial = Array::empty({chunks * 2 * n}, x.dtype() == DType::float64 ? DType::float64 : DType::float32,
                                 x.device());
    const unsigned col_blocks = unsigned((n + kThreads - 1) / kThreads);
    layer_norm_dw_partial_kernel<T, A><<<dim3(col_blocks, unsigned(chunks)), kThreads, 0, stream>>>(
        dy.data<T>(), x.data<T>(), mean.data<A>(), rstd.data<A>(), partial.data<A>(), rows, n);
    CUDA_CHECK_LAUNCH("layer_norm_backward");
    layer_norm_dw_total_kernel<T, A><<<col_blocks, kThreads, 0, stream>>>(partial.data<A>(), dweight.data<T>(),
                                                                          dbias.data<T>(), chunks, n);
    CUDA_CHECK_LAUNCH("layer_norm_backward");
  });
}

}  // namespace ember::cuda
