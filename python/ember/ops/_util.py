"""Helpers shared by the op files: wrapping results into the graph, turning Python scalars into
tensors, and summing a broadcast gradient back to an input's shape."""
from __future__ import annotations

import builtins

import numpy as np

from .. import _C
from .. import dtypes as _dt
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


def scalar_dtype(value, like: Tensor):
    """PyTorch's rule for a Python scalar next to a tensor: it takes the tensor's dtype unless it is
    a float next to an integer/bool tensor (then float32), or an int next to a bool tensor (int64)."""
    if isinstance(value, builtins.bool):
        return like.dtype
    if isinstance(value, builtins.int):
        return _dt.int64 if like.dtype == _dt.bool else like.dtype
    return like.dtype if like.dtype.is_floating_point else _dt.float32


FLOATING = frozenset(("float32", "float64", "float16", "bfloat16"))  # floating dtypes, by _C.Array.dtype name


def _python_scalar_dtype(kind, like_dtype: str) -> str:
    """scalar_dtype for a Python bool/int/float next to an array of dtype like_dtype, by name."""
    if kind is builtins.float:
        return like_dtype if like_dtype in FLOATING else "float32"
    if kind is builtins.int and like_dtype == "bool":
        return "int64"
    return like_dtype


def as_tensor(value, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    kind = type(value)
    if kind is builtins.float or kind is builtins.int or kind is builtins.bool:  # x * 0.5: the common case, by names
        a = like._a
        return Tensor._wrap(_C.full((), float(value), _python_scalar_dtype(kind, a.dtype), a.device))
    if isinstance(value, (builtins.bool, builtins.int, builtins.float, np.number, np.bool_)) and not isinstance(value, np.ndarray):
        if isinstance(value, np.generic):
            value = value.item()
        dt = scalar_dtype(value, like)
        return Tensor._wrap(_C.full([], float(value), dt.name, like._a.device))
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
