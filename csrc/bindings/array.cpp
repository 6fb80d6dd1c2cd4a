#include "bindings/bindings.h"
#include "core/ops.h"

namespace ember::bindings {

static DType dt(const std::string& s) { return dtype_from_name(s); }
static Device dev(const std::string& s) { return Device::parse(s); }

// A Python key of ints, slices, None and Ellipsis (or one of them) as IndexEntry's. Anything else
// (a tensor, list or array: advanced indexing; a bool, which NumPy and PyTorch read as a 0-d mask,
// not as 0 or 1; a slice bound that is not an integer; an int past int64) is a TypeError, and the
// Python layer's general plan takes the key.
static std::vector<IndexEntry> basic_key(py::handle key) {
  std::vector<IndexEntry> out;
  auto refuse = [] {
    PyErr_Clear();
    throw py::type_error("not a basic index");
  };
  auto add = [&out, &refuse](PyObject* k) {
    if (PyLong_Check(k) && !PyBool_Check(k)) {
      const long long v = PyLong_AsLongLong(k);
      if (v == -1 && PyErr_Occurred()) refuse();
      out.push_back({IndexEntry::integer, v});
    } else if (PySlice_Check(k)) {
      Py_ssize_t start, stop, step;
      if (PySlice_Unpack(k, &start, &stop, &step) < 0) refuse();
      out.push_back({IndexEntry::slice, start, stop, step});
    } else if (k == Py_None) {
      out.push_back({IndexEntry::newaxis});
    } else if (k == Py_Ellipsis) {
      out.push_back({IndexEntry::ellipsis});
    } else {
      refuse();
    }
  };
  if (PyTuple_Check(key.ptr())) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(key.ptr()); ++i) add(PyTuple_GET_ITEM(key.ptr(), i));
  } else {
    add(key.ptr());
  }
  return out;
}

// The arrays of a list or tuple whose items are Arrays or Python tensors (an Array in `_a`), read
// here so that cat's and stack's Python side hands its list over as it is.
static std::vector<Array> arrays_of(const char* op, py::handle items) {
  static PyObject* const array_type = py::type::of<Array>().ptr();
  static PyObject* const name = PyUnicode_InternFromString("_a");
  if (!PyList_Check(items.ptr()) && !PyTuple_Check(items.ptr()))
    throw py::type_error(std::string("[") + op + "] expects a list or tuple of tensors");
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(items.ptr());
  PyObject** item = PySequence_Fast_ITEMS(items.ptr());
  std::vector<Array> out;
  out.reserve(size_t(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (Py_TYPE(item[i]) == reinterpret_cast<PyTypeObject*>(array_type)) {
      out.push_back(py::handle(item[i]).cast<const Array&>());
      continue;
    }
    py::object a = py::reinterpret_steal<py::object>(PyObject_GetAttr(item[i], name));
    if (!a || Py_TYPE(a.ptr()) != reinterpret_cast<PyTypeObject*>(array_type)) {
      PyErr_Clear();
      throw py::type_error(std::string("[") + op + "] expects tensors, got " + Py_TYPE(item[i])->tp_name);
    }
    out.push_back(a.cast<const Array&>());
  }
  return out;
}

void init_array(py::module_& m) {
  py::class_<Array>(m, "Array")
      .def_property_readonly("shape", [](const Array& a) { return a.shape(); })
      .def_property_readonly("strides", [](const Array& a) { return a.strides(); })
      .def_property_readonly("offset", &Array::offset)
      .def_property_readonly("dtype", [](const Array& a) { return std::string(dtype_name(a.dtype())); })
      .def_property_readonly("device", [](const Array& a) { return a.device().str(); })
      .def_property_readonly("ndim", &Array::ndim)
      .def_property_readonly("itemsize", &Array::itemsize)
      .def_property_readonly("data_ptr", [](const Array& a) { return reinterpret_cast<uintptr_t>(a.raw()); })
      .def_property_readonly("storage_nbytes", [](const Array& a) { return a.storage()->nbytes; })
      .def("numel", &Array::numel)
      .def("is_contiguous", &Array::is_contiguous)
      .def("same_storage", [](const Array& a, const Array& b) { return a.storage() == b.storage(); })
      .def("as_strided", &Array::as_strided)
      .def("view", &Array::view)
      .def("reshape", &Array::reshape)
      .def("permute", &Array::permute)
      .def("transpose", &Array::transpose)
      .def("slice", &Array::slice)
      .def("expand", &Array::expand)
      .def("squeeze", &Array::squeeze)
      .def("select", &Array::select)
      .def("basic_index", [](const Array& a, py::handle key) { return a.basic_index(basic_key(key)); })
      .def("unsqueeze", &Array::unsqueeze)
      .def("contiguous", &Array::contiguous)
      .def("clone", &Array::clone)
      .def("astype", [](const Array& a, const std::string& t) { return a.astype(dt(t)); })
      .def("to", [](const Array& a, const std::string& d) { return a.to(dev(d)); })
      .def("copy_", [](Array& dst, const Array& src) { copy_(dst, src); })
      .def("item", [](const Array& a) -> py::object {  // the Python type of the dtype's values
        const ScalarValue v = item(a);
        if (v.floating) return py::float_(v.real);
        if (a.dtype() == DType::bool_) return py::bool_(v.integer != 0);
        return py::int_(v.integer);
      });

  m.def("empty", [](const Shape& s, const std::string& t, const std::string& d) { return Array::empty(s, dt(t), dev(d)); });
  m.def("full", [](const Shape& s, double v, const std::string& t, const std::string& d) { return full(s, v, dt(t), dev(d)); });
  m.def("arange", [](double a, double b, double st, const std::string& t, const std::string& d) { return arange(a, b, st, dt(t), dev(d)); });
  m.def("cat", [](py::handle xs, int dim) { return cat(arrays_of("cat", xs), dim); });
  m.def("stack", [](py::handle xs, int dim) { return stack(arrays_of("stack", xs), dim); });
  m.def("promote_types", [](const std::string& a, const std::string& b) { return std::string(dtype_name(promote_types(dt(a), dt(b)))); });
  m.def("broadcast_shapes", [](const Shape& a, const Shape& b) { return broadcast_shapes(a, b, "broadcast"); });
}

}  // namespace ember::bindings
