// Tensor-core building blocks (sm_80+): the m16n8k16 MMA on 16-bit inputs with float32
// accumulators, and the register packing its fragments use. Fragment layouts are the PTX ISA's
// (g = lane / 4, t = lane % 4; "pair" = two consecutive 16-bit values, the lower index in the low half):
//   A (16 x 16, row-major): a[0] = rows g,     cols 2t..2t+1;  a[1] = rows g + 8, cols 2t..2t+1;
//                           a[2] = rows g,     cols 2t+8..;    a[3] = rows g + 8, cols 2t+8..
//   B (16 x 8, "col"):      b[0] = k 2t..2t+1, col g;          b[1] = k 2t+8..2t+9, col g
//   C/D (16 x 8, float):    d[0], d[1] = row g, cols 2t, 2t+1; d[2], d[3] = row g + 8, same cols
// So the C fragments of two adjacent 8-column tiles are, packed to 16 bits, the A fragment of the
// next product over those 16 columns (flash attention's P @ V without a trip through memory).
//
// m16n8k8 on TF32 inputs (one 32-bit register per element, same g and t):
//   A (16 x 8):  a[0] = (g, t), a[1] = (g + 8, t), a[2] = (g, t + 4), a[3] = (g + 8, t + 4)
//   B (8 x 8):   b[0] = (k t, col g), b[1] = (k t + 4, col g);   C/D as for m16n8k16.
//
// ldmatrix.m8n8.x4 loads four 8 x 8 16-bit matrices from shared memory: lanes 8i..8i+7 give the row
// addresses (16 bytes each) of matrix i, and register i of lane l receives matrix i's elements
// (row l / 4, cols 2 (l % 4), +1), i.e. exactly an MMA fragment register; with .trans it receives
// (rows 2 (l % 4), +1; col l / 4), the fragment of the transposed matrix.
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include <cstring>
#include "cuda/device/common.cuh"

namespace ember::cuda::dev {

template <bool kBf16>
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (kBf16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#else
  __trap();  // only launched on sm_80+
#endif
}

// D += A B on TF32 inputs (registers already rounded by to_tf32), float32 accumulation.
__device__ __forceinline__ void mma_16x8x8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}

// float32 -> TF32 (10-bit mantissa), rounded to nearest with ties away from zero, as cuBLAS does;
// the MMA would otherwise just ignore the low 13 mantissa bits (truncation, a biased error).
__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
#else
  r = __float_as_uint(x);
#endif
  return r;
}

// Four 8 x 8 16-bit matrices from shared memory (row address: this lane's, see the header).
template <bool kTrans>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const uint32_t addr = smem_u32(row);
  if constexpr (kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
#else
  __trap();
#endif
}

// Two consecutive 16-bit values of a shared-memory row (even index: 4-byte aligned) as one register.
template <typename T>
__device__ __forceinline__ uint32_t pair(const T* row, int col) {
  return *reinterpret_cast<const uint32_t*>(row + col);
}

// Two 16-bit values (given as their bit patterns) as one register, lo in the low half.
__device__ __forceinline__ uint32_t pack_bits(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

}  // namespace ember::cuda::dev
