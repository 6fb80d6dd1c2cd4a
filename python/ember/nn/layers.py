"""The basic layers: Linear (PyTorch), Dense (Keras: units + activation, input size inferred on the
first call), Flatten, Dropout, Embedding."""
from __future__ import annotations

import math

from .. import dtypes
from ..ops.creation import empty
from ..ops.linalg import linear
from . import functional as F
from . import init
from .checks import an_int, positive_int
from .activation import BY_NAME as ACTIVATIONS
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b, W (out_features, in_features); PyTorch's initialisation: W and b uniform in
    +-1/sqrt(in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        dtype = dtype or dtypes.float32
        self.weight = Parameter(empty(self.out_features, self.in_features, dtype=dtype, device=device))
        self.bias = Parameter(empty(self.out_features, dtype=dtype, device=device)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # = U(+-1/sqrt(fan_in))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Dense(Module):
    """Keras's Dense: `units` outputs, an optional activation by name ('relu' and 'gelu' run fused
    in the GEMM's epilogue), Glorot-uniform kernel and zero bias. The input size comes from
    input_shape or, failing that, from the first input seen; until then the layer has no parameters
    (model.compile/fit build it before binding the optimizer)."""

    def __init__(self, units: int, activation=None, input_shape=None, use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", input_dim=None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"[Dense] unknown activation {activation!r}; expected one of "
                             f"{sorted(k for k in ACTIVATIONS if k)}")
        if kernel_initializer not in init.BY_NAME:
            raise ValueError(f"[Dense] unknown kernel_initializer {kernel_initializer!r}")
        self.units, self.activation, self.use_bias = positive_int("Dense", "units", units), activation, use_bias
        self.kernel_initializer = kernel_initializer
        object.__setattr__(self, "act", ACTIVATIONS[activation]())  # a function here, not a child module
        self.weight = self.bias = None
        if input_dim is not None:
            input_shape = (input_dim,)
        if input_shape is not None:
            self.build(tuple(input_shape)[-1])

    @property
    def built(self):
        return self.weight is not None

    def build(self, in_features: int, device=None):
        self.in_features = positive_int("Dense", "input size", in_features)
        self.weight = Parameter(empty(self.units, self.in_features, device=device))
        # The Glorot fans of Keras's (in, units) kernel are the same as of this (units, in) one.
        init.BY_NAME[self.kernel_initializer](self.weight)
        self.bias = Parameter(empty(self.units, device=device)) if self.use_bias else None
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x):
        if not self.built:
            self.build(x.shape[-1], device=x.device)
        if self.activation in ("relu", "gelu"):
            return linear(x, self.weight, self.bias, activation=self.activation)
        return self.act(linear(x, self.weight, self.bias))

    def extra_repr(self):
        inp = self.in_features if self.built else "?"
        act = f", activation={self.activation!r}" if self.activation else ""
        return f"{inp} -> {self.units}{act}"


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = an_int("Flatten", "start_dim", start_dim), an_int("Flatten", "end_dim", end_dim)

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class Dropout(Module):
    """Inverted dropout in training mode, the identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"[Dropout] p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Embedding(Module):
    """A lookup table: integer indices (...) -> rows (..., embedding_dim) of weight, initialised
    N(0, 1) as in PyTorch; the padding_idx row starts at zero and gets no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, device=None, dtype=None):
        super().__init__()
        self.num_embeddings = positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim, self.padding_idx = positive_int("Embedding", "embedding_dim", embedding_dim), padding_idx
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"[Embedding] padding_idx {padding_idx} out of range for {num_embeddings} embeddings")
        self.weight = Parameter(empty(self.num_embeddings, self.embedding_dim, dtype=dtype or dtypes.float32,
                                      device=device))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            from ..autograd import no_grad
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, idx):
        return F.embedding(idx, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
