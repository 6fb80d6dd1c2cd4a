"""ember's kernels as PyTorch custom ops: `torch.ops.ember.<name>`, each with a CPU and a CUDA
kernel, a fake (meta) kernel that gives output shapes to torch.compile, and a registered backward.

Every backward is itself an ember op (`*_backward`, or ember::matmul on transposed views), so
AOTAutograd traces forward and backward into one graph of ember calls. What a backward needs beyond
the inputs travels as extra outputs marked non-differentiable: attention's log-sum-exp rows and
dropout (seed, offset), layer norm's mean and rstd, a recurrent layer's per-step states. A
gradient nobody asked for comes back as an empty tensor (an op's outputs are always tensors).

The kernels are the ones ember's own ops call (the _C entry points that ember/ops/*.py wrap), fed
through DLPack without copies (_bridge.py). The functions at the bottom (linear, matmul, ...) are
the public face: PyTorch's argument conventions on top of the ops."""
from __future__ import annotations

import functools
import math

import torch

from ... import _C
from ...ops.attention import _as_heads, _mask_heads
from ...ops.conv import _pair, _padding
from ...ops.linalg import _ACTS
from ...ops.rnn import KINDS, _split_biases
from ...random import default_generator
from ...tensor import Tensor
from ._bridge import empty_like_none, maybe_ember, to_ember, to_torch

_lib = torch.library.Library("ember", "DEF")
_GELUS = {"none": _C.UnaryOp.gelu, "tanh": _C.UnaryOp.gelu_tanh}


def _op(schema: str, fake, inference=None):
    """Defines ember::<name>(...) and registers the decorated function as its CPU and CUDA kernel
    (a plain torch.library kernel: ~1 us of dispatch, where custom_op's wrapper costs ~6 us).
    inference: what _call runs instead when nothing needs the op: the same outputs, with None for
    those only a backward reads (each saved tensor handed to torch costs ~1 us)."""
    name = schema.split("(")[0]

    def register(kernel):
        _lib.define(schema)
        _lib.impl(name, kernel, "CPU")
        _lib.impl(name, kernel, "CUDA")
        torch.library.register_fake(f"ember::{name}", fake, lib=_lib)
        op = getattr(torch.ops.ember, name).default
        KERNELS[op], INFERENCE[op] = kernel, inference or kernel
        return op

    return register


KERNELS: dict = {}    # op -> its CPU/CUDA kernel
INFERENCE: dict = {}  # op -> what _call runs when no gradient is recorded
EAGER: dict = {}      # op -> what _call runs when one is (an autograd.Function's apply)


def _call(op, *args):
    """op(*args), or its kernel called without torch's dispatcher when the inputs are plain tensors
    (no fake, meta-tracing or subclass), no dispatch mode is active and nothing is being compiled:
    straight when no gradient is recorded, else through an autograd.Function holding the op's own
    setup and backward. Anything else (torch.compile, FakeTensorMode, profilers' dispatch modes)
    goes through the registered op, whose dispatcher call and register_autograd wrapper cost more
    (docs/interop.md)."""
    if torch.compiler.is_compiling():  # first: dynamo folds it, and cannot trace the checks below
        return op(*args)
    grad, record = torch.is_grad_enabled(), False
    for a in args:
        if isinstance(a, torch.Tensor):
            if type(a) is not torch.Tensor:
                return op(*args)
            record = record or (grad and a.requires_grad)
    if torch._C._len_torch_dispatch_stack():
        return op(*args)
    fn = EAGER.get(op) if record else INFERENCE[op]  # (the backward ops have no autograd of their own)
    return fn(*args) if fn is not None else op(*args)


def _autograd(op, setup, backward):
    """Registers op's backward with torch.library, and the same setup and backward as an eager
    autograd.Function for _call."""
    name = op._schema.name.split("::")[1]
    torch.library.register_autograd(f"ember::{name}", backward, setup_context=setup, lib=_lib)
    kernel = KERNELS[op]

    def forward(ctx, *args):
        out = kernel(*args)
        setup(ctx, args, out)
        return out

    fn = type(f"ember_{name}", (torch.autograd.Function,), {
        "forward": staticmethod(forward), "backward": staticmethod(lambda ctx, *grads: backward(ctx, *grads))})
    EAGER[op] = fn.apply


def _check(op: str, names: str, *tensors):
    """The given tensors (None skipped) share the first one's dtype and device, else an error naming
    the op and every tensor. (Positional and a plain loop: this runs on every call.)"""
    dtype, device = tensors[0].dtype, tensors[0].device
    for t in tensors[1:]:
        if t is not None and (t.dtype is not dtype or t.device != device):
            desc = ", ".join(f"{k}={tuple(u.shape)} {u.dtype} {u.device}"
                             for k, u in zip(names.split(), tensors) if u is not None)
            raise (TypeError if t.dtype is not dtype else ValueError)(
                f"[ember::{op}] tensors must share one dtype and device ({desc})")


