"""Creation: tensor, zeros/ones/full/empty(+_like), arange, linspace, eye, and random draws."""
from __future__ import annotations

import builtins
import functools
import math
import operator
import os

import numpy as np

from .. import _C, cuda
from .. import dtypes as _dt
from ..device import device as _device
from ..random import default_generator
from ..tensor import Tensor


def _dev(device) -> str:
    if device is None:
        return "cpu"
    d = _device(device) if not isinstance(device, int) else _device(f"cuda:{device}")
    if d.type == "cuda":
        cuda._check_available(d.index)
    return str(d)


def _shape(size, op) -> list:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    try:
        shape = [operator.index(s) for s in size]
    except TypeError:
        raise TypeError(f"[{op}] expected integers for the shape, got {size!r}") from None
    if shape and min(shape) < 0:
        raise ValueError(f"[{op}] negative dimension in shape {tuple(shape)}")
    return shape


@functools.lru_cache(maxsize=1)
def _host_memory_bytes() -> int:
    """Physical memory of this machine (0 where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


_ADDRESSABLE = 2 ** 63 - 1  # bytes: past this the C++ size arithmetic would overflow


@functools.lru_cache(maxsize=8)
def _size_limit(device):
    """(bytes, what they are) a new tensor on device may take: the host's memory on the CPU."""
    host = _host_memory_bytes()
    if device == "cpu" and 0 < host < _ADDRESSABLE:
        return host, f"this machine's memory ({host / 2 ** 30:.1f} GiB)"
    return _ADDRESSABLE, "the 2^63 bytes an array can address"


def _check_size(op, shape, dtype, device):
    """Refuses, before any allocation, a tensor whose byte count (exact, in Python ints) cannot be
    addressed (>= 2^63, where the C++ size arithmetic would overflow) or exceeds the host's memory."""
    itemsize = _dt.get_dtype(dtype).itemsize
    nbytes = math.prod(shape) * itemsize
    limit, what = _size_limit(device)
    if nbytes > limit:
        raise MemoryError(f"[{op}] shape {tuple(shape)} of {_dt.get_dtype(dtype).name} needs {nbytes} bytes "
                          f"({nbytes / 2 ** 30:.4g} GiB), more than {what}")


def _default_dtype(arr: np.ndarray):
    """Python data follows PyTorch: floats -> float32, ints -> int64, bools -> bool; NumPy arrays keep
    their dtype where ember has it."""
    return _dt.from_numpy_dtype(arr.dtype)


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor holding a copy of data (nested lists, scalars, NumPy arrays or tensors)."""
    if isinstance(data, Tensor):
        a = data._a.clone()
        if dtype is not None:
            a = a.astype(_dt.get_dtype(dtype).name)
        out = Tensor._wrap(a.to(_dev(device)) if device is not None else a)
        return out.requires_grad_(requires_grad) if requires_grad else out
    from_numpy = isinstance(data, np.ndarray) or isinstance(data, np.generic)
    try:
        arr = np.asarray(data)
    except ValueError as e:  # NumPy's "inhomogeneous shape": a ragged nested list
        raise ValueError(f"[tensor] nested sequences must be rectangular (NumPy: {e})") from None
    if arr.dtype == object:
        raise TypeError(f"[tensor] cannot build a tensor from {type(data).__name__} of mixed objects")
    if dtype is not None:
        target = _dt.get_dtype(dtype)
    elif from_numpy:
        target = _default_dtype(arr)
    else:
        target = _dt.float32 if arr.dtype.kind == "f" else _default_dtype(arr)
    np_target = np.float32 if target == _dt.bfloat16 else np.dtype(target.name)
    host = np.array(arr, dtype=np_target, order="C", copy=True)
    a = _C.from_numpy(host)
    if target == _dt.bfloat16:
        a = a.astype("bfloat16")
    dev = _dev(device)
    if dev != "cpu":
        a = a.to(dev)
    return Tensor._wrap(a, requires_grad=requires_grad)


def _init_tensor(self, data=None, dtype=None, device=None, requires_grad=False):
    """Tensor(data, dtype, device, requires_grad): em.tensor's conversion, into the new object."""
    self._a = tensor(data, dtype=dtype, device=device)._a
    self._init_autograd(requires_grad)


def _reduce_tensor(self):
    """Pickling: the values as a NumPy array (bfloat16, which NumPy lacks, travels as float32)."""
    host = self.detach().cpu()
    values = host.float().__array__() if self.dtype == _dt.bfloat16 else host.__array__().copy()
    return (_rebuild, (values, self.dtype.name, str(self.device), self.requires_grad))


def _rebuild(array, dtype, device, requires_grad):
    return tensor(array, dtype=dtype, device=device, requires_grad=requires_grad)


def _resolve_dtype(dtype, default=_dt.float32):
    return (default if dtype is None else _dt.get_dtype(dtype)).name


