// copy (strided src -> strided dst with dtype conversion), fill and arange on CUDA. copy is the kernel
// behind contiguous(), astype(), cat/stack, to() and broadcast materialisation.
//
// Layout: dst and src have one shape and any strides (src may broadcast with stride 0).
// Algorithm, fastest first:
//   - same dtype, both contiguous: cudaMemcpyAsync on ember's stream (the copy engines' rate);
//   - same dtype, rows contiguous in both (a 2-d collapsed layout with unit inner strides, e.g. one
//     side of a cat along the last dim): cudaMemcpy2DAsync;
//   - anything else: launch.cuh's map with the conversion as the functor (16-byte packs when both
//     sides are contiguous and aligned, else strided offsets). One launch.
// fill of zero on a contiguous array is a memset; arange is one grid-stride kernel (256 threads, the
// backend's default block: 8 warps, full occupancy on sm_80/90 with no shared memory).
// Conversions go through compute_t, exactly as csrc/cpu/copy.cpp.
#include <cmath>
#include <climits>
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

template <typename To, typename From>
__device__ __forceinline__ To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) return static_cast<float>(compute_t<From>(v)) != 0.0f;
  else if constexpr (std::is_same_v<To, float16> || std::is_same_v<To, bfloat16>) return To(float(compute_t<From>(v)));
  else return static_cast<To>(compute_t<From>(v));
}

// Same-dtype copies the copy engines can do: returns false when the layout is not one of them.
bool copy_by_memcpy(const Array& src, Array& dst) {
  const int device = dst.device().index;
  if (src.is_contiguous() && dst.is_contiguous()) {
    DeviceGuard guard(device, "copy");
    CUDA_CHECK("copy", cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDeviceToDevice,
                                       stream_of(device)));
    return true;
  }
  const Array* ops[2] = {&dst, &src};
  StridedLayout<2> L = make_layout<2>(dst.shape(), ops);
  const int64_t item = int64_t(dst.itemsize());
  if (L.ndim != 2 || L.strides[0][1] != 1 || L.strides[1][1] != 1) return false;
  const int64_t width = L.shape[1] * item, dpitch = L.strides[0][0] * item, spitch = L.strides[1][0] * item;
  if (dpitch < width || spitch < width || dpitch > INT_MAX || spitch > INT_MAX) return false;
  DeviceGuard guard(device, "copy");
  CUDA_CHECK("copy", cudaMemcpy2DAsync(dst.raw(), size_t(dpitch), src.raw(), size_t(spitch), size_t(width),
                                       size_t(L.shape[0]), cudaMemcpyDeviceToDevice, stream_of(device)));
  return true;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) arange_kernel(T* out, int64_t n, double start, double step) {
  for (int64_t i = dev::global_thread(); i < n; i += dev::grid_threads())
    out[i] = T(compute_t<T>(start + double(i) * step));  // the CPU's formula: no accumulated error
}

}  // namespace

namespace typed {  // nvcc allows no device lambdas inside dispatch's generic lambdas: named templates
template <typename To, typename From>
void copy(const Array& src, Array& dst) {
  map<To>("copy", dst, [] __device__(From v) { return convert<To>(v); }, operand<From>(src));
}

template <typename T>
void fill(Array& dst, double value) {
  const T v = std::is_same_v<T, bool> ? T(value != 0) : static_cast<T>(static_cast<compute_t<T>>(value));
  map<T>("fill", dst, [v] __device__() { return v; });
}

template <typename T>
void arange(Array& out, double start, double step) {
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device().index, "arange");
  arange_kernel<T><<<grid_for(n), kThreads, 0, stream_of(out.device().index)>>>(out.data<T>(), n, start, step);
  CUDA_CHECK_LAUNCH("arange");
}
}  // namespace typed

void copy(const Array& src, Array& dst) {
  if (dst.numel() == 0) return;
  if (src.dtype() == dst.dtype() && copy_by_memcpy(src, dst)) return;
  dispatch_all(dst.dtype(), "copy", [&](auto dt) {
    dispatch_all(src.dtype(), "copy", [&](auto st) { typed::copy<decltype(dt), decltype(st)>(src, dst); });
  });
}

void fill(Array& dst, double value) {
  if (dst.numel() == 0) return;
  if (value == 0 && !std::signbit(value) && dst.is_contiguous()) {  // +0 is all-zero bits in every dtype
    DeviceGuard guard(dst.device().index, "fill");
    CUDA_CHECK("fill", cudaMemsetAsync(dst.raw(), 0, dst.nbytes(), stream_of(dst.device().index)));
    return;
  }
  dispatch_all(dst.dtype(), "fill", [&](auto tag) { typed::fill<decltype(tag)>(dst, value); });
}

void arange(Array& out, double start, double step) {
  dispatch_numeric(out.dtype(), "arange", [&](auto tag) { typed::arange<decltype(tag)>(out, start, step); });
}

}  // namespace ember::cuda