def _shapes(**tensors):
    return ", ".join(f"{k}={tuple(t.shape)}" for k, t in tensors.items() if t is not None)


def _out(a, need: bool, like):
    return to_torch(a) if need else empty_like_none(like)


def _mT(a):
    return a.transpose(a.ndim - 2, a.ndim - 1)


# ---- matmul -----------------------------------------------------------------------------------

def _matmul_check(a, b):
    _check("matmul", "a b", a, b)
    if a.dim() < 2 or b.dim() < 2 or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"[ember::matmul] needs (..., M, K) @ (..., K, N) ({_shapes(a=a, b=b)})")


def _matmul_fake(a, b):
    _matmul_check(a, b)
    return torch.matmul(a, b)  # the shape rule (batch dims broadcast), on fake tensors


@_op("matmul(Tensor a, Tensor b) -> Tensor", _matmul_fake)
def matmul_op(a, b):
    _matmul_check(a, b)
    return to_torch(_C.matmul(to_ember(a), to_ember(b)))


def _matmul_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _matmul_backward(ctx, g):
    a, b = ctx.saved_tensors
    # dA = dC @ B^T, dB = A^T @ dC on transposed views; summed over batch dims that broadcast
    ga = _call(matmul_op, g, b.mT).sum_to_size(a.shape) if ctx.needs_input_grad[0] else None
    gb = _call(matmul_op, a.mT, g).sum_to_size(b.shape) if ctx.needs_input_grad[1] else None
    return ga, gb


_autograd(matmul_op, _matmul_setup, _matmul_backward)


# ---- linear (bias + activation fused into the GEMM epilogue) ------------------------------------

def _activation(activation):
    if activation not in _ACTS:
        raise ValueError(f"[ember::linear] unknown activation {activation!r}; expected none, relu, gelu, gelu_tanh")
    return _ACTS[activation]


def _linear_check(x, weight, bias, activation):
    _check("linear", "x weight bias", x, weight, bias)
    _activation(activation)
    if x.dim() == 0 or weight.dim() != 2 or x.shape[-1] != weight.shape[1] or (
            bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0])):
        raise ValueError(f"[ember::linear] needs x (..., in), weight (out, in), bias (out,) "
                         f"({_shapes(x=x, weight=weight, bias=bias)})")


def _linear_fake(x, weight, bias, activation):
    _linear_check(x, weight, bias, activation)
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


@_op("linear(Tensor x, Tensor weight, Tensor? bias, str activation) -> Tensor", _linear_fake)
def linear_op(x, weight, bias, activation):
    _linear_check(x, weight, bias, activation)
    out = _C.matmul(_rows(x), _mT(to_ember(weight)), maybe_ember(bias), _ACTS[activation])
    return to_torch(out.reshape([weight.shape[0]]) if x.dim() == 1 else out)


def _rows(x):
    """x as an ember array of >= 2 dims (a 1-d x is one row), as the GEMM takes it."""
    return to_ember(x.unsqueeze(0) if x.dim() == 1 else x)


def _linear_backward_fake(grad, x, weight, bias, out, activation, needs):
    return (x.new_empty(x.shape if needs[0] else 0), x.new_empty(weight.shape if needs[1] else 0),
            x.new_empty(weight.shape[0] if needs[2] else 0))


@_op("linear_backward(Tensor grad, Tensor x, Tensor weight, Tensor? bias, Tensor out, str activation, "
     "bool[3] needs) -> (Tensor, Tensor, Tensor)", _linear_backward_fake)
def linear_backward_op(grad, x, weight, bias, out, activation, needs):
    g, xa, w, act = _rows(grad), _rows(x), to_ember(weight), _activation(activation)
    if act == _C.Activation.relu:  # relu'(z) = [out > 0]
        o = _rows(out)
        zero = _C.full([], 0.0, o.dtype, o.device)
        g = _C.where(_C.binary(_C.BinaryOp.gt, o, zero), g, zero)
    elif act != _C.Activation.none:  # GELU's derivative needs z: one more GEMM (linear() avoids this path)
        z = _C.matmul(xa, _mT(w), maybe_ember(bias), _C.Activation.none)
        g = _C.unary_backward(_GELUS["tanh" if act == _C.Activation.gelu_tanh else "none"], z, g, 0.0, 0.0)
    g2 = g.reshape([-1, weight.shape[0]])
    gx = _C.matmul(g, w).reshape(list(x.shape)) if needs[0] else None
    gw = _C.matmul(_mT(g2), xa.reshape([-1, weight.shape[1]])) if needs[1] else None
    gb = _C.reduce(_C.ReduceOp.sum, g2, [0], False) if needs[2] else None
    return _out(gx, needs[0], x), _out(gw, needs[1], x), _out(gb, needs[2], x)


