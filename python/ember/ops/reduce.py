"""Reductions (sum, mean, max, min, argmax, argmin, var, std, prod) and the softmax family, with
their gradients. dim may be None (all dims), an int or a tuple of ints."""
from __future__ import annotations

import builtins
from collections import namedtuple

from .. import _C
from ..tensor import Tensor
from ._util import make, norm_dim, records, wrap
from .elementwise import exp, sqrt

R, B, U = _C.ReduceOp, _C.BinaryOp, _C.UnaryOp
values_indices = namedtuple("values_indices", ["values", "indices"])


def _dims(dim, ndim, op):
    if dim is None:
        return []
    if type(dim) is int and -ndim <= dim < ndim:  # one valid dim, the usual call: no set, no sort
        return [dim % ndim]
    dims = sorted({norm_dim(d, ndim, op) for d in ([dim] if isinstance(dim, int) else dim)})
    return dims if ndim else []


def _grad_to_input(g: Tensor, shape, dims, keepdim) -> Tensor:
    """Reshapes a reduction's gradient so it broadcasts against the input (a view, no copy)."""
    a = g._a
    if not keepdim:
        for d in (dims or range(len(shape))):
            a = a.unsqueeze(d)
    return wrap(a.expand(list(shape)))


def _reduce(op, x, dim, keepdim, name, correction=1):
    """name: the op's name for errors, given as a string (a pybind enum's .name costs ~0.4 us)."""
    return _C.reduce(op, x._a, _dims(dim, x._a.ndim, name), keepdim, correction)


def sum(x, dim=None, keepdim=False):  # noqa: A001 - PyTorch's name
    dims = _dims(dim, x._a.ndim, "sum")
    out = _C.reduce(R.sum, x._a, dims, keepdim)
    if not records(x):
        return wrap(out)
    return make(out, (x,), lambda g: (_grad_to_input(g, x.shape, dims, keepdim),), "sum")


def mean(x, dim=None, keepdim=False):
    dims = _dims(dim, x._a.ndim, "mean")
    out = _C.reduce(R.mean, x._a, dims, keepdim)
    if not records(x):
        return wrap(out)
    count = x.numel() // builtins.max(1, out.numel()) if x.numel() else 0

    def backward(g):
        a = g._a
        scaled = _C.binary(B.div, a, _C.full([], float(builtins.max(count, 1)), a.dtype, a.device))
        return (_grad_to_input(wrap(scaled), x.shape, dims, keepdim),)

    return make(out, (x,), backward, "mean")


def var(x, dim=None, keepdim=False, correction=1, unbiased=None):
    """Variance with Bessel's correction by default (correction=1), as PyTorch."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    dims = _dims(dim, x.ndim, "var")
    out = _C.reduce(R.var, x._a, dims, keepdim, correction)
    n = x.numel() // builtins.max(1, out.numel()) if x.numel() else 0

    def backward(g):
        mu = wrap(_C.reduce(R.mean, x._a, dims, True))
        return (_grad_to_input(g, x.shape, dims, keepdim) * (x - mu) * (2.0 / builtins.max(n - correction, 1)),)

    return make(out, (x,), backward, "var")


def std(x, dim=None, keepdim=False, correction=1, unbiased=None):
    return sqrt(var(x, dim, keepdim, correction, unbiased))


def prod(x, dim=None, keepdim=False):
    dims = _dims(dim, x.ndim, "prod")
    out = _C.reduce(R.prod, x._a, dims, keepdim)

    def backward(g):
        if bool((x == 0).any()):
            raise RuntimeError("[prod] backward through a product with zero inputs is not supported")
        return (_grad_to_input(g * wrap(out), x.shape, dims, keepdim) / x,)

    return make(out, (x,), backward, "prod")


def _extreme(op, arg_op, name, x, dim, keepdim):
    if dim is None:  # full reduction: the gradient is shared evenly among tied extremes (PyTorch)
        out = _C.reduce(op, x._a, [], False)

        def backward(g):
            mask = (x == wrap(out)).to(x.dtype)
            return (mask * (g / sum(mask)),)

        return make(out, (x,), backward, name)
    if not isinstance(dim, int):
        raise TypeError(f"[{name}] dim must be an int, got {dim!r}")
    values = _C.reduce(op, x._a, [dim], keepdim)
    indices = _C.reduce(arg_op, x._a, [dim], keepdim)

    def backward(g):  # the gradient goes to the index that was picked
        idx = indices if keepdim else indices.unsqueeze(dim)
        src = g._a if keepdim else g._a.unsqueeze(dim)
        return (wrap(_C.scatter_add(list(x.shape), dim, idx, src.contiguous())),)

    return values_indices(make(values, (x,), backward, name), wrap(indices))


def max(x, dim=None, keepdim=False):  # noqa: A001
    """x.max() -> the largest value; x.max(dim) -> (values, indices), as PyTorch."""
    return _extreme(R.max, R.argmax, "max", x, dim, keepdim)


def min(x, dim=None, keepdim=False):  # noqa: A001
    return _extreme(R.min, R.argmin, "min", x, dim, keepdim)


def _extreme_values(op, name, x, dim, keepdim):
    """amax/amin over any dims (one, a tuple, or all); the gradient is shared evenly among tied
    extremes, as PyTorch's amax."""
    dims = _dims(dim, x.ndim, name)
    out = _C.reduce(op, x._a, dims, keepdim)

    def backward(g):
        mask = (x.detach() == wrap(_C.reduce(op, x._a, dims, True))).to(x.dtype)
        ties = sum(mask, dims or None, keepdim=True)
        return (mask * _grad_to_input(g, x.shape, dims, keepdim) / ties,)

    return make(out, (x,), backward, name)


