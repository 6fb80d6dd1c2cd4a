#include "core/array.h"
#include <algorithm>
#include "core/backend.h"
#include "core/ops.h"

namespace ember {

std::string shape_str(const int64_t* s, size_t n) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < n; ++i) os << (i ? ", " : "") << s[i];
  if (n == 1) os << ",";
  os << ")";
  return os.str();
}

std::string Device::str() const {
  return kind == cpu ? std::string("cpu") : cat_str("cuda:", index);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return Device{cpu, 0};
  if (s == "cuda") return Device{cuda, 0};
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int idx = std::stoi(s.substr(5), &used);
      if (used == s.size() - 5 && idx >= 0) return Device{cuda, idx};
    } catch (const std::exception&) {}
  }
  fail("device", "unknown device '", s, "' (expected 'cpu', 'cuda' or 'cuda:N')");
}

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  if (device.kind == Device::cpu) {
    void* p = cpu::allocate(nbytes, 0);
    return std::make_shared<Storage>(p, nbytes, device, [](void* q) { cpu::deallocate(q, 0); });
  }
  int idx = device.index;
  void* p = cuda::allocate(nbytes, idx);
  return std::make_shared<Storage>(p, nbytes, device, [idx](void* q) { cuda::deallocate(q, idx); });
}

Array::Array(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype)
    : storage_(std::move(storage)), shape_(std::move(shape)), strides_(std::move(strides)),
      offset_(offset), dtype_(dtype) {
  EMBER_CHECK(shape_.size() == strides_.size(), "Array", "shape ", shape_str(shape_),
              " and strides ", shape_str(strides_), " differ in length");
  EMBER_CHECK(int(shape_.size()) <= kMaxDims, "Array", "at most ", kMaxDims, " dims, got ",
              shape_.size());
}

Shape Array::contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    st[d] = s;
    // Only an empty array's huge dims (2^62 x 2^62 x 0) can overflow; its strides address nothing,
    // so saturate instead of the undefined signed wrap (UBSan).
    if (__builtin_mul_overflow(s, std::max<int64_t>(shape[d], 1), &s)) s = INT64_MAX;
  }
  return st;
}

Array Array::empty(const Shape& shape, DType dtype, Device device) {
  int64_t n = 1, nbytes = 0;
  bool overflow = false;
  for (int64_t s : shape) {
    EMBER_CHECK(s >= 0, "empty", "negative dimension in shape ", shape_str(shape));
    overflow |= __builtin_mul_overflow(n, s, &n);
  }
  // A wrapped byte count would allocate a tiny block for a huge shape: refuse before allocating.
  overflow |= __builtin_mul_overflow(n, int64_t(ember::itemsize(dtype)), &nbytes);
  const bool has_zero = std::find(shape.begin(), shape.end(), 0) != shape.end();
  if (has_zero) nbytes = 0, overflow = false;
  EMBER_CHECK_T(OutOfMemory, !overflow, "empty", "shape ", shape_str(shape), " of ", dtype_name(dtype),
                " needs more than 2^63 bytes");
  std::shared_ptr<Storage> st;
  try {
    st = Storage::allocate(size_t(nbytes), device);
  } catch (const OutOfMemory& e) {  // the allocator knows only a byte count: say what the block was for
    throw OutOfMemory(cat_str(e.what(), "; for an array of shape ", shape_str(shape), " of ", dtype_name(dtype)));
  }
  return Array(std::move(st), shape, contiguous_strides(shape), 0, dtype);
}

int64_t Array::numel() const {
  int64_t n = 1;
  for (int64_t s : shape_) n *= s;
  return n;
}

bool Array::is_contiguous() const {
  int64_t expect = 1;
  for (int d = ndim() - 1; d >= 0; --d) {
    if (shape_[d] != 1 && strides_[d] != expect) return false;
    expect *= shape_[d];
  }
  return true;
}