def _linear_setup(ctx, inputs, output):
    x, weight, bias, activation = inputs
    ctx.activation, ctx.has_bias = activation, bias is not None
    ctx.save_for_backward(x, weight, bias, output)


def _linear_backward(ctx, g):
    x, weight, bias, out = ctx.saved_tensors
    nx, nw, nb = ctx.needs_input_grad[:3]
    gx, gw, gb = _call(linear_backward_op, g, x, weight, bias, out, ctx.activation, [nx, nw, nb and ctx.has_bias])
    return (gx if nx else None), (gw if nw else None), (gb if nb and ctx.has_bias else None), None


_autograd(linear_op, _linear_setup, _linear_backward)


# ---- gelu -------------------------------------------------------------------------------------

def _gelu_check(x, approximate):
    if approximate not in _GELUS:
        raise ValueError(f"[ember::gelu] approximate must be 'none' or 'tanh', got {approximate!r}")
    if not x.is_floating_point():
        raise TypeError(f"[ember::gelu] needs a floating tensor, got {x.dtype} (x={tuple(x.shape)})")


def _gelu_fake(x, approximate):
    _gelu_check(x, approximate)
    return x.new_empty(x.shape)  # the kernels write contiguous results


@_op("gelu(Tensor x, str approximate) -> Tensor", _gelu_fake)
def gelu_op(x, approximate):
    _gelu_check(x, approximate)
    return to_torch(_C.unary(_GELUS[approximate], to_ember(x), 0.0, 0.0))


@_op("gelu_backward(Tensor grad, Tensor x, str approximate) -> Tensor",
     lambda grad, x, approximate: x.new_empty(x.shape))
def gelu_backward_op(grad, x, approximate):
    return to_torch(_C.unary_backward(_GELUS[approximate], to_ember(x), to_ember(grad), 0.0, 0.0))


def _gelu_setup(ctx, inputs, output):
    ctx.approximate = inputs[1]
    ctx.save_for_backward(inputs[0])


def _gelu_backward(ctx, g):
    return _call(gelu_backward_op, g, ctx.saved_tensors[0], ctx.approximate), None


_autograd(gelu_op, _gelu_setup, _gelu_backward)


# ---- layer_norm -------------------------------------------------------------------------------

def _layer_norm_check(x, normalized_shape, weight, bias):
    """-> (the leading dims of x, the number of values normalised per row)."""
    _check("layer_norm", "x weight bias", x, weight, bias)
    shape, k = tuple(normalized_shape), len(normalized_shape)
    trailing = x.shape[x.dim() - k:] if k <= x.dim() else None
    if trailing != shape or (weight is not None and weight.shape != shape) or (
            bias is not None and bias.shape != shape):
        raise ValueError(f"[ember::layer_norm] normalized_shape {shape} must be x's trailing dims and the shape of "
                         f"weight and bias ({_shapes(x=x, weight=weight, bias=bias)})")
    return x.shape[:x.dim() - k], math.prod(shape)


def _layer_norm_fake(x, normalized_shape, weight, bias, eps):
    lead, _ = _layer_norm_check(x, normalized_shape, weight, bias)
    return x.new_empty(x.shape), x.new_empty(lead), x.new_empty(lead)


def _layer_norm(x, normalized_shape, weight, bias, eps):
    """-> ember arrays (y, mean, rstd)."""
    lead, n = _layer_norm_check(x, normalized_shape, weight, bias)
    rows = to_ember(x).reshape([*lead, n])
    w, b = (None if t is None else to_ember(t).reshape([n]) for t in (weight, bias))
    y, mean, rstd = _C.layer_norm(rows, w, b, float(eps))
    return y.reshape(list(x.shape)), mean, rstd


@_op("layer_norm(Tensor x, int[] normalized_shape, Tensor? weight, Tensor? bias, float eps) "
     "-> (Tensor, Tensor, Tensor)", _layer_norm_fake, lambda *a: (to_torch(_layer_norm(*a)[0]), None, None))
def layer_norm_op(x, normalized_shape, weight, bias, eps):
    return tuple(to_torch(a) for a in _layer_norm(x, normalized_shape, weight, bias, eps))


def _layer_norm_backward_fake(grad, x, mean, rstd, weight, normalized_shape):
    affine = tuple(normalized_shape) if weight is not None else (0,)
    return x.new_empty(x.shape), x.new_empty(affine), x.new_empty(affine)


