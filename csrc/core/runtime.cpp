#include "core/runtime.h"
#include <omp.h>
#include "core/backend.h"
#include "cpu/simd/kernels.h"

namespace ember {

void set_num_threads(int n) {
  EMBER_CHECK(n >= 1, "set_num_threads", "needs n >= 1, got ", n);
  omp_set_num_threads(n);
}
int get_num_threads() { return omp_get_max_threads(); }
std::string simd_level() { return cpu::simd_level(); }
double fma_gflops_per_core(double seconds) { return cpu::simd().fma_gflops(seconds); }
bool cuda_compiled() { return cuda::compiled(); }
std::string cuda_architectures() { return EMBER_CUDA_ARCHS; }
int cuda_device_count() { return cuda::device_count(); }

}  // namespace ember
