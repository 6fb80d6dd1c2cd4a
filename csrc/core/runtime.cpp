#include "core/runtime.h"
#include <atomic>
#include "core/backend.h"

namespace ember {

void set_num_threads(int n) {
  EMBER_CHECK(n >= 1, "set_num_threads", "needs n >= 1, got ", n);
  cpu::set_num_threads(n);
}
int get_num_threads() { return cpu::get_num_threads(); }
std::string simd_level() { return cpu::simd_level(); }
double fma_gflops_per_core(double seconds) { return cpu::fma_gflops_per_core(seconds); }
bool cuda_compiled() { return cuda::compiled(); }
std::string cuda_architectures() { return EMBER_CUDA_ARCHS; }
int cuda_device_count() { return cuda::device_count(); }

namespace {
const char* const kPrecisions[] = {"highest", "high", "medium"};
std::atomic<int> g_matmul_precision{0};  // index into kPrecisions; read by every CUDA float32 GEMM
}  // namespace

void set_float32_matmul_precision(const std::string& precision) {
  for (int i = 0; i < 3; ++i)
    if (precision == kPrecisions[i]) return g_matmul_precision.store(i);
  fail("set_float32_matmul_precision", "expects \"highest\", \"high\" or \"medium\", got \"", precision, "\"");
}
std::string get_float32_matmul_precision() { return kPrecisions[g_matmul_precision.load()]; }
bool float32_matmul_allows_tf32() { return g_matmul_precision.load() != 0; }

}  // namespace ember
