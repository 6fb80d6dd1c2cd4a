// Host-side helpers for the CUDA backend files: error checks that throw (never exit), the device
// guard, ember's current stream, launch sizes for grid-stride loops and stream-ordered scratch.
//
// Errors: every runtime call goes through CUDA_CHECK(op, call) and every launch is followed by
// CUDA_CHECK_LAUNCH(op); both throw std::runtime_error "[op] CUDA error: <text> (<name>)". Kernel
// faults surface asynchronously at the next checked call; set CUDA_LAUNCH_BLOCKING=1 to attribute
// them to the launch that caused them.
#pragma once
#include <cuda_runtime.h>
#include <algorithm>
#include <cstdint>
#include "core/array.h"
#include "core/backend.h"
#include "core/error.h"

namespace ember::cuda {

// Throws for a failed CUDA call. The error is also cleared from the runtime's "last error" slot so
// the next launch check does not report it a second time (sticky errors - a kernel fault - stay: the
// context is unusable after them and every later call reports them).
inline void check(cudaError_t e, const char* op) {
  if (e == cudaSuccess) return;
  cudaGetLastError();
  fail<std::runtime_error>(op, "CUDA error: ", cudaGetErrorString(e), " (", cudaGetErrorName(e), ")");
}

// Makes `device` current for a scope and restores the previous device after it. Every entry point
// of the backend opens one, from the device index of the Array it works on.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device, const char* op = "cuda") {
    check(cudaGetDevice(&prev_), op);
    if (prev_ != device) check(cudaSetDevice(device), op);
  }
  ~DeviceGuard() { cudaSetDevice(prev_); }  // a destructor must not throw; restoring cannot fail here
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
};

// memory.cu keeps these per device.
cudaStream_t stream_of(int device);  // ember's current stream (nullptr = the legacy default stream)
int sm_count(int device);            // multiprocessors, cached
int compute_major(int device);       // compute capability major version, cached
inline bool has_tensor_cores(int device) { return compute_major(device) >= 8; }  // mma.sync m16n8k16: sm_80+

constexpr int kThreads = 256;  // default block: 8 warps, 8 resident blocks per SM on sm_80/sm_90

// Blocks for a grid-stride loop over `items` with `threads` per block on the current device: no
// more than the work needs, and at most 32 blocks per SM (several waves of resident blocks; beyond
// that a block simply loops). Never 0, and always within gridDim.x's limit.
inline unsigned grid_for(int64_t items, int threads = kThreads) {
  int device = 0;
  check(cudaGetDevice(&device), "cuda");
  const int64_t want = (std::max<int64_t>(items, 1) + threads - 1) / threads;
  return unsigned(std::min<int64_t>(want, int64_t(sm_count(device)) * 32));
}

inline bool is_aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// A device buffer from the stream-ordered pool for the life of a scope; freeing is ordered after the
// kernels already queued on the stream, so it is safe right after the launches that use it.
class Scratch {
 public:
  Scratch(size_t nbytes, int device) : p_(allocate(nbytes, device)), device_(device) {}
  ~Scratch() { deallocate(p_, device_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_;
  int device_;
};

}  // namespace ember::cuda

#define CUDA_CHECK(op, call) ::ember::cuda::check((call), (op))
#define CUDA_CHECK_LAUNCH(op) ::ember::cuda::check(cudaGetLastError(), (op))
