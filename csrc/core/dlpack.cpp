#include "core/dlpack.h"
#include <algorithm>

namespace ember::dlpack {
namespace {

DLDataType to_dl(DType t) {
  switch (t) {
    case DType::float32: return {kFloat, 32, 1};
    case DType::float64: return {kFloat, 64, 1};
    case DType::float16: return {kFloat, 16, 1};
    case DType::bfloat16: return {kBfloat, 16, 1};
    case DType::int64: return {kInt, 64, 1};
    case DType::int32: return {kInt, 32, 1};
    case DType::bool_: return {kBool, 8, 1};
  }
  return {kFloat, 32, 1};
}

DType from_dl(DLDataType t) {
  if (t.lanes == 1) {
    if (t.code == kFloat && t.bits == 32) return DType::float32;
    if (t.code == kFloat && t.bits == 64) return DType::float64;
    if (t.code == kFloat && t.bits == 16) return DType::float16;
    if (t.code == kBfloat && t.bits == 16) return DType::bfloat16;
    if (t.code == kInt && t.bits == 64) return DType::int64;
    if (t.code == kInt && t.bits == 32) return DType::int32;
    if (t.code == kBool && t.bits == 8) return DType::bool_;
  }
  fail<TypeError>("from_dlpack", "unsupported DLPack dtype (code ", int(t.code), ", bits ",
                  int(t.bits), ", lanes ", t.lanes, ")");
}

// What an exported tensor owns: a reference to the Array (keeps the storage alive) and the
// shape/stride arrays the DLTensor points into.
struct Holder {
  Array array;
  Shape shape, strides;
};

template <typename Managed>
void fill_tensor(Managed* m, Holder* h) {
  const Array& a = h->array;
  DLTensor& t = m->dl_tensor;
  t.data = a.storage()->data;
  t.byte_offset = uint64_t(a.offset()) * a.itemsize();
  t.device = device_of(a);
  t.ndim = a.ndim();
  t.dtype = to_dl(a.dtype());
  t.shape = h->shape.data();
  t.strides = h->strides.data();
  m->manager_ctx = h;
}

template <typename Managed>
Array import(Managed* m) {
  const DLTensor& t = m->dl_tensor;
  auto release = [m](Managed* p) { if (p && p->deleter) p->deleter(p); };
  Device dev;
  if (t.device.device_type == kCPU || t.device.device_type == kCUDAHost) dev = Device{Device::cpu, 0};
  else if (t.device.device_type == kCUDA) dev = Device{Device::cuda, t.device.device_id};
  else { release(m); fail<std::runtime_error>("from_dlpack", "unsupported device type ", t.device.device_type); }
  DType dtype;
  try { dtype = from_dl(t.dtype); } catch (...) { release(m); throw; }
  if (t.ndim < 0 || t.ndim > kMaxDims) {
    release(m);
    fail("from_dlpack", "unsupported number of dims ", t.ndim);
  }
  Shape shape(t.shape, t.shape + t.ndim);
  Shape strides = t.strides ? Shape(t.strides, t.strides + t.ndim) : Array::contiguous_strides(shape);
  // The storage spans the addressed elements; negative strides move its start below data.
  int64_t lo = 0, hi = 0, n = 1;
  for (int d = 0; d < t.ndim; ++d) {
    n *= shape[d];
    if (shape[d] > 0) ((strides[d] < 0) ? lo : hi) += (shape[d] - 1) * strides[d];
  }
  size_t item = itemsize(dtype);
  char* base = static_cast<char*>(t.data) + t.byte_offset + lo * int64_t(item);
  size_t nbytes = n == 0 ? 0 : size_t(hi - lo + 1) * item;
  auto storage = std::make_shared<Storage>(base, nbytes, dev, [m](void*) { m->deleter ? m->deleter(m) : void(); });
  return Array(storage, shape, strides, -lo, dtype);
}

}  // namespace

DLDevice device_of(const Array& a) {
  return a.device().kind == Device::cpu ? DLDevice{kCPU, 0} : DLDevice{kCUDA, a.device().index};
}

DLManagedTensor* to_legacy(const Array& a) {
  auto* h = new Holder{a, a.shape(), a.strides()};
  auto* m = new DLManagedTensor{};
  fill_tensor(m, h);
  m->deleter = [](DLManagedTensor* self) {
    delete static_cast<Holder*>(self->manager_ctx);
    delete self;
  };
  return m;
}

DLManagedTensorVersioned* to_versioned(const Array& a, bool copied) {
  auto* h = new Holder{a, a.shape(), a.strides()};
  auto* m = new DLManagedTensorVersioned{};
  m->version = {kMajor, kMinor};
  m->flags = copied ? kFlagIsCopied : 0;
  fill_tensor(m, h);
  m->deleter = [](DLManagedTensorVersioned* self) {
    delete static_cast<Holder*>(self->manager_ctx);
    delete self;
  };
  return m;
}

Array from_legacy(DLManagedTensor* t) { return import(t); }

Array from_versioned(DLManagedTensorVersioned* t) {
  if (t->version.major > kMajor) {
    if (t->deleter) t->deleter(t);
    fail<std::runtime_error>("from_dlpack", "DLPack major version ", t->version.major,
                             " is newer than the supported ", kMajor);
  }
  return import(t);
}

}  // namespace ember::dlpack
