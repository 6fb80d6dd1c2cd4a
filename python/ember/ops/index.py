"""Indexing ops with gradients: index_select (backward: index_add), gather (backward: scatter_add),
integer-array and boolean-mask indexing built on them, and x[key] / x[key] = v for every key (the
basic part of a key is a view, ops/shape.py's basic_plan; the rest is gathered or scattered here)."""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import _C
from .. import dtypes as _dt
from ..autograd.graph import is_grad_enabled
from ..tensor import Tensor
from ._util import as_tensor, make, norm_dim, records, wrap
from .creation import arange, tensor
from .elementwise import where
from .shape import apply_steps, basic_plan, strided_view


def _pick(name, forward, backward):
    """An op that reads x at indices along dim (index_select, gather); its backward adds the
    gradient back at the same indices (index_add, scatter_add) in a deterministic order."""
    def op(x, dim, index):
        d = norm_dim(dim, x.ndim, name)
        idx = _index_tensor(index, x)
        return make(forward(x._a, d, idx._a), (x,),
                    lambda g: (wrap(backward(list(x.shape), d, idx._a, g._a.contiguous())),), name)
    op.__name__ = name
    return op


index_select = _pick("index_select", _C.index_select, _C.index_add)
gather = _pick("gather", _C.gather, _C.scatter_add)


def scatter_add(x, dim, index, src):
    """x + (src added at index along dim), out of place."""
    d = norm_dim(dim, x.ndim, "scatter_add")
    idx = _index_tensor(index, x)
    added = make(_C.scatter_add(list(x.shape), d, idx._a, src._a.contiguous()), (src,),
                 lambda g: (wrap(_C.gather(g._a.contiguous(), d, idx._a)),), "scatter_add")
    return x + added


def masked_fill(x, mask, value):
    return where(mask, value, x)


def nonzero(x, as_tuple=False):
    """Indices of non-zero elements, shape (count, ndim) (synchronizes on CUDA)."""
    flat = _C.nonzero_flat(x._a)
    pos = wrap(flat).cpu().numpy()
    coords = np.stack(np.unravel_index(pos, x.shape), axis=1) if x.ndim else pos.reshape(-1, 0)
    out = tensor(coords, dtype=_dt.int64, device=x.device)
    return tuple(out[:, i] for i in range(x.ndim)) if as_tuple else out


def _index_tensor(index, like) -> Tensor:
    if not isinstance(index, Tensor):
        arr = np.asarray(index)
        if arr.dtype.kind not in "iub":
            raise IndexError(f"[index] indices must be integers or booleans, got {arr.dtype}")
        index = tensor(arr, dtype=_dt.bool if arr.dtype.kind == "b" else _dt.int64, device=like.device)
    elif index.device != like.device:
        raise ValueError(f"[index] index on {index.device} for a tensor on {like.device}")
    if index.dtype.is_floating_point:
        raise IndexError(f"[index] tensors used as indices must be integer or bool, got {index.dtype}")
    return index


def _merge_dims(x, start, count):
    shape = list(x.shape)
    return x.reshape(shape[:start] + [math.prod(shape[start:start + count])] + shape[start + count:])


