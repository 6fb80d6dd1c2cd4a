// Run-time ISA choice: the widest ISA this CPU supports among those compiled in, used for every
// per-ISA table (the elementwise loops of simd/kernels.cpp, the GEMM micro-kernels of
// microkernels/gemm_kernels.cpp). The EMBER_SIMD environment variable (avx512 | avx2 | portable)
// caps it, so every path can be tested on one machine.
#include <cstdlib>
#include <cstring>
#include "cpu/microkernels/gemm.h"
#include "cpu/simd/kernels.h"
#include <omp.h>

namespace ember::cpu {

#define EMBER_DECLARE_ISA(isa)                               \
  namespace simd_##isa { extern const SimdKernels table; }   \
  namespace gemm_##isa { extern const GemmKernels table; }
EMBER_DECLARE_ISA(portable)
#ifdef EMBER_HAVE_AVX2
EMBER_DECLARE_ISA(avx2)
#endif
#ifdef EMBER_HAVE_AVX512
EMBER_DECLARE_ISA(avx512)
#endif

namespace {

enum class Isa { portable, avx2, avx512 };

Isa detect() {
  const char* want = std::getenv("EMBER_SIMD");
  auto cap = [want](const char* isa) { return !want || !*want || std::strcmp(want, isa) == 0; };
  bool allow512 = cap("avx512"), allow2 = allow512 || cap("avx2");
  (void)allow512;
  (void)allow2;
#if defined(EMBER_HAVE_AVX512)
  if (allow512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return Isa::avx512;
#endif
#if defined(EMBER_HAVE_AVX2)
  if (allow2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::portable;
}

Isa isa() {
  static const Isa chosen = detect();
  return chosen;
}

}  // namespace

const SimdKernels& simd() {
  switch (isa()) {
#ifdef EMBER_HAVE_AVX512
    case Isa::avx512: return simd_avx512::table;
#endif
#ifdef EMBER_HAVE_AVX2
    case Isa::avx2: return simd_avx2::table;
#endif
    default: return simd_portable::table;
  }
}

const GemmKernels& gemm_kernels() {
  switch (isa()) {
#ifdef EMBER_HAVE_AVX512
    case Isa::avx512: return gemm_avx512::table;
#endif
#ifdef EMBER_HAVE_AVX2
    case Isa::avx2: return gemm_avx2::table;
#endif
    default: return gemm_portable::table;
  }
}

const char* simd_level() { return simd().isa; }
double fma_gflops_per_core(double seconds) { return simd().fma_gflops(seconds); }
// Every parallel CPU kernel runs under OpenMP, so its thread count is the backend's thread count.
void set_num_threads(int n) { omp_set_num_threads(n); }
int get_num_threads() { return omp_get_max_threads(); }

}  // namespace ember::cpu
