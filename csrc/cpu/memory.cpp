// CPU memory: 64-byte aligned (one cache line, one AVX-512 register), so vector loads of a
// fresh array never straddle lines. Allocation failures become MemoryError with the size.
#include <cstdlib>
#include "core/backend.h"

namespace ember::cpu {

void* allocate(size_t nbytes, int) {
  if (nbytes == 0) nbytes = 64;  // a valid, unique pointer even for empty arrays
  size_t rounded = (nbytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail<OutOfMemory>("alloc", "cannot allocate ", nbytes, " bytes on cpu");
  return p;
}

void deallocate(void* p, int) { std::free(p); }

}  // namespace ember::cpu
