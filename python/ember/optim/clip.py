"""Gradient clipping by the global norm (all gradients as one vector), as PyTorch's
clip_grad_norm_: one norm per tensor, one scale applied to every gradient in place."""
from __future__ import annotations

import math

from ..autograd import no_grad
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scales gradients so their total norm is at most max_norm; returns the norm before clipping."""
    from ..ops.creation import tensor
    if not max_norm >= 0:  # a negative max_norm would flip every gradient's sign
        raise ValueError(f"[clip_grad_norm_] max_norm must be >= 0, got {max_norm!r}")
    if not norm_type > 0:
        raise ValueError(f"[clip_grad_norm_] norm_type must be > 0 (or inf), got {norm_type!r}")
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return tensor(0.0)
    with no_grad():
        if norm_type == math.inf:
            total = max(float(g.abs().max().item()) for g in grads)
        else:
            total = sum(float((g.abs() ** norm_type).sum().item()) for g in grads) ** (1.0 / norm_type)
        if error_if_nonfinite and not math.isfinite(total):
            raise RuntimeError(f"[clip_grad_norm_] the total norm of the gradients is {total}")
        scale = max_norm / (total + 1e-6)
        if scale < 1.0:
            for g in grads:
                g._a.copy_((g * scale)._a)
    return tensor(total)
