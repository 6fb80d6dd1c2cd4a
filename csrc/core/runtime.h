// Process-wide settings and build facts: CPU threads, SIMD level, CUDA build info.
#pragma once
#include <string>

namespace ember {
void set_num_threads(int n);
int get_num_threads();
std::string simd_level();
double fma_gflops_per_core(double seconds);  // measured FP32 FMA rate of one core
bool cuda_compiled();
std::string cuda_architectures();
int cuda_device_count();
}  // namespace ember
