// One error convention for the whole library: "[op] message (shapes a=(2, 3), b=(4,))", thrown as a
// standard exception that pybind11 maps to a Python one:
//   std::invalid_argument -> ValueError   (bad shapes, values)
//   ember::TypeError      -> TypeError    (bad dtypes)
//   std::out_of_range     -> IndexError   (indices)
//   ember::OutOfMemory    -> MemoryError  (allocation failures, with the size asked for)
//   std::runtime_error    -> RuntimeError (everything else: CUDA errors, missing backend)
// Nothing in ember calls exit() or abort().
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ember {

struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct OutOfMemory : std::runtime_error { using std::runtime_error::runtime_error; };

// "(2, 3)", "(4,)": a shape (or strides) as Python prints a tuple; any container of int64_t.
std::string shape_str(const int64_t* dims, size_t n);
template <typename Dims>
std::string shape_str(const Dims& dims) { return shape_str(dims.data(), dims.size()); }

template <typename... Parts>
std::string cat_str(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

template <typename Exc = std::invalid_argument, typename... Parts>
[[noreturn]] void fail(const char* op, const Parts&... parts) {
  throw Exc(cat_str("[", op, "] ", parts...));
}

}  // namespace ember

// EMBER_CHECK(cond, op, message parts...) throws ValueError; EMBER_CHECK_T picks the exception type.
#define EMBER_CHECK(cond, op, ...) \
  do { if (!(cond)) ::ember::fail<std::invalid_argument>(op, __VA_ARGS__); } while (0)
#define EMBER_CHECK_T(exc, cond, op, ...) \
  do { if (!(cond)) ::ember::fail<exc>(op, __VA_ARGS__); } while (0)
