// Indexing on CUDA, over the (outer, n, inner) view around the indexed dim. Indices are int64 or
// int32, already range-checked by core/index.cpp (which synchronises for it); negative ones count from
// the end.
//
//   index_select  out (outer, m, inner) = x[o, idx[j], :]: a copy of whole rows, done on raw words of
//                 the widest size (16, 8, 4, 2 or 1 bytes) that the row length and pointers allow.
//   gather        out (outer, m, inner) = x[o, idx[o, j, i], i]: a copy of elements of itemsize bytes.
//   index_add / scatter_add (the backward ops) add src into a zero-filled out. They are deterministic
//                 and add in the CPU's order (index j ascending for each output element, rounding to
//                 the storage type after each add), so both devices give the same bits:
//     - naive: a thread per (o, i) column walks j in order. No atomics, but only outer * inner threads,
//       each a chain of dependent global read-modify-writes; used when that fills the GPU or m is short.
//     - segments: otherwise (an embedding backward has outer = 1, inner = hidden), the indices are copied
//       to the host and sorted stably by destination (a sync, like the range check before it), and a
//       thread per (destination, column) sums its segment in registers and stores once.
//   nonzero_flat  copies the mask to the host, lists the positions there and copies them back: it
//                 synchronises, as its output size depends on the data.
// Row kernels give each row L lanes (the power of two >= the row length, at most 256), 256-thread
// blocks: rows of a few elements share a block, long rows use all of it, and reads stay coalesced.
#include <algorithm>
#include <numeric>
#include <vector>
#include "core/backend.h"
#include "core/dispatch.h"
#include "cuda/launch.cuh"

