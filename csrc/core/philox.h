// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based
// generator. Block b of a stream (seed, offset) is philox(counter = offset + b, key = seed): four
// 32-bit words that depend on nothing else, so every thread of every backend computes its own
// numbers directly and the CPU and CUDA results are the same. Element j of an output uses block
// j / 4, word j % 4; each call advances the stream's offset by ceil(numel / 4) blocks.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>
#include "core/dtype.h"
#include "core/hd.h"

namespace ember {

struct Philox4 { uint32_t v[4]; };

EMBER_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

EMBER_HD Philox4 philox4x32_10(uint64_t counter, uint64_t seed) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(0xD2511F53u, c0, hi0, lo0);
    mulhilo32(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += 0x9E3779B9u;  // Weyl sequence key schedule (golden ratio, sqrt(3) - 1)
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// 24 random bits -> [0, 1) exactly representable in float32 (so float and double agree).
EMBER_HD double uniform01(uint32_t x) { return double(x >> 8) * (1.0 / 16777216.0); }

// The same draw for storage type T, cut to T's significand (float16 11 bits, bfloat16 8) so that
// rounding to T cannot carry a value just below 1 up to 1.0: the leading bits of the float32 draw.
template <typename T>
EMBER_HD double uniform01_as(uint32_t x) {
  constexpr int bits = std::is_same_v<T, float16> ? 11 : std::is_same_v<T, bfloat16> ? 8 : 24;
  return double(x >> (32 - bits)) * (1.0 / double(1u << bits));
}

// Box-Muller on one block: words (0,1) and (2,3) give two pairs of standard normals. Computed in
// double so the CPU and CUDA libm differences stay far below float32 rounding.
EMBER_HD double normal_from_block(const Philox4& b, int lane) {
  int pair = lane >> 1;
  double u1 = (double(b.v[2 * pair] >> 8) + 1.0) * (1.0 / 16777216.0);  // (0, 1]: log is finite
  double u2 = uniform01(b.v[2 * pair + 1]);
  double r = ::sqrt(-2.0 * ::log(u1));
  double angle = 6.283185307179586 * u2;
  return (lane & 1) ? r * ::sin(angle) : r * ::cos(angle);
}

// Uniform integer in [lo, hi): 64 random bits (two words) modulo the range; the bias is below
// range / 2^64, negligible for any range an array can index.
EMBER_HD int64_t int_from_block(const Philox4& b, int lane, int64_t lo, int64_t hi) {
  uint64_t bits = (uint64_t(b.v[lane]) << 32) | b.v[(lane + 1) & 3];
  return lo + int64_t(bits % uint64_t(hi - lo));
}

}  // namespace ember
