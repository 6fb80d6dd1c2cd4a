// Random fills on the CPU from the Philox stream of core/philox.h: one block per 4 elements, blocks
// spread over threads. The same formulas run in csrc/cuda/random.cu.
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/philox.h"
#include "cpu/parallel.h"

namespace ember::cpu {

template <typename Gen>
static void fill_blocks(Array& out, uint64_t seed, uint64_t offset, Gen gen) {
  int64_t n = out.numel(), blocks = (n + 3) / 4;
  parallel_for(blocks, 4096, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      Philox4 block = philox4x32_10(offset + uint64_t(b), seed);
      for (int lane = 0; lane < 4 && b * 4 + lane < n; ++lane) gen(b * 4 + lane, block, lane);
    }
  });
}

void random_uniform(Array& out, double lo, double hi, uint64_t seed, uint64_t offset) {
  dispatch_float(out.dtype(), "rand", [&](auto tag) {
    using T = decltype(tag);
    T* p = out.data<T>();
    fill_blocks(out, seed, offset, [&](int64_t i, const Philox4& b, int lane) {
      p[i] = T(compute_t<T>(lo + (hi - lo) * uniform01_as<T>(b.v[lane])));
    });
  });
}

void random_normal(Array& out, double mean, double std, uint64_t seed, uint64_t offset) {
  dispatch_float(out.dtype(), "randn", [&](auto tag) {
    using T = decltype(tag);
    T* p = out.data<T>();
    fill_blocks(out, seed, offset, [&](int64_t i, const Philox4& b, int lane) {
      p[i] = T(compute_t<T>(mean + std * normal_from_block(b, lane)));
    });
  });
}

void random_int(Array& out, int64_t lo, int64_t hi, uint64_t seed, uint64_t offset) {
  dispatch_numeric(out.dtype(), "randint", [&](auto tag) {
    using T = decltype(tag);
    T* p = out.data<T>();
    fill_blocks(out, seed, offset, [&](int64_t i, const Philox4& b, int lane) {
      p[i] = T(compute_t<T>(int_from_block(b, lane, lo, hi)));
    });
  });
}

}  // namespace ember::cpu