def _filled(op, size, fill_value, dtype, device, requires_grad) -> Tensor:
    """A tensor of `size` (ints, or one sequence of them) holding fill_value. The common case is the
    binding's shape conversion and the core's checks (negative sizes, byte counts past 2^63 or past
    the machine's memory); anything they refuse is checked again here, the slow way, for an error
    that names the op."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    dtype = "float32" if dtype is None else _dt.get_dtype(dtype).name
    device = "cpu" if device is None else _dev(device)
    try:
        a = _C.full(size, float(fill_value), dtype, device)
    except (TypeError, ValueError, MemoryError):
        _check_size(op, _shape(size, op), dtype, device)  # raises the op's TypeError/ValueError/MemoryError
        raise
    return Tensor._wrap(a, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None:
        dtype = _dt.bool if isinstance(fill_value, bool) else (
            _dt.int64 if isinstance(fill_value, builtins.int) else _dt.float32)
    shape = _shape((size,) if isinstance(size, builtins.int) else tuple(size), "full")
    return _filled("full", (shape,), fill_value, dtype, device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled("zeros", size, 0.0, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled("ones", size, 1.0, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    shape, dtype, device = _shape(size, "empty"), _resolve_dtype(dtype), _dev(device)
    _check_size("empty", shape, dtype, device)
    return Tensor._wrap(_C.empty(shape, dtype, device), requires_grad=requires_grad)


def _like(x, dtype, device):
    return (x.dtype if dtype is None else dtype), (x.device if device is None else device)


def zeros_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(x, dtype, device)
    return full(x.shape, 0.0, dtype, device, requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(x, dtype, device)
    return full(x.shape, 1.0, dtype, device, requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype, device = _like(x, dtype, device)
    return full(x.shape, fill_value, dtype, device, requires_grad)


def empty_like(x, dtype=None, device=None) -> Tensor:
    dtype, device = _like(x, dtype, device)
    return empty(x.shape, dtype=dtype, device=device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, builtins.int) for v in (start, end, step))
        dtype = _dt.int64 if ints else _dt.float32
    dtype, device = _resolve_dtype(dtype), _dev(device)
    span = float(end) - float(start)
    if step and math.isfinite(span) and span * float(step) < 0:  # PyTorch refuses a step away from end
        raise ValueError(f"[arange] step {step} points away from end: start={start}, end={end}")
    if step and math.isfinite(span):
        _check_size("arange", [math.ceil(span / float(step))], dtype, device)
    a = _C.arange(float(start), float(end), float(step), dtype, device)
    return Tensor._wrap(a, requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    try:
        steps = operator.index(steps)
    except TypeError:
        raise TypeError(f"[linspace] steps must be an integer, got {steps!r}") from None
    if steps < 0:
        raise ValueError(f"[linspace] steps must be >= 0, got {steps}")
    _check_size("linspace", [steps], np.float64, "cpu")  # the float64 values are made on the host first
    values = np.linspace(float(start), float(end), steps, dtype=np.float64)
    return tensor(values, dtype=dtype or _dt.float32, device=device, requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device=None) -> Tensor:
    _shape((n,) if m is None else (n, m), "eye")
    return tensor(np.eye(n, m), dtype=dtype or _dt.float32, device=device)


# ---- random --------------------------------------------------------------------------------

def _draw(fn, op, size, generator, dtype, device, *args):
    shape = _shape(size, op)
    if fn is not _C.random_int and not _dt.get_dtype(dtype).is_floating_point:
        # checked before the stream advances, so a refused draw leaves the generator untouched
        raise TypeError(f"[{op}] needs a floating dtype, got {dtype}")
    device = _dev(device)
    _check_size(op, shape, dtype, device)
    seed, offset = (generator or default_generator)._take(math.prod(shape))
    return fn(shape, *args, seed, offset, dtype, device)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1)."""
    a = _draw(_C.random_uniform, "rand", size, generator, _resolve_dtype(dtype), device, 0.0, 1.0)
    return Tensor._wrap(a, requires_grad=requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal."""
    a = _draw(_C.random_normal, "randn", size, generator, _resolve_dtype(dtype), device, 0.0, 1.0)
    return Tensor._wrap(a, requires_grad=requires_grad)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None) -> Tensor:
    """Uniform integers on [low, high)."""
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size), as PyTorch
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("[randint] size is required")
    a = _draw(_C.random_int, "randint", (tuple(size),), generator, _resolve_dtype(dtype, _dt.int64), device,
              builtins.int(low), builtins.int(high))
    return Tensor._wrap(a)


def rand_like(x, generator=None):
    return rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def randn_like(x, generator=None):
    return randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def randperm(n, generator=None, device=None) -> Tensor:
    """A random permutation of 0..n-1 (argsort of n uniform draws, so it follows the seed)."""
    _shape((n,), "randperm")
    keys = rand(builtins.int(n), generator=generator, dtype=_dt.float64).numpy()
    return tensor(np.argsort(keys, kind="stable"), dtype=_dt.int64, device=device)
