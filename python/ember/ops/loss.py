"""Cross-entropy on the fused log-softmax + NLL kernel (csrc/*/softmax): the forward writes one loss
and one log-sum-exp per row, never a (rows, classes) log-probability matrix; the backward rebuilds
softmax from the saved log-sum-exp in one pass."""
from __future__ import annotations

from .. import _C
from ..amp import float32_for_loss
from ..tensor import Tensor
from ._util import make, wrap
from .creation import tensor

_REDUCTIONS = ("mean", "sum", "none")


def _rows_last(logits: Tensor, target: Tensor):
    """(N, C, d1, ...) logits with (N, d1, ...) targets -> (N*d1*..., C) and (N*d1*...,), PyTorch's
    layout for per-position classes (a token's vocabulary, a pixel's label)."""
    if logits.ndim == 1:
        return logits.unsqueeze(0), target.reshape(1)
    if logits.ndim == 2:
        return logits, target
    if target.shape != (logits.shape[0],) + tuple(logits.shape[2:]):
        raise ValueError(f"[cross_entropy] logits {logits.shape} need targets of shape "
                         f"{(logits.shape[0],) + tuple(logits.shape[2:])}, got {target.shape}")
    c = logits.shape[1]
    perm = [0] + list(range(2, logits.ndim)) + [1]
    return logits.permute(*perm).reshape(-1, c), target.reshape(-1)


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Mean (over non-ignored rows), sum or per-row cross-entropy of logits against class indices."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"[cross_entropy] reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not isinstance(target, Tensor):
        target = tensor(target, device=logits.device)
    if target.dtype.is_floating_point:
        raise TypeError(f"[cross_entropy] targets must be class indices (int64), got {target.dtype} "
                        f"(shapes logits={logits.shape}, targets={target.shape}); for soft labels use "
                        f"-(target * log_softmax(logits)).sum(-1)")
    x, t = _rows_last(float32_for_loss(logits), target)
    loss_rows, lse = _C.cross_entropy(x._a, t._a, int(ignore_index), float(label_smoothing))

    def backward(g):
        g_rows = g._a.reshape([-1])
        gx = _C.cross_entropy_backward(x._a, t._a, lse, g_rows, int(ignore_index), float(label_smoothing))
        return (wrap(gx),)

    per_row = make(loss_rows, (x,), backward, "cross_entropy")
    if reduction == "none":
        return per_row.reshape(target.shape)
    if reduction == "sum":
        return per_row.sum()
    kept = _kept_rows(t, ignore_index)
    if kept == t.numel():  # nothing ignored: a plain mean, one op
        return per_row.mean()
    return per_row.sum() / kept if kept else per_row.sum() * float("nan")


def _kept_rows(t: Tensor, ignore_index: int) -> int:
    """How many targets are not ignore_index (the mean's divisor), without recording anything."""
    ignored = _C.binary(_C.BinaryOp.eq, t._a, _C.full([], float(ignore_index), t._a.dtype, t._a.device))
    return t.numel() - int(wrap(_C.reduce(_C.ReduceOp.sum, ignored, [], False)).item())
