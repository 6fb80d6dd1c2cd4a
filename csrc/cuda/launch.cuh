// for_each_strided: the CUDA generic path over N operands of one (broadcast) shape, the counterpart
// of cpu/strided_loop.h. One grid-stride launch on ember's stream; the device lambda receives each
// operand's element offset. When every operand is contiguous the offsets are the index itself.
#pragma once
#include "core/strided.h"
#include "cuda/device/common.cuh"
#include "cuda/runtime.cuh"

namespace ember::cuda {

constexpr int kThreads = 256;

template <int N, typename F>
__global__ void strided_kernel(StridedLayout<N> L, int64_t n, bool flat, F f) {
  for (int64_t i = dev::global_thread(); i < n; i += dev::grid_threads()) {
    int64_t off[N];
    if (flat) {
      for (int k = 0; k < N; ++k) off[k] = i;
    } else {
      L.offsets(i, off);
    }
    f(off);
  }
}

template <int N, typename F>
void for_each_strided(const char* op, const Array& out, const Array* const (&ops)[N], F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  bool flat = true;
  for (int k = 0; k < N; ++k) flat = flat && ops[k]->is_contiguous() && ops[k]->numel() == n;
  DeviceGuard guard(out.device().index);
  strided_kernel<N><<<grid_for(n, kThreads), kThreads, 0, stream_of(out.device().index)>>>(
      make_layout<N>(out.shape(), ops), n, flat, f);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace ember::cuda
