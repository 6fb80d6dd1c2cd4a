// Elementwise ops on the CPU: unary, unary backward, binary (with broadcasting) and where.
// Layout: operands arrive as views already expanded to out's shape; strided_loop walks them row by
// row. float32 rows whose strides are 1 (or 0 for a broadcast scalar) go to the per-ISA vector
// loops in simd/kernels.cpp; everything else uses the shared scalar formulas of core/scalar_math.h.
#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/scalar_math.h"
#include "cpu/simd/kernels.h"
#include "cpu/strided_loop.h"

namespace ember::cpu {

// Clamp bounds in the compute type; NaN ("no bound") becomes the type's extreme for integers.
template <typename C>
static C bound(double v, bool upper) {
  if constexpr (std::is_integral_v<C>) {
    if (std::isnan(v)) return upper ? std::numeric_limits<C>::max() : std::numeric_limits<C>::lowest();
    return C(v);
  } else {
    return C(v);
  }
}

void unary(UnaryOp op, const Array& x, Array& out, double lo, double hi) {
  const Array* ops[2] = {&out, &x};
  const bool f32 = x.dtype() == DType::float32;
  dispatch_numeric(x.dtype(), "unary", [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
    C clo = bound<C>(lo, false), chi = bound<C>(hi, true);
    strided_loop<2>(out.shape(), ops, [&](const int64_t* off, const int64_t* inc, int64_t n) {
      if constexpr (std::is_same_v<T, float>) {
        if (f32 && inc[0] == 1 && inc[1] == 1 && simd().unary_f32(op, xp + off[1], op_ + off[0], n)) return;
      }
      for (int64_t i = 0; i < n; ++i)
        op_[off[0] + i * inc[0]] = T(apply_unary<C>(op, C(xp[off[1] + i * inc[1]]), clo, chi));
    });
  });
}

void unary_backward(UnaryOp op, const Array& x, const Array& grad, Array& out, double lo, double hi) {
  const Array* ops[3] = {&out, &x, &grad};
  dispatch_float(x.dtype(), "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const T* xp = x.data<T>();
    const T* gp = grad.data<T>();
    T* o = out.data<T>();
    strided_loop<3>(out.shape(), ops, [&](const int64_t* off, const int64_t* inc, int64_t n) {
      if constexpr (std::is_same_v<T, float>) {
        if (inc[0] == 1 && inc[1] == 1 && inc[2] == 1 &&
            simd().unary_backward_f32(op, xp + off[1], gp + off[2], o + off[0], n))
          return;
      }
      for (int64_t i = 0; i < n; ++i)
        o[off[0] + i * inc[0]] = T(unary_grad<C>(op, C(xp[off[1] + i * inc[1]]),
                                                 C(gp[off[2] + i * inc[2]]), C(lo), C(hi)));
    });
  });
}

// A comparison over a contiguous row against a contiguous row (sb = 1) or one value (sb = 0), with
// the op chosen once outside the loop so the loop vectorises (masks from x > 0, dropout's draws).
template <typename C, typename T, typename F>
void compare_loop(const T* a, const T* b, int64_t sb, bool* o, int64_t n, F f) {
  if (sb == 0) {
    const C bv = C(b[0]);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) o[i] = f(C(a[i]), bv);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = f(C(a[i]), C(b[i]));
}

template <typename C, typename T>
bool compare_row(BinaryOp op, const T* a, const T* b, int64_t sb, bool* o, int64_t n) {
  switch (op) {
    case BinaryOp::eq: compare_loop<C>(a, b, sb, o, n, std::equal_to<C>{}); return true;
    case BinaryOp::ne: compare_loop<C>(a, b, sb, o, n, std::not_equal_to<C>{}); return true;
    case BinaryOp::lt: compare_loop<C>(a, b, sb, o, n, std::less<C>{}); return true;
    case BinaryOp::le: compare_loop<C>(a, b, sb, o, n, std::less_equal<C>{}); return true;
    case BinaryOp::gt: compare_loop<C>(a, b, sb, o, n, std::greater<C>{}); return true;
    case BinaryOp::ge: compare_loop<C>(a, b, sb, o, n, std::greater_equal<C>{}); return true;
    default: return false;
  }
}

void binary(BinaryOp op, const Array& a, const Array& b, Array& out) {
  const Array* ops[3] = {&out, &a, &b};
  const bool cmp = is_comparison(op);
  dispatch_numeric(a.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    strided_loop<3>(out.shape(), ops, [&](const int64_t* off, const int64_t* inc, int64_t n) {
      if (cmp) {
        bool* o = out.data<bool>() + off[0];
        if (inc[0] == 1 && inc[1] == 1 && (inc[2] == 0 || inc[2] == 1) &&
            compare_row<C>(op, ap + off[1], bp + off[2], inc[2], o, n))
          return;
        for (int64_t i = 0; i < n; ++i)
          o[i * inc[0]] = apply_binary<C>(op, C(ap[off[1] + i * inc[1]]), C(bp[off[2] + i * inc[2]])) != C(0);
        return;
      }
      T* o = out.data<T>() + off[0];
      if constexpr (std::is_same_v<T, float>) {
        if (inc[0] == 1 && (inc[1] == 0 || inc[1] == 1) && (inc[2] == 0 || inc[2] == 1) &&
            simd().binary_f32(op, ap + off[1], inc[1], bp + off[2], inc[2], o, n))
          return;
      }
      for (int64_t i = 0; i < n; ++i)
        o[i * inc[0]] = T(apply_binary<C>(op, C(ap[off[1] + i * inc[1]]), C(bp[off[2] + i * inc[2]])));
    });
  });
}

void where(const Array& cond, const Array& a, const Array& b, Array& out) {
  const Array* ops[4] = {&out, &cond, &a, &b};
  dispatch_all(out.dtype(), "where", [&](auto tag) {
    using T = decltype(tag);
    const bool* c = cond.data<bool>();
    const T* ap = a.data<T>();
    const T* bp = b.data<T>();
    T* o = out.data<T>();
    strided_loop<4>(out.shape(), ops, [&](const int64_t* off, const int64_t* inc, int64_t n) {
      if constexpr (std::is_same_v<T, float>) {
        if (inc[0] == 1 && inc[1] == 1 && (inc[2] == 0 || inc[2] == 1) && (inc[3] == 0 || inc[3] == 1))
          return simd().where_f32(c + off[1], ap + off[2], inc[2], bp + off[3], inc[3], o + off[0], n);
      }
      for (int64_t i = 0; i < n; ++i)
        o[off[0] + i * inc[0]] = c[off[1] + i * inc[1]] ? ap[off[2] + i * inc[2]] : bp[off[3] + i * inc[3]];
    });
  });
}

}  // namespace ember::cpu