def amax(x, dim=None, keepdim=False):
    return _extreme_values(R.max, "amax", x, dim, keepdim)


def amin(x, dim=None, keepdim=False):
    return _extreme_values(R.min, "amin", x, dim, keepdim)


def argmax(x, dim=None, keepdim=False):
    """Index of the first largest element (of the flattened tensor when dim is None)."""
    if dim is None:
        return wrap(_C.reduce(R.argmax, x._a.reshape([x.numel()]), [], False))
    return wrap(_reduce(R.argmax, x, dim, keepdim, "argmax"))


def argmin(x, dim=None, keepdim=False):
    if dim is None:
        return wrap(_C.reduce(R.argmin, x._a.reshape([x.numel()]), [], False))
    return wrap(_reduce(R.argmin, x, dim, keepdim, "argmin"))


# Counts, not max/min: an empty reduction is then any = False and all = True, as in PyTorch.
def any(x, dim=None, keepdim=False):  # noqa: A001
    return wrap(_reduce(R.sum, x.bool().long(), dim, keepdim, "any")) > 0


def all(x, dim=None, keepdim=False):  # noqa: A001
    return wrap(_reduce(R.sum, (x == 0).long(), dim, keepdim, "all")) == 0


# ---- softmax family: one fused forward kernel (logsumexp: several), closed-form backwards --------

def _shifted(x, dim, op):
    """x - max(x, dim) (detached arrays), so exp never overflows."""
    d = norm_dim(dim, x.ndim, op)
    if x.numel() == 0:  # no max to subtract; the results are empty (or -inf for logsumexp)
        m = _C.full([1 if i == d else n for i, n in enumerate(x.shape)], 0.0, x.dtype.name, x._a.device)
    else:
        m = _C.reduce(R.max, x._a, [dim], True)
    return _C.binary(B.sub, x._a, m), m


def softmax(x, dim=-1):
    y = _C.softmax(x._a, dim, False)  # one fused pass per row (core/softmax.cpp)
    if not records(x):
        return wrap(y)

    def backward(g):
        yt = wrap(y)
        return (yt * (g - sum(g * yt, dim, keepdim=True)),)

    return make(y, (x,), backward, "softmax")


def log_softmax(x, dim=-1):
    y = _C.softmax(x._a, dim, True)
    if not records(x):
        return wrap(y)

    def backward(g):
        return (g - exp(wrap(y)) * sum(g, dim, keepdim=True),)

    return make(y, (x,), backward, "log_softmax")


def logsumexp(x, dim, keepdim=False):
    z, m = _shifted(x, dim, "logsumexp")
    lse = _C.binary(B.add, _C.unary(U.log, _C.reduce(R.sum, _C.unary(U.exp, z), [dim], True)), m)
    out = lse if keepdim else lse.squeeze(dim % x.ndim)

    def backward(g):
        gk = g if keepdim else wrap(g._a.unsqueeze(dim % x.ndim))
        return (gk * exp(x.detach() - wrap(lse)),)

    return make(out, (x,), backward, "logsumexp")
