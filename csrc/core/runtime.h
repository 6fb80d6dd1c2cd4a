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

// float32 matmul precision, PyTorch's torch.set_float32_matmul_precision: "highest" (exact float32
// products, the default), "high" and "medium" (CUDA may use TF32 tensor cores: 10-bit mantissa
// inputs, float32 accumulation). The CPU kernels ignore it. Other strings raise ValueError.
void set_float32_matmul_precision(const std::string& precision);
std::string get_float32_matmul_precision();
bool float32_matmul_allows_tf32();
}  // namespace ember
