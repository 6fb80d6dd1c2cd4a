// Random fills on CUDA: thread per Philox block (4 elements), the same mapping and formulas as
// csrc/cpu/random.cpp (core/philox.h), so a seed gives the same numbers on both devices.
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/philox.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

template <typename Gen>
__global__ void blocks_kernel(int64_t n, uint64_t seed, uint64_t offset, Gen gen) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = dev::global_thread(); b < blocks; b += dev::grid_threads()) {
    const Philox4 block = philox4x32_10(offset + uint64_t(b), seed);
    for (int lane = 0; lane < 4 && b * 4 + lane < n; ++lane) gen(b * 4 + lane, block, lane);
  }
}

template <typename Gen>
void fill_blocks(const char* op, Array& out, uint64_t seed, uint64_t offset, Gen gen) {
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device().index);
  blocks_kernel<<<grid_for((n + 3) / 4, kThreads), kThreads, 0, stream_of(out.device().index)>>>(n, seed, offset, gen);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace

namespace typed {  // device lambdas may not live in dispatch's generic lambdas: named templates
template <typename T>
void uniform(Array& out, double lo, double hi, uint64_t seed, uint64_t offset) {
  T* p = out.data<T>();
  fill_blocks("rand", out, seed, offset, [=] __device__(int64_t i, const Philox4& b, int lane) {
    p[i] = T(compute_t<T>(lo + (hi - lo) * uniform01(b.v[lane])));
  });
}

template <typename T>
void normal(Array& out, double mean, double std, uint64_t seed, uint64_t offset) {
  T* p = out.data<T>();
  fill_blocks("randn", out, seed, offset, [=] __device__(int64_t i, const Philox4& b, int lane) {
    p[i] = T(compute_t<T>(mean + std * normal_from_block(b, lane)));
  });
}

template <typename T>
void integers(Array& out, int64_t lo, int64_t hi, uint64_t seed, uint64_t offset) {
  T* p = out.data<T>();
  fill_blocks("randint", out, seed, offset, [=] __device__(int64_t i, const Philox4& b, int lane) {
    p[i] = T(compute_t<T>(int_from_block(b, lane, lo, hi)));
  });
}
}  // namespace typed

void random_uniform(Array& out, double lo, double hi, uint64_t seed, uint64_t offset) {
  dispatch_float(out.dtype(), "rand", [&](auto t) { typed::uniform<decltype(t)>(out, lo, hi, seed, offset); });
}

void random_normal(Array& out, double mean, double std, uint64_t seed, uint64_t offset) {
  dispatch_float(out.dtype(), "randn", [&](auto t) { typed::normal<decltype(t)>(out, mean, std, seed, offset); });
}

void random_int(Array& out, int64_t lo, int64_t hi, uint64_t seed, uint64_t offset) {
  dispatch_numeric(out.dtype(), "randint", [&](auto t) { typed::integers<decltype(t)>(out, lo, hi, seed, offset); });
}

}  // namespace ember::cuda
