"""Differentiable ops, one file per family; this file binds them as Tensor methods and operators,
together with every other Tensor method that needs a layer above tensor.py (the constructor,
backward, NumPy/DLPack conversion, repr, pickling): the one place the Tensor class is completed."""
from __future__ import annotations

from .. import _C
from ..autograd.graph import is_grad_enabled, run_backward
from ..interop.dlpack import export
from ..interop.numpy import format_tensor, to_numpy
from ..tensor import Tensor
from . import creation, elementwise, index, linalg, reduce, shape


def _r(fn):
    """Reflected operator: b.__rsub__(a) computes fn(a, b)."""
    return lambda self, other: fn(other, self)


def _inplace(fn):
    """x += y style: computes out of place, then writes into x's storage (no gradient tracking)."""
    def method(self, *args, **kwargs):
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError(f"[{fn.__name__}_] in-place op on a tensor that requires grad; use no_grad()")
        out = fn(self, *args, **kwargs)
        self._a.copy_(out._a)
        return self
    return method


def _zero_(self):
    self._a.copy_(creation.zeros_like(self)._a)
    return self


def _fill_(self, value):
    self._a.copy_(creation.full_like(self, value)._a)
    return self


def _copy_(self, src):
    self._a.copy_(src._a if hasattr(src, "_a") else creation.tensor(src)._a)
    return self


def _backward(self, grad=None):
    """Runs backpropagation from self; grad defaults to 1 for a one-element tensor."""
    if not self.requires_grad:
        raise RuntimeError("[backward] tensor does not require grad and has no grad_fn")
    a = self._a
    if grad is None:
        if a.numel() != 1:
            raise RuntimeError(f"[backward] grad can be implicitly created only for scalar outputs, "
                               f"got shape {self.shape}")
        run_backward(self, Tensor._wrap(_C.full(a.shape, 1.0, a.dtype, a.device)))
        return
    if not isinstance(grad, Tensor):
        grad = creation.tensor(grad, dtype=self.dtype, device=self.device)
    if grad.shape != self.shape:
        raise ValueError(f"[backward] grad shape {grad.shape} does not match tensor shape {self.shape}")
    run_backward(self, grad.detach())


def tensor_methods():
    e, r, s, i = elementwise, reduce, shape, index
    m = {
        "__add__": e.add, "__radd__": _r(e.add), "__sub__": e.sub, "__rsub__": _r(e.sub),
        "__mul__": e.mul, "__rmul__": _r(e.mul), "__truediv__": e.div, "__rtruediv__": _r(e.div),
        "__pow__": e.pow, "__rpow__": _r(e.pow), "__neg__": e.neg, "__abs__": e.abs,
        "__pos__": lambda self: self,
        "__eq__": e.eq, "__ne__": e.ne, "__lt__": e.lt, "__le__": e.le, "__gt__": e.gt, "__ge__": e.ge,
        "__and__": e.logical_and, "__or__": e.logical_or, "__xor__": e.logical_xor,
        "__invert__": e.logical_not,
        "__matmul__": linalg.matmul, "__rmatmul__": _r(linalg.matmul), "matmul": linalg.matmul,
        "__init__": creation._init_tensor, "__reduce__": creation._reduce_tensor, "backward": _backward,
        "__array__": to_numpy, "__dlpack__": export, "__repr__": format_tensor, "to": s.to,
        "__getitem__": i.getitem, "__setitem__": i.setitem,
        "__iadd__": _inplace(e.add), "__isub__": _inplace(e.sub), "__imul__": _inplace(e.mul),
        "__itruediv__": _inplace(e.div),
        "add": e.add, "sub": e.sub, "mul": e.mul, "div": e.div, "pow": e.pow,
        "add_": _inplace(e.add), "sub_": _inplace(e.sub), "mul_": _inplace(e.mul), "div_": _inplace(e.div),
        "clamp_": _inplace(e.clamp), "zero_": _zero_, "fill_": _fill_, "copy_": _copy_,
        "maximum": e.maximum, "minimum": e.minimum, "eq": e.eq, "ne": e.ne, "lt": e.lt, "le": e.le,
        "gt": e.gt, "ge": e.ge,
        "neg": e.neg, "exp": e.exp, "log": e.log, "sqrt": e.sqrt, "abs": e.abs, "tanh": e.tanh,
        "sigmoid": e.sigmoid, "relu": e.relu, "gelu": e.gelu, "silu": e.silu, "sign": e.sign,
        "square": e.square, "reciprocal": e.reciprocal, "clamp": e.clamp, "clip": e.clamp,
        "sum": r.sum, "mean": r.mean, "max": r.max, "min": r.min, "amax": r.amax, "amin": r.amin,
        "argmax": r.argmax, "argmin": r.argmin, "var": r.var, "std": r.std, "prod": r.prod,
        "any": r.any, "all": r.all, "softmax": r.softmax, "log_softmax": r.log_softmax,
        "logsumexp": r.logsumexp,
        "reshape": s.reshape, "view": s.view, "flatten": s.flatten, "unflatten": s.unflatten,
        "permute": s.permute, "transpose": s.transpose, "t": s.t, "unsqueeze": s.unsqueeze,
        "squeeze": s.squeeze, "expand": s.expand, "expand_as": s.expand_as, "contiguous": s.contiguous,
        "clone": s.clone, "split": s.split, "chunk": s.chunk,
        "index_select": i.index_select, "gather": i.gather, "masked_fill": i.masked_fill,
        "nonzero": i.nonzero,
    }
    m["__hash__"] = object.__hash__  # __eq__ is elementwise; identity hashing keeps tensors usable as keys
    return m


for _name, _method in tensor_methods().items():
    setattr(Tensor, _name, _method)
