// Run-time ISA choice: the widest kernel table this CPU supports among those compiled in. The
// EMBER_SIMD environment variable (avx512 | avx2 | portable) forces a narrower one, for testing
// every path on one machine.
#include <cstdlib>
#include <cstring>
#include "cpu/simd/kernels.h"

namespace ember::cpu {
namespace simd_portable { extern const SimdKernels table; }
#ifdef EMBER_HAVE_AVX2
namespace simd_avx2 { extern const SimdKernels table; }
#endif
#ifdef EMBER_HAVE_AVX512
namespace simd_avx512 { extern const SimdKernels table; }
#endif

static const SimdKernels* choose() {
  const char* want = std::getenv("EMBER_SIMD");
  auto allowed = [want](const char* isa) { return !want || !*want || std::strcmp(want, isa) == 0; };
  (void)allowed;
#if defined(EMBER_HAVE_AVX512)
  if (allowed("avx512") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return &simd_avx512::table;
#endif
#if defined(EMBER_HAVE_AVX2)
  if ((allowed("avx2") || (want && std::strcmp(want, "avx512") == 0)) &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return &simd_avx2::table;
#endif
  return &simd_portable::table;
}

const SimdKernels& simd() {
  static const SimdKernels* table = choose();
  return *table;
}

const char* simd_level() { return simd().isa; }

}  // namespace ember::cpu
