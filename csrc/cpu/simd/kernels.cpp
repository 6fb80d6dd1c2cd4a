// Hot float32 loops, compiled once per ISA (EMBER_ISA = avx512 | avx2 | portable, see CMakeLists):
// plain C++ loops with `omp simd`, so the compiler emits 16-wide AVX-512, 8-wide AVX2 or baseline
// SSE2 code from one source. Transcendentals use branch-free formulas (exp_ps below) that vectorise;
// libm calls would not.
#include "cpu/simd/kernels.h"
#include <cmath>
#include <chrono>
#include <cstdint>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <cstring>
#include "core/dtype.h"

#define EMBER_CAT_(a, b) a##b
#define EMBER_CAT(a, b) EMBER_CAT_(a, b)
#define ISA_NS EMBER_CAT(simd_, EMBER_ISA)
#define EMBER_STR_(a) #a
#define EMBER_STR(a) EMBER_STR_(a)

namespace ember::cpu::ISA_NS {
namespace {

#if defined(__AVX512F__)
constexpr int64_t kVecFloats = 16;
#else
constexpr int64_t kVecFloats = 8;
#endif

// exp(x) for float32 within 2 ulp: x = n*ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2 so
// n*ln2 is exact), e^r by Cephes' degree-6 polynomial, 2^n by writing exponent bits. 2^n is applied
// as two factors 2^(n/2) * 2^(n - n/2) so n in [-150, 128] (denormal results, and e^88.7 just under
// FLT_MAX) stays exact without branches. NaN passes through; below -104 the result is 0.
inline float pow2i(int32_t k) {
  // Shifted as unsigned: k + 127 is negative for a NaN input (its n converts to INT_MIN), and a
  // left shift of a negative int is undefined (UBSan); the bits are the same and the NaN passes on.
  uint32_t bits = uint32_t(k + 127) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float exp_ps(float x) {
  // Plain compares and the 1.5 * 2^23 rounding trick instead of fminf/nearbyintf: those are libm
  // calls without -ffast-math and would stop the loop from vectorising.
  float xc = x < -103.9f ? -103.9f : (x > 88.72f ? 88.72f : x);
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int32_t ni = int32_t(n), n1 = ni / 2;
  float y = p * pow2i(n1) * pow2i(ni - n1);
  y = x < -103.9f ? 0.0f : (x > 88.72f ? INFINITY : y);
  return x != x ? x : y;
}

inline float sigmoid_ps(float x) { return 1.0f / (1.0f + exp_ps(-x)); }

// tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|); below |x| = 2^-4 that form loses digits to
// cancellation, so an odd Taylor polynomial (error < 1e-9 there) is used instead.
inline float tanh_ps(float x) {
  float ax = x < 0.0f ? -x : x;
  float e = exp_ps(-2.0f * ax);
  float t = (1.0f - e) / (1.0f + e);
  float x2 = x * x;
  float small = x * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
  float big = x < 0.0f ? -t : t;
  return ax < 0.0625f ? small : big;
}

// The recurrent cells' tanh: a rational function x p(x^2) / q(x^2), p of degree 6 and q of degree
// 3 in x^2, on x clamped to +-7.905: 10 multiply-adds and one division, no exp (tanh_ps costs about
// twice that). Coefficients: the minimax fit of Eigen's and XLA's float tanh. Measured against
// float64 tanh on 2.2M points of [-12, 12] and tiny |x|: at most 4.6 ulp (beyond the clamp, where
// tanh is within 5 ulp of 1), 0.75 ulp on average (tanh_ps: 5.0 and 0.38). Not used for the
// elementwise tanh and GELU: their derivatives (1 - t^2, 1 + t near t = -1) magnify those ulps past
// the tests' bounds; an LSTM's cell only scales values of order 1 by it.
inline float tanh_rational_ps(float x) {
  constexpr float kClamp = 7.90531110763549805f;
  const float xc = x < -kClamp ? -kClamp : (x > kClamp ? kClamp : x), x2 = xc * xc;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return xc * p / q;
}

// Phi(x), the standard normal CDF, = erfc(-x / sqrt(2)) / 2, with erfc(z) for z >= 0 from Numerical
// Recipes' Chebyshev fit t * exp(-z^2 + P(t)), t = 1 / (1 + z/2): fractional error < 1.2e-7 for
// every z, and it is built from exp_ps so it vectorises (libm's erf would not). For z < 0,
// erfc(z) = 2 - erfc(-z). GELU's error is then relative to 1 + erf, far below float32's 6e-8 * |x|
// where the output matters.
inline float normal_cdf_ps(float x) {
  float z = (x < 0.0f ? -x : x) * 0.70710678118654752f;
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  float half_erfc = 0.5f * t * exp_ps(-z * z + p);
  return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

// GELU and its tanh form, and their derivatives (x's gradient factor).
constexpr float kInvSqrt2Pi = 0.39894228040143268f, kGeluC = 0.79788456080286536f, kGeluA = 0.044715f;
inline float gelu_ps(float x) { return x * normal_cdf_ps(x); }
inline float gelu_grad_ps(float x) { return normal_cdf_ps(x) + x * kInvSqrt2Pi * exp_ps(-0.5f * x * x); }
inline float gelu_tanh_ps(float x) { return 0.5f * x * (1.0f + tanh_ps(kGeluC * (x + kGeluA * x * x * x))); }
inline float gelu_tanh_grad_ps(float x) {
  float th = tanh_ps(kGeluC * (x + kGeluA * x * x * x));
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kGeluC * (1.0f + 3.0f * kGeluA * x * x);
}

// Outputs of at least kStreamMin floats per call (4 MiB) are far larger than the caches will keep:
// they are computed into an L1 block and written with streaming (non-temporal) stores, which skip the
// read-for-ownership a normal store makes. For a + b that is 3 instead of 4 bytes of traffic per
// byte of output.
constexpr int64_t kStreamMin = 1 << 20, kBlock = 2048;

inline void stream_store(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__) || defined(__AVX2__)
  constexpr int64_t W = kVecFloats;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & (W * 4 - 1)); ++i) dst[i] = src[i];
  for (; i + W <= n; i += W) {
#if defined(__AVX512F__)
    _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
#else
    _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
#endif
  }
#endif
  for (; i < n; ++i) dst[i] = src[i];
}

inline void stream_fence() {
#if defined(__AVX512F__) || defined(__AVX2__)
  _mm_sfence();  // streaming stores are weakly ordered: publish them before the caller returns
#endif
}

template <typename F>
inline void map1_block(const float* x, float* out, int64_t n, F f) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = f(x[i]);
}

