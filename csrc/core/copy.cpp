// Copies between any layouts and devices, fills, arange, cat and stack, and item.
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include <algorithm>
#include <cmath>
#include <type_traits>
#include "core/backend.h"
#include "core/dispatch.h"

namespace ember {

void copy_(Array& dst, const Array& src_in) {
  Array src = src_in.expand(dst.shape());
  if (src.device() == dst.device()) {
    EMBER_ON_DEVICE(dst.device(), copy, src, dst);
    return;
  }
  // Across devices: cast and compact on the source side, move the bytes, scatter on the target side.
  Array packed = src.astype(dst.dtype()).contiguous();
  Array landing = dst.is_contiguous() ? dst : Array::empty(dst.shape(), dst.dtype(), dst.device());
  cuda::memcpy_bytes(landing.raw(), landing.device(), packed.raw(), packed.device(), packed.nbytes());
  if (!dst.is_contiguous()) EMBER_ON_DEVICE(dst.device(), copy, landing, dst);
}

Array full(const Shape& shape, double value, DType dtype, Device device) {
  Array out = Array::empty(shape, dtype, device);
  EMBER_ON_DEVICE(device, fill, out, value);
  return out;
}

Array arange(double start, double stop, double step, DType dtype, Device device) {
  EMBER_CHECK(step != 0 && std::isfinite(start) && std::isfinite(stop) && std::isfinite(step),
              "arange", "needs finite start/stop and a non-zero step, got (", start, ", ", stop,
              ", ", step, ")");
  double len = std::ceil((stop - start) / step);
  Array out = Array::empty({int64_t(std::max(len, 0.0))}, dtype, device);
  EMBER_ON_DEVICE(device, arange, out, start, step);
  return out;
}

Array cat(const std::vector<Array>& xs, int dim) {
  EMBER_CHECK(!xs.empty(), "cat", "expects a non-empty list of arrays");
  const Array& first = xs[0];
  EMBER_CHECK(first.ndim() > 0, "cat", "zero-dimensional arrays cannot be concatenated");
  dim = normalize_dim(dim, first.ndim(), "cat");
  Shape shape = first.shape();
  DType t = first.dtype();
  shape[dim] = 0;
  for (const Array& x : xs) {
    check_same_device("cat", first, x);
    bool ok = x.ndim() == first.ndim();
    for (int d = 0; ok && d < x.ndim(); ++d) ok = d == dim || x.shape(d) == first.shape(d);
    EMBER_CHECK(ok, "cat", "shapes must match except in dim ", dim, " (shapes ",
                shape_str(first.shape()), " and ", shape_str(x.shape()), ")");
    shape[dim] += x.shape(dim);
    t = promote_types(t, x.dtype());
  }
  Array out = Array::empty(shape, t, first.device());
  int64_t at = 0;
  for (const Array& x : xs) {
    Array part = out.slice(dim, at, at + x.shape(dim), 1);
    copy_(part, x);
    at += x.shape(dim);
  }
  return out;
}

Array stack(const std::vector<Array>& xs, int dim) {
  EMBER_CHECK(!xs.empty(), "stack", "expects a non-empty list of arrays");
  int n = xs[0].ndim() + 1;
  if (dim < -n || dim >= n) fail<std::out_of_range>("stack", "dim ", dim, " out of range");
  std::vector<Array> parts;
  for (const Array& x : xs) {
    EMBER_CHECK(x.shape() == xs[0].shape(), "stack", "all arrays must have one shape, got ",
                shape_str(xs[0].shape()), " and ", shape_str(x.shape()));
    parts.push_back(x.unsqueeze(dim));
  }
  return cat(parts, dim);
}

ScalarValue item(const Array& a) {
  EMBER_CHECK(a.numel() == 1, "item", "only one-element tensors convert to a Python scalar, got shape ",
              shape_str(a.shape()));
  const Array host = a.device().kind == Device::cpu ? a : a.to(Device{});
  return dispatch_all(host.dtype(), "item", [&](auto tag) {
    using T = decltype(tag);
    const auto v = compute_t<T>(*static_cast<const T*>(host.raw()));  // 16-bit floats widen exactly
    if constexpr (std::is_floating_point_v<decltype(v)>) return ScalarValue{true, double(v), 0};
    else return ScalarValue{false, 0.0, int64_t(v)};
  });
}

}  // namespace ember
