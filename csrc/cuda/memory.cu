// CUDA memory and runtime: allocations from the CUDA runtime's stream-ordered pool, byte accounting
// per device, transfers, synchronisation, ember's current stream per device, and the stream handshake
// that DLPack asks of a producer.
//
// Allocation: cudaMallocAsync/cudaFreeAsync on ember's current stream of the device, from the
// device's default pool, whose release threshold is raised to "keep everything" on first use (the
// default, 0, hands freed memory back to the driver at every synchronisation and makes the next
// allocation map it again). On cudaErrorMemoryAllocation the device is synchronised (frees still
// queued complete), unused pool memory is trimmed (fragmentation), and the call is retried once;
// only then MemoryError ("[cuda alloc] out of memory allocating N bytes on cuda:D ..."). Devices
// without memory-pool support fall back to cudaMalloc/cudaFree.
//
// Streams: ember queues all work of a device on one current stream (default: the legacy default
// stream, nullptr). A free is queued on the current stream at free time; that is safe because
// switching streams makes the new stream wait (an event) for all work queued on the old one.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include "core/backend.h"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

constexpr int kMaxDevices = 64;

std::atomic<size_t> g_allocated[kMaxDevices];       // bytes held by ember's allocations
std::atomic<cudaStream_t> g_stream[kMaxDevices];    // zero-initialised: the legacy default stream
std::atomic<int> g_sms[kMaxDevices];                // multiprocessor count, 0 = not queried yet
std::atomic<int> g_major[kMaxDevices];              // compute capability major, 0 = not queried yet

std::mutex g_mutex;                                 // guards the two tables below
std::unordered_map<void*, size_t> g_sizes;          // live allocation -> bytes, for the accounting
signed char g_pool_mode[kMaxDevices];               // 0 = not set up, 1 = stream-ordered pool, -1 = cudaMalloc

int checked_index(int device, const char* op) {
  if (device < 0 || device >= kMaxDevices)
    fail<std::runtime_error>(op, "device index ", device, " out of range");
  return device;
}

// Called with the device current. Sets up the default pool once and tells whether the device has one.
bool uses_pool(int device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_pool_mode[device] == 0) {
    int supported = 0;
    CUDA_CHECK("cuda alloc", cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device));
    if (supported) {
      cudaMemPool_t pool;
      CUDA_CHECK("cuda alloc", cudaDeviceGetDefaultMemPool(&pool, device));
      uint64_t keep_all = UINT64_MAX;
      CUDA_CHECK("cuda alloc", cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
    }
    g_pool_mode[device] = supported ? 1 : -1;
  }
  return g_pool_mode[device] == 1;
}

cudaError_t try_alloc(void** p, size_t nbytes, int device, bool pool) {
  return pool ? cudaMallocAsync(p, nbytes, stream_of(device)) : cudaMalloc(p, nbytes);
}

// The last resort before reporting out of memory: wait for queued frees, then return unused pool
// memory so a large block can be mapped afresh.
void release_cached(int device, bool pool) {
  CUDA_CHECK("cuda alloc", cudaDeviceSynchronize());
  if (!pool) return;
  cudaMemPool_t mem_pool;
  CUDA_CHECK("cuda alloc", cudaDeviceGetDefaultMemPool(&mem_pool, device));
  CUDA_CHECK("cuda alloc", cudaMemPoolTrimTo(mem_pool, 0));
}

[[noreturn]] void out_of_memory(size_t nbytes, int device) {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();
  fail<OutOfMemory>("cuda alloc", "out of memory allocating ", nbytes, " bytes on cuda:", device, " (",
                    g_allocated[device].load(), " bytes held by ember, ", free_b, " free of ", total_b, ")");
}

// Makes `waiter` (a stream of `waiter_dev`) wait for everything queued so far on `producer` (a
// stream of `producer_dev`), without blocking the host. Each call runs with its stream's device
// current, because nullptr names the legacy default stream of the current device.
void stream_after(cudaStream_t waiter, int waiter_dev, cudaStream_t producer, int producer_dev, const char* op) {
  cudaEvent_t ev;
  {
    DeviceGuard guard(producer_dev, op);
    CUDA_CHECK(op, cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    cudaError_t e = cudaEventRecord(ev, producer);
    if (e != cudaSuccess) cudaEventDestroy(ev);
    check(e, op);
  }
  cudaError_t e = cudaSuccess;
  {
    DeviceGuard guard(waiter_dev, op);
    e = cudaStreamWaitEvent(waiter, ev, 0);
  }
  cudaEventDestroy(ev);  // released by the runtime once the wait has been satisfied
  check(e, op);
}

// A DLPack stream number to a stream: 1 and 2 are the standard's legacy and per-thread defaults.
cudaStream_t from_dlpack_stream(void* s) {
  if (s == reinterpret_cast<void*>(1)) return cudaStreamLegacy;
  if (s == reinterpret_cast<void*>(2)) return cudaStreamPerThread;
  return static_cast<cudaStream_t>(s);
}

bool same_stream(cudaStream_t a, cudaStream_t b) {
  auto canon = [](cudaStream_t s) { return s == cudaStreamLegacy ? nullptr : s; };
  return canon(a) == canon(b);
}

}  // namespace