def advanced_index(y, advanced):
    """y[..., idx, ...] for the (position, key) entries left by basic indexing (NumPy's rules: one
    block of adjacent array indices stays in place; separated ones move to the front)."""
    keys = []
    for pos, k in reversed(advanced):  # right to left, so merging dims keeps the positions left of it valid
        k = _index_tensor(k, y)
        if k.dtype == _dt.bool:
            nd = builtins.max(k.ndim, 1)
            if tuple(k.shape) != tuple(y.shape[pos:pos + nd]) and k.ndim:
                raise IndexError(f"[index] boolean index of shape {k.shape} does not match the indexed "
                                 f"shape {tuple(y.shape[pos:pos + nd])}")
            # its nd dims become one (a 0-d mask adds one): the keys already taken, right of it, move
            y = _merge_dims(y, pos, nd) if k.ndim else y.unsqueeze(pos)
            shift = 1 - k.ndim
            keys = [(p + shift, key) for p, key in keys]
            k = wrap(_C.nonzero_flat(k._a))
        keys.append((pos, k))
    keys.reverse()
    positions = [p for p, _ in keys]
    if positions != list(range(positions[0], positions[0] + len(positions))):
        order = positions + [d for d in range(y.ndim) if d not in positions]
        y = y.permute(*order)
        keys = [(i, k) for i, (_, k) in enumerate(keys)]
    start, m = keys[0][0], len(keys)
    sizes = list(y.shape[start:start + m])
    bshape = list(np.broadcast_shapes(*[tuple(k.shape) for _, k in keys]))
    linear = None
    for j, (_, k) in enumerate(keys):
        n = sizes[j]
        _check_range(k, n, y.shape)
        kw = k.long()
        kw = kw + (kw < 0).long() * n  # negative indices count from the end
        stride = math.prod(sizes[j + 1:])
        term = kw * stride if stride != 1 else kw
        linear = term if linear is None else linear + term
    linear = linear.expand(*bshape) if tuple(linear.shape) != tuple(bshape) else linear
    y = _merge_dims(y, start, m)
    out = index_select(y, start, linear.reshape(-1))
    shape = list(out.shape)
    return out.reshape(shape[:start] + bshape + shape[start + 1:])


def _check_range(k, n, shape):
    if k.numel() == 0:
        return
    lo, hi = int(k.min().item()), int(k.max().item())
    if lo < -n or hi >= n:
        raise IndexError(f"[index] index {lo if lo < -n else hi} is out of bounds for size {n} "
                         f"(shape {tuple(shape)})")


def advanced_setitem(x, key, v):
    """x[key] = v with array indices: the flat positions the key selects are found by indexing an
    arange of x's shape, then written with one scatter (repeated positions add their values)."""
    pos = getitem(arange(x.numel(), device=x.device).reshape(x.shape), key).reshape(-1)
    work = _dt.int64 if x.dtype == _dt.bool else x.dtype  # scatter-add needs a numeric dtype
    val = v.to(work).expand(*getitem(x.detach(), key).shape).reshape(-1).contiguous()
    written = wrap(_C.index_add([x.numel()], 0, pos._a, val._a))
    hit = wrap(_C.index_add([x.numel()], 0, pos._a, _C.full([pos.numel()], 1.0, "float32", x._a.device)))
    new = where(hit > 0, written, x.detach().reshape(-1).to(work))
    x._a.copy_(new._a.reshape(list(x.shape)))


def getitem(x, key):
    """x[key]. A key of ints, slices, None and Ellipsis is one core call (Array.basic_index); a key
    with array entries takes the general plan: its basic part as views, the rest gathered."""
    try:
        out = x._a.basic_index(key)
    except TypeError:  # advanced entries, or a key only the general plan can word an error for
        steps, advanced = basic_plan(x.shape, key)
        y = strided_view(x, steps)
        return advanced_index(y, advanced) if advanced else y
    if not records(x):
        return wrap(out)

    def backward(g):
        z = _C.full(list(x.shape), 0.0, g._a.dtype, g._a.device)
        z.basic_index(key).copy_(g._a)
        return (wrap(z),)

    return make(out, (x,), backward, "getitem")


def setitem(x, key, value):
    """In-place write x[key] = value (no gradient; not allowed on tensors that require grad)."""
    if x.requires_grad and is_grad_enabled():
        raise RuntimeError("[setitem] in-place assignment to a tensor that requires grad; use no_grad()")
    v = as_tensor(value, x)
    try:
        view_ = x._a.basic_index(key)
    except TypeError:
        steps, advanced = basic_plan(x.shape, key)
        if advanced:
            return advanced_setitem(x, key, v)
        view_ = apply_steps(x._a, steps)
    try:
        view_.copy_(v._a.to(x._a.device))
    except ValueError:
        raise ValueError(f"[setitem] value of shape {v.shape} cannot be broadcast to the indexed "
                         f"shape {tuple(view_.shape)} (tensor shape {x.shape})") from None
