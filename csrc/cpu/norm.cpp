// Batch normalisation on the CPU, fused: x is (N, C, S) (S = H*W, or 1) and every per-channel
// quantity is computed in one or two passes over that channel's N*S values, channels spread over
// threads. Sums are accumulated in double: a channel of a 32 x 64 x 56 x 56 batch has 100K values.
//   stats:    mean, then the biased variance around it (two passes: no cancellation)
//   apply:    y = x * scale + shift with scale = invstd * weight, shift = bias - mean * scale
//   backward: sum(dy) and sum(dy * xhat) per channel, then (batch statistics)
//             dx = scale * (dy - sum(dy)/M - xhat * sum(dy xhat)/M), or dx = scale * dy (running ones)
// Layer normalisation: x is (rows, n), each row normalised on its own, rows spread over threads.
//   forward:  mean and variance of the row (two passes while it is in L1; float32 in the per-ISA
//             vector loop, float64 in double), then y = xhat * w + b
//   backward: with g = dy * w, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); dweight and dbias
//             are column sums over rows, accumulated per thread chunk and added in chunk order, so
//             they do not depend on timing.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>
#include "core/backend.h"
#include "core/dispatch.h"
#include "cpu/parallel.h"
#include "cpu/simd/kernels.h"

namespace ember::cpu {
namespace {

struct Layout {
  int64_t n, c, s;
};

Layout layout(const Array& x) { return {x.shape(0), x.shape(1), x.numel() / std::max<int64_t>(1, x.shape(0) * x.shape(1))}; }

// body(pointer to the n-th row of channel c, row length S) for every image n.
template <typename T, typename F>
void for_channel_rows(T* base, const Layout& L, int64_t c, F body) {
  for (int64_t n = 0; n < L.n; ++n) body(base + (n * L.c + c) * L.s, L.s);
}

template <typename T>
T value_or(const Array& a, int64_t c, T fallback) {
  return a.defined() ? a.data<T>()[c] : fallback;
}

int64_t grain_channels(const Layout& L) { return std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(1, L.n * L.s)); }

}  // namespace

void batch_norm_stats(const Array& x, Array& mean, Array& var) {
  const Layout L = layout(x);
  dispatch_f32_f64(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(L.c, grain_channels(L), [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double sum = 0, sq = 0;
        for_channel_rows(x.data<T>(), L, c, [&](const T* r, int64_t s) { for (int64_t i = 0; i < s; ++i) sum += r[i]; });
        const double m = sum / double(L.n * L.s);
        for_channel_rows(x.data<T>(), L, c, [&](const T* r, int64_t s) {
          for (int64_t i = 0; i < s; ++i) sq += (r[i] - m) * (r[i] - m);
        });
        mean.data<T>()[c] = T(m);
        var.data<T>()[c] = T(sq / double(L.n * L.s));
      }
    });
  });
}

void batch_norm_apply(const Array& x, const Array& mean, const Array& invstd, const Array& weight, const Array& bias,
                      Array& y) {
  const Layout L = layout(x);
  dispatch_f32_f64(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(L.n * L.c, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(1, L.s)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c = r % L.c;
        const T scale = invstd.data<T>()[c] * value_or<T>(weight, c, T(1));
        const T shift = value_or<T>(bias, c, T(0)) - mean.data<T>()[c] * scale;
        const T* in = x.data<T>() + r * L.s;
        T* out = y.data<T>() + r * L.s;
        for (int64_t i = 0; i < L.s; ++i) out[i] = in[i] * scale + shift;
      }
    });
  });
}

void batch_norm_backward(const Array& dy, const Array& x, const Array& mean, const Array& invstd, const Array& weight,
                         bool batch_stats, Array& dx, Array& dweight, Array& dbias) {
  const Layout L = layout(x);
  dispatch_f32_f64(x.dtype(), "batch_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(L.c, grain_channels(L), [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const T m = mean.data<T>()[c], is = invstd.data<T>()[c];
        double sum_dy = 0, sum_dy_xhat = 0;
        for (int64_t n = 0; n < L.n; ++n) {
          const T *g = dy.data<T>() + (n * L.c + c) * L.s, *in = x.data<T>() + (n * L.c + c) * L.s;
          for (int64_t i = 0; i < L.s; ++i) sum_dy += g[i], sum_dy_xhat += double(g[i]) * double((in[i] - m) * is);
        }
        dbias.data<T>()[c] = T(sum_dy);
        dweight.data<T>()[c] = T(sum_dy_xhat);
        const T scale = is * value_or<T>(weight, c, T(1)), M = T(L.n * L.s);
        const T a = batch_stats ? T(sum_dy) / M : T(0), b = batch_stats ? T(sum_dy_xhat) / M : T(0);
        for (int64_t n = 0; n < L.n; ++n) {
          const T *g = dy.data<T>() + (n * L.c + c) * L.s, *in = x.data<T>() + (n * L.c + c) * L.s;
          T* d = dx.data<T>() + (n * L.c + c) * L.s;
          for (int64_t i = 0; i < L.s; ++i) d[i] = scale * (g[i] - a - (in[i] - m) * is * b);
        }
      }
    });
  });
}

