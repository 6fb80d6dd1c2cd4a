// Host-side CUDA helpers for the backend files: error checks that throw (never exit), the device
// guard, ember's current stream, and launch sizes for grid-stride loops.
#pragma once
#include <cuda_runtime.h>
#include <algorithm>
#include <cstdint>
#include "core/array.h"
#include "core/error.h"

namespace ember::cuda {

inline void check(cudaError_t e, const char* op) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so the next call starts clean
    fail<std::runtime_error>(op, "CUDA error: ", cudaGetErrorString(e));
  }
}

// Selects a device for a scope and restores the previous one.
struct DeviceGuard {
  int prev = 0;
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&prev), "cuda device");
    if (prev != device) check(cudaSetDevice(device), "cuda device");
  }
  ~DeviceGuard() { cudaSetDevice(prev); }
};

cudaStream_t stream_of(int device);  // ember's current stream on the device (memory.cu)

// Grid for a grid-stride loop: enough blocks to fill the GPU several times over, never more than
// the work needs.
inline unsigned grid_for(int64_t n, int threads) {
  static int sms = [] {
    int dev = 0, count = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev);
    return count > 0 ? count : 80;
  }();
  int64_t want = (n + threads - 1) / threads;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(sms) * 32)));
}

}  // namespace ember::cuda

#define CUDA_CHECK(op, expr) ::ember::cuda::check((expr), op)
#define CUDA_CHECK_LAUNCH(op) ::ember::cuda::check(cudaGetLastError(), op)
