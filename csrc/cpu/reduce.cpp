// Reductions on the CPU. The input is contiguous and viewed as (outer, n, inner); each of the
// outer*inner outputs folds n values. Work is cut into tasks of (outer row, a chunk of up to
// kChunk inner columns, a range of n); each task keeps one accumulator per column, so the inner
// loop walks memory contiguously (columns) and vectorises. When there are fewer tasks than threads,
// n is split too and the partial accumulators (core/accumulators.h) are merged.
#include <cmath>
#include <limits>
#include <algorithm>
#include <vector>
#include "core/accumulators.h"
#include "core/backend.h"
#include "core/dispatch.h"
#include "cpu/parallel.h"
#include "cpu/simd/kernels.h"

namespace ember::cpu {
namespace {

constexpr int64_t kChunk = 256;  // inner columns per task: 256 accumulators stay in L1

// Generic driver: Acc folds values of type A read from T; finish(acc) gives the output value.
template <typename Acc, typename A, typename T, typename Out, typename Finish>
void fold(const T* x, Out* out, int64_t outer, int64_t n, int64_t inner, Finish finish) {
  const int64_t chunks = (inner + kChunk - 1) / kChunk;
  const int64_t items = outer * chunks;
  const int64_t threads = omp_get_max_threads();
  const int64_t work = outer * n * inner;
  int64_t splits = 1;  // ranges of n per item, so that few long reductions still use every thread
  if (items < threads && work > kGrainElementwise)
    splits = std::min<int64_t>(std::max<int64_t>(n / 4096, 1), (threads + items - 1) / items);
  const int64_t range = (n + splits - 1) / splits;
  std::vector<Acc> partial(size_t(items * splits * std::min(kChunk, inner)));
  const int64_t width = std::min(kChunk, inner);
  parallel_for(items * splits, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(1, n * width)),
               [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t item = t / splits, s = t % splits;
      int64_t o = item / chunks, c0 = (item % chunks) * kChunk, c1 = std::min(inner, c0 + kChunk);
      int64_t r0 = s * range, r1 = std::min(n, r0 + range);
      Acc* acc = &partial[size_t(t * width)];
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = x + (o * n + r) * inner;
        for (int64_t i = c0; i < c1; ++i) acc[i - c0].add(A(compute_t<T>(row[i])), r);
      }
    }
  });
  parallel_for(items, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t item = i0; item < i1; ++item) {
      int64_t o = item / chunks, c0 = (item % chunks) * kChunk, c1 = std::min(inner, c0 + kChunk);
      for (int64_t i = c0; i < c1; ++i) {
        Acc a = partial[size_t(item * splits * width + (i - c0))];
        for (int64_t s = 1; s < splits; ++s) a.merge(partial[size_t((item * splits + s) * width + (i - c0))]);
        out[o * inner + i] = finish(a);
      }
    }
  });
}

// float32 rows (inner == 1): the vector loops of simd/kernels.cpp, one row or one slice per task.
// `empty` is the partial of an empty slice (0 for sums, -inf/+inf for max/min).
template <typename Row, typename Merge>
void rows_f32(const float* x, float* out, int64_t outer, int64_t n, double empty, Row row,
              Merge merge_finish) {
  const int64_t threads = omp_get_max_threads();
  int64_t splits = outer >= threads || n < 65536 ? 1 : (threads + outer - 1) / outer;
  int64_t range = (n + splits - 1) / splits;
  std::vector<double> partial(size_t(outer * splits));
  parallel_for(outer * splits, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(n, 1)),
               [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t o = t / splits, r0 = (t % splits) * range, r1 = std::min(n, r0 + range);
      partial[size_t(t)] = r1 > r0 ? row(x + o * n + r0, r1 - r0) : empty;
    }
  });
  for (int64_t o = 0; o < outer; ++o) out[o] = merge_finish(&partial[size_t(o * splits)], splits);
}

// float32 argmax/argmin along rows (inner == 1): the row's extreme by the vector max/min loop, then
// the first index holding it by a scan that stops there; a row with a NaN gives its first NaN (NaN
// wins, as in PyTorch and as ExtAcc decides). Two passes, but the generic fold's per-element compare
// chain was three times slower.
void arg_rows_f32(const float* x, int64_t* out, int64_t outer, int64_t n, bool max) {
  const auto extreme = max ? simd().max_f32 : simd().min_f32;
  parallel_for(outer, std::max<int64_t>(1, kGrainElementwise / n), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const float* row = x + o * n;
      const float m = extreme(row, n);
      int64_t i = 0;
      if (std::isnan(m)) {
        while (!std::isnan(row[i])) ++i;
      } else {
        while (row[i] != m) ++i;
      }
      out[o] = i;
    }
  });
}