@_op("layer_norm_backward(Tensor grad, Tensor x, Tensor mean, Tensor rstd, Tensor? weight, int[] normalized_shape) "
     "-> (Tensor, Tensor, Tensor)", _layer_norm_backward_fake)
def layer_norm_backward_op(grad, x, mean, rstd, weight, normalized_shape):
    lead, n = x.shape[:x.dim() - len(normalized_shape)], math.prod(normalized_shape)
    w = None if weight is None else to_ember(weight).reshape([n])
    dx, dw, db = _C.layer_norm_backward(to_ember(grad).reshape([*lead, n]), to_ember(x).reshape([*lead, n]),
                                        to_ember(mean), to_ember(rstd), w)
    if weight is None:
        return to_torch(dx.reshape(list(x.shape))), empty_like_none(x), empty_like_none(x)
    shape = list(normalized_shape)
    return to_torch(dx.reshape(list(x.shape))), to_torch(dw.reshape(shape)), to_torch(db.reshape(shape))


def _layer_norm_setup(ctx, inputs, output):
    x, ctx.normalized_shape, weight, bias, _ = inputs
    ctx.has_bias = bias is not None
    ctx.mark_non_differentiable(output[1], output[2])
    ctx.save_for_backward(x, output[1], output[2], weight)


def _layer_norm_backward(ctx, g, _gmean, _grstd):
    x, mean, rstd, weight = ctx.saved_tensors
    dx, dw, db = _call(layer_norm_backward_op, g, x, mean, rstd, weight, ctx.normalized_shape)
    return dx, None, (dw if weight is not None else None), (db if ctx.has_bias and weight is not None else None), None


_autograd(layer_norm_op, _layer_norm_setup, _layer_norm_backward)


# ---- scaled_dot_product_attention -------------------------------------------------------------

_SEED_MOD = 1 << 64


def _heads(shape):
    """(B, H) of the kernel's (B, H, T, D) view of a (..., T, D) tensor (ember.ops.attention._as_heads)."""
    if len(shape) == 4:
        return shape[0], shape[1]
    lead = shape[:-2]
    return math.prod(lead[:-1]), (lead[-1] if lead else 1)


def _attention_check(q, k, v, mask, dropout_p, is_causal):
    _check("scaled_dot_product_attention", "query key value", q, k, v)
    if is_causal and mask is not None:
        raise ValueError("[ember::scaled_dot_product_attention] pass either attn_mask or is_causal, not both")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"[ember::scaled_dot_product_attention] dropout_p must be in [0, 1), got {dropout_p}")
    if q.dim() < 2 or k.dim() != q.dim() or v.dim() != q.dim() or q.shape[-1] != k.shape[-1] or (
            k.shape[-2] != v.shape[-2]):
        raise ValueError("[ember::scaled_dot_product_attention] needs query (..., Tq, D), key (..., Tk, D), value "
                         f"(..., Tk, Dv) ({_shapes(query=q, key=k, value=v, attn_mask=mask)})")


def _kernel_layout(like, shape, last):
    """An empty tensor shaped shape[:-1] + (last,) laid out as the kernel writes its outputs and
    gradients: (B, T, H, D) memory viewed as (B, H, T, D), reshaped to the caller's leading dims."""
    B, H = _heads(shape)
    return like.new_empty((B, shape[-2], H, last)).transpose(1, 2).reshape(*shape[:-1], last)


def _attention_fake(q, k, v, attn_mask, dropout_p, is_causal, scale):
    _attention_check(q, k, v, attn_mask, dropout_p, is_causal)
    B, H = _heads(q.shape)
    return (_kernel_layout(q, q.shape, v.shape[-1]), q.new_empty((B, H, q.shape[-2])),
            torch.empty(2, dtype=torch.int64, device="cpu"))


def _attention_args(q, scale, dropout_p, is_causal, seed=0, offset=0):
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return _C.AttentionArgs(s, bool(is_causal), float(dropout_p), seed, offset)


def _as_heads_all(q, k, v, mask):
    """ember's (B, H, T, D) views (and the mask's) of torch's (..., T, D) tensors."""
    if q.dim() == 4:  # already (B, H, T, D); the kernel broadcasts the mask itself
        return to_ember(q), to_ember(k), to_ember(v), maybe_ember(mask)
    qe, ke, ve = (Tensor._wrap(to_ember(t)) for t in (q, k, v))
    q4 = _as_heads(qe, "query")
    m = None if mask is None else _mask_heads(Tensor._wrap(to_ember(mask)), q4, qe)
    return q4._a, _as_heads(ke, "key")._a, _as_heads(ve, "value")._a, (None if m is None else m._a)


