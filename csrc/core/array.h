// ember::Array: an n-dimensional view (shape, strides in elements, offset in elements, dtype) onto a
// shared, reference-counted Storage that lives on one device. Views (reshape of a contiguous array,
// permute, slice, expand, as_strided) share storage and copy nothing; contiguous(), astype() and to()
// copy only when they must.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "core/dtype.h"
#include "core/error.h"
#include "core/small_vector.h"

namespace ember {

// Shapes and strides (in elements): inline up to rank 6, so making an array allocates no vectors.
using Shape = SmallVector<int64_t, 6>;
constexpr int kMaxDims = 16;

// One entry of a basic index (see Array::basic_index).
struct IndexEntry {
  enum Kind : uint8_t { integer, slice, newaxis, ellipsis } kind;
  int64_t start = 0, stop = 0, step = 1;  // integer: start is the index
};

struct Device {
  enum Kind : uint8_t { cpu = 0, cuda = 1 } kind = cpu;
  int index = 0;
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
  static Device parse(const std::string& s);  // "cpu", "cuda", "cuda:1"
};

// A block of memory on one device. The deleter frees it: ember's own allocators, or a foreign
// owner's release (a NumPy array, a DLPack capsule) for zero-copy imports.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  std::function<void(void*)> deleter;
  Storage(void* d, size_t n, Device dev, std::function<void(void*)> del)
      : data(d), nbytes(n), device(dev), deleter(std::move(del)) {}
  ~Storage() { if (deleter) deleter(data); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
};

class Array {
 public:
  Array() = default;
  Array(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  static Array empty(const Shape& shape, DType dtype, Device device);
  static Shape contiguous_strides(const Shape& shape);

  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t shape(int d) const { return shape_[d]; }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_->device; }
  int ndim() const { return int(shape_.size()); }
  int64_t numel() const;
  size_t itemsize() const { return ember::itemsize(dtype_); }
  size_t nbytes() const { return size_t(numel()) * itemsize(); }
  bool is_contiguous() const;
  bool defined() const { return storage_ != nullptr; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // Pointer to element [0, ..., 0] (storage start + offset).
  void* raw() const { return static_cast<char*>(storage_->data) + offset_ * int64_t(itemsize()); }
  template <typename T> T* data() const { return static_cast<T*>(raw()); }

  // Views: no copies.
  Array as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;
  Array view(const Shape& shape) const;           // fails unless the strides allow it
  Array reshape(const Shape& shape) const;        // view when possible, else a contiguous copy
  Array permute(const std::vector<int>& dims) const;
  Array transpose(int d0, int d1) const;
  Array slice(int dim, int64_t start, int64_t stop, int64_t step) const;
  Array expand(const Shape& shape) const;         // broadcast to shape: stride 0 on new/size-1 dims
  Array squeeze(int dim) const;
  Array select(int dim, int64_t index) const;  // x[..., index, ...]: a slice of one, that dim removed
  // x[key] for a key of ints, slices, None and Ellipsis (NumPy's basic indexing): a view. Slice
  // bounds arrive as Python gives them (a missing start 0, a missing stop INT64_MAX) and are clamped
  // as Python clamps them; a step must be positive.
  Array basic_index(const std::vector<IndexEntry>& key) const;
  Array unsqueeze(int dim) const;

  // Copies (when needed).
  Array contiguous() const;
  Array astype(DType dtype) const;
  Array to(Device device) const;
  Array clone() const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_, strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::float32;
};

int normalize_dim(int dim, int ndim, const char* op);
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);  // resolves one -1
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
void check_same_device(const char* op, const Array& a, const Array& b);

}  // namespace ember