// float32 sums over a dim that is not last: the vector column loop of simd/kernels.cpp adds 256 rows
// at a time into float partials, which are then added in double (error ~ sqrt(n) eps, like rows).
// Columns go in chunks of kColChunk (16 KiB of each row: long enough runs for the prefetchers).
constexpr int64_t kColChunk = 4096;
void sum_cols(const float* x, float* out, int64_t outer, int64_t n, int64_t inner, double scale) {
  // Narrower chunks when there are too few for the threads (a (4096, 4096) sum over dim 0 is one
  // outer row): at least 256 columns each, a multiple of 16 so vector lanes stay aligned.
  const int64_t threads = omp_get_max_threads();
  int64_t width = kColChunk;
  if (outer * ((inner + width - 1) / width) < threads)
    width = std::max<int64_t>(256, ((inner + threads * outer - 1) / (threads * outer) + 15) / 16 * 16);
  const int64_t chunks = (inner + width - 1) / width;
  parallel_for(outer * chunks, 1, [&](int64_t t0, int64_t t1) {
    // Sized to the chunk actually used: a bias gradient sums 32 columns, and zeroing 4096 here
    // (48 KiB, per call) was most of that op's time.
    std::vector<double> total(size_t(std::min(width, inner)));
    std::vector<float> part(size_t(std::min(width, inner)));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / chunks, c0 = (t % chunks) * width, w = std::min(width, inner - c0);
      std::fill(total.begin(), total.begin() + w, 0.0);
      for (int64_t r0 = 0; r0 < n; r0 += 256) {
        std::fill(part.begin(), part.begin() + w, 0.0f);
        simd().sum_cols_f32(x + (o * n + r0) * inner + c0, std::min<int64_t>(256, n - r0), inner, w, part.data());
        for (int64_t i = 0; i < w; ++i) total[i] += part[i];
      }
      for (int64_t i = 0; i < w; ++i) out[o * inner + c0 + i] = float(total[i] * scale);
    }
  });
}

template <typename T>
void reduce_typed(ReduceOp op, const Array& x, Array& out, int64_t outer, int64_t n, int64_t inner,
                  int64_t correction) {
  using C = compute_t<T>;
  using A = std::conditional_t<std::is_integral_v<C>, int64_t, double>;  // accumulate wide
  const T* xp = x.data<T>();
  if constexpr (std::is_same_v<T, float>) {
    if (inner == 1 && n > 0 && (op == ReduceOp::sum || op == ReduceOp::mean)) {
      double scale = op == ReduceOp::mean ? 1.0 / double(n) : 1.0;
      rows_f32(xp, out.data<float>(), outer, n, 0.0, simd().sum_f32, [scale](const double* p, int64_t k) {
        double s = 0;
        for (int64_t i = 0; i < k; ++i) s += p[i];
        return float(s * scale);
      });
      return;
    }
    if (inner > 1 && n > 0 && (op == ReduceOp::sum || op == ReduceOp::mean)) {
      sum_cols(xp, out.data<float>(), outer, n, inner, op == ReduceOp::mean ? 1.0 / double(n) : 1.0);
      return;
    }
    if (inner == 1 && n > 0 && (op == ReduceOp::argmax || op == ReduceOp::argmin)) {
      arg_rows_f32(xp, out.data<int64_t>(), outer, n, op == ReduceOp::argmax);
      return;
    }
    if (inner == 1 && n > 0 && (op == ReduceOp::max || op == ReduceOp::min)) {
      bool mx = op == ReduceOp::max;
      auto row = mx ? simd().max_f32 : simd().min_f32;
      rows_f32(xp, out.data<float>(), outer, n, mx ? -INFINITY : INFINITY,
               [row](const float* r, int64_t k) { return double(row(r, k)); },
               [mx](const double* p, int64_t k) {
        double m = p[0];
        for (int64_t i = 1; i < k; ++i)
          if (std::isnan(p[i]) || (!std::isnan(m) && (mx ? p[i] > m : p[i] < m))) m = p[i];
        return float(m);
      });
      return;
    }
  }
  switch (op) {
    case ReduceOp::sum: case ReduceOp::mean: {
      double scale = op == ReduceOp::mean ? 1.0 / double(n) : 1.0;
      if constexpr (std::is_integral_v<C>)
        fold<SumAcc<A>, A>(xp, out.data<int64_t>(), outer, n, inner, [](const SumAcc<A>& a) { return a.s; });
      else
        fold<SumAcc<A>, A>(xp, out.data<T>(), outer, n, inner,
                           [scale](const SumAcc<A>& a) { return T(C(a.s * scale)); });
      return;
    }
    case ReduceOp::prod:
      if constexpr (std::is_integral_v<C>)
        fold<ProdAcc<A>, A>(xp, out.data<int64_t>(), outer, n, inner, [](const ProdAcc<A>& a) { return a.p; });
      else
        fold<ProdAcc<A>, A>(xp, out.data<T>(), outer, n, inner, [](const ProdAcc<A>& a) { return T(C(a.p)); });
      return;
    case ReduceOp::max:
      fold<ExtAcc<C, true>, C>(xp, out.data<T>(), outer, n, inner, [](const ExtAcc<C, true>& a) { return T(a.m); });
      return;
    case ReduceOp::min:
      fold<ExtAcc<C, false>, C>(xp, out.data<T>(), outer, n, inner, [](const ExtAcc<C, false>& a) { return T(a.m); });
      return;
    case ReduceOp::argmax:
      fold<ExtAcc<C, true>, C>(xp, out.data<int64_t>(), outer, n, inner, [](const ExtAcc<C, true>& a) { return a.at; });
      return;
    case ReduceOp::argmin:
      fold<ExtAcc<C, false>, C>(xp, out.data<int64_t>(), outer, n, inner, [](const ExtAcc<C, false>& a) { return a.at; });
      return;
    case ReduceOp::var:
      if constexpr (!std::is_integral_v<C>) {
        double denom = double(n - correction);
        fold<VarAcc, double>(xp, out.data<T>(), outer, n, inner, [denom](const VarAcc& a) {
          return T(C(denom > 0 ? a.m2 / denom : std::nan("")));
        });
      }
      return;
  }
}

}  // namespace

void reduce(ReduceOp op, const Array& x, Array& out, int64_t outer, int64_t n, int64_t inner,
            int64_t correction) {
  if (out.numel() == 0) return;
  dispatch_numeric(x.dtype(), "reduce", [&](auto tag) {
    reduce_typed<decltype(tag)>(op, x, out, outer, n, inner, correction);
  });
}

}  // namespace ember::cpu
