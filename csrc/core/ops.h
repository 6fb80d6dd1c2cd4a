// The public C++ API of ember's array library: each function validates its inputs, allocates the
// output and dispatches on device (ember::cpu / ember::cuda, see backend.h) and dtype. Each family's
// setup lives in core/<family>.cpp, the file name its kernels have in cpu/ and cuda/ (elementwise,
// reduce, copy, random, index, gemm, optim, softmax, pool, norm, conv, rnn, attention).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>
#include "core/array.h"
#include "core/rnn_math.h"

namespace ember {

enum class UnaryOp : uint8_t {
  neg, exp, log, sqrt, abs, tanh, sigmoid, relu, gelu, silu, clamp, sign, square, reciprocal,
  gelu_tanh
};
enum class BinaryOp : uint8_t {
  add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge
};
enum class ReduceOp : uint8_t { sum, mean, max, min, argmax, argmin, var, prod };
enum class Activation : uint8_t { none, relu, gelu, gelu_tanh };  // fused GEMM epilogues

bool is_comparison(BinaryOp op);

// Elementwise. clamp uses lo/hi (NaN = unbounded side).
Array unary(UnaryOp op, const Array& x, double lo = 0, double hi = 0);
// grad * d op(x) / dx, in one pass (the backward of unary).
Array unary_backward(UnaryOp op, const Array& x, const Array& grad, double lo = 0, double hi = 0);
Array binary(BinaryOp op, const Array& a, const Array& b);
// a (op) a Python number, or number (op) a when reversed, without the number becoming an array in
// Python. The number takes a's dtype, except that a real next to an integer or bool array is float32
// and an integer next to a bool array is int64 (PyTorch's rule for Python scalars).
enum class ScalarKind : uint8_t { boolean, integer, real };
Array binary_scalar(BinaryOp op, const Array& a, double value, ScalarKind kind, bool reversed);
// The 0-d array a Python number becomes next to `like` (the dtype rule above, like's device).
Array number_like(const Array& like, double value, ScalarKind kind);
Array where(const Array& cond, const Array& a, const Array& b);

// Reductions over any set of dims (empty = all). var uses `correction` (1 = unbiased).
Array reduce(ReduceOp op, const Array& x, std::vector<int> dims, bool keepdim, int64_t correction = 1);

// Matrix products. matmul: a (..., M, K) @ b (..., K, N) with NumPy broadcasting of the batch dims
// (operands of >= 2 dims; the Python layer promotes 1-d ones), optionally + bias (N,) and an
// activation fused into the store of C. gemm_: C = alpha * A @ B + beta * C in place on 3-d arrays.
Array matmul(const Array& a, const Array& b, const Array* bias = nullptr, Activation act = Activation::none);
void gemm_(const Array& a, const Array& b, Array& c, double alpha, double beta);
// A linear layer's products, with the transposes and the folding of leading dims done here (views)
// rather than as separate calls: linear = x (..., in) @ w^T (w: (out, in)) [+ bias, activation];
// linear_backward_weight = g^T @ x over every leading dim, g (..., out), x (..., in) -> (out, in).
Array linear(const Array& x, const Array& w, const Array* bias = nullptr, Activation act = Activation::none);
Array linear_backward_weight(const Array& g, const Array& x);

// A right operand B (K, N) prepared once for many products A @ B with the same B (an RNN's W_hh at
// every time step): on the CPU its packed panels, so the products skip packing; on CUDA B itself.
struct PackedB {
  Array data;
  int64_t k = 0, n = 0;
  bool packed = false;
  DType dtype = DType::float32;
};
PackedB gemm_pack_b(const Array& b);
Array matmul_packed(const Array& a, const PackedB& b, const Array* bias = nullptr);
// c = a @ b + beta * c (+ bias) into a given (M, N) array with unit column stride.
void matmul_packed_into(const Array& a, const PackedB& b, Array& c, double beta, const Array* bias = nullptr);

// 2-d convolution, NCHW, PyTorch semantics (cross-correlation; zero padding, top/left and
// bottom/right given separately so "same" works for even kernels): x (N, C, H, W), w (O, C/groups,
// KH, KW) -> (N, O, Ho, Wo). Each image is unfolded (im2col) and multiplied by each group's weight
// with ember's GEMM; the two backward passes are the transposed products and a fold (col2im).
struct Conv2dGeom {
  int64_t stride_h = 1, stride_w = 1, pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1, groups = 1;
};
Array conv2d(const Array& x, const Array& w, const Array* bias, const Conv2dGeom& g);
Array conv2d_backward_input(const Array& grad, const Array& w, const Shape& x_shape, const Conv2dGeom& g);
Array conv2d_backward_weight(const Array& grad, const Array& x, const Shape& w_shape, const Conv2dGeom& g);

// 2-d pooling over NCHW planes. max: windows of kernel x kernel (stride, padding, dilation), padding
// never wins; returns the values and each maximum's flat index in its H*W plane (PyTorch's). avg:
// padding counts as zeros in the divisor when count_include_pad. adaptive avg: output cell (i, j)
// averages rows [floor(i H / oh), ceil((i + 1) H / oh)) and likewise for columns.
enum class PoolMode : uint8_t { max, avg, adaptive_avg };
struct Pool2dGeom {
  PoolMode mode = PoolMode::max;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t out_h = 0, out_w = 0;  // the output size (computed by the Python layer, PyTorch's formulas)
  bool count_include_pad = true;
};
std::pair<Array, Array> pool2d(const Array& x, const Pool2dGeom& g);  // (values, indices: empty unless max)
Array pool2d_backward(const Array& grad, const Array& indices, const Shape& x_shape, const Pool2dGeom& g);

// Batch normalisation of x (N, C, ...) per channel, fused (csrc/*/norm): the batch's mean and
// biased variance; y = (x - mean) * invstd * weight + bias; and the backward, which with
// batch_stats differentiates through the batch's own mean and variance (training), without it treats
// them as constants (running statistics). weight/bias may be empty (then 1 and 0).
std::pair<Array, Array> batch_norm_stats(const Array& x);
Array batch_norm_apply(const Array& x, const Array& mean, const Array& invstd, const Array& weight, const Array& bias);
struct BatchNormGrads { Array dx, dweight, dbias; };
BatchNormGrads batch_norm_backward(const Array& dy, const Array& x, const Array& mean, const Array& invstd,
                                   const Array& weight, bool batch_stats);

// Copy / cast / fill / creation.
void copy_(Array& dst, const Array& src);  // broadcasts src to dst's shape, casts dtype, any devices
Array full(const Shape& shape, double value, DType dtype, Device device);
Array arange(double start, double stop, double step, DType dtype, Device device);
Array cat(const std::vector<Array>& xs, int dim);
Array stack(const std::vector<Array>& xs, int dim);
// The value of a one-element array (copied to the host first when it lives on a device): `real` for
// floating dtypes, `integer` for the integer dtypes and bool (what Python's float/int/bool hold).
struct ScalarValue { bool floating; double real; int64_t integer; };
ScalarValue item(const Array& a);

// Random fills from the counter-based Philox stream (seed, offset); same numbers on CPU and CUDA.
Array random_uniform(const Shape& shape, double lo, double hi, uint64_t seed, uint64_t offset, DType dtype, Device device);
Array random_normal(const Shape& shape, double mean, double std, uint64_t seed, uint64_t offset, DType dtype, Device device);
Array random_int(const Shape& shape, int64_t lo, int64_t hi, uint64_t seed, uint64_t offset, DType dtype, Device device);

// Indexing. idx is int64 or int32. index_select picks whole slices along dim; gather picks per element
// (PyTorch semantics). Their backward ops add src into a zero array of `shape` (deterministic order).
Array index_select(const Array& x, int dim, const Array& idx);
Array index_add(const Shape& shape, int dim, const Array& idx, const Array& src);
Array gather(const Array& x, int dim, const Array& idx);
Array scatter_add(const Shape& shape, int dim, const Array& idx, const Array& src);
Array nonzero_flat(const Array& mask);  // int64 positions of true elements in the flattened mask

// Optimizer updates, in place, over parallel lists of same-shape float32/float64 arrays: one fused
// pass per element (CPU), one launch for all tensors (CUDA). `step` counts from 1. Optional state
// lists (SGD momentum, RMSprop momentum and centred average) are empty when the option is off.
void adam_step_(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& exp_avg,
                const std::vector<Array>& exp_avg_sq, double lr, double beta1, double beta2, double eps,
                double weight_decay, bool decoupled_weight_decay, int64_t step);
void sgd_step_(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& momentum_buf,
               double lr, double momentum, double dampening, double weight_decay, bool nesterov, bool first_step);
void rmsprop_step_(const std::vector<Array>& params, const std::vector<Array>& grads,
                   const std::vector<Array>& square_avg, const std::vector<Array>& momentum_buf,
                   const std::vector<Array>& grad_avg, double lr, double alpha, double eps, double weight_decay,
                   double momentum, bool centered);

// Cross-entropy of logits (rows, classes) against int64 class targets (rows,), log-softmax fused
// in, with label smoothing; rows whose target is ignore_index get loss 0. Returns the per-row loss
// and each row's log-sum-exp (backward needs it). The backward takes the gradient of each row's loss.
std::pair<Array, Array> cross_entropy(const Array& logits, const Array& targets, int64_t ignore_index,
                                      double label_smoothing);
Array cross_entropy_backward(const Array& logits, const Array& targets, const Array& lse, const Array& grad_rows,
                             int64_t ignore_index, double label_smoothing);

// softmax / log_softmax along dim, one fused pass per row (core/softmax.cpp moves dim last when it
// is not): out = exp(x - m) / s or x - m - log(s), m the row's max and s the sum of exp(x - m), so
// a row with a NaN or an infinity gives NaN on every backend. Integer input is computed in float32.
Array softmax(const Array& x, int dim, bool log);

// A whole recurrent layer in one direction (core/rnn.cpp; the gate math in core/rnn_math.h): xg
// (T, B, G*H) the input projection of every step (W_ih x + b_ih, one GEMM), a buffer the layer
// takes over: each step adds its hidden projection into it and the cell overwrites it with the
// gates backward needs. W_hh (G*H, H), b_hh (G*H,) or empty, h0/c0 (B, H) (c0: LSTM only), lengths
// int64 (B,) or empty: rows with t >= lengths[b] keep their state and output 0. y (T + 2, B, H)
// holds the outputs, then h_n and c_n (zeros unless LSTM); hs/cs (T + 1, B, H) every state; gates
// is xg; extra (T, B, H) the cell's one more saved value per unit (LSTM tanh c', GRU W_hn h + b_hn).
struct RnnSequence {
  RnnKind kind = RnnKind::lstm;
  bool reverse = false;
  Array lengths, y, hs, cs, gates, extra;
  Array h_prevs() const;  // (T, B, H) view: the h entering each step, in time order
};
RnnSequence rnn_sequence_forward(RnnKind kind, Array xg, const Array& w_hh, const Array& b_hh,
                                 const Array& h0, const Array& c0, const Array& lengths, bool reverse);
// Backward through time from dy (like y): the pre-activation gradients of every step on the input
// and hidden sides, dxg/dhg (T, B, G*H) (one array unless GRU), and the gradients reaching h0/c0.
struct RnnSequenceGrads { Array dxg, dhg, dh0, dc0; };
RnnSequenceGrads rnn_sequence_backward(const RnnSequence& seq, const Array& w_hh, const Array& dy);

// Layer norm over the last dim (norm.{cpp,cu}), one pass per row: returns (y, mean, rstd), mean/rstd
// of shape x.shape[:-1] saved for the backward, which gives dx, dweight and dbias together.
struct LayerNormOut { Array y, mean, rstd; };
LayerNormOut layer_norm(const Array& x, const Array& weight, const Array& bias, double eps);
struct LayerNormGrads { Array dx, dweight, dbias; };
LayerNormGrads layer_norm_backward(const Array& dy, const Array& x, const Array& mean, const Array& rstd,
                                   const Array& weight);

// Scaled dot-product attention, flash-style (cpu/attention.cpp, cuda/attention.cu): q (B, H, Tq, D),
// k (B, H, Tk, D), v (B, H, Tk, Dv); mask empty or broadcastable to (B, H, Tq, Tk), bool (true =
// attend) or additive in q's dtype. Returns (out (B, H, Tq, Dv), lse (B, H, Tq)): the per-row
// log-sum-exp is all the backward keeps; no Tq x Tk matrix is ever stored. Rows with every key
// masked out give 0 (lse = -inf).
struct AttentionArgs {
  double scale = 1.0;
  bool causal = false;   // query i sees keys j <= i (top-left aligned, as PyTorch)
  double dropout_p = 0;  // on the probabilities, from the Philox stream (seed, offset)
  uint64_t seed = 0, offset = 0;
};
std::pair<Array, Array> attention(const Array& q, const Array& k, const Array& v, const Array& mask,
                                  const AttentionArgs& a);
struct AttentionGrads { Array dq, dk, dv; };
AttentionGrads attention_backward(const Array& dout, const Array& q, const Array& k, const Array& v, const Array& out,
                                  const Array& lse, const Array& mask, const AttentionArgs& a);
// Bytes of scratch the kernel allocates for these shapes (linear in the sequence lengths).
int64_t attention_workspace_bytes(const Array& q, const Array& k, const Array& v, bool backward);

}  // namespace ember
