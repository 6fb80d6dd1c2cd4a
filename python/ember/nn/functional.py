"""ember.nn.functional (F): the stateless forms of the layers and losses. Kernel-backed ops come from
ember.ops (linear's fused epilogue, the fused cross-entropy); the rest are short compositions whose
gradients autograd derives."""
from __future__ import annotations

from ..ops.elementwise import abs, clamp, exp, gelu, log, maximum, relu, sigmoid, silu, tanh, where  # noqa: F401
from ..ops.conv import conv1d, conv2d  # noqa: F401
from ..ops.linalg import linear  # noqa: F401
from ..ops.loss import cross_entropy  # noqa: F401
from ..ops.attention import scaled_dot_product_attention  # noqa: F401
from ..ops.index import index_select
from ..ops.norm import batch_norm, layer_norm  # noqa: F401
from ..ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d  # noqa: F401
from ..ops.reduce import log_softmax, softmax  # noqa: F401
from ..tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"[{op}] reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_same_shape(op, input, target):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"[{op}] input and target shapes differ: {tuple(input.shape)} vs {tuple(target.shape)}")


def _as_target(target, like: Tensor) -> Tensor:
    if isinstance(target, Tensor):
        return target if target.dtype == like.dtype else target.to(like.dtype)
    from ..ops.creation import tensor
    return tensor(target, dtype=like.dtype, device=like.device)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    target = _as_target(target, input)
    _check_same_shape("mse_loss", input, target)
    return _reduce((input - target).square(), reduction, "mse_loss")


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    target = _as_target(target, input)
    _check_same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction, "l1_loss")


def binary_cross_entropy_with_logits(input: Tensor, target, pos_weight=None, reduction: str = "mean") -> Tensor:
    """-(pw * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x))), in the form that never overflows:
    (1 - y) * x + (1 + (pw - 1) * y) * (log(1 + exp(-|x|)) + relu(-x))."""
    target = _as_target(target, input)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    log_sig_neg = log(exp(-input.abs()) + 1) + relu(-input)  # = -log sigmoid(x)
    if pos_weight is None:
        loss = (1 - target) * input + log_sig_neg
    else:
        pw = _as_target(pos_weight, input)
        loss = (1 - target) * input + (1 + (pw - 1) * target) * log_sig_neg
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def nll_loss(log_probs: Tensor, target: Tensor, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """-log_probs[i, target[i]] per row (N, C), ignored rows excluded from the mean."""
    if log_probs.ndim != 2 or tuple(target.shape) != (log_probs.shape[0],):
        raise ValueError(f"[nll_loss] expects log_probs (N, C) and target (N,), got {log_probs.shape} and {target.shape}")
    keep = target != ignore_index
    picked = log_probs.gather(1, where(keep, target, 0).unsqueeze(1)).squeeze(1)
    loss = where(keep, -picked, 0.0)
    if reduction == "mean":
        return loss.sum() / keep.sum().item()
    return _reduce(loss, reduction, "nll_loss")


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Zeroes each element with probability p and scales the rest by 1/(1-p) (inverted dropout, so
    evaluation needs no rescaling). The mask comes from the Philox stream: a seed fixes it."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"[dropout] p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    from ..ops.creation import rand
    keep = rand(*x.shape, generator=generator, device=x.device) >= p
    return where(keep, x * (1.0 / (1.0 - p)), 0.0)


def embedding(input, weight: Tensor, padding_idx=None) -> Tensor:
    """Rows of weight picked by integer indices: (...) -> (..., D). The backward adds each output
    row's gradient into its weight row in index order (deterministic); the padding_idx row, if
    given, gets no gradient, as in PyTorch."""
    from ..ops.creation import tensor
    idx = input if isinstance(input, Tensor) else tensor(input, device=weight.device)
    if idx.dtype.is_floating_point:
        raise TypeError(f"[embedding] indices must be integers, got {idx.dtype} (shape {idx.shape})")
    if weight.ndim != 2:
        raise ValueError(f"[embedding] weight must be (num_embeddings, dim), got shape {weight.shape}")
    n = weight.shape[0]
    if idx.numel():
        lo, hi = idx.min().item(), idx.max().item()
        if lo < 0 or hi >= n:
            raise IndexError(f"[embedding] index out of range [0, {n}): found {lo if lo < 0 else hi} in indices "
                             f"of shape {idx.shape}")
    flat = idx.reshape(-1)
    out = index_select(weight, 0, flat)
    if padding_idx is not None:
        p = padding_idx % n if padding_idx < 0 else padding_idx
        keep = (flat != p).unsqueeze(1)
        out = where(keep, out, out.detach())
    return out.reshape(*idx.shape, weight.shape[1])
