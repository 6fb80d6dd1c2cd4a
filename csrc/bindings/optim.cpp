#include "bindings/bindings.h"
#include "core/ops.h"

namespace ember::bindings {

void init_optim(py::module_& m) {
  m.def("adam_step_", &adam_step_, py::arg("params"), py::arg("grads"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("decoupled_weight_decay"), py::arg("step"));
  m.def("sgd_step_", &sgd_step_, py::arg("params"), py::arg("grads"), py::arg("momentum_buf"), py::arg("lr"),
        py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
        py::arg("first_step"));
  m.def("rmsprop_step_", &rmsprop_step_, py::arg("params"), py::arg("grads"), py::arg("square_avg"),
        py::arg("momentum_buf"), py::arg("grad_avg"), py::arg("lr"), py::arg("alpha"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("momentum"), py::arg("centered"));
}

}  // namespace ember::bindings
