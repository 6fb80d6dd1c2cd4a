"""Weight initialisers (PyTorch's names and formulas), in place, drawn from ember's Philox stream so
a seed fixes every initial weight. fan_in/fan_out: a weight (out, in, *kernel) has fan_in =
in * prod(kernel) and fan_out = out * prod(kernel)."""
from __future__ import annotations

import math

from ..autograd import no_grad
from ..ops.creation import rand, randn
from ..tensor import Tensor

_GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3,
          "relu": math.sqrt(2.0), "selu": 0.75}


def calculate_gain(nonlinearity: str, param=None) -> float:
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"[calculate_gain] unknown nonlinearity {nonlinearity!r}")
    return _GAINS[nonlinearity]


def _fans(t: Tensor):
    if t.ndim < 2:
        raise ValueError(f"[init] fan in/out need a tensor of >= 2 dims, got shape {t.shape}")
    receptive = math.prod(t.shape[2:])
    return t.shape[1] * receptive, t.shape[0] * receptive


def _write(t: Tensor, values: Tensor) -> Tensor:
    with no_grad():
        t._a.copy_(values._a)
    return t


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    return _write(t, rand(*t.shape, generator=generator, dtype=t.dtype, device=t.device) * (b - a) + a)


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    return _write(t, randn(*t.shape, generator=generator, dtype=t.dtype, device=t.device) * std + mean)


def constant_(t: Tensor, value: float) -> Tensor:
    with no_grad():
        t.fill_(value)
    return t


def zeros_(t: Tensor) -> Tensor:
    return constant_(t, 0.0)


def ones_(t: Tensor) -> Tensor:
    return constant_(t, 1.0)


def xavier_uniform_(t: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010; Keras's default)."""
    fan_in, fan_out = _fans(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a, generator)


def xavier_normal_(t: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(t, a, mode, nonlinearity):
    fan_in, fan_out = _fans(t)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"[kaiming] mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """U(-b, b), b = gain * sqrt(3 / fan) (He et al. 2015)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), generator)


# Keras-style names, for Dense(kernel_initializer=...).
BY_NAME = {"glorot_uniform": xavier_uniform_, "xavier_uniform": xavier_uniform_,
           "glorot_normal": xavier_normal_, "xavier_normal": xavier_normal_,
           "he_uniform": lambda t: kaiming_uniform_(t, nonlinearity="relu"),
           "he_normal": lambda t: kaiming_normal_(t, nonlinearity="relu"),
           "zeros": zeros_, "ones": ones_}
