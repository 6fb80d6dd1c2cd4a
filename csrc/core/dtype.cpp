#include "core/dtype.h"
#include "core/error.h"

namespace ember {

size_t itemsize(DType t) {
  switch (t) {
    case DType::float32: case DType::int32: return 4;
    case DType::float64: case DType::int64: return 8;
    case DType::float16: case DType::bfloat16: return 2;
    case DType::bool_: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
    case DType::int64: return "int64";
    case DType::int32: return "int32";
    case DType::bool_: return "bool";
  }
  return "?";
}

DType dtype_from_name(const std::string& n) {
  for (DType t : {DType::float32, DType::float64, DType::float16, DType::bfloat16, DType::int64,
                  DType::int32, DType::bool_})
    if (n == dtype_name(t)) return t;
  fail<TypeError>("dtype", "unknown dtype '", n, "'");
}

bool is_floating(DType t) {
  return t == DType::float32 || t == DType::float64 || t == DType::float16 || t == DType::bfloat16;
}

// Rank: bool < int32 < int64 < (float16, bfloat16) < float32 < float64; float16 with bfloat16
// gives float32, as in PyTorch.
static int rank(DType t) {
  switch (t) {
    case DType::bool_: return 0;
    case DType::int32: return 1;
    case DType::int64: return 2;
    case DType::float16: case DType::bfloat16: return 3;
    case DType::float32: return 4;
    case DType::float64: return 5;
  }
  return 0;
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (rank(a) == 3 && rank(b) == 3) return DType::float32;
  return rank(a) >= rank(b) ? a : b;
}

}  // namespace ember
