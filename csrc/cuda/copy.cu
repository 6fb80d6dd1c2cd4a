// copy (strided, with dtype conversion), fill and arange on CUDA: one grid-stride launch each. A
// contiguous same-dtype copy is a plain device-to-device memcpy on ember's stream.
// (nvcc does not allow device lambdas inside the generic lambdas of dtype dispatch, so each op's
// body is a named template in `typed` and the dispatch only picks the instantiation; the other
// .cu files follow the same pattern.)
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/launch.cuh"

namespace ember::cuda {

template <typename To, typename From>
__device__ __forceinline__ To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) return static_cast<float>(compute_t<From>(v)) != 0.0f;
  else if constexpr (std::is_same_v<To, float16> || std::is_same_v<To, bfloat16>) return To(float(compute_t<From>(v)));
  else return static_cast<To>(compute_t<From>(v));
}

namespace typed {
template <typename To, typename From>
void copy(const Array& src, Array& dst) {
  const Array* ops[2] = {&dst, &src};
  To* d = dst.data<To>();
  const From* s = src.data<From>();
  for_each_strided<2>("copy", dst, ops, [=] __device__(const int64_t* off) { d[off[0]] = convert<To>(s[off[1]]); });
}

template <typename T>
void fill(Array& dst, double value) {
  const Array* ops[1] = {&dst};
  T v = std::is_same_v<T, bool> ? T(value != 0) : static_cast<T>(static_cast<compute_t<T>>(value));
  T* d = dst.data<T>();
  for_each_strided<1>("fill", dst, ops, [=] __device__(const int64_t* off) { d[off[0]] = v; });
}

template <typename T>
void arange(Array& out, double start, double step) {
  const Array* ops[1] = {&out};
  T* d = out.data<T>();
  for_each_strided<1>("arange", out, ops, [=] __device__(const int64_t* off) {
    d[off[0]] = T(compute_t<T>(start + double(off[0]) * step));
  });
}
}  // namespace typed

void copy(const Array& src, Array& dst) {
  if (dst.numel() == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    DeviceGuard guard(dst.device().index);
    CUDA_CHECK("copy", cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDeviceToDevice,
                                       stream_of(dst.device().index)));
    return;
  }
  dispatch_all(dst.dtype(), "copy", [&](auto dt) {
    dispatch_all(src.dtype(), "copy", [&](auto st) { typed::copy<decltype(dt), decltype(st)>(src, dst); });
  });
}

void fill(Array& dst, double value) {
  dispatch_all(dst.dtype(), "fill", [&](auto tag) { typed::fill<decltype(tag)>(dst, value); });
}

void arange(Array& out, double start, double step) {
  dispatch_numeric(out.dtype(), "arange", [&](auto tag) { typed::arange<decltype(tag)>(out, start, step); });
}

}  // namespace ember::cuda