int normalize_dim(int dim, int ndim, const char* op) {
  int n = std::max(ndim, 1);
  if (dim < -n || dim >= n)
    fail<std::out_of_range>(op, "dim ", dim, " out of range for a ", ndim, "-d array");
  return dim < 0 ? dim + n : dim;
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      EMBER_CHECK(infer < 0, op, "only one dimension can be -1, got ", shape_str(shape));
      infer = int(i);
    } else {
      EMBER_CHECK(out[i] >= 0, op, "invalid shape ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    EMBER_CHECK(known != 0 && numel % known == 0, op, "cannot reshape ", numel, " elements into ",
                shape_str(shape));
    out[infer] = numel / known;
  }
  EMBER_CHECK(infer >= 0 || known == numel, op, "cannot reshape ", numel, " elements into ",
              shape_str(shape));
  return out;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    EMBER_CHECK(da == db || da == 1 || db == 1, op, "shapes cannot be broadcast (shapes a=",
                shape_str(a), ", b=", shape_str(b), ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void check_same_device(const char* op, const Array& a, const Array& b) {
  if (a.device() != b.device())
    fail(op, "expected all arrays on one device, got ", a.device().str(), " and ",
         b.device().str(), " (shapes a=", shape_str(a.shape()), ", b=", shape_str(b.shape()), ")");
}

Array Array::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  EMBER_CHECK(shape.size() == strides.size(), "as_strided", "shape ", shape_str(shape),
              " and strides ", shape_str(strides), " differ in length");
  // Bounds: the lowest and highest element addressed must lie inside the storage.
  int64_t lo = offset, hi = offset, n = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    EMBER_CHECK(shape[d] >= 0, "as_strided", "negative size in shape ", shape_str(shape));
    n *= shape[d];
    if (shape[d] == 0) continue;
    int64_t span = (shape[d] - 1) * strides[d];
    (span < 0 ? lo : hi) += span;
  }
  int64_t capacity = int64_t(storage_->nbytes / itemsize());
  EMBER_CHECK(n == 0 || (lo >= 0 && hi < capacity), "as_strided", "view of shape ",
              shape_str(shape), " strides ", shape_str(strides), " offset ", offset,
              " falls outside a storage of ", capacity, " elements");
  return Array(storage_, shape, strides, offset, dtype_);
}

// A view with a new shape exists when each run of new dims maps onto a run of old dims that is
// itself contiguous in memory (PyTorch's view rule).
Array Array::view(const Shape& new_shape_in) const {
  Shape new_shape = infer_shape(new_shape_in, numel(), "view");
  if (is_contiguous()) return as_strided(new_shape, contiguous_strides(new_shape), offset_);
  Shape new_strides(new_shape.size());
  int64_t numel_ = numel();
  if (numel_ == 0) return as_strided(new_shape, contiguous_strides(new_shape), offset_);
  int view_d = int(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides_.empty() ? 1 : strides_.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int d = ndim() - 1; d >= 0; --d) {
    tensor_numel *= shape_[d];
    bool chunk_ends = d == 0 || (shape_[d - 1] != 1 && strides_[d - 1] != tensor_numel * chunk_base_stride);
    if (chunk_ends) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        new_strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel)
        fail("view", "shape ", shape_str(new_shape_in), " is not compatible with strides ",
             shape_str(strides_), " of shape ", shape_str(shape_), "; use reshape()");
      if (d > 0) {
        chunk_base_stride = strides_[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  EMBER_CHECK(view_d == -1, "view", "shape ", shape_str(new_shape_in), " is not compatible with ",
              shape_str(shape_));
  return as_strided(new_shape, new_strides, offset_);
}

Array Array::reshape(const Shape& shape) const {
  Shape s = infer_shape(shape, numel(), "reshape");
  try {
    return view(s);
  } catch (const std::invalid_argument&) {
    return contiguous().view(s);
  }
}

Array Array::permute(const std::vector<int>& dims) const {
  EMBER_CHECK(int(dims.size()) == ndim(), "permute", "expected ", ndim(), " dims, got ",
              dims.size(), " for shape ", shape_str(shape_));
  Shape sh(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int d = normalize_dim(dims[i], ndim(), "permute");
    EMBER_CHECK(!seen[d], "permute", "repeated dim ", dims[i]);
    seen[d] = true;
    sh[i] = shape_[d];
    st[i] = strides_[d];
  }
  return Array(storage_, sh, st, offset_, dtype_);
}

Array Array::transpose(int d0, int d1) const {
  if (ndim() == 0) return *this;
  std::vector<int> dims(ndim());
  for (int i = 0; i < ndim(); ++i) dims[i] = i;
  std::swap(dims[normalize_dim(d0, ndim(), "transpose")], dims[normalize_dim(d1, ndim(), "transpose")]);
  return permute(dims);
}

Array Array::slice(int dim, int64_t start, int64_t stop, int64_t step) const {
  dim = normalize_dim(dim, ndim(), "slice");
  EMBER_CHECK(step > 0, "slice", "step must be positive, got ", step);
  int64_t n = shape_[dim];
  auto clampi = [n](int64_t i) { if (i < 0) i += n; return std::min(std::max<int64_t>(i, 0), n); };
  start = clampi(start);
  stop = clampi(stop);
  int64_t len = stop > start ? (stop - start + step - 1) / step : 0;
  Shape sh = shape_, st = strides_;
  sh[dim] = len;
  st[dim] = strides_[dim] * step;
  return Array(storage_, sh, st, offset_ + (len ? start * strides_[dim] : 0), dtype_);
}

Array Array::expand(const Shape& shape) const {
  EMBER_CHECK(shape.size() >= shape_.size(), "expand", "cannot expand shape ", shape_str(shape_),
              " to ", shape_str(shape));
  size_t lead = shape.size() - shape_.size();
  Shape st(shape.size(), 0), sh = shape;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      EMBER_CHECK(shape[i] >= 0, "expand", "invalid target shape ", shape_str(shape));
      continue;
    }
    int64_t have = shape_[i - lead];
    if (shape[i] == -1) sh[i] = have;
    if (have == sh[i]) st[i] = strides_[i - lead];
    else EMBER_CHECK(have == 1, "expand", "cannot expand shape ", shape_str(shape_), " to ",
                     shape_str(shape));
  }
  return Array(storage_, sh, st, offset_, dtype_);
}

