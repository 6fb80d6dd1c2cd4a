// The random fills: output allocation, then the backends' counter-based (Philox) generators.
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include "core/backend.h"

namespace ember {

Array random_uniform(const Shape& shape, double lo, double hi, uint64_t seed, uint64_t offset,
                     DType dtype, Device device) {
  EMBER_CHECK_T(TypeError, is_floating(dtype), "rand", "needs a floating dtype, got ", dtype_name(dtype));
  Array out = Array::empty(shape, dtype, device);
  EMBER_ON_DEVICE(device, random_uniform, out, lo, hi, seed, offset);
  return out;
}

Array random_normal(const Shape& shape, double mean, double std, uint64_t seed, uint64_t offset,
                    DType dtype, Device device) {
  EMBER_CHECK_T(TypeError, is_floating(dtype), "randn", "needs a floating dtype, got ", dtype_name(dtype));
  EMBER_CHECK(std >= 0, "randn", "std must be >= 0, got ", std);
  Array out = Array::empty(shape, dtype, device);
  EMBER_ON_DEVICE(device, random_normal, out, mean, std, seed, offset);
  return out;
}

Array random_int(const Shape& shape, int64_t lo, int64_t hi, uint64_t seed, uint64_t offset,
                 DType dtype, Device device) {
  EMBER_CHECK(hi > lo, "randint", "needs low < high, got low=", lo, ", high=", hi);
  Array out = Array::empty(shape, dtype, device);
  EMBER_ON_DEVICE(device, random_int, out, lo, hi, seed, offset);
  return out;
}

}  // namespace ember
