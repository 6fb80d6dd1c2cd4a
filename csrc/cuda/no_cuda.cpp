// Stands in for the CUDA backend when ember is built without a CUDA compiler: every entry point
// raises "[op] ember was built without CUDA"; the queries answer "no devices".
#include "core/backend.h"

namespace ember::cuda {

[[noreturn]] static void no_cuda(const char* op) {
  fail<std::runtime_error>(op, "ember was built without CUDA");
}

void* allocate(size_t, int) { no_cuda("cuda alloc"); }
void deallocate(void*, int) {}
void copy(const Array&, Array&) { no_cuda("copy"); }
void fill(Array&, double) { no_cuda("fill"); }
void arange(Array&, double, double) { no_cuda("arange"); }
void unary(UnaryOp, const Array&, Array&, double, double) { no_cuda("unary"); }
void unary_backward(UnaryOp, const Array&, const Array&, Array&, double, double) { no_cuda("unary_backward"); }
void binary(BinaryOp, const Array&, const Array&, Array&) { no_cuda("binary"); }
void where(const Array&, const Array&, const Array&, Array&) { no_cuda("where"); }
void reduce(ReduceOp, const Array&, Array&, int64_t, int64_t, int64_t, int64_t) { no_cuda("reduce"); }
void index_select(const Array&, const Array&, Array&, int64_t, int64_t, int64_t) { no_cuda("index_select"); }
void index_add(const Array&, const Array&, Array&, int64_t, int64_t, int64_t) { no_cuda("index_add"); }
void gather(const Array&, const Array&, Array&, int64_t, int64_t, int64_t) { no_cuda("gather"); }
void scatter_add(const Array&, const Array&, Array&, int64_t, int64_t, int64_t) { no_cuda("scatter_add"); }
Array nonzero_flat(const Array&) { no_cuda("nonzero"); }
void gemm(const Array&, const Array&, Array&, double, double, const Array*, Activation) { no_cuda("matmul"); }
using Arrays = std::vector<Array>;
void adam_step(const Arrays&, const Arrays&, const Arrays&, const Arrays&, const AdamRule&) { no_cuda("adam_step"); }
void sgd_step(const Arrays&, const Arrays&, const Arrays&, const SgdRule&) { no_cuda("sgd_step"); }
void rmsprop_step(const Arrays&, const Arrays&, const Arrays&, const Arrays&, const Arrays&, const RmspropRule&) {
  no_cuda("rmsprop_step");
}
void cross_entropy(const Array&, const Array&, Array&, Array&, int64_t, double) { no_cuda("cross_entropy"); }
void softmax(const Array&, Array&, bool log) { no_cuda(log ? "log_softmax" : "softmax"); }
void cross_entropy_backward(const Array&, const Array&, const Array&, const Array&, Array&, int64_t, double) {
  no_cuda("cross_entropy");
}
void rnn_step_forward(RnnKind, Array&, const Array&, const Array&, const Array&, const Array&, int64_t, Array&, Array&,
                      Array&, Array&) {
  no_cuda("rnn_step");
}
void rnn_step_backward(RnnKind, const Array&, const Array&, const Array&, const Array&, const Array&, const Array&,
                       const Array&, const Array&, const Array&, int64_t, Array&, Array&, Array&, Array&) {
  no_cuda("rnn_step_backward");
}
bool rnn_sequence_forward(RnnKind, Array&, const Array&, const Array&, const Array&, bool, Array&, Array&, Array&,
                          Array&) {
  no_cuda("rnn");
}
bool rnn_sequence_backward(RnnKind, const Array&, const Array&, bool, const Array&, const Array&, const Array&,
                           const Array&, const Array&, Array&, Array&, Array&, Array&) {
  no_cuda("rnn_backward");
}
void im2col(const Array&, Array&, int64_t, int64_t, const Conv2dGeom&) { no_cuda("conv2d"); }
void col2im(const Array&, Array&, int64_t, int64_t, const Conv2dGeom&) { no_cuda("conv2d"); }
Array conv2d_direct(const Array&, const Array&, const Array&, const Shape&, const Conv2dGeom&) { no_cuda("conv2d"); }
Array conv2d_direct_backward_input(const Array&, const Array&, const Shape&, const Conv2dGeom&) { no_cuda("conv2d"); }
Array conv2d_direct_backward_weight(const Array&, const Array&, const Shape&, const Conv2dGeom&) { no_cuda("conv2d"); }
void depthwise_conv2d(const Array&, const Array&, Array&, const Conv2dGeom&) { no_cuda("conv2d"); }
void depthwise_conv2d_backward_input(const Array&, const Array&, Array&, const Conv2dGeom&) { no_cuda("conv2d"); }
void depthwise_conv2d_backward_weight(const Array&, const Array&, Array&, const Conv2dGeom&) { no_cuda("conv2d"); }
void pool2d(const Array&, Array&, Array&, const Pool2dGeom&) { no_cuda("pool2d"); }
void pool2d_backward(const Array&, const Array&, Array&, const Pool2dGeom&) { no_cuda("pool2d"); }
void batch_norm_stats(const Array&, Array&, Array&) { no_cuda("batch_norm"); }
void batch_norm_apply(const Array&, const Array&, const Array&, const Array&, const Array&, Array&) {
  no_cuda("batch_norm");
}
void batch_norm_backward(const Array&, const Array&, const Array&, const Array&, const Array&, bool, Array&, Array&,
                         Array&) {
  no_cuda("batch_norm");
}
void layer_norm(const Array&, const Array&, const Array&, double, Array&, Array&, Array&) { no_cuda("layer_norm"); }
void layer_norm_backward(const Array&, const Array&, const Array&, const Array&, const Array&, Array&, Array&, Array&) {
  no_cuda("layer_norm");
}
void attention_forward(const Array&, const Array&, const Array&, const Array&, const AttentionArgs&, Array&, Array&) {
  no_cuda("scaled_dot_product_attention");
}
void attention_backward(const Array&, const Array&, const Array&, const Array&, const Array&, const Array&,
                        const Array&, const AttentionArgs&, Array&, Array&, Array&) {
  no_cuda("scaled_dot_product_attention");
}
int64_t attention_workspace_bytes(const Array&, const Array&, const Array&, bool) {
  no_cuda("scaled_dot_product_attention");
}
void random_uniform(Array&, double, double, uint64_t, uint64_t) { no_cuda("rand"); }
void random_normal(Array&, double, double, uint64_t, uint64_t) { no_cuda("randn"); }
void random_int(Array&, int64_t, int64_t, uint64_t, uint64_t) { no_cuda("randint"); }

int device_count() { return 0; }
bool compiled() { return false; }
void memcpy_bytes(void*, Device, const void*, Device, size_t) { no_cuda("to"); }
void synchronize(int) { no_cuda("synchronize"); }
size_t memory_allocated(int) { return 0; }
void* current_stream(int) { no_cuda("current_stream"); }
void set_current_stream(int, void*) { no_cuda("set_stream"); }
void stream_wait_current(int, void*) { no_cuda("stream"); }

}  // namespace ember::cuda