Array Array::select(int dim, int64_t index) const {
  const int d = normalize_dim(dim, ndim(), "select");
  EMBER_CHECK_T(std::out_of_range, index >= -shape_[d] && index < shape_[d], "index", "index ", index,
                " is out of bounds for dimension ", d, " with size ", shape_[d], " (shape ", shape_str(shape_), ")");
  const int64_t i = index < 0 ? index + shape_[d] : index;
  return slice(d, i, i + 1, 1).squeeze(d);
}

Array Array::basic_index(const std::vector<IndexEntry>& key) const {
  int consumed = 0, ellipses = 0;
  for (const IndexEntry& e : key) {
    consumed += e.kind == IndexEntry::integer || e.kind == IndexEntry::slice;
    ellipses += e.kind == IndexEntry::ellipsis;
  }
  EMBER_CHECK_T(std::out_of_range, ellipses <= 1, "index", "an index can only have a single ellipsis");
  EMBER_CHECK_T(std::out_of_range, consumed <= ndim(), "index", "too many indices for a tensor of shape ",
                shape_str(shape_));
  Array out = *this;
  int dim = 0, src = 0;  // dim: in the result so far; src: in this array
  for (const IndexEntry& e : key) {
    switch (e.kind) {
      case IndexEntry::ellipsis:
        dim += ndim() - consumed, src += ndim() - consumed;
        break;
      case IndexEntry::newaxis:
        out = out.unsqueeze(dim++);
        break;
      case IndexEntry::slice:
        EMBER_CHECK(e.step > 0, "index", "slice step must be positive, got ", e.step);
        out = out.slice(dim++, e.start, e.stop, e.step);
        ++src;
        break;
      case IndexEntry::integer: {
        const int64_t n = out.shape(dim);
        EMBER_CHECK_T(std::out_of_range, e.start >= -n && e.start < n, "index", "index ", e.start,
                      " is out of bounds for dimension ", src, " with size ", n, " (shape ", shape_str(shape_), ")");
        out = out.select(dim, e.start);
        ++src;
        break;
      }
    }
  }
  return out;
}

Array Array::squeeze(int dim) const {
  dim = normalize_dim(dim, ndim(), "squeeze");
  if (ndim() == 0 || shape_[dim] != 1) return *this;
  Shape sh = shape_, st = strides_;
  sh.erase(sh.begin() + dim);
  st.erase(st.begin() + dim);
  return Array(storage_, sh, st, offset_, dtype_);
}

Array Array::unsqueeze(int dim) const {
  int n = ndim() + 1;
  if (dim < -n || dim >= n)
    fail<std::out_of_range>("unsqueeze", "dim ", dim, " out of range for a ", ndim(), "-d array");
  if (dim < 0) dim += n;
  Shape sh = shape_, st = strides_;
  int64_t s = dim < ndim() ? strides_[dim] * shape_[dim] : 1;
  sh.insert(sh.begin() + dim, 1);
  st.insert(st.begin() + dim, s);
  return Array(storage_, sh, st, offset_, dtype_);
}

Array Array::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Array Array::clone() const {
  Array out = Array::empty(shape_, dtype_, device());
  copy_(out, *this);
  return out;
}

Array Array::astype(DType dtype) const {
  if (dtype == dtype_) return *this;
  Array out = Array::empty(shape_, dtype, device());
  copy_(out, *this);
  return out;
}

Array Array::to(Device device) const {
  if (device == this->device()) return *this;
  Array out = Array::empty(shape_, dtype_, device);
  copy_(out, *this);
  return out;
}

}  // namespace ember
