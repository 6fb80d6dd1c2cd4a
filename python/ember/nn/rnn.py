"""Recurrent layers with PyTorch's interface, parameter names, shapes and gate order (so a PyTorch
state_dict loads and gives the same outputs): RNN (tanh/relu), LSTM, GRU with num_layers,
bidirectional, batch_first and dropout between layers; and the cells RNNCell, LSTMCell, GRUCell.

Variable-length batches: forward(x, hx, lengths=...) with each row's length (<= T). Steps past a
row's length do not change its state and output zeros, as PyTorch's packed sequences do; h_n is
the state at each row's last real step (forward direction) or after step 0 (reverse)."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..ops.creation import empty, tensor, zeros
from ..ops.rnn import recurrent_layer
from ..ops.shape import cat, stack
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _lengths_array(lengths, T, B, device):
    """Row lengths as a contiguous int64 _C array, checked against the sequence."""
    if lengths is None:
        return None
    arr = np.asarray(lengths.detach().cpu().numpy() if isinstance(lengths, Tensor) else lengths)
    if arr.shape != (B,) or arr.dtype.kind not in "iu":
        raise ValueError(f"[rnn] lengths must be {B} integers (one per batch row), got shape {arr.shape} "
                         f"dtype {arr.dtype}")
    if arr.size and (arr.min() < 1 or arr.max() > T):
        raise ValueError(f"[rnn] lengths must lie in [1, {T}] (the sequence length), got {arr.min()}..{arr.max()}")
    return tensor(arr.astype(np.int64), device=device)._a


class RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__()
        if num_layers < 1 or hidden_size < 1 or input_size < 1:
            raise ValueError(f"[{type(self).__name__}] sizes must be >= 1, got input_size={input_size}, "
                             f"hidden_size={hidden_size}, num_layers={num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"[{type(self).__name__}] dropout must be in [0, 1), got {dropout}")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        d, g = (2 if bidirectional else 1), GATES[mode]
        dtype = dtype or dtypes.float32
        for layer in range(num_layers):
            for suffix in ([""] + (["_reverse"] if bidirectional else [])):
                width = input_size if layer == 0 else hidden_size * d
                name = f"l{layer}{suffix}"
                setattr(self, f"weight_ih_{name}", Parameter(empty(g * hidden_size, width, dtype=dtype, device=device)))
                setattr(self, f"weight_hh_{name}",
                        Parameter(empty(g * hidden_size, hidden_size, dtype=dtype, device=device)))
                if bias:
                    setattr(self, f"bias_ih_{name}", Parameter(empty(g * hidden_size, dtype=dtype, device=device)))
                    setattr(self, f"bias_hh_{name}", Parameter(empty(g * hidden_size, dtype=dtype, device=device)))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)  # PyTorch: every weight and bias U(-1/sqrt(H), 1/sqrt(H))
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _weights(self, layer, reverse):
        name = f"l{layer}{'_reverse' if reverse else ''}"
        get = lambda kind: getattr(self, f"{kind}_{name}") if self.bias or kind.startswith("weight") else None  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _initial_states(self, hx, B, x):
        """(h0, c0) of shape (L*D, B, H) each (c0 None unless LSTM), zeros when hx is None."""
        shape = (self.num_layers * (2 if self.bidirectional else 1), B, self.hidden_size)
        lstm = self.mode == "LSTM"
        if hx is None:
            z = zeros(*shape, dtype=x.dtype, device=x.device)
            return z, (z if lstm else None)
        h0, c0 = (hx if lstm else (hx, None))
        for what, s in (("h0", h0), ("c0", c0)) if lstm else (("h0", h0),):
            if tuple(s.shape) != shape:
                raise ValueError(f"[{type(self).__name__}] {what} must have shape {shape}, got {tuple(s.shape)}")
        return h0, c0

    def forward(self, input, hx=None, lengths=None):
        name = type(self).__name__
        if input.ndim != 3 or input.shape[-1] != self.input_size:
            raise ValueError(f"[{name}] expects input (T, B, {self.input_size})"
                             f"{' with batch_first (B, T, ...)' if self.batch_first else ''}, got shape {input.shape}")
        x = input.transpose(0, 1) if self.batch_first else input
        T, B = x.shape[0], x.shape[1]
        lens = _lengths_array(lengths, T, B, x.device)
        h0, c0 = self._initial_states(hx, B, x)
        d, lstm = (2 if self.bidirectional else 1), self.mode == "LSTM"
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(d):
                k = layer * d + direction
                y = recurrent_layer(self.mode, x, h0[k], c0[k] if lstm else None, *self._weights(layer, direction == 1),
                                    lengths=lens, reverse=direction == 1)
                outs.append(y[:T])
                h_n.append(y[T])
                c_n.append(y[T + 1])
            x = outs[0] if d == 1 else cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        out = x.transpose(0, 1) if self.batch_first else x
        h = stack(h_n, 0)
        return (out, (h, stack(c_n, 0))) if lstm else (out, h)

    def extra_repr(self):
        extra = "".join(f", {k}={getattr(self, k)}" for k, default in
                        (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                         ("bidirectional", False)) if getattr(self, k) != default)
        return f"{self.input_size}, {self.hidden_size}{extra}"


class RNN(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"[RNN] nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)


class GRU(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)


class RNNCellBase(Module):
    """One step: x (B, I) or (I,), state (B, H) -> new state; the same kernel as the layers with T = 1."""

    def __init__(self, mode, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        g, dtype = GATES[mode], dtype or dtypes.float32
        self.weight_ih = Parameter(empty(g * hidden_size, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(empty(g * hidden_size, hidden_size, dtype=dtype, device=device))
        self.bias_ih = Parameter(empty(g * hidden_size, dtype=dtype, device=device)) if bias else None
        self.bias_hh = Parameter(empty(g * hidden_size, dtype=dtype, device=device)) if bias else None
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _step(self, x, h, c):
        name = type(self).__name__
        single = x.ndim == 1
        xb = x.unsqueeze(0) if single else x
        if xb.ndim != 2 or xb.shape[1] != self.input_size:
            raise ValueError(f"[{name}] expects input (B, {self.input_size}) or ({self.input_size},), got {x.shape}")
        B = xb.shape[0]
        zero = zeros(B, self.hidden_size, dtype=x.dtype, device=x.device)
        h = zero if h is None else (h.unsqueeze(0) if single else h)
        c = (zero if c is None else (c.unsqueeze(0) if single else c)) if self.mode == "LSTM" else None
        for what, s in (("h", h), ("c", c)):
            if s is not None and tuple(s.shape) != (B, self.hidden_size):
                raise ValueError(f"[{name}] {what} must have shape {(B, self.hidden_size)}, got {tuple(s.shape)}")
        y = recurrent_layer(self.mode, xb.unsqueeze(0), h, c, self.weight_ih, self.weight_hh, self.bias_ih,
                            self.bias_hh)
        h_new, c_new = y[1], y[2]
        return (h_new[0], c_new[0]) if single else (h_new, c_new)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"[RNNCell] nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, bias, device, dtype)

    def forward(self, x, hx=None):
        return self._step(x, hx, None)[0]


class LSTMCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, x, hx=None):
        h, c = (None, None) if hx is None else hx
        return self._step(x, h, c)


class GRUCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, x, hx=None):
        return self._step(x, hx, None)[0]
