// Strided element addressing for up to N operands sharing one iteration shape, used by the generic
// (non-contiguous / broadcast) paths of both backends. Dims are first collapsed: two neighbouring dims
// merge when every operand steps through them as one (stride[d] == stride[d+1] * shape[d+1]), so a
// contiguous or row-broadcast array usually ends up 1-D or 2-D and the offset math stays cheap.
#pragma once
#include <cstdint>
#include "core/array.h"
#include "core/hd.h"

namespace ember {

template <int N>
struct StridedLayout {
  int ndim = 0;
  int64_t shape[kMaxDims];
  int64_t strides[N][kMaxDims];  // in elements

  // Element offsets (relative to each operand's raw()) of linear index i in the iteration space.
  EMBER_HD void offsets(int64_t i, int64_t (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t q = i / shape[d], r = i - q * shape[d];
      for (int k = 0; k < N; ++k) off[k] += r * strides[k][d];
      i = q;
    }
  }
};

template <int N>
StridedLayout<N> make_layout(const Shape& shape, const Array* const (&ops)[N]) {
  StridedLayout<N> L;
  for (int64_t s : shape) {
    if (s != 0) continue;
    // Empty: one dim of length 0. Merging the other dims could overflow int64 (2^62 x 2^62 x 0).
    L.shape[0] = 0;
    for (int k = 0; k < N; ++k) L.strides[k][0] = 0;
    L.ndim = 1;
    return L;
  }
  int nd = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // size-1 dims never move
    bool merge = nd > 0;
    for (int k = 0; k < N && merge; ++k)
      merge = L.strides[k][nd - 1] == ops[k]->strides()[d] * shape[d];
    if (merge) {
      L.shape[nd - 1] *= shape[d];
      for (int k = 0; k < N; ++k) L.strides[k][nd - 1] = ops[k]->strides()[d];
    } else {
      L.shape[nd] = shape[d];
      for (int k = 0; k < N; ++k) L.strides[k][nd] = ops[k]->strides()[d];
      ++nd;
    }
  }
  if (nd == 0) {  // a scalar: one element
    L.shape[0] = 1;
    for (int k = 0; k < N; ++k) L.strides[k][0] = 0;
    nd = 1;
  }
  L.ndim = nd;
  return L;
}

}  // namespace ember
