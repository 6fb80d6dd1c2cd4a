#include "bindings/bindings.h"
#include "core/backend.h"
#include "core/runtime.h"

namespace ember::bindings {

void init_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads);
  m.def("get_num_threads", &get_num_threads);
  m.def("simd_level", &simd_level);
  m.def("fma_gflops_per_core", &fma_gflops_per_core, py::arg("seconds") = 0.2);
  m.def("set_float32_matmul_precision", &set_float32_matmul_precision);
  m.def("get_float32_matmul_precision", &get_float32_matmul_precision);
  m.def("cuda_compiled", &cuda_compiled);
  m.def("cuda_architectures", &cuda_architectures);
  m.def("cuda_device_count", &cuda_device_count);
  m.def("cuda_synchronize", &cuda::synchronize);
  m.def("cuda_memory_allocated", &cuda::memory_allocated);
  m.def("cuda_current_stream", [](int d) { return reinterpret_cast<uintptr_t>(cuda::current_stream(d)); });
  m.def("cuda_set_stream", [](int d, uintptr_t s) { cuda::set_current_stream(d, reinterpret_cast<void*>(s)); });
  m.def("cuda_stream_wait", [](int d, uintptr_t s) { cuda::stream_wait_current(d, reinterpret_cast<void*>(s)); });
}

}  // namespace ember::bindings
