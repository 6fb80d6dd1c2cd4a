"""Scaled dot-product attention on the flash-style kernels (csrc/*/attention): the forward keeps
only the output and one log-sum-exp per query row, the backward recomputes the probabilities tile
by tile from them, so memory grows with the sequence length, not its square."""
from __future__ import annotations

import math

from .. import _C
from ..amp import cast_for_gemm
from ..random import default_generator
from ..tensor import Tensor
from ._util import make, wrap


def _as_heads(t: Tensor, name: str):
    """(..., T, D) -> (B, H, T, D): PyTorch accepts any leading dims; the kernel wants exactly two."""
    if t.ndim < 2:
        raise ValueError(f"[scaled_dot_product_attention] {name} must be (..., T, D), got shape {t.shape}")
    if t.ndim == 4:
        return t
    lead = t.shape[:-2]
    b = 1
    for s in lead[:-1]:
        b *= s
    h = lead[-1] if lead else 1
    return t.reshape(b, h, t.shape[-2], t.shape[-1])


def _mask_heads(mask, q4: Tensor, q: Tensor):
    """A mask broadcastable to (..., Tq, Tk) in q's leading dims, as a (B, H, ...) view."""
    if mask is None or q.ndim == 4 or mask.ndim <= 2:
        return mask
    full = tuple(q.shape[:-2]) + tuple(mask.shape[-2:])
    return mask.expand(*full).reshape(q4.shape[0], q4.shape[1], *mask.shape[-2:])


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale=None, generator=None) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value over (..., T, D) tensors, PyTorch's semantics:
    scale defaults to 1/sqrt(D); a bool mask is True where attention is allowed, a float mask is
    added to the scores; is_causal lets query i see keys j <= i. Rows with every key masked out give
    zeros (PyTorch's math path gives NaN there). dropout_p drops probabilities from the Philox
    stream of `generator` (default: the global one)."""
    if is_causal and attn_mask is not None:
        raise ValueError("[scaled_dot_product_attention] pass either attn_mask or is_causal, not both")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"[scaled_dot_product_attention] dropout_p must be in [0, 1), got {dropout_p}")
    if query.device.type == "cuda":  # the CUDA kernel takes 16-bit storage; the CPU one float32/float64
        query, key, value = cast_for_gemm(query, key, value)
    q, k, v = _as_heads(query, "query"), _as_heads(key, "key"), _as_heads(value, "value")
    mask = _mask_heads(attn_mask, q, query)
    if mask is not None and mask.requires_grad:
        raise NotImplementedError("[scaled_dot_product_attention] gradients with respect to attn_mask")
    s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    seed = offset = 0
    if dropout_p > 0:
        seed, offset = (generator or default_generator)._take(q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2])
    args = _C.AttentionArgs(s, bool(is_causal), float(dropout_p), seed, offset)
    m_a = None if mask is None else mask._a
    out, lse = _C.attention(q._a, k._a, v._a, m_a, args)

    def backward(g):
        dq, dk, dv = _C.attention_backward(g._a, q._a, k._a, v._a, out, lse, m_a, args)
        return wrap(dq), wrap(dk), wrap(dv)

    result = make(out, (q, k, v), backward, "scaled_dot_product_attention")
    return result.reshape(*query.shape[:-1], value.shape[-1])


def attention_workspace_bytes(query: Tensor, key: Tensor, value: Tensor, backward: bool = False) -> int:
    """Scratch bytes the attention kernel allocates for these shapes (linear in T, never T x T)."""
    return _C.attention_workspace_bytes(_as_heads(query, "query")._a, _as_heads(key, "key")._a,
                                        _as_heads(value, "value")._a, bool(backward))
