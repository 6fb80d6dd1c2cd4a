// Random fills on CUDA from the counter-based Philox stream of core/philox.h: uniform, normal and
// integer. The mapping is csrc/cpu/random.cpp's, so a (seed, offset) gives the same numbers on both
// devices: element j of the (contiguous) output takes word j % 4 of block philox(offset + j / 4, seed),
// and the value formulas (uniform01, normal_from_block in double, int_from_block) are the shared ones.
//
// Algorithm: a thread per Philox block (4 elements), grid-stride in int64; 256-thread blocks, at most
// 32 per SM. The work is arithmetic (10 Philox rounds; a double log/sin/cos per normal), so one block
// per thread keeps every output word used and the stores of a warp contiguous (4 elements apiece).
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/philox.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

template <typename Gen>
__global__ void __launch_bounds__(kThreads) philox_blocks(int64_t n, uint64_t seed, uint64_t offset, Gen gen) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = dev::global_thread(); b < blocks; b += dev::grid_threads()) {
    const Philox4 block = philox4x32_10(offset + uint64_t(b), seed);
#pragma unroll
    for (int lane = 0; lane < 4; ++lane)
      if (b * 4 + lane < n) gen(b * 4 + lane, block, lane);
  }
}

template <typename Gen>
void fill_blocks(const char* op, Array& out, uint64_t seed, uint64_t offset, Gen gen) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device, op);
  philox_blocks<<<grid_for((n + 3) / 4), kThreads, 0, stream_of(device)>>>(n, seed, offset, gen);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace

namespace typed {  // nvcc allows no device lambdas inside dispatch's generic lambdas: named templates
template <typename T>
void uniform(Array& out, double lo, double hi, uint64_t seed, uint64_t offset) {
  T* p = out.data<T>();
  fill_blocks("rand", out, seed, offset, [=] __device__(int64_t i, const Philox4& b, int lane) {
    p[i] = T(compute_t<T>(lo + (hi - lo) * uniform01_as<T>(b.v[lane])));
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
