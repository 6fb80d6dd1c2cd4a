// Elementwise ops on CUDA: unary, unary backward, binary (broadcast operands arrive as stride-0
// views) and where. One launch per op. Contiguous float32 unary/binary use 16-byte float4 accesses
// (4 elements per thread per step); everything else takes the strided grid-stride path. The math is
// core/scalar_math.h, the same formulas the CPU runs.
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/scalar_math.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

__global__ void unary_f32x4(UnaryOp op, const float* x, float* out, int64_t n, float lo, float hi) {
  const int64_t groups = n / 4;
  for (int64_t g = dev::global_thread(); g < groups; g += dev::grid_threads()) {
    float4 v = reinterpret_cast<const float4*>(x)[g];
    v.x = apply_unary(op, v.x, lo, hi); v.y = apply_unary(op, v.y, lo, hi);
    v.z = apply_unary(op, v.z, lo, hi); v.w = apply_unary(op, v.w, lo, hi);
    reinterpret_cast<float4*>(out)[g] = v;
  }
  if (dev::global_thread() == 0)  // the last n % 4 elements
    for (int64_t i = groups * 4; i < n; ++i) out[i] = apply_unary(op, x[i], lo, hi);
}

__global__ void binary_f32x4(BinaryOp op, const float* a, const float* b, float* out, int64_t n) {
  const int64_t groups = n / 4;
  for (int64_t g = dev::global_thread(); g < groups; g += dev::grid_threads()) {
    float4 u = reinterpret_cast<const float4*>(a)[g], v = reinterpret_cast<const float4*>(b)[g];
    u.x = apply_binary(op, u.x, v.x); u.y = apply_binary(op, u.y, v.y);
    u.z = apply_binary(op, u.z, v.z); u.w = apply_binary(op, u.w, v.w);
    reinterpret_cast<float4*>(out)[g] = u;
  }
  if (dev::global_thread() == 0)
    for (int64_t i = groups * 4; i < n; ++i) out[i] = apply_binary(op, a[i], b[i]);
}

template <typename C>
C clamp_bound(double v, bool upper) {
  if constexpr (std::is_integral_v<C>) {
    if (v != v) return upper ? std::numeric_limits<C>::max() : std::numeric_limits<C>::lowest();
  }
  return C(v);
}

}  // namespace

namespace typed {  // device lambdas may not live in dispatch's generic lambdas: named templates
template <typename T>
void unary(UnaryOp op, const Array& x, Array& out, double lo, double hi) {
  using C = compute_t<T>;
  const Array* ops[2] = {&out, &x};
  const T* xp = x.data<T>();
  T* o = out.data<T>();
  C clo = clamp_bound<C>(lo, false), chi = clamp_bound<C>(hi, true);
  for_each_strided<2>("unary", out, ops, [=] __device__(const int64_t* off) {
    o[off[0]] = T(apply_unary<C>(op, C(xp[off[1]]), clo, chi));
  });
}

template <typename T>
void unary_backward(UnaryOp op, const Array& x, const Array& grad, Array& out, double lo, double hi) {
  using C = compute_t<T>;
  const Array* ops[3] = {&out, &x, &grad};
  const T* xp = x.data<T>();
  const T* gp = grad.data<T>();
  T* o = out.data<T>();
  for_each_strided<3>("unary_backward", out, ops, [=] __device__(const int64_t* off) {
    o[off[0]] = T(unary_grad<C>(op, C(xp[off[1]]), C(gp[off[2]]), C(lo), C(hi)));
  });
}

template <typename T>
void binary(BinaryOp op, const Array& a, const Array& b, Array& out) {
  using C = compute_t<T>;
  const Array* ops[3] = {&out, &a, &b};
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  if (is_comparison(op)) {
    bool* o = out.data<bool>();
    for_each_strided<3>("binary", out, ops, [=] __device__(const int64_t* off) {
      o[off[0]] = apply_binary<C>(op, C(ap[off[1]]), C(bp[off[2]])) != C(0);
    });
  } else {
    T* o = out.data<T>();
    for_each_strided<3>("binary", out, ops, [=] __device__(const int64_t* off) {
      o[off[0]] = T(apply_binary<C>(op, C(ap[off[1]]), C(bp[off[2]])));
    });
  }
}

template <typename T>
void where(const Array& cond, const Array& a, const Array& b, Array& out) {
  const Array* ops[4] = {&out, &cond, &a, &b};
  const bool* c = cond.data<bool>();
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  T* o = out.data<T>();
  for_each_strided<4>("where", out, ops, [=] __device__(const int64_t* off) {
    o[off[0]] = c[off[1]] ? ap[off[2]] : bp[off[3]];
  });
}
}  // namespace typed

void unary(UnaryOp op, const Array& x, Array& out, double lo, double hi) {
  const int64_t n = out.numel();
  if (n == 0) return;
  if (x.dtype() == DType::float32 && x.is_contiguous() && aligned16(x.raw()) && aligned16(out.raw())) {
    DeviceGuard guard(out.device().index);
    unary_f32x4<<<grid_for((n + 3) / 4, kThreads), kThreads, 0, stream_of(out.device().index)>>>(
        op, x.data<float>(), out.data<float>(), n, float(lo), float(hi));
    CUDA_CHECK_LAUNCH("unary");
    return;
  }
  dispatch_numeric(x.dtype(), "unary", [&](auto tag) { typed::unary<decltype(tag)>(op, x, out, lo, hi); });
}

void unary_backward(UnaryOp op, const Array& x, const Array& grad, Array& out, double lo, double hi) {
  dispatch_float(x.dtype(), "unary_backward",
                 [&](auto tag) { typed::unary_backward<decltype(tag)>(op, x, grad, out, lo, hi); });
}

void binary(BinaryOp op, const Array& a, const Array& b, Array& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  if (a.dtype() == DType::float32 && !is_comparison(op) && a.is_contiguous() && b.is_contiguous() &&
      aligned16(a.raw()) && aligned16(b.raw()) && aligned16(out.raw())) {
    DeviceGuard guard(out.device().index);
    binary_f32x4<<<grid_for((n + 3) / 4, kThreads), kThreads, 0, stream_of(out.device().index)>>>(
        op, a.data<float>(), b.data<float>(), out.data<float>(), n);
    CUDA_CHECK_LAUNCH("binary");
    return;
  }
  dispatch_numeric(a.dtype(), "binary", [&](auto tag) { typed::binary<decltype(tag)>(op, a, b, out); });
}

void where(const Array& cond, const Array& a, const Array& b, Array& out) {
  dispatch_all(out.dtype(), "where", [&](auto tag) { typed::where<decltype(tag)>(cond, a, b, out); });
}

}  // namespace ember::cuda
