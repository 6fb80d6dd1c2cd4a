"""Helpers shared by the op files: wrapping results into the graph, turning Python scalars into
tensors, and summing a broadcast gradient back to an input's shape."""
from __future__ import annotations

import builtins

import numpy as np

from .. import _C
from ..autograd.graph import _state as _grad_state
from ..autograd.graph import attach
from ..tensor import Tensor
from .creation import tensor

wrap = Tensor._wrap  # a _C.Array as a Tensor outside the graph


def make(array, parents, backward, name) -> Tensor:
    """Wraps a _C.Array result and records it in the graph (backward: grad -> grads per parent).
    name: a string, or the op's _C enum (autograd.graph.op_name reads it when shown)."""
    return attach(Tensor._wrap(array), parents, backward, name)


def records(a, b=None) -> bool:
    """Whether an op on a (and b) is recorded in the graph: grad mode on and an input needs a gradient.
    Ops test this before building their backward closure, so that calls outside training (and on
    tensors that need no gradient) pay for no closure and no Node (a third of a small op's time)."""
    return (a.requires_grad or (b is not None and b.requires_grad)) and _grad_state.enabled


def records_any(tensors) -> bool:
    """records() for a list of inputs (cat, stack)."""
    if not _grad_state.enabled:
        return False
    for t in tensors:
        if t.requires_grad:
            return True
    return False


def norm_dim(dim, ndim, op) -> int:
    """dim in [-ndim, ndim) as a non-negative index (a 0-d tensor accepts 0 and -1, as PyTorch)."""
    n = builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"[{op}] dim {dim} out of range for a {ndim}-d tensor")
    return dim % n


FLOATING = frozenset(("float32", "float64", "float16", "bfloat16"))  # floating dtypes, by _C.Array.dtype name
SCALAR_KINDS = {builtins.bool: _C.ScalarKind.boolean, builtins.int: _C.ScalarKind.integer,
                builtins.float: _C.ScalarKind.real}


def as_tensor(value, like: Tensor) -> Tensor:
    """value as a Tensor next to `like`: a Python or NumPy number becomes a 0-d tensor of PyTorch's
    dtype for it (the rule is the core's, _C.number_like, shared with _C.binary_scalar); anything
    else goes through em.tensor."""
    if isinstance(value, Tensor):
        return value
    kind = SCALAR_KINDS.get(type(value))  # x * 0.5: the common case, by type alone
    if kind is None and isinstance(value, (builtins.bool, builtins.int, builtins.float, np.number, np.bool_)):
        if isinstance(value, np.generic):
            value = value.item()
        kind = SCALAR_KINDS[next(t for t in SCALAR_KINDS if isinstance(value, t))]  # bool before int
    if kind is not None:
        return Tensor._wrap(_C.number_like(like._a, float(value), kind))
    return tensor(value, device=like.device)


def unbroadcast(g: Tensor, shape) -> Tensor:
    """Sums g over the dims that broadcasting added or stretched, so it matches shape."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    dims = list(range(lead)) + [lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1]
    a = _C.reduce(_C.ReduceOp.sum, g._a, dims, False) if dims else g._a
    return Tensor._wrap(a.reshape(list(shape)))
