// Reduction accumulators shared by the CPU and CUDA reduce kernels (EMBER_HD). Each folds values with
// add(v, index) and combines partial results with merge(); every merge is order-independent (ties
// in max/min resolve to the lower index), so any split of the work gives the same answer.
#pragma once
#include <cstdint>
#include <limits>
#include "core/hd.h"

namespace ember {

template <typename A> struct SumAcc {
  A s = 0;
  EMBER_HD void add(A v, int64_t) { s += v; }
  EMBER_HD void merge(const SumAcc& o) { s += o.s; }
};

template <typename A> struct ProdAcc {
  A p = 1;
  EMBER_HD void add(A v, int64_t) { p *= v; }
  EMBER_HD void merge(const ProdAcc& o) { p *= o.p; }
};

// max (Max = true) or min with NaN propagation and the first index of the extreme; NaN counts as
// the extreme, as in NumPy and PyTorch.
template <typename A, bool Max> struct ExtAcc {
  A m = Max ? std::numeric_limits<A>::lowest() : std::numeric_limits<A>::max();
  int64_t at = -1;
  bool nan = false;
  EMBER_HD void add(A v, int64_t r) { merge(ExtAcc{v, r, v != v}); }
  EMBER_HD void merge(const ExtAcc& o) {
    if (o.at < 0) return;
    bool take;
    if (at < 0) take = true;
    else if (nan || o.nan) take = o.nan && (!nan || o.at < at);
    else if (o.m == m) take = o.at < at;
    else take = Max ? o.m > m : o.m < m;
    if (take) *this = o;
  }
};

// Welford's running mean and sum of squared deviations; Chan et al.'s formula merges two parts.
struct VarAcc {
  double count = 0, mean = 0, m2 = 0;
  EMBER_HD void add(double v, int64_t) {
    count += 1;
    double d = v - mean;
    mean += d / count;
    m2 += d * (v - mean);
  }
  EMBER_HD void merge(const VarAcc& o) {
    if (o.count == 0) return;
    if (count == 0) { *this = o; return; }
    double total = count + o.count, d = o.mean - mean;
    mean += d * o.count / total;
    m2 += o.m2 + d * d * count * o.count / total;
    count = total;
  }
};

}  // namespace ember