namespace ember::cuda {
namespace {

template <typename I>
__device__ __forceinline__ int64_t wrap(I i, int64_t n) { return i < 0 ? int64_t(i) + n : int64_t(i); }

// f(row, lane, L) for rows in [0, rows): L lanes per row, kThreads / L rows per block step.
template <typename F>
__global__ void __launch_bounds__(kThreads) rows_kernel(int64_t rows, int L, F f) {
  const int64_t per_block = kThreads / L;
  const int lane = threadIdx.x % L;
  for (int64_t first = blockIdx.x * per_block; first < rows; first += int64_t(gridDim.x) * per_block) {
    const int64_t row = first + threadIdx.x / L;
    if (row < rows) f(row, lane, L);
  }
}

template <typename F>
void launch_rows(const char* op, const Array& out, int64_t rows, int64_t len, F f) {
  if (rows == 0 || len == 0) return;
  int L = 1;
  while (L < 256 && L < len) L *= 2;
  const int device = out.device().index;
  DeviceGuard guard(device, op);
  rows_kernel<<<grid_for(rows * L), kThreads, 0, stream_of(device)>>>(rows, L, f);
  CUDA_CHECK_LAUNCH(op);
}

// Unsigned words of 1..16 bytes for the byte-moving ops.
template <int Bytes> struct WordOf;
template <> struct WordOf<1> { using type = uint8_t; };
template <> struct WordOf<2> { using type = uint16_t; };
template <> struct WordOf<4> { using type = uint32_t; };
template <> struct WordOf<8> { using type = uint64_t; };
template <> struct WordOf<16> { using type = uint4; };

template <typename F>
void dispatch_word(int bytes, F&& f) {
  switch (bytes) {
    case 16: f(WordOf<16>::type{}); break;
    case 8: f(WordOf<8>::type{}); break;
    case 4: f(WordOf<4>::type{}); break;
    case 2: f(WordOf<2>::type{}); break;
    default: f(WordOf<1>::type{}); break;
  }
}

// Positions 0..keys.size()-1 grouped by key, each group in ascending position: the add order of the
// CPU. Laid out for one upload: [order (N) | key of each segment (U) | segment starts (U + 1)].
std::vector<int64_t> segments_by_key(const std::vector<int64_t>& keys, int64_t& segments) {
  const int64_t N = int64_t(keys.size());
  std::vector<int64_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  std::vector<int64_t> seg_key, seg_start;
  for (int64_t k = 0; k < N; ++k) {
    if (k == 0 || keys[order[k]] != keys[order[k - 1]]) {
      seg_key.push_back(keys[order[k]]);
      seg_start.push_back(k);
    }
  }
  seg_start.push_back(N);
  segments = int64_t(seg_key.size());
  order.insert(order.end(), seg_key.begin(), seg_key.end());
  order.insert(order.end(), seg_start.begin(), seg_start.end());
  return order;
}

template <typename I>
std::vector<I> to_host(const Array& idx) {
  std::vector<I> h(size_t(idx.numel()));
  memcpy_bytes(h.data(), Device{}, idx.raw(), idx.device(), h.size() * sizeof(I));
  return h;
}

// The naive scatter-add order costs a serial chain per (o, i) column; the segment version pays a sync.
bool use_segments(const Array& out, int64_t columns, int64_t m) {
  return m >= 64 && columns < int64_t(sm_count(out.device().index)) * 2048;
}

}  // namespace

namespace typed {  // nvcc allows no device lambdas inside dispatch's generic lambdas: named templates
template <typename Word, typename I>
void index_select(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t row_bytes) {
  const int64_t m = idx.numel(), words = row_bytes / int64_t(sizeof(Word));
  const Word* xp = static_cast<const Word*>(x.raw());
  Word* op = static_cast<Word*>(out.raw());
  const I* ip = idx.data<I>();
  launch_rows("index_select", out, outer * m, words, [=] __device__(int64_t row, int lane, int L) {
    const int64_t o = row / m, j = row - o * m;
    const Word* src = xp + (o * n + wrap(ip[j], n)) * words;
    Word* dst = op + row * words;
    for (int64_t k = lane; k < words; k += L) dst[k] = src[k];
  });
}

template <typename Word, typename I>
void gather(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t m = idx.numel() / std::max<int64_t>(outer * inner, 1);
  const Word* xp = static_cast<const Word*>(x.raw());
  Word* op = static_cast<Word*>(out.raw());
  const I* ip = idx.data<I>();
  launch_rows("gather", out, outer * m, inner, [=] __device__(int64_t row, int lane, int L) {
    const int64_t o = row / m;
    for (int64_t i = lane; i < inner; i += L) {
      const int64_t e = row * inner + i;
      op[e] = xp[(o * n + wrap(ip[e], n)) * inner + i];
    }
  });
}

template <typename T, typename I>
void index_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  using C = compute_t<T>;
  const int64_t m = idx.numel();
  const T* s = src.data<T>();
  T* op = out.data<T>();
  if (!use_segments(out, outer * inner, m)) {  // naive: a thread per (o, i), j in order
    const I* ip = idx.data<I>();
    launch_rows("index_add", out, outer * inner, 1, [=] __device__(int64_t p, int, int) {
      const int64_t o = p / inner, i = p - o * inner;
      for (int64_t j = 0; j < m; ++j) {
        T& d = op[(o * n + wrap(ip[j], n)) * inner + i];
        d = T(C(C(d) + C(s[(o * m + j) * inner + i])));
      }
    });
    return;
  }
  const std::vector<I> h = to_host<I>(idx);
  std::vector<int64_t> keys(h.size());
  for (size_t j = 0; j < h.size(); ++j) keys[j] = h[j] < 0 ? int64_t(h[j]) + n : int64_t(h[j]);
  int64_t U = 0;
  const std::vector<int64_t> plan = segments_by_key(keys, U);
  Scratch buf(plan.size() * sizeof(int64_t), out.device().index);
  memcpy_bytes(buf.as<void>(), out.device(), plan.data(), Device{}, plan.size() * sizeof(int64_t));
  const int64_t* order = buf.as<int64_t>();
  const int64_t *seg_key = order + m, *seg_start = seg_key + U;
  // Row (o, u): destination row seg_key[u] of outer slice o; lanes over the inner columns.
  launch_rows("index_add", out, outer * U, inner, [=] __device__(int64_t row, int lane, int L) {
    const int64_t o = row / U, u = row - o * U;
    T* dst = op + (o * n + seg_key[u]) * inner;
    const T* from = s + o * m * inner;
    for (int64_t i = lane; i < inner; i += L) {
      T d = dst[i];
      for (int64_t k = seg_start[u]; k < seg_start[u + 1]; ++k) d = T(C(C(d) + C(from[order[k] * inner + i])));
      dst[i] = d;
    }
  });
}

template <typename T, typename I>
void scatter_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  using C = compute_t<T>;
  const int64_t m = idx.numel() / std::max<int64_t>(outer * inner, 1);
  const T* s = src.data<T>();
  T* op = out.data<T>();
  if (!use_segments(out, outer * inner, m)) {  // naive: a thread per (o, i), j in order
    const I* ip = idx.data<I>();
    launch_rows("scatter_add", out, outer * inner, 1, [=] __device__(int64_t p, int, int) {
      const int64_t o = p / inner, i = p - o * inner;
      for (int64_t j = 0; j < m; ++j) {
        const int64_t e = (o * m + j) * inner + i;
        T& d = op[(o * n + wrap(ip[e], n)) * inner + i];
        d = T(C(C(d) + C(s[e])));
      }
    });
    return;
  }
  // Keys are flat destinations; a segment's source elements share (o, i) and ascend in j.
  const std::vector<I> h = to_host<I>(idx);
  std::vector<int64_t> keys(h.size());
  for (size_t e = 0; e < h.size(); ++e) {
    const int64_t o = int64_t(e) / (m * inner), i = int64_t(e) % inner;
    keys[e] = (o * n + (h[e] < 0 ? int64_t(h[e]) + n : int64_t(h[e]))) * inner + i;
  }
  int64_t U = 0;
  const std::vector<int64_t> plan = segments_by_key(keys, U);
  Scratch buf(plan.size() * sizeof(int64_t), out.device().index);
  memcpy_bytes(buf.as<void>(), out.device(), plan.data(), Device{}, plan.size() * sizeof(int64_t));
  const int64_t* order = buf.as<int64_t>();
  const int64_t *seg_key = order + int64_t(h.size()), *seg_start = seg_key + U;
  launch_rows("scatter_add", out, U, 1, [=] __device__(int64_t u, int, int) {
    T d = op[seg_key[u]];
    for (int64_t k = seg_start[u]; k < seg_start[u + 1]; ++k) d = T(C(C(d) + C(s[order[k]])));
    op[seg_key[u]] = d;
  });
}
}  // namespace typed