def _attention(query, key, value, attn_mask, dropout_p, is_causal, scale):
    """-> (out, lse) as ember arrays, and the dropout stream's (seed, offset)."""
    _attention_check(query, key, value, attn_mask, dropout_p, is_causal)
    q4, k4, v4, m = _as_heads_all(query, key, value, attn_mask)
    seed = offset = 0
    if dropout_p > 0:  # drawn here, not by the caller, so every call of a compiled graph gets fresh numbers
        seed, offset = default_generator._take(q4.shape[0] * q4.shape[1] * q4.shape[2] * k4.shape[2])
    out, lse = _C.attention(q4, k4, v4, m, _attention_args(query, scale, dropout_p, is_causal, seed, offset))
    return out.reshape([*query.shape[:-1], value.shape[-1]]), lse, seed, offset


@_op("scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask, float dropout_p, "
     "bool is_causal, float? scale) -> (Tensor, Tensor, Tensor)", _attention_fake,
     lambda *a: (to_torch(_attention(*a)[0]), None, None))
def attention_op(query, key, value, attn_mask, dropout_p, is_causal, scale):
    """-> (out (..., Tq, Dv), lse (B, H, Tq), rng: the dropout stream's (seed, offset), int64 on the CPU)."""
    out, lse, seed, offset = _attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    rng = torch.zeros(2, dtype=torch.int64)  # (torch.tensor([...]) costs 3x more)
    if dropout_p > 0:
        rng[0], rng[1] = seed - _SEED_MOD if seed >= _SEED_MOD // 2 else seed, offset  # uint64 in an int64 tensor
    return to_torch(out), to_torch(lse), rng


def _attention_backward_fake(grad, query, key, value, out, lse, attn_mask, rng, dropout_p, is_causal, scale):
    return tuple(_kernel_layout(t, t.shape, t.shape[-1]) for t in (query, key, value))


@_op("scaled_dot_product_attention_backward(Tensor grad, Tensor query, Tensor key, Tensor value, Tensor out, "
     "Tensor lse, Tensor? attn_mask, Tensor rng, float dropout_p, bool is_causal, float? scale) "
     "-> (Tensor, Tensor, Tensor)", _attention_backward_fake)
def attention_backward_op(grad, query, key, value, out, lse, attn_mask, rng, dropout_p, is_causal, scale):
    q4, k4, v4, m = _as_heads_all(query, key, value, attn_mask)
    seed, offset = (int(i) for i in rng.tolist())
    args = _attention_args(query, scale, dropout_p, is_causal, seed % _SEED_MOD, offset)
    o4 = [q4.shape[0], q4.shape[1], q4.shape[2], v4.shape[3]]
    dq, dk, dv = _C.attention_backward(to_ember(grad).reshape(o4), q4, k4, v4, to_ember(out).reshape(o4),
                                       to_ember(lse), m, args)
    return tuple(to_torch(d.reshape(list(t.shape))) for d, t in ((dq, query), (dk, key), (dv, value)))


def _attention_setup(ctx, inputs, output):
    q, k, v, mask, ctx.dropout_p, ctx.is_causal, ctx.scale = inputs
    out, lse, rng = output
    if mask is not None and mask.requires_grad:
        raise NotImplementedError("[ember::scaled_dot_product_attention] gradients with respect to attn_mask")
    ctx.mark_non_differentiable(lse, rng)
    ctx.save_for_backward(q, k, v, out, lse, mask, rng)


def _attention_backward(ctx, g, _glse, _grng):
    q, k, v, out, lse, mask, rng = ctx.saved_tensors
    dq, dk, dv = _call(attention_backward_op, g, q, k, v, out, lse, mask, rng, ctx.dropout_p, ctx.is_causal, ctx.scale)
    return dq, dk, dv, None, None, None, None


_autograd(attention_op, _attention_setup, _attention_backward)


# ---- conv2d -----------------------------------------------------------------------------------

def _conv2d_check(x, weight, bias, groups):
    _check("conv2d", "x weight bias", x, weight, bias)
    if x.dim() != 4 or weight.dim() != 4 or groups < 1 or x.shape[1] != weight.shape[1] * groups or (
            weight.shape[0] % groups) or (bias is not None and tuple(bias.shape) != (weight.shape[0],)):
        raise ValueError(f"[ember::conv2d] needs x (N, C, H, W), weight (O, C/groups, KH, KW), bias (O,) with groups "
                         f"{groups} dividing C and O ({_shapes(x=x, weight=weight, bias=bias)})")