template <typename F>
inline void map1(const float* x, float* out, int64_t n, F f) {
  if (n < kStreamMin) return map1_block(x, out, n, f);
  float buf[kBlock];
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t len = n - i < kBlock ? n - i : kBlock;
    map1_block(x + i, buf, len, f);
    stream_store(out + i, buf, len);
  }
  stream_fence();
}

bool unary_f32(UnaryOp op, const float* x, float* out, int64_t n) {
  switch (op) {
    case UnaryOp::neg: map1(x, out, n, [](float v) { return -v; }); return true;
    case UnaryOp::abs: map1(x, out, n, [](float v) { return std::fabs(v); }); return true;
    case UnaryOp::relu: map1(x, out, n, [](float v) { return v > 0.0f ? v : (v != v ? v : 0.0f); }); return true;
    case UnaryOp::square: map1(x, out, n, [](float v) { return v * v; }); return true;
    case UnaryOp::sqrt: map1(x, out, n, [](float v) { return std::sqrt(v); }); return true;
    case UnaryOp::exp: map1(x, out, n, [](float v) { return exp_ps(v); }); return true;
    case UnaryOp::sigmoid: map1(x, out, n, [](float v) { return sigmoid_ps(v); }); return true;
    case UnaryOp::silu: map1(x, out, n, [](float v) { return v * sigmoid_ps(v); }); return true;
    case UnaryOp::tanh: map1(x, out, n, [](float v) { return tanh_ps(v); }); return true;
    case UnaryOp::gelu: map1(x, out, n, [](float v) { return gelu_ps(v); }); return true;
    case UnaryOp::gelu_tanh: map1(x, out, n, [](float v) { return gelu_tanh_ps(v); }); return true;
    default: return false;
  }
}

