// The kernel interface every backend implements with the same names: ember::cpu in csrc/cpu/*.cpp,
// ember::cuda in csrc/cuda/*.cu (or csrc/cuda/no_cuda.cpp, whose functions throw). Inputs arrive
// validated by core/<family>.cpp: same device, matching shapes, outputs allocated and contiguous.
#pragma once
#include "core/ops.h"
#include "core/optim_math.h"
#include "core/rnn_math.h"

#define EMBER_BACKEND_API                                                                          \
  /* memory.{cpp,cu} */                                                                            \
  void* allocate(size_t nbytes, int device);                                                       \
  void deallocate(void* p, int device);                                                            \
  /* copy.{cpp,cu}: dst and src have the same shape; any strides, any dtypes. */                   \
  void copy(const Array& src, Array& dst);                                                         \
  void fill(Array& dst, double value);                                                             \
  void arange(Array& out, double start, double step);                                              \
  /* elementwise.{cpp,cu}: operands are already broadcast (expanded) to out's shape. */            \
  void unary(UnaryOp op, const Array& x, Array& out, double lo, double hi);                        \
  void unary_backward(UnaryOp op, const Array& x, const Array& grad, Array& out, double lo, double hi); \
  void binary(BinaryOp op, const Array& a, const Array& b, Array& out);                            \
  void where(const Array& cond, const Array& a, const Array& b, Array& out);                       \
  /* reduce.{cpp,cu}: x contiguous, viewed as (outer, n, inner); reduces n. */                     \
  void reduce(ReduceOp op, const Array& x, Array& out, int64_t outer, int64_t n, int64_t inner,    \
              int64_t correction);                                                                 \
  /* index.{cpp,cu}: x viewed as (outer, n, inner) around dim; idx contiguous int64. */            \
  void index_select(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner); \
  void index_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner); \
  void gather(const Array& x, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner); \
  void scatter_add(const Array& src, const Array& idx, Array& out, int64_t outer, int64_t n, int64_t inner); \
  Array nonzero_flat(const Array& mask);                                                           \
  /* gemm.{cpp,cu}: a (batch, M, K), b (batch, K, N), c (batch, M, N), c unit column stride; */       \
  /* batch strides may be 0. bias: contiguous (N,) or null. */                                     \
  void gemm(const Array& a, const Array& b, Array& c, double alpha, double beta, const Array* bias, \
            Activation act);                                                                       \
  /* optim.{cpp,cu}: parallel lists of contiguous same-shape float arrays, updated in place; an */   \
  /* optional state list is empty when unused. */                                                  \
  void adam_step(const std::vector<Array>& params, const std::vector<Array>& grads,                \
                 const std::vector<Array>& exp_avg, const std::vector<Array>& exp_avg_sq, const AdamRule& rule); \
  void sgd_step(const std::vector<Array>& params, const std::vector<Array>& grads,                 \
                const std::vector<Array>& momentum_buf, const SgdRule& rule);                      \
  void rmsprop_step(const std::vector<Array>& params, const std::vector<Array>& grads,             \
                    const std::vector<Array>& square_avg, const std::vector<Array>& momentum_buf,  \
                    const std::vector<Array>& grad_avg, const RmspropRule& rule);                  \
  /* softmax.{cpp,cu}: logits contiguous (rows, classes), targets contiguous int64 (rows,). */     \
  void cross_entropy(const Array& logits, const Array& targets, Array& loss, Array& lse,           \
                     int64_t ignore_index, double label_smoothing);                                \
  /* softmax or log_softmax of each row of x (rows, n), n > 0, contiguous, into out (same shape). */  \
  void softmax(const Array& x, Array& out, bool log);                                              \
  void cross_entropy_backward(const Array& logits, const Array& targets, const Array& lse,         \
                              const Array& grad_rows, Array& grad_logits, int64_t ignore_index,    \
                              double label_smoothing);                                             \
  /* rnn.{cpp,cu}: one time step of a cell over B rows (core/rnn_math.h); (B, .) arrays with unit */ \
  /* column stride, any row stride; an empty (undefined) array is absent: hn but for the GRU, c */   \
  /* but for the LSTM, extra for the RNN, out, lengths. `a` holds the step's pre-activations and */  \
  /* is overwritten by the gates backward reads (as `gates`). */                                    \
  void rnn_step_forward(RnnKind kind, Array& a, const Array& hn, const Array& h_prev,               \
                        const Array& c_prev, const Array& lengths, int64_t t, Array& h_new,         \
                        Array& c_new, Array& extra, Array& out);                                    \
  void rnn_step_backward(RnnKind kind, const Array& gates, const Array& extra, const Array& h_prev,  \
                         const Array& c_prev, const Array& h_new, const Array& dout,                \
                         const Array& dh_next, const Array& dc_next, const Array& lengths, int64_t t, \
                         Array& dx, Array& dh_side, Array& carry, Array& dc_prev);                  \
  /* A whole layer's time loop in one call, in core/rnn.cpp's layout (states (T + 1, B, H), slot 0 */ \
  /* or T holding h0/c0; xg (T, B, G*H) the input projection, turned into the gates); false: */     \
  /* declined, and the core runs it step by step with the two above. */                             \
  bool rnn_sequence_forward(RnnKind kind, Array& xg, const Array& w_hh, const Array& b_hh,           \
                            const Array& lengths, bool reverse, Array& hs, Array& cs, Array& extra,  \
                            Array& y);                                                              \
  bool rnn_sequence_backward(RnnKind kind, const Array& w_hh, const Array& lengths, bool reverse,   \
                             const Array& hs, const Array& cs, const Array& gates, const Array& extra, \
                             const Array& dy, Array& dxg, Array& dhg, Array& dh_buf, Array& dc_buf); \
  /* conv.{cpp,cu}: x (C, H, W) contiguous <-> cols (C*KH*KW, Ho*Wo) contiguous; col2im adds */     \
  /* into a zeroed x. */                                                                           \
  void im2col(const Array& x, Array& cols, int64_t kh, int64_t kw, const Conv2dGeom& g);           \
  void col2im(const Array& cols, Array& x, int64_t kh, int64_t kw, const Conv2dGeom& g);           \
  /* Whole convolutions without an unfolded buffer (CUDA: implicit GEMM), returning y, dx or dw */  \
  /* (shapes y_shape, x_shape, w_shape); an empty Array: this backend prefers core/conv.cpp's */    \
  /* unfold + GEMM driver (the CPU), and nothing was allocated. x, w, dy contiguous. */             \
  Array conv2d_direct(const Array& x, const Array& w, const Array& bias, const Shape& y_shape,      \
                      const Conv2dGeom& g);                                                        \
  Array conv2d_direct_backward_input(const Array& dy, const Array& w, const Shape& x_shape,         \
                                     const Conv2dGeom& g);                                         \
  Array conv2d_direct_backward_weight(const Array& dy, const Array& x, const Shape& w_shape,        \
                                      const Conv2dGeom& g);                                        \
  /* Depthwise (one input and one output channel per group), direct: x (N, C, H, W), w (C, KH, KW), */ \
  /* y (N, C, Ho, Wo), all contiguous; dx and dw are written whole (not accumulated). */          \
  void depthwise_conv2d(const Array& x, const Array& w, Array& y, const Conv2dGeom& g);            \
  void depthwise_conv2d_backward_input(const Array& dy, const Array& w, Array& dx, const Conv2dGeom& g); \
  void depthwise_conv2d_backward_weight(const Array& dy, const Array& x, Array& dw, const Conv2dGeom& g); \
  /* pool.{cpp,cu}: x/out contiguous (planes, H, W) / (planes, oh, ow); indices int64 or empty. */ \
  void pool2d(const Array& x, Array& out, Array& indices, const Pool2dGeom& g);                     \
  void pool2d_backward(const Array& grad, const Array& indices, Array& dx, const Pool2dGeom& g);    \
  /* norm.{cpp,cu}: batch norm; x, y, dy, dx contiguous (N, C, S); per-channel (C,) arrays of the */ \
  /* same dtype; weight/bias may be empty. */                                                      \
  void batch_norm_stats(const Array& x, Array& mean, Array& var);                                  \
  void batch_norm_apply(const Array& x, const Array& mean, const Array& invstd, const Array& weight, \
                        const Array& bias, Array& y);                                              \
  void batch_norm_backward(const Array& dy, const Array& x, const Array& mean, const Array& invstd, \
                           const Array& weight, bool batch_stats, Array& dx, Array& dweight,       \
                           Array& dbias);                                                          \
  /* Layer norm over the last dim: x, y, dy, dx contiguous (rows, n); weight/bias (n,) or empty; */  \
  /* mean/rstd (rows,). dweight/dbias are written whole when weight is given. */                    \
  void layer_norm(const Array& x, const Array& weight, const Array& bias, double eps, Array& y,     \
                  Array& mean, Array& rstd);                                                       \
  void layer_norm_backward(const Array& dy, const Array& x, const Array& mean, const Array& rstd,   \
                           const Array& weight, Array& dx, Array& dweight, Array& dbias);          \
  /* attention.{cpp,cu}: q, k, v, dout, out, dq, dk, dv (B, H, T, D) with unit stride along D, */  \
  /* other strides free; lse contiguous (B, H, Tq); mask a strided (B, H, Tq, Tk) view or empty. */ \
  void attention_forward(const Array& q, const Array& k, const Array& v, const Array& mask,         \
                         const AttentionArgs& a, Array& out, Array& lse);                          \
  void attention_backward(const Array& dout, const Array& q, const Array& k, const Array& v,        \
                          const Array& out, const Array& lse, const Array& mask,                    \
                          const AttentionArgs& a, Array& dq, Array& dk, Array& dv);                 \
  int64_t attention_workspace_bytes(const Array& q, const Array& k, const Array& v, bool backward); \
  /* random.{cpp,cu} */                                                                            \
  void random_uniform(Array& out, double lo, double hi, uint64_t seed, uint64_t offset);           \
  void random_normal(Array& out, double mean, double std, uint64_t seed, uint64_t offset);         \
  void random_int(Array& out, int64_t lo, int64_t hi, uint64_t seed, uint64_t offset);

