"""Attention maps and attention rollout.

ember's attention layers (nn.MultiheadAttention, so every TransformerEncoder/DecoderLayer, and
BERT's self-attention) run the flash kernel, which never builds the (L, S) probability matrix. A
layer whose `attention_sink` is a list also computes softmax(q k^T / sqrt(d) + mask) and appends
it there; record_attention sets one shared list on every such layer for the length of a block, so
the default path costs nothing.

Rollout (Abnar & Zuidema 2020): each layer's head-averaged map, mixed half-and-half with the
identity for the residual connection and renormalised, multiplied from the first layer up."""
from __future__ import annotations

import contextlib

import numpy as np

from ..autograd import no_grad
from ..ops.creation import tensor
from ..tensor import Tensor
from .gradients import _float_dtype, frozen_eval, model_device


def attention_layers(model):
    """The modules of model that can record their attention weights, in registration order."""
    return [m for m in model.modules() if hasattr(type(m), "attention_sink")]


@contextlib.contextmanager
def record_attention(model):
    """Yields a list that fills with one (B, heads, L, S) NumPy array per attention call made by
    model inside the block, in call order."""
    layers = attention_layers(model)
    if not layers:
        raise ValueError(f"[record_attention] {type(model).__name__} has no attention layers "
                         f"(nn.MultiheadAttention or BERT self-attention)")
    sink = []
    for m in layers:
        m.attention_sink = sink
    try:
        yield sink
    finally:
        for m in layers:
            m.attention_sink = None


def _to_tensor(a, dtype, device):
    if isinstance(a, Tensor) or not isinstance(a, np.ndarray):
        return a
    return tensor(a, dtype=dtype, device=device) if a.dtype.kind == "f" else tensor(a.astype(np.int64), device=device)


def attention_maps(model, *inputs, **kwargs):
    """Runs model(*inputs, **kwargs) in eval mode without gradients and returns each attention
    call's probabilities: a list with one (B, heads, L, S) float array per layer call (rows sum to
    1). NumPy inputs become tensors (floats in the model's dtype, integers as int64)."""
    dtype, device = _float_dtype(model), model_device(model)
    inputs = [_to_tensor(a, dtype, device) for a in inputs]
    with frozen_eval(model), no_grad(), record_attention(model) as maps:
        model(*inputs, **kwargs)
    return list(maps)


def attention_rollout(maps, head_fusion="mean", residual=True):
    """(B, L, L): row i says how much output token i draws on input token j through all layers.
    maps: per-layer (B, heads, L, L) arrays (attention_maps' result, self-attention only);
    head_fusion: "mean", "max" or "min" over heads; residual: account for the skip connection."""
    if not maps:
        raise ValueError("[attention_rollout] no attention maps given")
    fuse = {"mean": np.mean, "max": np.max, "min": np.min}
    if head_fusion not in fuse:
        raise ValueError(f"[attention_rollout] head_fusion must be one of {sorted(fuse)}, got {head_fusion!r}")
    first = np.asarray(maps[0]).shape
    rollout = None
    for i, m in enumerate(maps):
        m = np.asarray(m, dtype=np.float64)
        if m.ndim != 4 or m.shape[-1] != m.shape[-2] or m.shape[0] != first[0] or m.shape[-1] != first[-1]:
            raise ValueError(f"[attention_rollout] every map must be self-attention (B, heads, L, L) with the same "
                             f"B and L; map 0 is {first}, map {i} is {m.shape}")
        a = fuse[head_fusion](m, axis=1)
        if residual:
            a = 0.5 * a + 0.5 * np.eye(a.shape[-1])
        a = a / a.sum(-1, keepdims=True)
        rollout = a if rollout is None else a @ rollout
    return rollout
