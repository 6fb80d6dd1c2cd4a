// NumPy and DLPack glue: zero-copy wrapping both ways. Python objects kept alive by C++ storage are
// released with the GIL held.
#include <pybind11/numpy.h>
#include "bindings/bindings.h"
#include "core/dlpack.h"

namespace ember::bindings {
namespace {

const char* numpy_format(DType t) {
  switch (t) {
    case DType::float32: return "f4";
    case DType::float64: return "f8";
    case DType::float16: return "f2";
    case DType::int64: return "i8";
    case DType::int32: return "i4";
    case DType::bool_: return "?";
    default: fail<TypeError>("numpy", "dtype ", dtype_name(t), " has no NumPy equivalent");
  }
}

py::array to_numpy(const Array& a) {
  if (a.device().kind != Device::cpu)
    fail<TypeError>("numpy", "array is on ", a.device().str(), "; call .cpu() first");
  Shape byte_strides = a.strides();
  for (auto& s : byte_strides) s *= int64_t(a.itemsize());
  auto* keep = new Array(a);
  py::capsule owner(keep, [](void* p) { delete static_cast<Array*>(p); });
  return py::array(py::dtype(numpy_format(a.dtype())), a.shape(), byte_strides, a.raw(), owner);
}

Array from_numpy(py::array arr) {
  std::string kind(1, arr.dtype().kind());
  DType t;
  size_t item = size_t(arr.itemsize());
  if (kind == "f" && item == 4) t = DType::float32;
  else if (kind == "f" && item == 8) t = DType::float64;
  else if (kind == "f" && item == 2) t = DType::float16;
  else if (kind == "i" && item == 8) t = DType::int64;
  else if (kind == "i" && item == 4) t = DType::int32;
  else if (kind == "b" && item == 1) t = DType::bool_;
  else fail<TypeError>("from_numpy", "unsupported NumPy dtype '", std::string(py::str(arr.dtype())), "'");
  Shape shape(arr.shape(), arr.shape() + arr.ndim()), strides(arr.ndim());
  int64_t lo = 0, hi = 0, n = 1;
  for (int d = 0; d < arr.ndim(); ++d) {
    EMBER_CHECK(arr.strides()[d] % int64_t(item) == 0, "from_numpy", "strides not a multiple of the item size");
    strides[d] = arr.strides()[d] / int64_t(item);
    n *= shape[d];
    if (shape[d] > 0) ((strides[d] < 0) ? lo : hi) += (shape[d] - 1) * strides[d];
  }
  char* base = static_cast<char*>(const_cast<void*>(arr.data())) + lo * int64_t(item);
  size_t nbytes = n == 0 ? 0 : size_t(hi - lo + 1) * item;
  auto* keep = new py::object(arr);
  auto storage = std::make_shared<Storage>(base, nbytes, Device{}, [keep](void*) {
    py::gil_scoped_acquire gil;
    delete keep;
  });
  return Array(storage, shape, strides, -lo, t);
}

// Capsule destructors: free the tensor only if no consumer took it (renamed the capsule "used_...").
void destroy_legacy(PyObject* cap) {
  if (PyCapsule_IsValid(cap, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    if (m && m->deleter) m->deleter(m);
  }
  PyErr_Clear();
}
void destroy_versioned(PyObject* cap) {
  if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
    if (m && m->deleter) m->deleter(m);
  }
  PyErr_Clear();
}

py::object to_dlpack(const Array& a, bool versioned, bool copied) {
  PyObject* cap = versioned
      ? PyCapsule_New(dlpack::to_versioned(a, copied), "dltensor_versioned", destroy_versioned)
      : PyCapsule_New(dlpack::to_legacy(a), "dltensor", destroy_legacy);
  if (!cap) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(cap);
}

Array from_dlpack_capsule(py::object capsule) {
  PyObject* cap = capsule.ptr();
  if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
    PyCapsule_SetName(cap, "used_dltensor_versioned");
    return dlpack::from_versioned(m);
  }
  if (PyCapsule_IsValid(cap, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    PyCapsule_SetName(cap, "used_dltensor");
    return dlpack::from_legacy(m);
  }
  PyErr_Clear();
  fail<TypeError>("from_dlpack", "expected an unused 'dltensor' or 'dltensor_versioned' capsule");
}

}  // namespace

void init_interop(py::module_& m) {
  m.def("to_numpy", &to_numpy);
  m.def("from_numpy", &from_numpy);
  m.def("to_dlpack", &to_dlpack, py::arg("array"), py::arg("versioned"), py::arg("copied") = false);
  m.def("from_dlpack_capsule", &from_dlpack_capsule);
  m.def("dlpack_device", [](const Array& a) {
    DLDevice d = dlpack::device_of(a);
    return py::make_tuple(d.device_type, d.device_id);
  });
}

}  // namespace ember::bindings
