// parallel_for(n, grain, body): splits [0, n) into contiguous chunks over the OpenMP threads, or runs
// inline when n is too small for threads to pay off (grain = the least work worth a thread).
#pragma once
#include <omp.h>
#include <algorithm>
#include <cstdint>

namespace ember::cpu {

template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& body) {
  if (n <= 0) return;
  int threads = omp_in_parallel() ? 1 : int(std::min<int64_t>(omp_get_max_threads(), (n + grain - 1) / grain));
  if (threads <= 1) { body(int64_t(0), n); return; }
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t chunk = (n + nt - 1) / nt;
    int64_t begin = std::min<int64_t>(n, t * chunk), end = std::min<int64_t>(n, begin + chunk);
    if (begin < end) body(begin, end);
  }
}

// Elementwise work below this many elements stays on one thread: a parallel region costs a few
// microseconds, which is about what one core needs for 32K float adds.
constexpr int64_t kGrainElementwise = 32768;

// body(q) for every plane q in [0, planes), planes spread over threads; per_plane is the work of one
// plane in elements, so that small planes are grouped until a thread's share is worth a region.
template <typename F>
void for_each_plane(int64_t planes, int64_t per_plane, F&& body) {
  parallel_for(planes, std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(1, per_plane)),
               [&](int64_t q0, int64_t q1) {
                 for (int64_t q = q0; q < q1; ++q) body(q);
               });
}

}  // namespace ember::cpu