// ---- layer norm --------------------------------------------------------------------------------

namespace {

int64_t grain_rows(int64_t n) { return std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(n, 1)); }

// One row: float32 through the per-ISA loop (cpu/simd/kernels.cpp), float64 here in double.
template <typename T>
void layer_norm_row(const T* x, const T* w, const T* b, int64_t n, double eps, T* y, T* mean, T* rstd) {
  if constexpr (std::is_same_v<T, float>) {
    simd().layer_norm_row_f32(x, w, b, n, float(eps), y, mean, rstd);
  } else {
    T sum = 0, ss = 0;
    for (int64_t i = 0; i < n; ++i) sum += x[i];
    const T mu = sum / T(n);
    for (int64_t i = 0; i < n; ++i) ss += (x[i] - mu) * (x[i] - mu);
    const T is = T(1) / std::sqrt(ss / T(n) + T(eps));
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mu) * is * (w ? w[i] : T(1)) + (b ? b[i] : T(0));
    *mean = mu, *rstd = is;
  }
}

template <typename T>
void layer_norm_backward_row(const T* dy, const T* x, T mu, T is, const T* w, int64_t n, T* dx, T* dw, T* db) {
  if constexpr (std::is_same_v<T, float>) {
    simd().layer_norm_backward_row_f32(dy, x, mu, is, w, n, dx, dw, db);
  } else {
    T sg = 0, sgx = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T gw = dy[i] * (w ? w[i] : T(1));
      sg += gw, sgx += gw * (x[i] - mu) * is;
    }
    const T a = sg / T(n), c = sgx / T(n);
    for (int64_t i = 0; i < n; ++i) dx[i] = is * (dy[i] * (w ? w[i] : T(1)) - a - (x[i] - mu) * is * c);
    if (dw)
      for (int64_t i = 0; i < n; ++i) dw[i] += dy[i] * (x[i] - mu) * is, db[i] += dy[i];
  }
}

}  // namespace

void layer_norm(const Array& x, const Array& weight, const Array& bias, double eps, Array& y, Array& mean,
                Array& rstd) {
  const int64_t rows = x.shape(0), n = x.shape(1);
  dispatch_f32_f64(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const T *w = weight.defined() ? weight.data<T>() : nullptr, *b = bias.defined() ? bias.data<T>() : nullptr;
    parallel_for(rows, grain_rows(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        layer_norm_row(x.data<T>() + r * n, w, b, n, eps, y.data<T>() + r * n, mean.data<T>() + r, rstd.data<T>() + r);
    });
  });
}

void layer_norm_backward(const Array& dy, const Array& x, const Array& mean, const Array& rstd, const Array& weight,
                         Array& dx, Array& dweight, Array& dbias) {
  const int64_t rows = x.shape(0), n = x.shape(1);
  dispatch_f32_f64(x.dtype(), "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* w = weight.defined() ? weight.data<T>() : nullptr;
    // Column sums: one (2, n) partial per chunk of rows; chunks are fixed by the row count alone,
    // and the partials are added in chunk order (in double), so the result does not depend on timing.
    const int64_t chunk = std::max<int64_t>(grain_rows(n), 16), chunks = (rows + chunk - 1) / chunk;
    std::vector<T> partial(w ? size_t(chunks * 2 * n) : 0, T(0));
    parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        T* dw = w ? partial.data() + c * 2 * n : nullptr;
        for (int64_t r = c * chunk; r < std::min(rows, (c + 1) * chunk); ++r)
          layer_norm_backward_row(dy.data<T>() + r * n, x.data<T>() + r * n, mean.data<T>()[r], rstd.data<T>()[r], w,
                                  n, dx.data<T>() + r * n, dw, dw ? dw + n : nullptr);
      }
    });
    if (!w) return;
    for (int64_t i = 0; i < n; ++i) {
      double sw = 0, sb = 0;
      for (int64_t c = 0; c < chunks; ++c) sw += partial[size_t(c * 2 * n + i)], sb += partial[size_t(c * 2 * n + n + i)];
      dweight.data<T>()[i] = T(sw);
      dbias.data<T>()[i] = T(sb);
    }
  });
}

}  // namespace ember::cpu
