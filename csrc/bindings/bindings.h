// One init_<area>(m) per bindings file; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <optional>
#include "core/array.h"

namespace py = pybind11;

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
