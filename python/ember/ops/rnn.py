"""One recurrent layer in one direction, as a single autograd op (nn.RNN/LSTM/GRU stack them).

Forward: the input projection of every time step is ONE GEMM (T*B rows); then per step the hidden
projection GEMM (h @ W_hh^T + b_hh) and the fused cell kernel (_C.rnn_step_forward), which writes
h, c and the activations backward needs. Backward through time walks the steps in reverse with the
fused backward kernel and one GEMM per step for the gradient reaching h_{t-1} (W_hh packed once
for all steps, in each direction of the pass); the weight
gradients are then ONE GEMM each over all steps (dW_ih = dXG^T X, dW_hh = dHG^T H_prev).

The op's output is one (T + 2, B, H) array: the T outputs, then h_n and c_n (zeros for RNN/GRU),
so a single autograd node carries all three; the caller slices them (views)."""
from __future__ import annotations

from .. import _C
from ..tensor import Tensor
from ._util import make, wrap

KINDS = {"RNN_TANH": _C.RnnKind.rnn_tanh, "RNN_RELU": _C.RnnKind.rnn_relu, "LSTM": _C.RnnKind.lstm,
         "GRU": _C.RnnKind.gru}


def _mT(a):
    return a.transpose(0, 1)


def _rows(a, i, n):
    """Rows [i*n, (i+1)*n) of a 2-d array (a view)."""
    return a.slice(0, i * n, (i + 1) * n, 1)


def _sum_rows(a):
    return _C.reduce(_C.ReduceOp.sum, a, [0], False)


def recurrent_layer(mode, x: Tensor, h0: Tensor, c0, w_ih: Tensor, w_hh: Tensor, b_ih, b_hh, lengths=None,
                    reverse=False) -> Tensor:
    """x (T, B, I), h0/c0 (B, H) -> (T + 2, B, H): outputs, h_n, c_n. lengths: a contiguous int64
    _C array (B,) or None; steps past a row's length leave its state alone and output 0."""
    kind = KINDS[mode]
    lstm = kind == _C.RnnKind.lstm
    T, B, I = x.shape
    H = w_hh.shape[1]
    xa = x._a.reshape([T * B, I])
    xg_all = _C.matmul(xa, _mT(w_ih._a), None if b_ih is None else b_ih._a)      # (T*B, G*H): one GEMM
    # W_hh^T packed for the GEMM once per sequence, not at every step (_C.gemm_pack_b).
    w_hh_t, b_hh_a = _C.gemm_pack_b(_mT(w_hh._a)), None if b_hh is None else b_hh._a
    y = _C.empty([T + 2, B, H], x._a.dtype, x._a.device)
    h, c = h0._a.contiguous(), (c0._a.contiguous() if lstm else None)
    steps = range(T - 1, -1, -1) if reverse else range(T)
    record = {}   # t -> (h_prev, c_prev, h_new, saved)
    for t in steps:
        hg = _C.matmul_packed(h, w_hh_t, b_hh_a)
        out_t = y.slice(0, t, t + 1, 1).squeeze(0)
        h_new, c_new, saved = _C.rnn_step_forward(kind, _rows(xg_all, t, B), hg, h, c, lengths, t, out_t)
        record[t] = (h, c, h_new, saved)
        h, c = h_new, c_new
    y.slice(0, T, T + 1, 1).squeeze(0).copy_(h)
    y.slice(0, T + 1, T + 2, 1).squeeze(0).copy_(c if lstm else _C.full([B, H], 0.0, h.dtype, h.device))

    def backward(g):
        ga = g._a
        dh = ga.slice(0, T, T + 1, 1).squeeze(0).contiguous()
        dc = ga.slice(0, T + 1, T + 2, 1).squeeze(0).contiguous() if lstm else None
        DXG = _C.empty(list(xg_all.shape), xg_all.dtype, xg_all.device)            # (T*B, G*H), time order;
        DHG = _C.empty(list(xg_all.shape), xg_all.dtype, xg_all.device)            # each step writes its rows
        w_hh_p = _C.gemm_pack_b(w_hh._a)
        for t in reversed(steps):
            h_prev, c_prev, h_new, saved = record[t]
            dout = ga.slice(0, t, t + 1, 1).squeeze(0)
            _, dh_side, carry, dc = _C.rnn_step_backward(kind, saved, h_prev, c_prev, h_new, dout, dh, dc, lengths,
                                                         t, _rows(DXG, t, B), _rows(DHG, t, B))
            dh = _C.binary(_C.BinaryOp.add, carry, _C.matmul_packed(dh_side, w_hh_p))  # dh_{t-1}
        h_prevs = _C.cat([record[t][0] for t in range(T)], 0)                      # (T*B, H)
        grads = [
            wrap(_C.matmul(DXG, w_ih._a).reshape([T, B, I])) if x.requires_grad else None,
            wrap(dh) if h0.requires_grad else None,
            wrap(dc) if lstm and c0 is not None and c0.requires_grad else None,
            wrap(_C.matmul(_mT(DXG), xa)) if w_ih.requires_grad else None,
            wrap(_C.matmul(_mT(DHG), h_prevs)) if w_hh.requires_grad else None,
            wrap(_sum_rows(DXG)) if b_ih is not None and b_ih.requires_grad else None,
            wrap(_sum_rows(DHG)) if b_hh is not None and b_hh.requires_grad else None,
        ]
        return tuple(grads)

    return make(y, (x, h0, c0 if lstm else None, w_ih, w_hh, b_ih, b_hh), backward, mode.lower())