void index_select(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  if (out.numel() == 0) return;
  const int64_t row_bytes = inner * int64_t(x.itemsize());
  int word = 16;  // the widest word that divides a row and both base pointers
  while (word > 1 && (row_bytes % word || !is_aligned(x.raw(), word) || !is_aligned(out.raw(), word))) word /= 2;
  dispatch_index(idx.dtype(), "index_select", [&](auto it) {
    dispatch_word(word, [&](auto wt) {
      typed::index_select<decltype(wt), decltype(it)>(x, idx, out, outer, n, row_bytes);
    });
  });
}

void gather(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  if (out.numel() == 0) return;
  dispatch_index(idx.dtype(), "gather", [&](auto it) {
    dispatch_word(int(x.itemsize()), [&](auto wt) {
      typed::gather<decltype(wt), decltype(it)>(x, idx, out, outer, n, inner);
    });
  });
}

void index_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  if (out.numel() == 0 || idx.numel() == 0) return;
  dispatch_numeric(out.dtype(), "index_add", [&](auto vt) {
    dispatch_index(idx.dtype(), "index_add", [&](auto it) {
      typed::index_add<decltype(vt), decltype(it)>(src, idx, out, outer, n, inner);
    });
  });
}

void scatter_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner) {
  if (out.numel() == 0 || idx.numel() == 0) return;
  dispatch_numeric(out.dtype(), "scatter_add", [&](auto vt) {
    dispatch_index(idx.dtype(), "scatter_add", [&](auto it) {
      typed::scatter_add<decltype(vt), decltype(it)>(src, idx, out, outer, n, inner);
    });
  });
}

// Synchronises: the mask comes to the host, and the positions go back.
Array nonzero_flat(const Array& mask) {
  const int64_t n = mask.numel();
  std::vector<char> host(size_t(std::max<int64_t>(n, 1)));
  memcpy_bytes(host.data(), Device{}, mask.raw(), mask.device(), size_t(n));
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < n; ++i)
    if (host[size_t(i)]) pos.push_back(i);
  Array out = Array::empty({int64_t(pos.size())}, DType::int64, mask.device());
  memcpy_bytes(out.raw(), out.device(), pos.data(), Device{}, pos.size() * sizeof(int64_t));
  return out;
}

}  // namespace ember::cuda
