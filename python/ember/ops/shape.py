"""Shape and movement ops: views (reshape, view, transpose, permute, squeeze, unsqueeze, flatten,
expand, the views of basic indexing, split), copies (contiguous, clone, cat, stack) and to(). Views share
storage; each gradient maps back through the inverse view."""
from __future__ import annotations

import builtins
import operator

import numpy as np

from .. import _C
from .. import dtypes as _dt
from ..tensor import Tensor
from ._util import make, norm_dim, records, records_any, unbroadcast, wrap
from .creation import _dev


def _sizes(shape, op):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    try:
        return [operator.index(s) for s in shape]
    except TypeError:
        raise TypeError(f"[{op}] expected integers, got {tuple(shape)!r}") from None


def _with_shape(method, shape, op):
    """method(shape) for a shape given as ints or as one sequence, passed on as it is (the binding
    converts anything with __index__); when the binding refuses it, _sizes says why."""
    try:
        return method(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
    except TypeError:
        return method(_sizes(shape, op))


def _reshaped(x, out, op):
    if not records(x):
        return wrap(out)
    return make(out, (x,), lambda g: (wrap(g._a.reshape(list(x.shape))),), op)


def reshape(x, *shape):
    return _reshaped(x, _with_shape(x._a.reshape, shape, "reshape"), "reshape")


def view(x, *shape):
    return _reshaped(x, _with_shape(x._a.view, shape, "view"), "view")


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = norm_dim(start_dim, x.ndim, "flatten"), norm_dim(end_dim, x.ndim, "flatten")
    shape = list(x.shape[:s]) + [-1 if x.numel() else 0] + list(x.shape[e + 1:])
    if x.numel() == 0:
        shape[s] = 1
        for d in x.shape[s:e + 1]:
            shape[s] *= d
    return reshape(x, shape)


def unflatten(x, dim, sizes):
    d = norm_dim(dim, x.ndim, "unflatten")
    return reshape(x, list(x.shape[:d]) + list(sizes) + list(x.shape[d + 1:]))


def permute(x, *dims):
    dims = _sizes(dims, "permute")
    out = x._a.permute(dims)
    if not records(x):
        return wrap(out)
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d % len(dims)] = i
    return make(out, (x,), lambda g: (wrap(g._a.permute(inverse)),), "permute")


def transpose(x, dim0, dim1):
    out = x._a.transpose(dim0, dim1)
    if not records(x):
        return wrap(out)
    return make(out, (x,), lambda g: (wrap(g._a.transpose(dim0, dim1)),), "transpose")


def t(x):
    ndim = x._a.ndim
    if ndim > 2:
        raise ValueError(f"[t] expects a tensor of <= 2 dims, got shape {x.shape}")
    return transpose(x, 0, 1) if ndim == 2 else x


def unsqueeze(x, dim):
    out = x._a.unsqueeze(dim)
    if not records(x):
        return wrap(out)
    d = dim if dim >= 0 else dim + x.ndim + 1
    return make(out, (x,), lambda g: (wrap(g._a.squeeze(d)),), "unsqueeze")


def squeeze(x, dim=None):
    if dim is None:
        shape = [s for s in x.shape if s != 1]
        return reshape(x, shape)
    dims = [dim] if isinstance(dim, int) else list(dim)
    out = x._a
    for d in sorted((norm_dim(d, x.ndim, "squeeze") for d in dims), reverse=True):
        out = out.squeeze(d)
    return make(out, (x,), lambda g: (wrap(g._a.reshape(list(x.shape))),), "squeeze")


def expand(x, *shape):
    out = _with_shape(x._a.expand, shape, "expand")
    if not records(x):
        return wrap(out)
    return make(out, (x,), lambda g: (unbroadcast(g, x.shape),), "expand")


def expand_as(x, other):
    return expand(x, other.shape)


def broadcast_to(x, shape):
    return expand(x, shape)


def contiguous(x):
    if x._a.is_contiguous():
        return x
    return make(x._a.contiguous(), (x,), lambda g: (g,), "contiguous")


def clone(x):
    return make(x._a.clone(), (x,), lambda g: (g,), "clone")


def to(x, *args, dtype=None, device=None, copy=False, non_blocking=False):
    """to(device), to(dtype), to(device, dtype), to(other_tensor); the gradient goes back the same way."""
    for a in args:
        if isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif isinstance(a, (_dt.dtype,)) or (isinstance(a, str) and a in _dt._BY_NAME):
            dtype = a
        elif isinstance(a, str) and _is_numpy_dtype_name(a):
            _dt.get_dtype(a)  # a dtype ember lacks (e.g. "float128"): raises "[dtype] ..." (TypeError)
        else:
            device = a
    out = x._a
    if device is not None:
        out = out.to(_dev(device))
    if dtype is not None:
        out = out.astype(_dt.get_dtype(dtype).name)
    if out is x._a or (out.same_storage(x._a) and out.shape == x._a.shape and out.dtype == x._a.dtype
                        and out.device == x._a.device):
        if not copy:
            return x
        out = out.clone()
    src_dev, src_dtype = x._a.device, x._a.dtype

    def backward(g):
        return (wrap(g._a.to(src_dev).astype(src_dtype)) if x.dtype.is_floating_point else None,)

    return make(out, (x,), backward, "to")


def _is_numpy_dtype_name(s):
    try:
        np.dtype(s)
        return True
    except TypeError:
        return False


