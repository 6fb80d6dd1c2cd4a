// Optimizer updates on the CPU: one fused pass over each parameter and its state (core/optim_math.h
// has the rules). All the tensors of one step are cut into equal slices and the slices are shared
// among the threads in ONE parallel region, so a model with many small tensors pays one fork/join
// per step, not one per tensor. float32 runs the per-ISA vector loops (simd/kernels.cpp); float64
// runs the same rule in a plain loop.
#include <algorithm>
#include <vector>
#include "core/backend.h"
#include "core/optim_math.h"
#include "cpu/parallel.h"
#include "cpu/simd/kernels.h"

namespace ember::cpu {
namespace {

// 16K floats per slice: 64 KiB of each stream, large enough to amortise the call, small enough that
// two threads get balanced work on a 10M-parameter model.
constexpr int64_t kSliceElems = 16384;

struct Slice {
  size_t tensor;
  int64_t begin, end;
};

std::vector<Slice> slices_of(const std::vector<Array>& params) {
  std::vector<Slice> out;
  for (size_t t = 0; t < params.size(); ++t)
    for (int64_t b = 0, n = params[t].numel(); b < n; b += kSliceElems)
      out.push_back({t, b, std::min(n, b + kSliceElems)});
  return out;
}

// Runs body(slice) over every slice of every parameter, in one parallel region.
template <typename Body>
void for_each_slice(const std::vector<Array>& params, Body body) {
  std::vector<Slice> slices = slices_of(params);
  int64_t total = 0;
  for (const Array& p : params) total += p.numel();
  const int64_t grain = std::max<int64_t>(1, int64_t(slices.size()) * kGrainElementwise / std::max<int64_t>(total, 1));
  parallel_for(int64_t(slices.size()), grain, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) body(slices[size_t(s)]);
  });
}

// Pointer to the slice's first element of an optional state list (null when the list is empty).
template <typename T>
T* at(const std::vector<Array>& xs, const Slice& s) {
  return xs.empty() ? nullptr : xs[s.tensor].data<T>() + s.begin;
}

}  // namespace

void adam_step(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& exp_avg,
               const std::vector<Array>& exp_avg_sq, const AdamRule& rule) {
  const bool f32 = params.empty() || params[0].dtype() == DType::float32;
  for_each_slice(params, [&](const Slice& s) {
    const int64_t n = s.end - s.begin;
    if (f32) {
      simd().adam_f32(rule, at<float>(params, s), at<float>(grads, s), at<float>(exp_avg, s), at<float>(exp_avg_sq, s), n);
      return;
    }
    double *p = at<double>(params, s), *m = at<double>(exp_avg, s), *v = at<double>(exp_avg_sq, s);
    const double* g = at<double>(grads, s);
    for (int64_t i = 0; i < n; ++i) rule.update(p[i], g[i], m[i], v[i]);
  });
}

void sgd_step(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& momentum_buf,
              const SgdRule& rule) {
  const bool f32 = params.empty() || params[0].dtype() == DType::float32;
  for_each_slice(params, [&](const Slice& s) {
    const int64_t n = s.end - s.begin;
    if (f32) {
      simd().sgd_f32(rule, at<float>(params, s), at<float>(grads, s), at<float>(momentum_buf, s), n);
      return;
    }
    double *p = at<double>(params, s), *buf = at<double>(momentum_buf, s);
    const double* g = at<double>(grads, s);
    for (int64_t i = 0; i < n; ++i) {
      double unused = 0.0;
      rule.update(p[i], g[i], buf ? buf[i] : unused);
    }
  });
}

void rmsprop_step(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& square_avg,
                  const std::vector<Array>& momentum_buf, const std::vector<Array>& grad_avg, const RmspropRule& rule) {
  const bool f32 = params.empty() || params[0].dtype() == DType::float32;
  for_each_slice(params, [&](const Slice& s) {
    const int64_t n = s.end - s.begin;
    if (f32) {
      simd().rmsprop_f32(rule, at<float>(params, s), at<float>(grads, s), at<float>(square_avg, s),
                         at<float>(momentum_buf, s), at<float>(grad_avg, s), n);
      return;
    }
    double *p = at<double>(params, s), *sq = at<double>(square_avg, s);
    double *buf = at<double>(momentum_buf, s), *avg = at<double>(grad_avg, s);
    const double* g = at<double>(grads, s);
    for (int64_t i = 0; i < n; ++i) {
      double b = 0.0, a = 0.0;
      rule.update(p[i], g[i], sq[i], buf ? buf[i] : b, avg ? avg[i] : a);
    }
  });
}

}  // namespace ember::cpu
