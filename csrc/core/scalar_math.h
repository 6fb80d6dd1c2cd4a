// Scalar formulas for the elementwise ops, written once and used by both backends (EMBER_HD): the
// CPU loops and the CUDA kernels call the same apply_unary / unary_grad / apply_binary. T is the
// compute type: float (for float32/16/bf16), double, or int64_t (integer dtypes).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>
#include "core/hd.h"
#include "core/ops.h"

namespace ember {

namespace sm {
EMBER_HD float exp_(float x) { return ::expf(x); }
EMBER_HD double exp_(double x) { return ::exp(x); }
EMBER_HD float log_(float x) { return ::logf(x); }
EMBER_HD double log_(double x) { return ::log(x); }
EMBER_HD float sqrt_(float x) { return ::sqrtf(x); }
EMBER_HD double sqrt_(double x) { return ::sqrt(x); }
EMBER_HD float tanh_(float x) { return ::tanhf(x); }
EMBER_HD double tanh_(double x) { return ::tanh(x); }
EMBER_HD float erf_(float x) { return ::erff(x); }
EMBER_HD double erf_(double x) { return ::erf(x); }
EMBER_HD float pow_(float a, float b) { return ::powf(a, b); }
EMBER_HD double pow_(double a, double b) { return ::pow(a, b); }
EMBER_HD int64_t pow_(int64_t a, int64_t b) {  // integer power by squaring; negative b -> 0 (or +-1)
  if (b < 0) return a == 1 ? 1 : (a == -1 ? (b & 1 ? -1 : 1) : 0);
  int64_t r = 1;
  while (b) { if (b & 1) r *= a; a *= a; b >>= 1; }
  return r;
}
template <typename T> EMBER_HD bool isnan_(T x) { return x != x; }
}  // namespace sm

// Sigmoid that never overflows: exp of a non-positive number only.
template <typename T> EMBER_HD T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + sm::exp_(-x));
  T e = sm::exp_(x);
  return e / (T(1) + e);
}

constexpr double kSqrt1_2 = 0.70710678118654752440;   // 1/sqrt(2), exact GELU
constexpr double kInvSqrt2Pi = 0.39894228040143267794; // 1/sqrt(2*pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;

template <typename T>
EMBER_HD T apply_unary(UnaryOp op, T x, T lo, T hi) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::abs: return x < T(0) ? -x : x;
    case UnaryOp::relu: return x > T(0) ? x : (sm::isnan_(x) ? x : T(0));
    case UnaryOp::sign: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::square: return x * x;
    case UnaryOp::clamp: {  // NaN bounds mean "no bound" (clamp(min=...) only); NaN x stays NaN
      if (!sm::isnan_(lo) && x < lo) x = lo;
      if (!sm::isnan_(hi) && x > hi) x = hi;
      return x;
    }
    default: break;
  }
  if constexpr (std::is_integral_v<T>) {
    return x;  // float-only ops are rejected for integer dtypes before a kernel runs
  } else {
    switch (op) {
      case UnaryOp::exp: return sm::exp_(x);
      case UnaryOp::log: return sm::log_(x);
      case UnaryOp::sqrt: return sm::sqrt_(x);
      case UnaryOp::tanh: return sm::tanh_(x);
      case UnaryOp::sigmoid: return sigmoid(x);
      case UnaryOp::silu: return x * sigmoid(x);
      case UnaryOp::gelu: return T(0.5) * x * (T(1) + sm::erf_(x * T(kSqrt1_2)));
      case UnaryOp::gelu_tanh: {
        T inner = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
        return T(0.5) * x * (T(1) + sm::tanh_(inner));
      }
      case UnaryOp::reciprocal: return T(1) / x;
      default: return x;
    }
  }
}

// d op(x)/dx at x, times g. Ops whose derivative is simplest in terms of the output recompute it.
template <typename T>
EMBER_HD T unary_grad(UnaryOp op, T x, T g, T lo, T hi) {
  if constexpr (std::is_integral_v<T>) {
    return T(0);
  } else {
    switch (op) {
      case UnaryOp::neg: return -g;
      case UnaryOp::abs: return x > T(0) ? g : (x < T(0) ? -g : T(0));
      case UnaryOp::relu: return x > T(0) ? g : T(0);
      case UnaryOp::sign: return T(0);
      case UnaryOp::square: return T(2) * x * g;
      case UnaryOp::clamp: {  // gradient flows where x is inside [lo, hi] (inclusive, as PyTorch)
        bool below = !sm::isnan_(lo) && x < lo, above = !sm::isnan_(hi) && x > hi;
        return below || above ? T(0) : g;
      }
      case UnaryOp::exp: return g * sm::exp_(x);
      case UnaryOp::log: return g / x;
      case UnaryOp::sqrt: return g / (T(2) * sm::sqrt_(x));
      case UnaryOp::tanh: { T y = sm::tanh_(x); return g * (T(1) - y * y); }
      case UnaryOp::sigmoid: { T s = sigmoid(x); return g * s * (T(1) - s); }
      case UnaryOp::silu: { T s = sigmoid(x); return g * s * (T(1) + x * (T(1) - s)); }
      case UnaryOp::gelu: {
        T cdf = T(0.5) * (T(1) + sm::erf_(x * T(kSqrt1_2)));
        T pdf = T(kInvSqrt2Pi) * sm::exp_(T(-0.5) * x * x);
        return g * (cdf + x * pdf);
      }
      case UnaryOp::gelu_tanh: {
        T x2 = x * x;
        T t = sm::tanh_(T(kSqrt2OverPi) * (x + T(0.044715) * x2 * x));
        T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x2);
        return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner);
      }
      case UnaryOp::reciprocal: return -g / (x * x);
      default: return T(0);
    }
  }
}

// The fused GEMM epilogue activations, the same formulas as the unary ops.
template <typename T>
EMBER_HD T apply_activation(Activation act, T v) {
  switch (act) {
    case Activation::relu: return apply_unary(UnaryOp::relu, v, T(0), T(0));
    case Activation::gelu: return apply_unary(UnaryOp::gelu, v, T(0), T(0));
    case Activation::gelu_tanh: return apply_unary(UnaryOp::gelu_tanh, v, T(0), T(0));
    default: return v;
  }
}

// Binary ops; comparisons return 0/1 in T and the caller stores them as bool.
template <typename T>
EMBER_HD T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div:
      if constexpr (std::is_integral_v<T>) {  // Python-style floor division; /0 gives 0, never a trap
        if (b == 0) return T(0);
        T q = a / b;
        return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
      } else {
        return a / b;
      }
    case BinaryOp::pow: return sm::pow_(a, b);
    case BinaryOp::maximum: return (sm::isnan_(a) || a > b) ? a : b;  // NaN propagates
    case BinaryOp::minimum: return (sm::isnan_(a) || a < b) ? a : b;
    case BinaryOp::eq: return T(a == b);
    case BinaryOp::ne: return T(a != b);
    case BinaryOp::lt: return T(a < b);
    case BinaryOp::le: return T(a <= b);
    case BinaryOp::gt: return T(a > b);
    case BinaryOp::ge: return T(a >= b);
  }
  return a;
}

}  // namespace ember
