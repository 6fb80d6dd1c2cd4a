#include "bindings/bindings.h"
#include "core/ops.h"

namespace ember::bindings {

// An absent optional array arrives as None and becomes an empty (undefined) Array.
static Array or_empty(const std::optional<Array>& a) { return a ? *a : Array(); }
// And back: an empty result array becomes None.
static py::object or_none(const Array& a) { return a.defined() ? py::cast(a) : py::none(); }

void init_nn(py::module_& m) {
  py::class_<Conv2dGeom>(m, "Conv2dGeom")
      .def(py::init([](int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw,
                       int64_t groups) { return Conv2dGeom{sh, sw, pt, pb, pl, pr, dh, dw, groups}; }));
  m.def("conv2d", [](const Array& x, const Array& w, std::optional<Array> bias, const Conv2dGeom& g) {
    return conv2d(x, w, bias ? &*bias : nullptr, g);
  });
  m.def("conv2d_backward_input", &conv2d_backward_input);
  m.def("batch_norm_stats", [](const Array& x) {
    auto [mean, var] = batch_norm_stats(x);
    return py::make_tuple(mean, var);
  });
  m.def("batch_norm_apply", [](const Array& x, const Array& mean, const Array& invstd, std::optional<Array> weight,
                               std::optional<Array> bias) {
    return batch_norm_apply(x, mean, invstd, or_empty(weight), or_empty(bias));
  });
  m.def("batch_norm_backward", [](const Array& dy, const Array& x, const Array& mean, const Array& invstd,
                                  std::optional<Array> weight, bool batch_stats) {
    BatchNormGrads g = batch_norm_backward(dy, x, mean, invstd, or_empty(weight), batch_stats);
    return py::make_tuple(g.dx, g.dweight, g.dbias);
  });
  m.def("layer_norm", [](const Array& x, std::optional<Array> weight, std::optional<Array> bias, double eps) {
    LayerNormOut o = layer_norm(x, or_empty(weight), or_empty(bias), eps);
    return py::make_tuple(o.y, o.mean, o.rstd);
  });
  m.def("layer_norm_backward", [](const Array& dy, const Array& x, const Array& mean, const Array& rstd,
                                   std::optional<Array> weight) {
    LayerNormGrads g = layer_norm_backward(dy, x, mean, rstd, or_empty(weight));
    return py::make_tuple(g.dx, or_none(g.dweight), or_none(g.dbias));
  });
  py::class_<AttentionArgs>(m, "AttentionArgs")
      .def(py::init([](double scale, bool causal, double dropout_p, uint64_t seed, uint64_t offset) {
             return AttentionArgs{scale, causal, dropout_p, seed, offset};
           }),
           py::arg("scale"), py::arg("causal"), py::arg("dropout_p") = 0.0, py::arg("seed") = 0, py::arg("offset") = 0);
  m.def("attention", [](const Array& q, const Array& k, const Array& v, std::optional<Array> mask,
                        const AttentionArgs& a) {
    auto [out, lse] = attention(q, k, v, or_empty(mask), a);
    return py::make_tuple(out, lse);
  });
  m.def("attention_backward", [](const Array& dout, const Array& q, const Array& k, const Array& v, const Array& out,
                                 const Array& lse, std::optional<Array> mask, const AttentionArgs& a) {
    AttentionGrads g = attention_backward(dout, q, k, v, out, lse, or_empty(mask), a);
    return py::make_tuple(g.dq, g.dk, g.dv);
  });
  m.def("attention_workspace_bytes", &attention_workspace_bytes);
  py::enum_<PoolMode>(m, "PoolMode")
      .value("max", PoolMode::max).value("avg", PoolMode::avg).value("adaptive_avg", PoolMode::adaptive_avg);
  py::class_<Pool2dGeom>(m, "Pool2dGeom")
      .def(py::init([](PoolMode mode, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                       int64_t dh, int64_t dw, int64_t oh, int64_t ow, bool count_include_pad) {
        return Pool2dGeom{mode, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, count_include_pad};
      }));
  m.def("pool2d", [](const Array& x, const Pool2dGeom& g) {
    auto [out, idx] = pool2d(x, g);
    return py::make_tuple(out, idx.defined() ? py::cast(idx) : py::none());
  });
  m.def("pool2d_backward", [](const Array& grad, std::optional<Array> indices, const Shape& x_shape,
                              const Pool2dGeom& g) { return pool2d_backward(grad, or_empty(indices), x_shape, g); });
  m.def("conv2d_backward_weight", &conv2d_backward_weight);
  py::enum_<RnnKind>(m, "RnnKind")
      .value("rnn_tanh", RnnKind::rnn_tanh).value("rnn_relu", RnnKind::rnn_relu).value("lstm", RnnKind::lstm)
      .value("gru", RnnKind::gru);
  // saved() and the constructor let a caller that keeps only arrays (the torch bridge) rebuild it.
  py::class_<RnnSequence>(m, "RnnSequence")
      .def(py::init([](RnnKind kind, bool reverse, std::optional<Array> lengths, const Array& y, const Array& hs,
                       std::optional<Array> cs, const Array& gates, std::optional<Array> extra) {
        return RnnSequence{kind, reverse, or_empty(lengths), y, hs, or_empty(cs), gates, or_empty(extra)};
      }))
      .def_readonly("y", &RnnSequence::y)
      .def("h_prevs", &RnnSequence::h_prevs)
      .def("saved", [](const RnnSequence& s) {  // (hs, cs, gates, extra), None where not kept
        auto opt = [](const Array& a) { return a.defined() ? py::cast(a) : py::none(); };
        return py::make_tuple(s.hs, opt(s.cs), s.gates, opt(s.extra));
      });
  m.def("rnn_sequence_forward", [](RnnKind kind, const Array& xg, const Array& w_hh, std::optional<Array> b_hh,
                                   const Array& h0, std::optional<Array> c0, std::optional<Array> lengths,
                                   bool reverse) {
    return rnn_sequence_forward(kind, xg, w_hh, or_empty(b_hh), h0, or_empty(c0), or_empty(lengths), reverse);
  });
  m.def("rnn_sequence_backward", [](const RnnSequence& seq, const Array& w_hh, const Array& dy) {
    RnnSequenceGrads g = rnn_sequence_backward(seq, w_hh, dy);
    return py::make_tuple(g.dxg, g.dhg, g.dh0, g.dc0.defined() ? py::cast(g.dc0) : py::none());
  });
  m.def("softmax", &softmax, py::arg("x"), py::arg("dim"), py::arg("log"));
  m.def("cross_entropy", &cross_entropy, py::arg("logits"), py::arg("targets"), py::arg("ignore_index"),
        py::arg("label_smoothing"));
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("logits"), py::arg("targets"), py::arg("lse"),
        py::arg("grad_rows"), py::arg("ignore_index"), py::arg("label_smoothing"));
}

}  // namespace ember::bindings
