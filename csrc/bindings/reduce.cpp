#include "bindings/bindings.h"
#include "core/ops.h"

namespace ember::bindings {

void init_reduce(py::module_& m) {
  py::enum_<ReduceOp>(m, "ReduceOp")
      .value("sum", ReduceOp::sum).value("mean", ReduceOp::mean).value("max", ReduceOp::max)
      .value("min", ReduceOp::min).value("argmax", ReduceOp::argmax).value("argmin", ReduceOp::argmin)
      .value("var", ReduceOp::var).value("prod", ReduceOp::prod);
  m.def("reduce", &reduce, py::arg("op"), py::arg("x"), py::arg("dims"), py::arg("keepdim"),
        py::arg("correction") = 1);
}

}  // namespace ember::bindings