template <typename F>
inline void map2_block(const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n, F f) {
  if (!sa && !sb) {
    const float v = f(a[0], b[0]);
    for (int64_t i = 0; i < n; ++i) out[i] = v;
  } else if (sa && sb) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
  } else if (sa) {
    const float bv = b[0];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], bv);
  } else {
    const float av = a[0];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = f(av, b[i]);
  }
}

template <typename F>
inline void map2(const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n, F f) {
  if (n < kStreamMin) return map2_block(a, sa, b, sb, out, n, f);
  float buf[kBlock];
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t len = n - i < kBlock ? n - i : kBlock;
    map2_block(a + (sa ? i : 0), sa, b + (sb ? i : 0), sb, buf, len, f);
    stream_store(out + i, buf, len);
  }
  stream_fence();
}

bool binary_f32(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  switch (op) {
    case BinaryOp::add: map2(a, sa, b, sb, out, n, [](float u, float v) { return u + v; }); return true;
    case BinaryOp::sub: map2(a, sa, b, sb, out, n, [](float u, float v) { return u - v; }); return true;
    case BinaryOp::mul: map2(a, sa, b, sb, out, n, [](float u, float v) { return u * v; }); return true;
    case BinaryOp::div: map2(a, sa, b, sb, out, n, [](float u, float v) { return u / v; }); return true;
    default: return false;
  }
}

bool unary_backward_f32(UnaryOp op, const float* x, const float* g, float* out, int64_t n) {
  switch (op) {
    case UnaryOp::gelu: map2_block(x, 1, g, 1, out, n, [](float v, float d) { return d * gelu_grad_ps(v); }); return true;
    case UnaryOp::gelu_tanh:
      map2_block(x, 1, g, 1, out, n, [](float v, float d) { return d * gelu_tanh_grad_ps(v); });
      return true;
    case UnaryOp::tanh:
      map2_block(x, 1, g, 1, out, n, [](float v, float d) { float t = tanh_ps(v); return d * (1.0f - t * t); });
      return true;
    case UnaryOp::sigmoid:
      map2_block(x, 1, g, 1, out, n, [](float v, float d) { float s = sigmoid_ps(v); return d * s * (1.0f - s); });
      return true;
    default: return false;
  }
}

// Sum in float32 lanes, 4 independent vector accumulators wide (the omp simd reduction gives one
// partial sum per lane; blocking by 1024 and adding blocks in double keeps the error ~sqrt(n) eps).
// Both sides loaded unconditionally, so the select becomes a blend rather than a branch per element
// (which a random mask such as dropout's mispredicts half the time). The mask is read as uint8_t:
// GCC 13 does not vectorise a select on `bool` loads.
template <int64_t SA, int64_t SB>
inline void where_loop(const uint8_t* __restrict c, const float* __restrict a, const float* __restrict b,
                       float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = a[i * SA], y = b[i * SB];
    out[i] = c[i] ? x : y;
  }
}

void where_f32(const bool* cond, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  const auto* c = reinterpret_cast<const uint8_t*>(cond);  // bool is one byte, 0 or 1
  if (sa && sb) return where_loop<1, 1>(c, a, b, out, n);
  if (sa) return where_loop<1, 0>(c, a, b, out, n);
  if (sb) return where_loop<0, 1>(c, a, b, out, n);
  where_loop<0, 0>(c, a, b, out, n);
}

