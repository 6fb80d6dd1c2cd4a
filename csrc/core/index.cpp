// Indexing by integer arrays (index_select/add, gather/scatter_add, nonzero): index range checks
// and the (outer, n, inner) split around the indexed dim.
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include <algorithm>
#include "core/backend.h"
#include "core/dispatch.h"

namespace ember {

// Checks every index lies in [-n, n) (negative ones count from the end), with one min/max
// reduction; on CUDA this synchronizes, the price of an exception instead of a device fault.
static void check_index_range(const char* op, const Array& idx, int64_t n, const Shape& xshape) {
  dispatch_index(idx.dtype(), op, [](auto) {});
  if (idx.numel() == 0) return;
  Array mn = reduce(ReduceOp::min, idx, {}, false).astype(DType::int64).to(Device{});
  Array mx = reduce(ReduceOp::max, idx, {}, false).astype(DType::int64).to(Device{});
  int64_t lo = *mn.data<int64_t>(), hi = *mx.data<int64_t>();
  if (lo < -n || hi >= n)
    fail<std::out_of_range>(op, "index ", (lo < -n ? lo : hi), " is out of bounds for size ", n,
                            " (shape ", shape_str(xshape), ")");
}

struct Split { int64_t outer = 1, n = 1, inner = 1; };
static Split split_at(const Shape& s, int dim) {
  Split r;
  for (int d = 0; d < int(s.size()); ++d) (d < dim ? r.outer : d == dim ? r.n : r.inner) *= s[d];
  return r;
}

Array index_select(const Array& x, int dim, const Array& idx) {
  check_same_device("index_select", x, idx);
  EMBER_CHECK(idx.ndim() <= 1, "index_select", "index must be 1-d, got shape ", shape_str(idx.shape()));
  EMBER_CHECK(x.ndim() > 0, "index_select", "cannot index a 0-d array");
  dim = normalize_dim(dim, x.ndim(), "index_select");
  check_index_range("index_select", idx, x.shape(dim), x.shape());
  Shape out_shape = x.shape();
  out_shape[dim] = idx.numel();
  Array out = Array::empty(out_shape, x.dtype(), x.device());
  Split s = split_at(x.shape(), dim);
  EMBER_ON_DEVICE(x.device(), index_select, x.contiguous(), idx.contiguous().reshape({idx.numel()}),
                  out, s.outer, s.n, s.inner);
  return out;
}

Array index_add(const Shape& shape, int dim, const Array& idx, const Array& src) {
  check_same_device("index_add", src, idx);
  dim = normalize_dim(dim, int(shape.size()), "index_add");
  Shape expect = shape;
  expect[dim] = idx.numel();
  EMBER_CHECK(src.shape() == expect, "index_add", "src shape ", shape_str(src.shape()),
              " does not match ", shape_str(expect));
  check_index_range("index_add", idx, shape[dim], shape);
  Array out = full(shape, 0.0, src.dtype(), src.device());
  Split s = split_at(shape, dim);
  EMBER_ON_DEVICE(src.device(), index_add, src.contiguous(), idx.contiguous().reshape({idx.numel()}),
                  out, s.outer, s.n, s.inner);
  return out;
}

static void check_gather_shapes(const char* op, const Shape& xs, const Shape& is, int dim) {
  bool ok = xs.size() == is.size();
  for (size_t d = 0; ok && d < xs.size(); ++d) ok = int(d) == dim || xs[d] == is[d];
  EMBER_CHECK(ok, op, "index shape ", shape_str(is), " must match ", shape_str(xs),
              " except in dim ", dim);
}

Array gather(const Array& x, int dim, const Array& idx) {
  check_same_device("gather", x, idx);
  dim = normalize_dim(dim, x.ndim(), "gather");
  check_gather_shapes("gather", x.shape(), idx.shape(), dim);
  check_index_range("gather", idx, x.ndim() ? x.shape(dim) : 1, x.shape());
  Array out = Array::empty(idx.shape(), x.dtype(), x.device());
  Split s = split_at(x.shape(), dim);
  EMBER_ON_DEVICE(x.device(), gather, x.contiguous(), idx.contiguous(), out, s.outer, s.n, s.inner);
  return out;
}

Array scatter_add(const Shape& shape, int dim, const Array& idx, const Array& src) {
  check_same_device("scatter_add", src, idx);
  dim = normalize_dim(dim, int(shape.size()), "scatter_add");
  check_gather_shapes("scatter_add", shape, idx.shape(), dim);
  EMBER_CHECK(src.shape() == idx.shape(), "scatter_add", "src shape ", shape_str(src.shape()),
              " must equal index shape ", shape_str(idx.shape()));
  check_index_range("scatter_add", idx, shape.empty() ? 1 : shape[dim], shape);
  Array out = full(shape, 0.0, src.dtype(), src.device());
  Split s = split_at(shape, dim);
  EMBER_ON_DEVICE(src.device(), scatter_add, src.contiguous(), idx.contiguous(), out, s.outer, s.n, s.inner);
  return out;
}

Array nonzero_flat(const Array& mask) {
  Array m = mask.astype(DType::bool_).contiguous();
  return EMBER_ON_DEVICE(m.device(), nonzero_flat, m);
}

}  // namespace ember
