"""Batch normalisation on the fused kernels (csrc/*/norm): statistics in one kernel, the
normalisation in one pass, and a backward that produces dx, dweight and dbias together."""
from __future__ import annotations

from .. import _C
from ..autograd import no_grad
from ..tensor import Tensor
from ._util import make, wrap


def batch_norm(x: Tensor, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5) -> Tensor:
    """x (N, C, *): per-channel normalisation over every dim but 1. Training uses the batch's mean and
    biased variance and updates the running statistics (unbiased variance) in place; otherwise the
    running statistics are used."""
    if x.ndim < 2:
        raise ValueError(f"[batch_norm] expects x (N, C, ...), got shape {x.shape}")
    C = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"[batch_norm] {name} must have shape ({C},) for x {x.shape}, got {tuple(t.shape)}")
    if training:
        count = x.numel() // C
        if count < 2:
            raise ValueError(f"[batch_norm] training needs more than one value per channel, got input {x.shape}")
        mean, var = (wrap(a) for a in _C.batch_norm_stats(x._a))
        if running_mean is not None:
            with no_grad():
                running_mean.copy_(running_mean * (1 - momentum) + mean * momentum)
                running_var.copy_(running_var * (1 - momentum) + var * (momentum * count / (count - 1)))
    else:
        if running_mean is None:
            raise ValueError("[batch_norm] eval mode needs running statistics")
        mean, var = running_mean.detach(), running_var.detach()
    invstd = (var + eps).sqrt().reciprocal()
    w_a, b_a = (None if weight is None else weight._a), (None if bias is None else bias._a)
    out = _C.batch_norm_apply(x._a, mean._a, invstd._a, w_a, b_a)

    def backward(g):
        dx, dw, db = _C.batch_norm_backward(g._a, x._a, mean._a, invstd._a, w_a, bool(training))
        return wrap(dx), (wrap(dw) if weight is not None else None), (wrap(db) if bias is not None else None)

    return make(out, (x, weight, bias), backward, "batch_norm")


def layer_norm(x: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalises over the trailing dims given by normalized_shape (PyTorch's semantics: biased
    variance, then weight and bias of that shape), in one fused pass per row."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(shape):]) != shape or len(shape) > x.ndim:
        raise ValueError(f"[layer_norm] normalized_shape {shape} does not match the trailing dims of x {x.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"[layer_norm] {name} must have shape {shape}, got {tuple(t.shape)}")
    n = 1
    for s in shape:
        n *= s
    rows = x.reshape(*x.shape[:x.ndim - len(shape)], n)
    w_a = None if weight is None else weight._a.reshape([n])
    b_a = None if bias is None else bias._a.reshape([n])
    y, mean, rstd = _C.layer_norm(rows._a, w_a, b_a, float(eps))

    def backward(g):
        dx, dw, db = _C.layer_norm_backward(g._a, rows._a, mean, rstd, w_a)
        dw = None if weight is None else wrap(dw.reshape(list(shape)))
        db = None if bias is None else wrap(db.reshape(list(shape)))
        return wrap(dx), dw, db

    return make(y, (rows, weight, bias), backward, "layer_norm").reshape(*x.shape)