namespace ember {
namespace cpu {
EMBER_BACKEND_API
// CPU only (packing is how the CPU GEMM works; CUDA reads B as it is): B (K, N) packed once, and
// C = A @ B + beta C from that packing (gemm.cpp).
Array gemm_pack_b(const Array& b);
void gemm_prepacked(const Array& a, const Array& packed, int64_t n, Array& c, double beta, const Array* bias,
                    Activation act);
// Runtime (simd/cpu_features.cpp): the instruction set the kernel tables were picked for ("avx512",
// "avx2" or "portable"), one core's measured FP32 FMA rate, and the OpenMP thread count.
const char* simd_level();
double fma_gflops_per_core(double seconds);
void set_num_threads(int n);
int get_num_threads();
}  // namespace cpu
namespace cuda {
EMBER_BACKEND_API
// Runtime (memory.cu): device count (0 when no driver/GPU), host<->device transfers, streams.
int device_count();
void memcpy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);
void synchronize(int device);
size_t memory_allocated(int device);
void* current_stream(int device);
void set_current_stream(int device, void* stream);
void stream_wait_current(int device, void* consumer_stream);  // consumer waits for our pending work
bool compiled();
}  // namespace cuda
}  // namespace ember

// Calls cpu::fn or cuda::fn by the device of `dev` (core/*.cpp).
#define EMBER_ON_DEVICE(dev, fn, ...) \
  ((dev).kind == ::ember::Device::cpu ? ::ember::cpu::fn(__VA_ARGS__) : ::ember::cuda::fn(__VA_ARGS__))
