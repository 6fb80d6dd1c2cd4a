// One init_<area>(m) per bindings file; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <optional>
#include "core/array.h"

namespace py = pybind11;

// Shapes cross as Python sequences of ints (any list or tuple in, a tuple out), as std::vector did
// through pybind11/stl.h, without the vector.
namespace pybind11::detail {
template <>
struct type_caster<ember::Shape> {
  PYBIND11_TYPE_CASTER(ember::Shape, const_name("Sequence[int]"));

  bool load(handle src, bool convert) {
    if (!isinstance<sequence>(src) || isinstance<str>(src) || isinstance<bytes>(src)) return false;
    const auto seq = reinterpret_borrow<sequence>(src);
    value.clear();
    value.reserve(seq.size());
    for (const auto& item : seq) {
      make_caster<int64_t> element;
      if (!element.load(item, convert)) return false;
      value.push_back(cast_op<int64_t>(element));
    }
    return true;
  }

  static handle cast(const ember::Shape& shape, return_value_policy, handle) {
    PyObject* tuple = PyTuple_New(Py_ssize_t(shape.size()));
    if (!tuple) return nullptr;
    for (size_t i = 0; i < shape.size(); ++i) {
      PyObject* item = PyLong_FromLongLong(shape[i]);
      if (!item) {
        Py_DECREF(tuple);
        return nullptr;
      }
      PyTuple_SET_ITEM(tuple, Py_ssize_t(i), item);
    }
    return tuple;
  }
};
}  // namespace pybind11::detail

namespace ember::bindings {
void init_array(py::module_& m);
void init_elementwise(py::module_& m);
void init_reduce(py::module_& m);
void init_index(py::module_& m);
void init_linalg(py::module_& m);
void init_random(py::module_& m);
void init_interop(py::module_& m);
void init_runtime(py::module_& m);
void init_optim(py::module_& m);
void init_nn(py::module_& m);
}  // namespace ember::bindings
