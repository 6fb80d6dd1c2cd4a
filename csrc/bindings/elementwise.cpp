#include "bindings/bindings.h"
#include "core/ops.h"

namespace ember::bindings {

void init_elementwise(py::module_& m) {
  py::enum_<UnaryOp>(m, "UnaryOp")
      .value("neg", UnaryOp::neg).value("exp", UnaryOp::exp).value("log", UnaryOp::log)
      .value("sqrt", UnaryOp::sqrt).value("abs", UnaryOp::abs).value("tanh", UnaryOp::tanh)
      .value("sigmoid", UnaryOp::sigmoid).value("relu", UnaryOp::relu).value("gelu", UnaryOp::gelu)
      .value("silu", UnaryOp::silu).value("clamp", UnaryOp::clamp).value("sign", UnaryOp::sign)
      .value("square", UnaryOp::square).value("reciprocal", UnaryOp::reciprocal)
      .value("gelu_tanh", UnaryOp::gelu_tanh);
  py::enum_<BinaryOp>(m, "BinaryOp")
      .value("add", BinaryOp::add).value("sub", BinaryOp::sub).value("mul", BinaryOp::mul)
      .value("div", BinaryOp::div).value("pow", BinaryOp::pow).value("maximum", BinaryOp::maximum)
      .value("minimum", BinaryOp::minimum).value("eq", BinaryOp::eq).value("ne", BinaryOp::ne)
      .value("lt", BinaryOp::lt).value("le", BinaryOp::le).value("gt", BinaryOp::gt)
      .value("ge", BinaryOp::ge);
  m.def("unary", &unary, py::arg("op"), py::arg("x"), py::arg("lo") = 0.0, py::arg("hi") = 0.0);
  m.def("unary_backward", &unary_backward, py::arg("op"), py::arg("x"), py::arg("grad"),
        py::arg("lo") = 0.0, py::arg("hi") = 0.0);
  py::enum_<ScalarKind>(m, "ScalarKind")
      .value("boolean", ScalarKind::boolean).value("integer", ScalarKind::integer).value("real", ScalarKind::real);
  m.def("binary", &binary);
  m.def("binary_scalar", &binary_scalar);
  m.def("number_like", &number_like);
  m.def("where", &where);
}

}  // namespace ember::bindings
