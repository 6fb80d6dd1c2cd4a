"""Activation layers: each wraps the op of the same name (ember.ops.elementwise / reduce)."""
from __future__ import annotations

from ..ops import elementwise as E
from ..ops.reduce import softmax
from .checks import an_int
from .module import Module


class ReLU(Module):
    def forward(self, x):
        return E.relu(x)


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"[GELU] approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return E.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}" if self.approximate != "none" else ""


class Sigmoid(Module):
    def forward(self, x):
        return E.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return E.tanh(x)


class SiLU(Module):
    def forward(self, x):
        return E.silu(x)


class Softmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = an_int("Softmax", "dim", dim)

    def forward(self, x):
        return softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Identity(Module):
    def forward(self, x):
        return x


# Keras-style activation names (Dense(activation=...)). relu and gelu are fused into the GEMM.
BY_NAME = {None: Identity, "linear": Identity, "relu": ReLU, "gelu": GELU, "sigmoid": Sigmoid, "tanh": Tanh,
           "silu": SiLU, "swish": SiLU, "softmax": Softmax}
