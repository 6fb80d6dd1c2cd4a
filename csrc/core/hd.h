// EMBER_HD marks functions usable from host code and, when compiled by nvcc, from device code.
// Scalar math shared by the CPU and CUDA backends is written once with it (one formula, two backends).
#pragma once
#if defined(__CUDACC__)
#define EMBER_HD __host__ __device__ __forceinline__
#else
#define EMBER_HD inline
#endif