double sum_f32(const float* x, int64_t n) {
  double total = 0.0;
  for (int64_t b = 0; b < n; b += 1024) {
    int64_t e = b + 1024 < n ? b + 1024 : n;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b; i < e; ++i) s += x[i];
    total += s;
  }
  return total;
}

float max_f32(const float* x, int64_t n) {
  float m = -INFINITY;
  int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
  for (int64_t i = 0; i < n; ++i) { m = x[i] > m ? x[i] : m; nan |= x[i] != x[i]; }
  return nan ? NAN : m;
}

float min_f32(const float* x, int64_t n) {
  float m = INFINITY;
  int nan = 0;
#pragma omp simd reduction(min : m) reduction(| : nan)
  for (int64_t i = 0; i < n; ++i) { m = x[i] < m ? x[i] : m; nan |= x[i] != x[i]; }
  return nan ? NAN : m;
}

void sum_cols_f32(const float* x, int64_t rows, int64_t stride, int64_t width, float* acc) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * stride;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) acc[i] += row[i];
  }
}

// 12 independent multiply-add chains of full vectors: enough to cover the FMA latency on every
// current x86 core, so the loop runs at the FMA issue rate.
double fma_gflops(double seconds) {
  typedef float V __attribute__((vector_size(
#if defined(__AVX512F__)
      64
#elif defined(__AVX2__)
      32
#else
      16
#endif
      )));
  V acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = V{} + float(i);
  const V mul = V{} + 0.999999f, add = V{} + 1e-7f;
  int64_t iters = 0;
  auto now = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
  const double t0 = now();
  double t1 = t0;
  while (t1 - t0 < seconds) {
    for (int r = 0; r < 100000; ++r) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) acc[i] = acc[i] * mul + add;  // without fast-math this cannot fold
    }
    iters += 100000;
    t1 = now();
  }
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += acc[i][0];
  volatile float keep = sink;  // the chains' results are used, so the loop stays
  (void)keep;
  return double(iters) * 12 * (sizeof(V) / 4) * 2 / (t1 - t0) / 1e9;
}

// Optimizer updates: one read and one write of each array, nothing else. A state that is not used
// is a private scalar per element, which the vectoriser keeps in a register.
// __restrict: the arrays never overlap, so each element is loaded and stored once, not re-read
// after every store.
void adam_f32(const AdamRule& r, float* __restrict p, const float* __restrict g, float* __restrict m,
              float* __restrict v, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) r.update(p[i], g[i], m[i], v[i]);
}

void sgd_f32(const SgdRule& r, float* __restrict p, const float* __restrict g, float* __restrict buf, int64_t n) {
  if (buf) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) r.update(p[i], g[i], buf[i]);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float unused = 0.0f;
    r.update(p[i], g[i], unused);
  }
}

void rmsprop_f32(const RmspropRule& r, float* __restrict p, const float* __restrict g, float* __restrict sq,
                 float* __restrict buf, float* __restrict avg, int64_t n) {
  if (buf && avg) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) r.update(p[i], g[i], sq[i], buf[i], avg[i]);
  } else if (buf) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) { float a = 0.0f; r.update(p[i], g[i], sq[i], buf[i], a); }
  } else if (avg) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) { float b = 0.0f; r.update(p[i], g[i], sq[i], b, avg[i]); }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) { float a = 0.0f, b = 0.0f; r.update(p[i], g[i], sq[i], b, a); }
  }
}

// The cells' sigmoid and tanh for rnn_math.h. sigmoid(x) = (1 + tanh(x / 2)) / 2 needs no exp and
// no second division (the LSTM's five gates: ~190 -> ~100 vector instructions per unit); its error is
// absolute (~1e-7), not relative, for tiny gates, which only ever scale values of order 1 in the cell.
struct VecMath {
  static float sigmoid(float x) { return 0.5f + 0.5f * tanh_rational_ps(0.5f * x); }
  static float tanh(float x) { return tanh_rational_ps(x); }
};

