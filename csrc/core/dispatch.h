// dtype dispatch: turns a run-time DType into a compile-time storage type for a generic lambda,
// e.g.  dispatch_all(x.dtype(), "exp", [&](auto tag) { using T = decltype(tag); ... });
#pragma once
#include "core/dtype.h"
#include "core/error.h"

namespace ember {

template <typename F>
decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::float32: return f(float{});
    case DType::float64: return f(double{});
    case DType::float16: return f(float16{});
    case DType::bfloat16: return f(bfloat16{});
    default: fail<TypeError>(op, "expects a floating dtype, got ", dtype_name(t));
  }
}

// The two dtypes CPU kernels compute in (16-bit floats are widened to float32 before they arrive).
template <typename F>
decltype(auto) dispatch_f32_f64(DType t, const char* op, F&& f) {
  if (t == DType::float32) return f(float{});
  if (t != DType::float64) fail<TypeError>(op, "expects float32 or float64, got ", dtype_name(t));
  return f(double{});
}

template <typename F>
decltype(auto) dispatch_numeric(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::int64: return f(int64_t{});
    case DType::int32: return f(int32_t{});
    default: return dispatch_float(t, op, std::forward<F>(f));
  }
}

template <typename F>
decltype(auto) dispatch_all(DType t, const char* op, F&& f) {
  if (t == DType::bool_) return f(bool{});
  return dispatch_numeric(t, op, std::forward<F>(f));
}

// Integer index arrays (int64 or int32).
template <typename F>
decltype(auto) dispatch_index(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::int64: return f(int64_t{});
    case DType::int32: return f(int32_t{});
    default: fail<TypeError>(op, "indices must be int64 or int32, got ", dtype_name(t));
  }
}

}  // namespace ember
