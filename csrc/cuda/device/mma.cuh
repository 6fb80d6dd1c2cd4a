// Tensor-core building blocks (sm_80+): the m16n8k16 MMA on 16-bit inputs with float32
// accumulators, and the register packing its fragments use. Fragment layouts are the PTX ISA's
// (g = lane / 4, t = lane % 4; "pair" = two consecutive 16-bit values, the lower index in the low half):
//   A (16 x 16, row-major): a[0] = rows g,     cols 2t..2t+1;  a[1] = rows g + 8, cols 2t..2t+1;
//                           a[2] = rows g,     cols 2t+8..;    a[3] = rows g + 8, cols 2t+8..
//   B (16 x 8, "col"):      b[0] = k 2t..2t+1, col g;          b[1] = k 2t+8..2t+9, col g
//   C/D (16 x 8, float):    d[0], d[1] = row g, cols 2t, 2t+1; d[2], d[3] = row g + 8, same cols
// So the C fragments of two adjacent 8-column tiles are, packed to 16 bits, the A fragment of the
// next product over those 16 columns (flash attention's P @ V without a trip through memory).
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include <cstring>

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

// Two consecutive 16-bit values of a shared-memory row (even index: 4-byte aligned) as one register.
template <typename T>
__device__ __forceinline__ uint32_t pair(const T* row, int col) {
  return *reinterpret_cast<const uint32_t*>(row + col);
}

// Two 16-bit values (given as their bit patterns) as one register, lo in the low half.
__device__ __forceinline__ uint32_t pack_bits(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

}  // namespace ember::cuda::dev
