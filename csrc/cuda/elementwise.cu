// Elementwise ops on CUDA: unary, unary backward, binary (comparisons write bool) and where.
//
// Layout: operands arrive already broadcast to out's shape (stride-0 views), out is contiguous.
// Algorithm: one launch per op through launch.cuh's map, which picks
//   - packed: every operand contiguous or one broadcast value -> flat grid-stride kernel moving
//     16 bytes per operand per access (float4 for float32, 8 halves for float16/bfloat16);
//   - flat: the same one element at a time when a pointer is not aligned to its pack;
//   - strided: StridedLayout offsets per element for everything else (transposes, row broadcasts).
// Blocks are 256 threads (8 warps: full occupancy on sm_80/90 with no shared memory), at most 32 per
// SM; elementwise work is bound by memory, so more threads per element would not help.
// Math: core/scalar_math.h, the formulas the CPU runs, in compute_t<T> (float for float16/bfloat16,
// int64 for int32), rounded back to the storage type once.
#include <cmath>
#include <limits>
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/scalar_math.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

// Clamp bounds in the compute type; NaN ("no bound") becomes the type's extreme for integers, as on CPU.
template <typename C>
C bound(double v, bool upper) {
  if constexpr (std::is_integral_v<C>) {
    if (std::isnan(v)) return upper ? std::numeric_limits<C>::max() : std::numeric_limits<C>::lowest();
  }
  return C(v);
}

}  // namespace

namespace typed {  // nvcc allows no device lambdas inside dispatch's generic lambdas: named templates
template <typename T>
void unary(UnaryOp op, const Array& x, Array& out, double lo, double hi) {
  using C = compute_t<T>;
  const C clo = bound<C>(lo, false), chi = bound<C>(hi, true);
  map<T>("unary", out, [=] __device__(T v) { return T(apply_unary<C>(op, C(v), clo, chi)); }, operand<T>(x));
}

template <typename T>
void unary_backward(UnaryOp op, const Array& x, const Array& grad, Array& out, double lo, double hi) {
  using C = compute_t<T>;
  const C clo = C(lo), chi = C(hi);
  map<T>("unary_backward", out, [=] __device__(T v, T g) { return T(unary_grad<C>(op, C(v), C(g), clo, chi)); },
         operand<T>(x), operand<T>(grad));
}

template <typename T>
void binary(BinaryOp op, const Array& a, const Array& b, Array& out) {
  using C = compute_t<T>;
  if (is_comparison(op)) {
    map<bool>("binary", out, [=] __device__(T u, T v) { return apply_binary<C>(op, C(u), C(v)) != C(0); },
              operand<T>(a), operand<T>(b));
  } else {
    map<T>("binary", out, [=] __device__(T u, T v) { return T(apply_binary<C>(op, C(u), C(v))); },
           operand<T>(a), operand<T>(b));
  }
}

template <typename T>
void where(const Array& cond, const Array& a, const Array& b, Array& out) {
  map<T>("where", out, [] __device__(bool c, T u, T v) { return c ? u : v; }, operand<bool>(cond),
         operand<T>(a), operand<T>(b));
}
}  // namespace typed

void unary(UnaryOp op, const Array& x, Array& out, double lo, double hi) {
  dispatch_numeric(x.dtype(), "unary", [&](auto tag) { typed::unary<decltype(tag)>(op, x, out, lo, hi); });
}

void unary_backward(UnaryOp op, const Array& x, const Array& grad, Array& out, double lo, double hi) {
  dispatch_float(x.dtype(), "unary_backward",
                 [&](auto tag) { typed::unary_backward<decltype(tag)>(op, x, grad, out, lo, hi); });
}

void binary(BinaryOp op, const Array& a, const Array& b, Array& out) {
  dispatch_numeric(a.dtype(), "binary", [&](auto tag) { typed::binary<decltype(tag)>(op, a, b, out); });
}

void where(const Array& cond, const Array& a, const Array& b, Array& out) {
  dispatch_all(out.dtype(), "where", [&](auto tag) { typed::where<decltype(tag)>(cond, a, b, out); });
}

}  // namespace ember::cuda
