// CUDA memory and runtime: allocations from the runtime's stream-ordered pool (cudaMallocAsync on
// ember's current stream), byte accounting per device, transfers, synchronisation, and the stream
// handshake that DLPack asks of a producer. Out of memory raises MemoryError with the size.
#include <atomic>
#include <mutex>
#include <unordered_map>
#include "core/backend.h"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

constexpr int kMaxDevices = 64;
std::atomic<size_t> g_allocated[kMaxDevices];
cudaStream_t g_stream[kMaxDevices] = {};  // nullptr = the legacy default stream
std::mutex g_sizes_mutex;
std::unordered_map<void*, size_t> g_sizes;  // pointer -> bytes, for memory_allocated

int checked_index(int device) {
  if (device < 0 || device >= kMaxDevices) fail("cuda", "device index ", device, " out of range");
  return device;
}

}  // namespace

cudaStream_t stream_of(int device) { return g_stream[checked_index(device)]; }

bool compiled() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void* allocate(size_t nbytes, int device) {
  int count = device_count();
  if (count == 0) fail<std::runtime_error>("cuda alloc", "no CUDA GPU is available");
  if (device >= count) fail<std::runtime_error>("cuda alloc", "device cuda:", device, " does not exist (", count, " GPUs)");
  DeviceGuard guard(device);
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, std::max<size_t>(nbytes, 1), stream_of(device));
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    fail<OutOfMemory>("cuda alloc", "out of memory allocating ", nbytes, " bytes on cuda:", device, " (",
                      g_allocated[device].load(), " bytes held by ember)");
  }
  check(e, "cuda alloc");
  g_allocated[device] += nbytes;
  std::lock_guard<std::mutex> lock(g_sizes_mutex);
  g_sizes[p] = nbytes;
  return p;
}

void deallocate(void* p, int device) {
  if (!p) return;
  size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(g_sizes_mutex);
    auto it = g_sizes.find(p);
    if (it != g_sizes.end()) { n = it->second; g_sizes.erase(it); }
  }
  g_allocated[device] -= n;
  int prev = 0;
  cudaGetDevice(&prev);
  cudaSetDevice(device);
  cudaFreeAsync(p, g_stream[device]);  // a destructor must not throw; an error here is left to the next call
  cudaSetDevice(prev);
}

size_t memory_allocated(int device) { return g_allocated[checked_index(device)].load(); }

void memcpy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  int device = dst_dev.kind == Device::cuda ? dst_dev.index : src_dev.index;
  DeviceGuard guard(device);
  cudaStream_t s = stream_of(device);
  CUDA_CHECK("to", cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, s));
  // ember's host memory is pageable; the host side must not be touched before the copy is done.
  if (dst_dev.kind == Device::cpu || src_dev.kind == Device::cpu) CUDA_CHECK("to", cudaStreamSynchronize(s));
}

void synchronize(int device) {
  DeviceGuard guard(device);
  CUDA_CHECK("synchronize", cudaDeviceSynchronize());
}

void* current_stream(int device) { return g_stream[checked_index(device)]; }
void set_current_stream(int device, void* s) { g_stream[checked_index(device)] = static_cast<cudaStream_t>(s); }

// DLPack: the consumer's stream must not run ahead of work ember queued on its own stream.
// 1 and 2 are the standard's names for the legacy and per-thread default streams.
void stream_wait_current(int device, void* consumer) {
  cudaStream_t theirs = consumer == reinterpret_cast<void*>(1)   ? cudaStreamLegacy
                        : consumer == reinterpret_cast<void*>(2) ? cudaStreamPerThread
                                                                 : static_cast<cudaStream_t>(consumer);
  cudaStream_t ours = stream_of(device);
  if (theirs == ours || (ours == nullptr && theirs == cudaStreamLegacy)) return;
  DeviceGuard guard(device);
  cudaEvent_t ev;
  CUDA_CHECK("__dlpack__", cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  CUDA_CHECK("__dlpack__", cudaEventRecord(ev, ours));
  CUDA_CHECK("__dlpack__", cudaStreamWaitEvent(theirs, ev, 0));
  CUDA_CHECK("__dlpack__", cudaEventDestroy(ev));
}

}  // namespace ember::cuda