def _conv2d_out_hw(x, weight, stride, padding, dilation):
    top, bottom, left, right = padding
    oh = (x.shape[2] + top + bottom - dilation[0] * (weight.shape[2] - 1) - 1) // stride[0] + 1
    ow = (x.shape[3] + left + right - dilation[1] * (weight.shape[3] - 1) - 1) // stride[1] + 1
    return oh, ow


@functools.lru_cache(maxsize=256)
def _geom(*sizes):
    """ember's Conv2dGeom(stride, padding (top, bottom, left, right), dilation, groups), made once
    per geometry (a model has a handful; building one costs ~1 us)."""
    return _C.Conv2dGeom(*(int(v) for v in sizes))


def _conv2d_fake(x, weight, bias, stride, padding, dilation, groups):
    _conv2d_check(x, weight, bias, groups)
    return x.new_empty((x.shape[0], weight.shape[0], *_conv2d_out_hw(x, weight, stride, padding, dilation)))


@_op("conv2d(Tensor x, Tensor weight, Tensor? bias, int[2] stride, int[4] padding, int[2] dilation, int groups) "
     "-> Tensor", _conv2d_fake)
def conv2d_op(x, weight, bias, stride, padding, dilation, groups):
    """padding: (top, bottom, left, right), as ember's Conv2dGeom."""
    _conv2d_check(x, weight, bias, groups)
    geom = _geom(*stride, *padding, *dilation, groups)
    return to_torch(_C.conv2d(to_ember(x), to_ember(weight), maybe_ember(bias), geom))


def _conv2d_backward_fake(grad, x, weight, stride, padding, dilation, groups, needs):
    return (x.new_empty(x.shape if needs[0] else 0), x.new_empty(weight.shape if needs[1] else 0),
            x.new_empty(weight.shape[0] if needs[2] else 0))


@_op("conv2d_backward(Tensor grad, Tensor x, Tensor weight, int[2] stride, int[4] padding, int[2] dilation, "
     "int groups, bool[3] needs) -> (Tensor, Tensor, Tensor)", _conv2d_backward_fake)
def conv2d_backward_op(grad, x, weight, stride, padding, dilation, groups, needs):
    g, geom = to_ember(grad), _geom(*stride, *padding, *dilation, groups)
    gx = _C.conv2d_backward_input(g, to_ember(weight), list(x.shape), geom) if needs[0] else None
    gw = _C.conv2d_backward_weight(g, to_ember(x), list(weight.shape), geom) if needs[1] else None
    gb = _C.reduce(_C.ReduceOp.sum, g, [0, 2, 3], False) if needs[2] else None
    return _out(gx, needs[0], x), _out(gw, needs[1], x), _out(gb, needs[2], x)


def _conv2d_setup(ctx, inputs, output):
    x, weight, bias, *ctx.geom = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x, weight)


def _conv2d_backward(ctx, g):
    x, weight = ctx.saved_tensors
    nx, nw, nb = ctx.needs_input_grad[:3]
    nb = nb and ctx.has_bias
    gx, gw, gb = _call(conv2d_backward_op, g, x, weight, *ctx.geom, [nx, nw, nb])
    return (gx if nx else None), (gw if nw else None), (gb if nb else None), None, None, None, None


_autograd(conv2d_op, _conv2d_setup, _conv2d_backward)


# ---- recurrent layers (one layer, one direction; PyTorch's weight layout and gate order) ------------

_GATES = {"LSTM": 4, "GRU": 3}


