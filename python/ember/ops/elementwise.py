"""Elementwise ops and their gradients, side by side. Unary backward is one fused kernel
(_C.unary_backward: grad * f'(x)); binary gradients are summed back over broadcast dims."""
from __future__ import annotations

import math

from .. import _C
from ..tensor import Tensor
from ._util import FLOATING, SCALAR_KINDS, as_tensor, make, records, unbroadcast, wrap
from .creation import tensor

U, B = _C.UnaryOp, _C.BinaryOp


# ---- unary -----------------------------------------------------------------------------------

def _unary(op, x: Tensor, lo=0.0, hi=0.0) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"[{op.name}] expected a Tensor, got {type(x).__name__}")
    out = _C.unary(op, x._a, lo, hi)
    if not records(x):
        return wrap(out)
    return make(out, (x,), lambda g: (wrap(_C.unary_backward(op, x._a, g._a, lo, hi)),), op)


def neg(x): return _unary(U.neg, x)
def exp(x): return _unary(U.exp, x)
def log(x): return _unary(U.log, x)
def sqrt(x): return _unary(U.sqrt, x)
def abs(x): return _unary(U.abs, x)  # noqa: A001 - PyTorch's name
def tanh(x): return _unary(U.tanh, x)
def sigmoid(x): return _unary(U.sigmoid, x)
def relu(x): return _unary(U.relu, x)
def silu(x): return _unary(U.silu, x)
def sign(x): return _unary(U.sign, x)
def square(x): return _unary(U.square, x)
def reciprocal(x): return _unary(U.reciprocal, x)


def gelu(x, approximate="none"):
    """GELU: x * Phi(x) (exact, erf) or the tanh approximation (approximate='tanh')."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"[gelu] approximate must be 'none' or 'tanh', got {approximate!r}")
    return _unary(U.gelu if approximate == "none" else U.gelu_tanh, x)


def clamp(x, min=None, max=None):  # noqa: A002 - PyTorch's argument names
    """Limits x to [min, max]; either bound may be None. Gradient flows where min <= x <= max."""
    if min is None and max is None:
        raise ValueError("[clamp] at least one of min and max must be given")
    lo = math.nan if min is None else float(min)
    hi = math.nan if max is None else float(max)
    if not x.dtype.is_floating_point and (isinstance(min, float) or isinstance(max, float)):
        x = x.float()
    return _unary(U.clamp, x, lo, hi)


clip = clamp


# ---- binary ----------------------------------------------------------------------------------

def _operands(a, b):
    if isinstance(a, Tensor):
        return a, as_tensor(b, a)
    if isinstance(b, Tensor):
        return as_tensor(a, b), b
    raise TypeError(f"[binary] expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")


def _with_number(op, a, b):
    """tensor (op) Python number, or number (op) tensor, outside the graph: one core call, the number
    never a Tensor (x * 0.5 cost twice x * y that way). None where it does not apply: a graph to
    record, or an operand that is not a plain bool/int/float."""
    if isinstance(a, Tensor):
        t, number, reversed_ = a, b, False
    elif isinstance(b, Tensor):
        t, number, reversed_ = b, a, True
    else:
        return None
    kind = SCALAR_KINDS.get(type(number))
    if kind is None or records(t):
        return None
    return wrap(_C.binary_scalar(op, t._a, number, kind, reversed_))


def _binary(op, a, b, grads, name=None):
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        out = _with_number(op, a, b)
        if out is not None:
            return out
        a, b = _operands(a, b)
    out = _C.binary(op, a._a, b._a)
    if not records(a, b):
        return wrap(out)

    def backward(g):
        ga, gb = grads(g, a, b, out)
        return (None if ga is None else unbroadcast(ga, a.shape),
                None if gb is None else unbroadcast(gb, b.shape))

    return make(out, (a, b), backward, name or op)


def _add_grads(g, a, b, o): return g, g
def _sub_grads(g, a, b, o): return g, -g
def _mul_grads(g, a, b, o): return g * b, g * a


def add(a, b): return _binary(B.add, a, b, _add_grads)
def sub(a, b): return _binary(B.sub, a, b, _sub_grads)
def mul(a, b): return _binary(B.mul, a, b, _mul_grads)


def div(a, b):
    """True division; integer inputs are divided as float32 (PyTorch's rule, in core/elementwise.cpp)."""
    return _binary(B.div, a, b, _div_grads)


def _div_grads(g, a, b, o): return g / b, -g * wrap(o) / b


def _pow_grads(g, a, b, out):
    ga = g * b * wrap(_C.binary(B.pow, a._a, (b - 1)._a)) if a.requires_grad else None
    gb = None
    if b.requires_grad:  # d/db a^b = a^b log a, taken as 0 where a == 0 (the limit for b > 0)
        safe_log = where(a > 0, log(where(a > 0, a, 1.0)), 0.0)
        gb = g * wrap(out) * safe_log
    return ga, gb


def pow(a, b):  # noqa: A001 - PyTorch's name
    """a ** b. A Python-number exponent of 2 (any tensor), 0.5 or -1 (floating tensors) is the unary
    op it equals (square, sqrt, reciprocal: one pass and the same gradient) instead of a general pow
    per element, which costs ten times as much."""
    if isinstance(a, Tensor) and type(b) in (int, float):
        unary = _POW_AS_UNARY.get(b)
        if unary is not None and (b == 2 or a._a.dtype in FLOATING):
            return unary(a)
    return _binary(B.pow, a, b, _pow_grads)


_POW_AS_UNARY = {2: square, 0.5: sqrt, -1: reciprocal}


def _split_ties(g, win_first, tie):
    half = g * 0.5
    return where(win_first, g, where(tie, half, 0.0)), where(win_first | tie, where(tie, half, 0.0), g)


def maximum(a, b):
    """Elementwise max; NaN propagates; on ties each side gets half the gradient (as PyTorch)."""
    return _binary(B.maximum, a, b, lambda g, a, b, o: _split_ties(g, a > b, a == b))


def minimum(a, b):
    return _binary(B.minimum, a, b, lambda g, a, b, o: _split_ties(g, a < b, a == b))


def _compare(op):
    def fn(a, b):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            out = _with_number(op, a, b)
            if out is not None:
                return out
            a, b = _operands(a, b)
        return wrap(_C.binary(op, a._a, b._a))
    fn.__name__ = op.name
    return fn


eq, ne, lt, le, gt, ge = (_compare(op) for op in (B.eq, B.ne, B.lt, B.le, B.gt, B.ge))


def logical_and(a, b): return mul(a.bool(), b.bool()).bool()
def logical_or(a, b): return ne(add(a.bool().int(), b.bool().int()), 0)
def logical_xor(a, b): return ne(a.bool(), b.bool())
def logical_not(a): return eq(a.bool(), False)


def where(cond, a, b):
    """cond ? a : b, broadcasting all three; the gradient goes to the side that was picked."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        like = cond if isinstance(cond, Tensor) else None
        a = as_tensor(a, _float_like(like))
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    b = as_tensor(b, a)
    if not isinstance(cond, Tensor):  # a bool, list or array keeps its own dtype: the core refuses non-bool
        cond = tensor(cond, device=a.device)
    out = _C.where(cond._a, a._a, b._a)

    def backward(g):
        zero = Tensor._wrap(_C.full([], 0.0, g.dtype.name, g._a.device))
        return (None, unbroadcast(where(cond, g, zero), a.shape), unbroadcast(where(cond, zero, g), b.shape))

    return make(out, (None, a, b), backward, "where")


def _float_like(t):
    return Tensor._wrap(_C.full([], 0.0, "float32", "cpu" if t is None else t._a.device))