void rnn_forward_row_f32(RnnKind k, int64_t H, int64_t j0, int64_t j1, float* a, const float* hn,
                         const float* h_prev, const float* c_prev, float* h_new, float* c_new, float* extra) {
  // One loop per kind, so each is a straight vectorisable body (the kind is fixed for a whole call).
  switch (k) {
    case RnnKind::lstm:
#pragma omp simd simdlen(2 * kVecFloats)
      for (int64_t j = j0; j < j1; ++j)
        rnn_forward_unit<VecMath>(RnnKind::lstm, H, j, a, hn, h_prev, c_prev, h_new, c_new, extra);
      break;
    case RnnKind::gru:
#pragma omp simd simdlen(2 * kVecFloats)
      for (int64_t j = j0; j < j1; ++j)
        rnn_forward_unit<VecMath>(RnnKind::gru, H, j, a, hn, h_prev, c_prev, h_new, c_new, extra);
      break;
    default:
#pragma omp simd simdlen(2 * kVecFloats)
      for (int64_t j = j0; j < j1; ++j) rnn_forward_unit<VecMath>(k, H, j, a, hn, h_prev, c_prev, h_new, c_new, extra);
  }
}

void rnn_backward_row_f32(RnnKind k, int64_t H, int64_t j0, int64_t j1, const RnnBackwardRow<float>& r) {
  rnn_backward_units<2 * kVecFloats>(k, r, H, j0, j1);
}

double exp_sum_f32(const float* x, float shift, float* out, int64_t n) {
  float s = 0.0f;  // float lanes: n is a tile row (<= a few hundred), so float accumulation is enough
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    out[i] = exp_ps(x[i] - shift);
    s += out[i];
  }
  return s;
}

// Two passes over the row (mean, then squared deviations: no cancellation), float lanes: a row is
// a few thousand values, and the lanes' 16 partial sums keep the rounding near sqrt(n/16) ulps.
void layer_norm_row_f32(const float* x, const float* w, const float* b, int64_t n, float eps, float* y, float* mean,
                        float* rstd) {
  float s = 0.0f, ss = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  const float mu = s / float(n);
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < n; ++i) ss += (x[i] - mu) * (x[i] - mu);
  const float is = 1.0f / std::sqrt(ss / float(n) + eps);
  if (w && b) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mu) * is * w[i] + b[i];
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mu) * is * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
  }
  *mean = mu, *rstd = is;
}

void layer_norm_backward_row_f32(const float* dy, const float* x, float mu, float is, const float* w, int64_t n,
                                 float* dx, float* dw_acc, float* db_acc) {
  float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
  for (int64_t i = 0; i < n; ++i) {
    const float gw = dy[i] * (w ? w[i] : 1.0f);
    sg += gw;
    sgx += gw * (x[i] - mu) * is;
  }
  const float a = sg / float(n), c = sgx / float(n);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float xhat = (x[i] - mu) * is;
    dx[i] = is * (dy[i] * (w ? w[i] : 1.0f) - a - xhat * c);
  }
  if (!dw_acc) return;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    dw_acc[i] += dy[i] * (x[i] - mu) * is;
    db_acc[i] += dy[i];
  }
}

}  // namespace

extern const SimdKernels table = {
    EMBER_STR(EMBER_ISA),
    binary_f32, unary_f32, where_f32, sum_f32, max_f32, min_f32, sum_cols_f32, fma_gflops,
    adam_f32, sgd_f32, rnn_forward_row_f32, rnn_backward_row_f32, exp_sum_f32, unary_backward_f32, layer_norm_row_f32, layer_norm_backward_row_f32, rmsprop_f32};

}  // namespace ember::cpu::ISA_NS
