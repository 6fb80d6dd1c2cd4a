"""Convolution (PyTorch's conv1d/conv2d: cross-correlation, NCHW) with its gradients, on im2col +
ember's GEMM (core/conv.cpp). conv1d is conv2d on a height-1 image."""
from __future__ import annotations

from .. import _C
from ..tensor import Tensor
from ._util import make, wrap


def _pair(v, name):
    v = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(v) != 2 or not all(isinstance(i, int) for i in v):
        raise ValueError(f"[conv2d] {name} must be an int or a pair of ints, got {v!r}")
    return v


def _padding(padding, kernel, dilation, stride):
    """(top, bottom, left, right). 'same' pads d*(k-1) in all, the extra one at the bottom/right as
    PyTorch does (so even kernels work); it needs stride 1."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"[conv2d] padding='same' needs stride 1, got stride {stride}")
        th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = _pair(padding, "padding")
    return ph, ph, pw, pw


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"[conv2d] expects x (N, C, H, W) and weight (O, C/groups, KH, KW), got {x.shape} and "
                         f"{weight.shape}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = _padding(padding, weight.shape[2:], dilation, stride)
    geom = _C.Conv2dGeom(*stride, *pads, *dilation, int(groups))
    out = _C.conv2d(x._a, weight._a, None if bias is None else bias._a, geom)

    def backward(g):
        ga = g._a
        gx = wrap(_C.conv2d_backward_input(ga, weight._a, list(x.shape), geom)) if x.requires_grad else None
        gw = wrap(_C.conv2d_backward_weight(ga, x._a, list(weight.shape), geom)) if weight.requires_grad else None
        gb = wrap(_C.reduce(_C.ReduceOp.sum, ga, [0, 2, 3], False)) if bias is not None and bias.requires_grad else None
        return gx, gw, gb

    return make(out, (x, weight, bias), backward, "conv2d")


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """x (N, C, L), weight (O, C/groups, K): conv2d over a height-1 image."""
    if x.ndim != 3 or weight.ndim != 3:
        raise ValueError(f"[conv1d] expects x (N, C, L) and weight (O, C/groups, K), got {x.shape} and {weight.shape}")
    first = lambda v: v if isinstance(v, int) else v[0]  # noqa: E731 - an int or a 1-tuple, as PyTorch takes
    pad = padding if isinstance(padding, str) else (0, first(padding))
    y = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, first(stride)), pad, (1, first(dilation)), groups)
    return y.squeeze(2)
