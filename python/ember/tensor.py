"""ember.Tensor: a _C.Array plus the autograd record (requires_grad, grad, the Node that made it).
Every operation lives in ember.ops; the methods here only forward to it."""
from __future__ import annotations

import numpy as np

from . import _C
from . import dtypes as _dt
from .autograd.graph import run_backward
from .device import device as _device


class Tensor:
    __slots__ = ("_a", "requires_grad", "grad", "_node", "_retain_grad", "__weakref__")
    __array_priority__ = 1000  # NumPy defers to Tensor's reflected operators (ndarray + Tensor)

    def __init__(self, data=None, dtype=None, device=None, requires_grad=False):
        from .ops.creation import tensor as _tensor
        src = _tensor(data, dtype=dtype, device=device)
        self._a = src._a
        self._init_autograd(requires_grad)

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        t = cls.__new__(cls)
        t._a = array
        t.grad = t._node = None  # _init_autograd, inlined: this runs once per op
        t._retain_grad = t.requires_grad = False
        if requires_grad:
            t.requires_grad_(True)
        return t

    def _init_autograd(self, requires_grad):
        self.grad = None
        self._node = None
        self._retain_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- properties --------------------------------------------------------------------------
    @property
    def shape(self):
        return self._a.shape

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    @property
    def dtype(self):
        return _dt.get_dtype(self._a.dtype)

    @property
    def device(self):
        return _device(self._a.device)

    @property
    def is_cuda(self):
        return self._a.device.startswith("cuda")

    @property
    def ndim(self):
        return self._a.ndim

    def dim(self):
        return self._a.ndim

    def numel(self):
        return self._a.numel()

    def element_size(self):
        return self._a.itemsize

    def is_contiguous(self):
        return self._a.is_contiguous()

    def stride(self, dim=None):
        return self._a.strides if dim is None else self._a.strides[dim]

    def data_ptr(self):
        return self._a.data_ptr

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def data(self):
        return self.detach()

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("[len] len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("[iter] iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    # ---- autograd ----------------------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        if requires_grad and not self.dtype.is_floating_point:
            raise TypeError(f"[requires_grad] only floating tensors can require gradients, got {self.dtype}")
        if not requires_grad and self._node is not None:
            raise RuntimeError("[requires_grad] cannot turn off requires_grad on a non-leaf tensor; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        self._retain_grad = True
        return self

    def detach(self):
        return Tensor._wrap(self._a)

    def backward(self, grad=None):
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
            from .ops.creation import tensor
            grad = tensor(grad, dtype=self.dtype, device=self.device)
        if grad.shape != self.shape:
            raise ValueError(f"[backward] grad shape {grad.shape} does not match tensor shape {self.shape}")
        run_backward(self, grad.detach())

    # ---- conversion --------------------------------------------------------------------------
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("[numpy] tensor requires grad; call .detach().numpy()")
        return self.__array__()

    def __array__(self, dtype=None, copy=None):
        from .interop.numpy import to_numpy
        return to_numpy(self, dtype=dtype, copy=copy)

    def item(self):
        a = self._a
        if a.numel() != 1:
            raise ValueError(f"[item] only one-element tensors convert to a Python scalar, got shape {self.shape}")
        if a.device != "cpu":
            a = a.to("cpu")
        if a.dtype in ("bfloat16", "float16"):
            a = a.astype("float32")  # exact: every 16-bit float is a float32
        return _C.to_numpy(a).item()  # NumPy's item: float32/64 -> float, ints -> int, bool -> bool

    def tolist(self):
        t = self.cpu().detach()
        if t.dtype in (_dt.bfloat16, _dt.float16):
            t = t.float()
        return t.__array__().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"[bool] truth value of a tensor with {self.numel()} elements is ambiguous")
        return bool(self.item())

    def __index__(self):
        if self.dtype.is_floating_point or self.numel() != 1:
            raise TypeError("[index] only integer tensors of one element can be converted to an index")
        return int(self.item())

    def to(self, *args, **kwargs):
        from .ops.shape import to
        return to(self, *args, **kwargs)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))

    def float(self):
        return self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def half(self):
        return self.to(_dt.float16)

    def bfloat16(self):
        return self.to(_dt.bfloat16)

    def long(self):
        return self.to(_dt.int64)

    def int(self):
        return self.to(_dt.int32)

    def bool(self):
        return self.to(_dt.bool)

    def type(self, dtype):
        return self.to(dtype)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        from .interop.dlpack import export
        return export(self, stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self):
        return tuple(_C.dlpack_device(self._a))

    def __repr__(self):
        from .interop.numpy import format_tensor
        return format_tensor(self)

    def __reduce__(self):
        from .ops.creation import tensor
        return (_rebuild, (self.detach().cpu().float().__array__() if self.dtype == _dt.bfloat16
                           else self.detach().cpu().__array__().copy(), self.dtype.name, str(self.device),
                           self.requires_grad))


def _rebuild(array, dtype, device, requires_grad):
    from .ops.creation import tensor
    return tensor(array, dtype=dtype, device=device, requires_grad=requires_grad)


def _install_methods():
    """Binds the op functions as Tensor methods and operators (one table, in ops/__init__.py)."""
    from .ops import tensor_methods
    for name, fn in tensor_methods().items():
        setattr(Tensor, name, fn)


_install_methods()
