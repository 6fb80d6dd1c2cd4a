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
  m.def("linear", [](const Array& x, const Array& w, std::optional<Array> bias, Activation act) {
    return linear(x, w, bias ? &*bias : nullptr, act);
  }, py::arg("x"), py::arg("w"), py::arg("bias") = py::none(), py::arg("act") = Activation::none);
  m.def("linear_backward_weight", &linear_backward_weight);
  m.def("gemm_", &gemm_);
  py::class_<PackedB>(m, "PackedB").def_readonly("k", &PackedB::k).def_readonly("n", &PackedB::n);
  m.def("gemm_pack_b", &gemm_pack_b);
  m.def("matmul_packed", [](const Array& a, const PackedB& b, std::optional<Array> bias) {
    return matmul_packed(a, b, bias ? &*bias : nullptr);
  }, py::arg("a"), py::arg("b"), py::arg("bias") = py::none());
}

}  // namespace ember::bindings
