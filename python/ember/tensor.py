"""ember.Tensor: a _C.Array plus the autograd record (requires_grad, grad, the Node that made it).

This is the bottom of the Python layers: it imports only _C, dtypes and device. Everything a Tensor
does through an op (arithmetic, reductions, views, `to`, `backward`, conversion to NumPy and DLPack,
`repr`, the constructor itself) lives above it and is bound onto the class by one table,
ember/ops/__init__.py; the methods written here need nothing but the array they wrap."""
from __future__ import annotations

from . import _C
from . import dtypes as _dt
from .device import device as _device


class Tensor:
    __slots__ = ("_a", "requires_grad", "grad", "_node", "_retain_grad", "__weakref__")
    __array_priority__ = 1000  # NumPy defers to Tensor's reflected operators (ndarray + Tensor)

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

    # ---- conversion --------------------------------------------------------------------------
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("[numpy] tensor requires grad; call .detach().numpy()")
        return self.__array__()

    def item(self):
        return self._a.item()  # NumPy's item: float32/64 -> float, ints -> int, bool -> bool

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

    def __dlpack_device__(self):
        return tuple(_C.dlpack_device(self._a))
