#include "bindings/bindings.h"
#include "core/ops.h"

namespace ember::bindings {

void init_index(py::module_& m) {
  m.def("index_select", &index_select);
  m.def("index_add", &index_add);
  m.def("gather", &gather);
  m.def("scatter_add", &scatter_add);
  m.def("nonzero_flat", &nonzero_flat);
}

}  // namespace ember::bindings