def cat(tensors, dim=0):
    if type(tensors) is not list and type(tensors) is not tuple:  # a generator, say; lists pass as they are
        tensors = list(tensors)
    if not tensors:
        raise ValueError("[cat] expects a non-empty list of tensors")
    out = _C.cat(tensors, dim)  # the binding reads each tensor's array (a list comprehension cost 0.19 us)
    if not records_any(tensors):
        return wrap(out)
    d = dim % tensors[0].ndim if tensors[0].ndim else 0

    def backward(g):
        grads, at = [], 0
        for t in tensors:
            n = t.shape[d]
            grads.append(wrap(g._a.slice(d, at, at + n, 1)))
            at += n
        return tuple(grads)

    return make(out, tuple(tensors), backward, "cat")


concat = concatenate = cat


def stack(tensors, dim=0):
    """One core call (it checks the list, the shapes and dim); each input's gradient is its slice."""
    if type(tensors) is not list and type(tensors) is not tuple:
        tensors = list(tensors)
    out = _C.stack(tensors, dim)
    if not records_any(tensors):
        return wrap(out)
    d = dim % out.ndim

    def backward(g):
        return tuple(wrap(g._a.select(d, i)) for i in range(len(tensors)))

    return make(out, tuple(tensors), backward, "stack")


def split(x, split_size_or_sections, dim=0):
    d = norm_dim(dim, x.ndim, "split")
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"[split] split size must be positive, got {step}")
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"[split] sections {sizes} do not add up to {n} (shape {x.shape})")
    parts, at = [], 0
    for s in sizes:
        parts.append(_slice_dim(x, d, at, at + s))
        at += s
    return tuple(parts)


def chunk(x, chunks, dim=0):
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ValueError(f"[chunk] chunks must be an int >= 1, got {chunks!r}")
    n = x.shape[norm_dim(dim, x.ndim, "chunk")]
    return split(x, builtins.max(1, -(-n // chunks)), dim)


def _slice_dim(x, d, start, stop):
    return strided_view(x, basic_plan(x.shape, (slice(None),) * d + (slice(start, stop),))[0])


# ---- basic indexing: ints, slices, None, Ellipsis ----------------------------------------------

def _is_advanced(k):
    return isinstance(k, (Tensor, list, np.ndarray)) and not isinstance(k, str)


def _slice_step(k, size, dim):
    """The view step of slice k over a dim of `size` (None when it keeps the whole dim: x[:, j]) and
    the dim's new size."""
    if k.step is not None and k.step <= 0:
        raise ValueError(f"[index] slice step must be positive, got {k.step}")
    start, stop, step = k.indices(size)
    kept = builtins.max(0, -(-(stop - start) // step))
    return (None if (start, stop, step) == (0, size, 1) else ("slice", dim, start, stop, step)), kept


def _select_step(i, size, dim, src, shape):
    if not -size <= i < size:
        raise IndexError(f"[index] index {i} is out of bounds for dimension {src} with size {size} "
                         f"(shape {tuple(shape)})")
    return ("select", dim, i % size)


def basic_plan(shape, key):
    """Turns an indexing key into view steps applied in order, ('select', dim, i),
    ('slice', dim, start, stop, step) or ('unsqueeze', dim), and the advanced (array) entries with
    their positions in the result of those steps. x[key] sends keys of Python ints, slices, None and
    Ellipsis to the core whole (Array.basic_index, ops/index.py); this plan serves keys with array
    entries, split's slices, and the keys the core's conversion refuses (NumPy integers, non-integer
    slice bounds), whose errors it words."""
    if not isinstance(key, tuple):
        key = (key,)

    def width(k):  # dims of the source a key entry consumes
        if k is None or k is Ellipsis or type(k) is bool:  # a Python bool: a 0-d mask, a new dim
            return 0
        if isinstance(k, Tensor) and k.dtype == _dt.bool:
            return builtins.max(k.ndim, 1)
        return 1

    consumed = ellipses = 0
    for k in key:  # one pass; ints and slices by type alone
        if type(k) is int or type(k) is slice:
            consumed += 1
        elif k is Ellipsis:
            ellipses += 1
        else:
            consumed += width(k)
    if ellipses > 1:
        raise IndexError("[index] an index can only have a single ellipsis")
    if consumed > len(shape):
        raise IndexError(f"[index] too many indices for a tensor of shape {tuple(shape)}")
    cur = list(shape)
    steps, advanced, dim, src = [], [], 0, 0  # dim: in the result so far; src: in the source
    for k in key:
        if k is Ellipsis:
            dim += len(shape) - consumed
            src += len(shape) - consumed
        elif k is None:
            steps.append(("unsqueeze", dim))
            cur.insert(dim, 1)
            dim += 1
        elif isinstance(k, slice):
            step, cur[dim] = _slice_step(k, cur[dim], dim)
            if step is not None:
                steps.append(step)
            dim += 1
            src += 1
        elif _is_advanced(k) or type(k) is bool:
            advanced.append((dim, k))
            dim += width(k)
            src += width(k)
        else:
            try:
                i = k.__index__()
            except (AttributeError, TypeError):
                raise IndexError(f"[index] unsupported index {k!r}") from None
            steps.append(_select_step(i, cur[dim], dim, src, shape))
            del cur[dim]
            src += 1
    return steps, advanced


def apply_steps(a, steps):
    for s in steps:
        if s[0] == "select":
            a = a.select(s[1], s[2])
        elif s[0] == "slice":
            a = a.slice(s[1], s[2], s[3], s[4])
        else:
            a = a.unsqueeze(s[1])
    return a


def strided_view(x, steps):
    """x seen through basic_plan's steps (a view, no copy); backward writes g into a zero tensor's
    matching view."""
    if not steps:
        return x
    out = apply_steps(x._a, steps)
    if not records(x):
        return wrap(out)

    def backward(g):
        z = _C.full(list(x.shape), 0.0, g._a.dtype, g._a.device)
        apply_steps(z, steps).copy_(g._a)
        return (wrap(z),)

    return make(out, (x,), backward, "getitem")
