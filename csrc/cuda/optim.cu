// Optimizer updates on CUDA: every tensor of a step in ONE launch (multi-tensor apply). The host
// cuts all tensors into chunks of kChunk elements and uploads a table of chunk descriptors; block b
// updates chunk b, its threads striding the chunk with coalesced accesses. A model's hundreds of
// small tensors then cost one launch, not hundreds; the rules are core/optim_math.h, the CPU's.
#include <vector>
#include "core/backend.h"
#include "core/optim_math.h"
#include "cuda/runtime.cuh"

namespace ember::cuda {
namespace {

// 16K elements per block: a 10M-parameter model gives ~600 blocks, several per SM, so the tail of
// the grid is short; a block's 256 threads each touch 64 elements per array.
constexpr int64_t kChunk = 16384;

// One chunk: the param, its grad and up to three state arrays (null when unused), kChunk or fewer elements.
template <typename T>
struct Chunk {
  T* p;
  const T* g;
  T* s[3];
  int64_t n;
};

// The per-element call of each optimizer (named functors: nvcc rejects device lambdas inside the
// generic lambdas that dispatch uses). A null optional state becomes a private register.
template <typename T>
struct AdamApply {
  AdamRule r;
  __device__ void operator()(const Chunk<T>& c, int64_t i) const { r.update(c.p[i], c.g[i], c.s[0][i], c.s[1][i]); }
};
template <typename T>
struct SgdApply {
  SgdRule r;
  __device__ void operator()(const Chunk<T>& c, int64_t i) const {
    T unused = 0;
    r.update(c.p[i], c.g[i], c.s[0] ? c.s[0][i] : unused);
  }
};
template <typename T>
struct RmspropApply {
  RmspropRule r;
  __device__ void operator()(const Chunk<T>& c, int64_t i) const {
    T b = 0, a = 0;
    r.update(c.p[i], c.g[i], c.s[0][i], c.s[1] ? c.s[1][i] : b, c.s[2] ? c.s[2][i] : a);
  }
};

template <typename T, typename Apply>
__global__ void __launch_bounds__(kThreads) multi_tensor_kernel(const Chunk<T>* chunks, Apply apply) {
  const Chunk<T> c = chunks[blockIdx.x];
  for (int64_t i = threadIdx.x; i < c.n; i += blockDim.x) apply(c, i);
}

template <typename T>
std::vector<Chunk<T>> chunks_of(const std::vector<Array>& params, const std::vector<Array>& grads,
                                std::initializer_list<const std::vector<Array>*> states) {
  std::vector<Chunk<T>> out;
  for (size_t t = 0; t < params.size(); ++t)
    for (int64_t b = 0, n = params[t].numel(); b < n; b += kChunk) {
      Chunk<T> c{params[t].data<T>() + b, grads[t].data<T>() + b, {nullptr, nullptr, nullptr}, std::min(kChunk, n - b)};
      int k = 0;
      for (const auto* s : states) c.s[k++] = s->empty() ? nullptr : (*s)[t].data<T>() + b;
      out.push_back(c);
    }
  return out;
}

// Uploads the chunk table to stream-ordered scratch and launches one block per chunk.
template <typename T, typename Apply>
void launch(const char* op, const std::vector<Array>& params, const std::vector<Chunk<T>>& chunks, Apply apply) {
  if (chunks.empty()) return;
  const int device = params[0].device().index;
  DeviceGuard guard(device, op);
  cudaStream_t stream = stream_of(device);
  Scratch table(chunks.size() * sizeof(Chunk<T>), device);
  CUDA_CHECK(op, cudaMemcpyAsync(table.as<Chunk<T>>(), chunks.data(), chunks.size() * sizeof(Chunk<T>),
                                 cudaMemcpyHostToDevice, stream));
  // A grid's x-dimension holds 2^31 - 1 blocks: 35 trillion elements at kChunk each.
  multi_tensor_kernel<<<unsigned(chunks.size()), kThreads, 0, stream>>>(table.as<Chunk<T>>(), apply);
  CUDA_CHECK_LAUNCH(op);
}

// float32 or float64 (core/optim.cpp admits nothing else).
template <template <typename> class Apply, typename Rule>
void run(const char* op, const std::vector<Array>& params, const std::vector<Array>& grads,
         std::initializer_list<const std::vector<Array>*> states, const Rule& rule) {
  if (params.empty()) return;
  if (params[0].dtype() == DType::float32)
    launch(op, params, chunks_of<float>(params, grads, states), Apply<float>{rule});
  else
    launch(op, params, chunks_of<double>(params, grads, states), Apply<double>{rule});
}

}  // namespace

void adam_step(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& exp_avg,
               const std::vector<Array>& exp_avg_sq, const AdamRule& rule) {
  run<AdamApply>("adam_step", params, grads, {&exp_avg, &exp_avg_sq}, rule);
}

void sgd_step(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& momentum_buf,
              const SgdRule& rule) {
  run<SgdApply>("sgd_step", params, grads, {&momentum_buf}, rule);
}

void rmsprop_step(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& square_avg,
                  const std::vector<Array>& momentum_buf, const std::vector<Array>& grad_avg, const RmspropRule& rule) {
  run<RmspropApply>("rmsprop_step", params, grads, {&square_avg, &momentum_buf, &grad_avg}, rule);
}

}  // namespace ember::cuda