cudaStream_t stream_of(int device) { return g_stream[checked_index(device, "cuda")].load(); }

int sm_count(int device) {
  int n = g_sms[checked_index(device, "cuda")].load();
  if (n == 0) {
    CUDA_CHECK("cuda", cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    n = std::max(n, 1);
    g_sms[device] = n;
  }
  return n;
}

int compute_major(int device) {
  int major = g_major[checked_index(device, "cuda")].load();
  if (major == 0) {
    CUDA_CHECK("cuda", cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    g_major[device] = major;
  }
  return major;
}

bool compiled() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {  // no driver or no GPU: "no devices", not an error
    cudaGetLastError();
    return 0;
  }
  return n;
}

void* allocate(size_t nbytes, int device) {
  checked_index(device, "cuda alloc");
  const int count = device_count();
  if (count == 0) fail<std::runtime_error>("cuda alloc", "no CUDA GPU is available");
  if (device >= count)
    fail<std::runtime_error>("cuda alloc", "device cuda:", device, " does not exist (", count, " GPU(s))");
  DeviceGuard guard(device, "cuda alloc");
  const bool pool = uses_pool(device);
  const size_t asked = std::max<size_t>(nbytes, 1);  // a valid, unique pointer even for empty arrays
  void* p = nullptr;
  cudaError_t e = try_alloc(&p, asked, device, pool);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    release_cached(device, pool);
    e = try_alloc(&p, asked, device, pool);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      out_of_memory(nbytes, device);
    }
  }
  check(e, "cuda alloc");
  g_allocated[device] += nbytes;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_sizes[p] = nbytes;
  return p;
}

// Called from Storage's destructor: must not throw. A failure (a dead context, or the runtime
// already unloaded at interpreter exit) is cleared and otherwise ignored.
void deallocate(void* p, int device) {
  if (!p || device < 0 || device >= kMaxDevices) return;
  size_t nbytes = 0;
  bool pool = true;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_sizes.find(p);
    if (it != g_sizes.end()) {
      nbytes = it->second;
      g_sizes.erase(it);
    }
    pool = g_pool_mode[device] != -1;
  }
  g_allocated[device] -= nbytes;
  int prev = 0;
  if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
  if (prev != device) cudaSetDevice(device);
  if (pool) cudaFreeAsync(p, g_stream[device].load());
  else cudaFree(p);
  if (prev >= 0 && prev != device) cudaSetDevice(prev);
  cudaGetLastError();
}

size_t memory_allocated(int device) { return g_allocated[checked_index(device, "memory_allocated")].load(); }

// Host <-> device and device <-> device copies. ember's host memory is pageable, so a copy that
// involves the host waits for the stream before returning (the host buffer may be reused at once).
void memcpy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  const bool dst_cuda = dst_dev.kind == Device::cuda, src_cuda = src_dev.kind == Device::cuda;
  if (!dst_cuda && !src_cuda) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  if (dst_cuda && src_cuda && dst_dev.index != src_dev.index) {
    // Between GPUs: the target stream waits for the source's pending work, copies, and the source
    // stream then waits for the copy, so a free queued there later cannot overtake it.
    const int d = dst_dev.index, s = src_dev.index;
    stream_after(stream_of(d), d, stream_of(s), s, "to");
    {
      DeviceGuard guard(d, "to");
      CUDA_CHECK("to", cudaMemcpyPeerAsync(dst, d, src, s, nbytes, stream_of(d)));
    }
    stream_after(stream_of(s), s, stream_of(d), d, "to");
    return;
  }
  const int device = dst_cuda ? dst_dev.index : src_dev.index;
  DeviceGuard guard(device, "to");
  cudaStream_t stream = stream_of(device);
  CUDA_CHECK("to", cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, stream));
  if (!dst_cuda || !src_cuda) CUDA_CHECK("to", cudaStreamSynchronize(stream));
}

void synchronize(int device) {
  checked_index(device, "synchronize");
  DeviceGuard guard(device, "synchronize");
  CUDA_CHECK("synchronize", cudaDeviceSynchronize());
}

void* current_stream(int device) { return g_stream[checked_index(device, "current_stream")].load(); }

// Switching streams orders the new stream after the old one (see the header), so work queued later
// on the new stream - including frees of memory the old stream still uses - cannot overtake it.
void set_current_stream(int device, void* stream) {
  cudaStream_t next = static_cast<cudaStream_t>(stream);
  cudaStream_t prev = g_stream[checked_index(device, "set_stream")].load();
  if (same_stream(prev, next)) return;
  stream_after(next, device, prev, device, "set_stream");
  g_stream[device] = next;
}

// DLPack producer side: the consumer's stream must not run ahead of the work ember queued.
void stream_wait_current(int device, void* consumer_stream) {
  cudaStream_t theirs = from_dlpack_stream(consumer_stream);
  cudaStream_t ours = g_stream[checked_index(device, "__dlpack__")].load();
  if (same_stream(theirs, ours)) return;
  stream_after(theirs, device, ours, device, "__dlpack__");
}

}  // namespace ember::cuda
