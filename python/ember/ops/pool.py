"""Pooling with gradients (csrc/*/pool): max_pool2d (indices kept for backward), avg_pool2d,
adaptive_avg_pool2d, with PyTorch's output-size rules (floor, or ceil_mode)."""
from __future__ import annotations

import math

from .. import _C
from ..tensor import Tensor
from ._util import make, wrap


def _pair(v, name, op, minimum=0):
    v = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(v) != 2 or not all(isinstance(i, int) and i >= minimum for i in v):
        raise ValueError(f"[{op}] {name} must be an int or a pair of ints >= {minimum}, got {v!r}")
    return v


def _out_size(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input or left padding
        out -= 1
    return out


def _pool(x: Tensor, geom, op) -> Tensor:
    if x.ndim != 4:
        raise ValueError(f"[{op}] expects x (N, C, H, W), got shape {x.shape}")
    out, idx = _C.pool2d(x._a, geom)

    def backward(g):
        return (wrap(_C.pool2d_backward(g._a, idx, list(x.shape), geom)),)

    return make(out, (x,), backward, op), idx


def _window_geom(mode, x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, op):
    k = _pair(kernel_size, "kernel_size", op, 1)
    s = _pair(stride if stride is not None else kernel_size, "stride", op, 1)
    p, d = _pair(padding, "padding", op), _pair(dilation, "dilation", op, 1)
    if x.ndim != 4:
        raise ValueError(f"[{op}] expects x (N, C, H, W), got shape {x.shape}")
    oh = _out_size(x.shape[2], k[0], s[0], p[0], d[0], ceil_mode)
    ow = _out_size(x.shape[3], k[1], s[1], p[1], d[1], ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(f"[{op}] kernel {k} (dilation {d}) does not fit the padded input {x.shape}")
    return _C.Pool2dGeom(mode, *k, *s, *p, *d, oh, ow, count_include_pad)


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    geom = _window_geom(_C.PoolMode.max, x, kernel_size, stride, padding, dilation, ceil_mode, True, "max_pool2d")
    out, idx = _pool(x, geom, "max_pool2d")
    return (out, Tensor._wrap(idx)) if return_indices else out


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    geom = _window_geom(_C.PoolMode.avg, x, kernel_size, stride, padding, 1, ceil_mode, count_include_pad,
                        "avg_pool2d")
    return _pool(x, geom, "avg_pool2d")[0]


def adaptive_avg_pool2d(x: Tensor, output_size):
    if x.ndim != 4:
        raise ValueError(f"[adaptive_avg_pool2d] expects x (N, C, H, W), got shape {x.shape}")
    # None keeps that input size, as in PyTorch
    size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    size = tuple(x.shape[2 + i] if v is None else v for i, v in enumerate(size[:2])) + size[2:]
    oh, ow = _pair(size, "output_size", "adaptive_avg_pool2d", 1)
    geom = _C.Pool2dGeom(_C.PoolMode.adaptive_avg, 1, 1, 1, 1, 0, 0, 1, 1, oh, ow, True)
    return _pool(x, geom, "adaptive_avg_pool2d")[0]
