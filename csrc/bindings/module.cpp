// ember._C: the table of contents. Each area binds itself; no logic here.
#include "bindings/bindings.h"

PYBIND11_MODULE(_C, m) {
  using namespace ember::bindings;
  m.doc() = "ember's C++/CUDA kernels";
  // ember's own exception types (core/error.h) -> the matching Python ones.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ember::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const ember::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
  init_array(m);
  init_elementwise(m);
  init_reduce(m);
  init_index(m);
  init_linalg(m);
  init_random(m);
  init_interop(m);
  init_runtime(m);
  init_optim(m);
  init_nn(m);
}
