#include "bindings/bindings.h"
#include "core/ops.h"

namespace ember::bindings {

void init_linalg(py::module_& m) {
  py::enum_<Activation>(m, "Activation")
      .value("none", Activation::none).value("relu", Activation::relu).value("gelu", Activation::gelu)
      .value("gelu_tanh", Activation::gelu_tanh);
  m.def("matmul", [](const Array& a, const Array& b, std::optional<Array> bias, Activation act) {
    return matmul(a, b, bias ? &*bias : nullptr, act);
  }, py::arg("a"), py::arg("b"), py::arg("bias") = py::none(), py::arg("act") = Activation::none);
  m.def("gemm_", &gemm_);
}

}  // namespace ember::bindings
