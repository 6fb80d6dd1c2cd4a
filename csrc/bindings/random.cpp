#include "bindings/bindings.h"
#include "core/ops.h"

namespace ember::bindings {

void init_random(py::module_& m) {
  auto dt = [](const std::string& s) { return dtype_from_name(s); };
  auto dev = [](const std::string& s) { return Device::parse(s); };
  m.def("random_uniform", [=](const Shape& s, double lo, double hi, uint64_t seed, uint64_t off,
                              const std::string& t, const std::string& d) {
    return random_uniform(s, lo, hi, seed, off, dt(t), dev(d));
  });
  m.def("random_normal", [=](const Shape& s, double mean, double std, uint64_t seed, uint64_t off,
                             const std::string& t, const std::string& d) {
    return random_normal(s, mean, std, seed, off, dt(t), dev(d));
  });
  m.def("random_int", [=](const Shape& s, int64_t lo, int64_t hi, uint64_t seed, uint64_t off,
                          const std::string& t, const std::string& d) {
    return random_int(s, lo, hi, seed, off, dt(t), dev(d));
  });
}

}  // namespace ember::bindings
