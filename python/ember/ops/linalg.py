"""Matrix products on ember's GEMM: matmul (@) with NumPy broadcasting, and linear (x @ W^T + b) with
the activation fused into the GEMM's store. Backward runs the same GEMM on transposed views (strides
only, no copies): dA = dC @ B^T, dB = A^T @ dC."""
from __future__ import annotations

from .. import _C
from ..tensor import Tensor
from ..amp import _state as _amp_state
from ..amp import autocasting, cast_for_gemm
from ..autograd.graph import _state as _grad_state
from ._util import make, records, unbroadcast, wrap
from .elementwise import gelu

_ACTS = {None: _C.Activation.none, "none": _C.Activation.none, "relu": _C.Activation.relu,
         "gelu": _C.Activation.gelu, "gelu_tanh": _C.Activation.gelu_tanh}


def _mT(a):
    """The last two dims swapped (a view)."""
    return a.transpose(a.ndim - 2, a.ndim - 1)


def _matmul_node(out, a: Tensor, b: Tensor) -> Tensor:
    """Records out = a @ b (both >= 2-d) in the graph."""
    def backward(g):
        ga = wrap(_C.matmul(g._a, _mT(b._a))) if a.requires_grad else None
        gb = wrap(_C.matmul(_mT(a._a), g._a)) if b.requires_grad else None
        return (None if ga is None else unbroadcast(ga, a.shape),
                None if gb is None else unbroadcast(gb, b.shape))

    return make(out, (a, b), backward, "matmul")


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b with NumPy's rules: 1-d operands are promoted (and the added dim removed), batch dims
    broadcast. The >= 2-d product is tried first, straight on the arrays: a small product's whole
    cost is a few calls, and the 1-d cases are found by the core's own check."""
    if _amp_state.stack:  # autocasting(), inlined: a 32^3 product's whole cost is a few calls
        a, b = cast_for_gemm(*_tensors(a, b))
    try:
        out = _C.matmul(a._a, b._a)
    except AttributeError:
        _tensors(a, b)
        raise
    except ValueError:
        if a._a.ndim >= 2 and b._a.ndim >= 2:
            raise
        return _matmul_vectors(a, b)
    if (a.requires_grad or b.requires_grad) and _grad_state.enabled:  # records(a, b), inlined
        return _matmul_node(out, a, b)
    return wrap(out)


def _tensors(a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"[matmul] expected Tensors, got {type(a).__name__} and {type(b).__name__}")
    return a, b


def _matmul_vectors(a: Tensor, b: Tensor) -> Tensor:
    """A 1-d operand is promoted to a matrix (a row for a, a column for b), and that dim removed after."""
    an, bn = a.ndim, b.ndim
    if an == 0 or bn == 0:
        raise ValueError(f"[matmul] operands must have >= 1 dim (shapes a={a.shape}, b={b.shape})")
    out = matmul(a.unsqueeze(0) if an == 1 else a, b.unsqueeze(-1) if bn == 1 else b)
    if bn == 1:
        out = out.squeeze(-1)
    if an == 1:
        out = out.squeeze(-2 if bn > 1 else -1)
    return out


mm = matmul
bmm = matmul


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation=None) -> Tensor:
    """x @ weight^T + bias, then an optional activation ('relu', 'gelu', 'gelu_tanh') fused into the
    GEMM epilogue: one pass over the output. weight: (out_features, in_features); x (..., in) or (in,)."""
    act = _ACTS.get(activation)
    if act is None:
        raise ValueError(f"[linear] unknown activation {activation!r}; expected one of relu, gelu, gelu_tanh")
    if x._a.ndim == 0 or weight._a.ndim != 2:
        raise ValueError(f"[linear] expects x (..., in) and weight (out, in), got shapes {x.shape} and {weight.shape}")
    if autocasting():
        x, weight, bias = cast_for_gemm(x, weight, bias)
    if not (records(x, weight) or (bias is not None and records(bias))):
        return wrap(_C.linear(x._a, weight._a, None if bias is None else bias._a, act))
    if x._a.ndim == 1:
        return linear(x.unsqueeze(0), weight, bias, activation).squeeze(0)
    if act in (_C.Activation.gelu, _C.Activation.gelu_tanh):
        # GELU's derivative needs the pre-activation: keep z, apply the activation as its own op.
        # (Without a graph, as in inference, it runs fused in the epilogue like ReLU.)
        return gelu(linear(x, weight, bias), "tanh" if activation == "gelu_tanh" else "none")
    out = _C.linear(x._a, weight._a, None if bias is None else bias._a, act)

    def backward(g):
        ga = g._a
        if act == _C.Activation.relu:  # relu'(z) = [z > 0] = [out > 0]: relu's own backward, on out
            ga = _C.unary_backward(_C.UnaryOp.relu, out, ga, 0.0, 0.0)
        gx = wrap(_C.matmul(ga, weight._a)) if x.requires_grad else None
        gw = wrap(_C.linear_backward_weight(ga, x._a)) if weight.requires_grad else None
        gb = None
        if bias is not None and bias.requires_grad:  # summed over every leading dim
            gb = wrap(_C.reduce(_C.ReduceOp.sum, ga, list(range(ga.ndim - 1)), False))
        return gx, gw, gb

    return make(out, (x, weight, bias), backward, "linear")