def _rnn_check(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    op = mode.lower()
    _check(op, "input h0 c0 w_ih w_hh b_ih b_hh", x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    H = h0.shape[-1] if h0.dim() == 2 else -1
    G = _GATES[mode]
    ok = x.dim() == 3 and h0.dim() == 2 and h0.shape[0] == x.shape[1] and tuple(w_ih.shape) == (G * H, x.shape[2]) \
        and tuple(w_hh.shape) == (G * H, H) and (c0 is None or c0.shape == h0.shape) \
        and all(b is None or tuple(b.shape) == (G * H,) for b in (b_ih, b_hh))
    if not ok:
        raise ValueError(f"[ember::{op}] needs input (T, B, I), h0 (B, H), w_ih ({G}H, I), w_hh ({G}H, H), biases "
                         f"({G}H,) ({_shapes(input=x, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)})")
    return x.shape[0], x.shape[1], H, G


def _rnn_fake(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    T, B, H, G = _rnn_check(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    states = [x.new_empty((T + 2, B, H)), x.new_empty((T + 1, B, H))]
    if c0 is not None:
        states.append(x.new_empty((T + 1, B, H)))
    return (*states, x.new_empty((T, B, G * H)), x.new_empty((T, B, H)))


def _rnn_forward(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse):
    """-> ember arrays [y (T + 2, B, H): outputs then h_n, c_n; hs, [cs,] gates, extra: what the
    backward reads].
    The glue of ember.ops.rnn.recurrent_layer: one input-projection GEMM, then the C++ time loop."""
    T, B, H, G = _rnn_check(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    kind = KINDS[mode]
    xa = to_ember(x).reshape([T * B, x.shape[2]])
    b_in, b_step = _split_biases(kind, *(None if b is None else Tensor._wrap(to_ember(b)) for b in (b_ih, b_hh)))
    xg = _C.matmul(xa, _mT(to_ember(w_ih)), b_in)  # (T*B, G*H)
    seq = _C.rnn_sequence_forward(kind, xg.reshape([T, B, G * H]), to_ember(w_hh), b_step, to_ember(h0),
                                  maybe_ember(c0), None, bool(reverse))
    hs, cs, gates, extra = seq.saved()
    return [a for a in (seq.y, hs, cs, gates, extra) if a is not None]


def _rnn_inference(mode, *args):
    """Only y, the op's first output, crosses to torch (the rest is for the backward)."""
    arrays = _rnn_forward(mode, *args)
    return (to_torch(arrays[0]), *([None] * (len(arrays) - 1)))


@_op("lstm(Tensor input, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, bool reverse) "
     "-> (Tensor, Tensor, Tensor, Tensor, Tensor)", lambda *a: _rnn_fake("LSTM", *a[:-1]),
     lambda *a: _rnn_inference("LSTM", *a))
def lstm_op(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse):
    return tuple(to_torch(a) for a in _rnn_forward("LSTM", x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse))


@_op("gru(Tensor input, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, bool reverse) "
     "-> (Tensor, Tensor, Tensor, Tensor)", lambda x, h0, *a: _rnn_fake("GRU", x, h0, None, *a[:-1]),
     lambda x, h0, *a: _rnn_inference("GRU", x, h0, None, *a))
def gru_op(x, h0, w_ih, w_hh, b_ih, b_hh, reverse):
    return tuple(to_torch(a) for a in _rnn_forward("GRU", x, h0, None, w_ih, w_hh, b_ih, b_hh, reverse))


def _rnn_backward_fake(mode, grad, x, w_ih, w_hh, y, hs, cs, gates, extra, reverse, needs):
    B, H = y.shape[1], y.shape[2]
    shapes = [x.shape, (B, H), (B, H), w_ih.shape, w_hh.shape, (w_hh.shape[0],), (w_hh.shape[0],)]
    return tuple(x.new_empty(s if n else 0) for s, n in zip(shapes, needs))


@_op("rnn_backward(str mode, Tensor grad, Tensor input, Tensor w_ih, Tensor w_hh, Tensor y, Tensor hs, Tensor? cs, "
     "Tensor gates, Tensor extra, bool reverse, bool[7] needs) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, "
     "Tensor)", _rnn_backward_fake)
def rnn_backward_op(mode, grad, x, w_ih, w_hh, y, hs, cs, gates, extra, reverse, needs):
    """needs: input, h0, c0, w_ih, w_hh, b_ih, b_hh (ember.ops.rnn's backward, on rebuilt state)."""
    kind = KINDS[mode]
    T, B, I = x.shape
    GH = w_hh.shape[0]
    wi, wh = to_ember(w_ih), to_ember(w_hh)
    seq = _C.RnnSequence(kind, bool(reverse), None, to_ember(y), to_ember(hs), maybe_ember(cs), to_ember(gates),
                         to_ember(extra))
    dxg, dhg, dh0, dc0 = _C.rnn_sequence_backward(seq, wh, to_ember(grad))
    DXG, DHG = dxg.reshape([T * B, GH]), dhg.reshape([T * B, GH])
    rows = lambda a: _C.reduce(_C.ReduceOp.sum, a, [0], False)  # noqa: E731 - a new array each call
    grads = [
        (lambda: _C.matmul(DXG, wi).reshape([T, B, I])),
        (lambda: dh0), (lambda: dc0),
        (lambda: _C.matmul(_mT(DXG), to_ember(x).reshape([T * B, I]))),
        (lambda: _C.matmul(_mT(DHG), seq.h_prevs().reshape([T * B, wh.shape[1]]))),
        (lambda: rows(DXG)), (lambda: rows(DHG)),
    ]
    return tuple(_out(make() if need else None, need, x) for make, need in zip(grads, needs))


def _rnn_setup(mode):
    def setup(ctx, inputs, output):
        x, h0, *rest = inputs
        c0, (w_ih, w_hh, b_ih, b_hh, ctx.reverse) = (rest[0], rest[1:]) if mode == "LSTM" else (None, rest)
        ctx.biases = (b_ih is not None, b_hh is not None)
        y, hs, *others = output
        cs, gates, extra = others if mode == "LSTM" else (None, *others)
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(x, w_ih, w_hh, y, hs, cs, gates, extra)
    return setup


def _rnn_backward(mode):
    def backward(ctx, gy, *_state_grads):
        x, w_ih, w_hh, y, hs, cs, gates, extra = ctx.saved_tensors
        n = list(ctx.needs_input_grad[:-1])  # the tensor inputs, in the op's order (reverse is last)
        if mode == "GRU":
            n.insert(2, False)  # no c0
        n[5], n[6] = n[5] and ctx.biases[0], n[6] and ctx.biases[1]
        grads = _call(rnn_backward_op, mode, gy, x, w_ih, w_hh, y, hs, cs, gates, extra, ctx.reverse, n)
        grads = [g if need else None for g, need in zip(grads, n)]
        if mode == "GRU":
            del grads[2]
        return (*grads, None)
    return backward


_autograd(lstm_op, _rnn_setup("LSTM"), _rnn_backward("LSTM"))
_autograd(gru_op, _rnn_setup("GRU"), _rnn_backward("GRU"))


# ---- the public functions (PyTorch's argument conventions) --------------------------------------

def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b with NumPy's rules: a 1-d operand is promoted to a matrix and the added dim removed."""
    if a.dim() >= 2 and b.dim() >= 2:
        return _call(matmul_op, a, b)
    if a.dim() == 0 or b.dim() == 0:
        raise ValueError(f"[ember::matmul] operands must have >= 1 dim ({_shapes(a=a, b=b)})")
    out = _call(matmul_op, a.unsqueeze(0) if a.dim() == 1 else a, b.unsqueeze(-1) if b.dim() == 1 else b)
    if b.dim() == 1:
        out = out.squeeze(-1)
    return out.squeeze(-2 if b.dim() > 1 else -1) if a.dim() == 1 else out


def linear(x, weight, bias=None, activation=None):
    """x @ weight^T + bias, then activation (None, 'relu', 'gelu', 'gelu_tanh') in the GEMM's epilogue."""
    activation = activation or "none"
    if activation in ("gelu", "gelu_tanh") and torch.is_grad_enabled() and (
            x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)):
        # GELU's derivative needs the pre-activation: keep z and run GELU as its own op (as ember.ops.linalg)
        return gelu(_call(linear_op, x, weight, bias, "none"), "tanh" if activation == "gelu_tanh" else "none")
    return _call(linear_op, x, weight, bias, activation)


def gelu(x, approximate: str = "none"):
    return _call(gelu_op, x, approximate)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    shape = [normalized_shape] if isinstance(normalized_shape, int) else list(normalized_shape)
    if weight is None and bias is not None:  # the kernel's affine step wants both
        weight = torch.ones(shape, dtype=x.dtype, device=x.device)
    return _call(layer_norm_op, x, shape, weight, bias, eps)[0]


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                                 scale=None):
    """torch.nn.functional.scaled_dot_product_attention's semantics (bool mask: True = attend; a float
    mask is added), except that a row with every key masked out gives zeros, not NaN."""
    return _call(attention_op, query, key, value, attn_mask, float(dropout_p), bool(is_causal),
                 None if scale is None else float(scale))[0]


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """torch.nn.functional.conv2d's arguments (padding: int, pair, 'same' or 'valid')."""
    kh, kw = weight.shape[2:] if weight.dim() == 4 else (1, 1)  # (a wrong weight: the op's check says so)
    try:
        geometry = _conv_geometry(stride, padding, dilation, kh, kw)
    except TypeError:  # unhashable arguments (lists): no cache
        geometry = _conv_geometry.__wrapped__(stride, padding, dilation, kh, kw)
    return _call(conv2d_op, x, weight, bias, *geometry, int(groups))


@functools.lru_cache(maxsize=256)
def _conv_geometry(stride, padding, dilation, kh, kw):
    """torch's stride/padding/dilation arguments as the op's int lists (ember.ops.conv's rules),
    worked out once per geometry (tuples: the cached values are shared)."""
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    return stride, tuple(_padding(padding, (kh, kw), dilation, stride)), dilation


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """One LSTM layer over x (T, B, I) -> (outputs (T, B, H), h_n, c_n)."""
    y = _call(lstm_op, x, h0, c0, w_ih, w_hh, b_ih, b_hh, bool(reverse))[0]
    return y[:-2], y[-2], y[-1]


def gru_layer(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """One GRU layer over x (T, B, I) -> (outputs (T, B, H), h_n)."""
    y = _call(gru_op, x, h0, w_ih, w_hh, b_ih, b_hh, bool(reverse))[0]
    return y[:-2], y[-2]
