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
  int64_t len = L.shape[L.ndim - 1];
  int64_t rows = 1;
  for (int d = 0; d < L.ndim - 1; ++d) rows *= L.shape[d];
  if (len == 0 || rows == 0) return;
  int64_t inner[N];
  for (int k = 0; k < N; ++k) inner[k] = L.strides[k][L.ndim - 1];
  parallel_for(rows, std::max<int64_t>(1, kGrainElementwise / len), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off[N];
      L.offsets(r * len, off);
      body(off, inner, len);
    }
  });
}

}  // namespace ember::cpu
