#include "bindings/bindings.h"
#include "core/ops.h"

namespace ember::bindings {

void init_nn(py::module_& m) {
  m.def("cross_entropy", &cross_entropy, py::arg("logits"), py::arg("targets"), py::arg("ignore_index"),
        py::arg("label_smoothing"));
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("logits"), py::arg("targets"), py::arg("lse"),
        py::arg("grad_rows"), py::arg("ignore_index"), py::arg("label_smoothing"));
}

}  // namespace ember::bindings
