// strided_loop: the CPU's generic path over N operands that share one (broadcast) shape. The collapsed
// layout's last dim is the inner loop; rows of it are spread over threads. The body receives each
// operand's element offset of the row start, the inner strides and the row length, so a contiguous
// inner row (all strides 1 or 0) compiles to a plain vectorisable loop.
#pragma once
#include "core/strided.h"
#include "cpu/parallel.h"

namespace ember::cpu {

template <int N, typename Body>
void strided_loop(const Shape& shape, const Array* const (&ops)[N], Body&& body) {
  StridedLayout<N> L = make_layout<N>(shape, ops);
  const int64_t len = L.shape[L.ndim - 1];
  int64_t rows = 1;
  for (int d = 0; d < L.ndim - 1; ++d) rows *= L.shape[d];
  if (len == 0 || rows == 0) return;
  int64_t inner[N];
  for (int k = 0; k < N; ++k) inner[k] = L.strides[k][L.ndim - 1];
  // Rows are the unit of work, but a contiguous array collapses to one long row: then each row is
  // cut into pieces so every thread gets a share (pieces never smaller than the threading grain).
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  int64_t pieces = 1;
  if (rows < threads && len >= 2 * kGrainElementwise)
    pieces = std::min((len + kGrainElementwise - 1) / kGrainElementwise, (threads + rows - 1) / rows);
  const int64_t piece = (len + pieces - 1) / pieces;
  parallel_for(rows * pieces, std::max<int64_t>(1, kGrainElementwise / piece), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t / pieces, start = (t % pieces) * piece, n = std::min(piece, len - start);
      int64_t off[N];
      L.offsets(r * len + start, off);
      body(off, inner, n);
    }
  });
}

}  // namespace ember::cpu
