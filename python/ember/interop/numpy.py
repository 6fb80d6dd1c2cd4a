"""NumPy interop: from_numpy and Tensor.__array__ share memory whenever the layout allows."""
from __future__ import annotations

import numpy as np

from .. import _C
from .. import dtypes as _dt
from ..tensor import Tensor


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing arr's memory (no copy). Writes through either are seen by both."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"[from_numpy] expected a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype.byteorder == ">" or arr.dtype not in _dt._NUMPY_TO_EMBER:
        raise TypeError(f"[from_numpy] unsupported NumPy dtype {arr.dtype}; supported: float32, float64, "
                        "float16, int64, int32, bool (convert with arr.astype(...) first)")
    return Tensor._wrap(_C.from_numpy(arr))


def to_numpy(t: Tensor, dtype=None, copy=None) -> np.ndarray:
    """Tensor -> ndarray. Zero copy for CPU tensors of NumPy dtypes; copy=False raises if a copy is
    needed (a CUDA tensor, a bfloat16 tensor, or a dtype change), as NumPy 2's __array__ expects."""
    a = t._a
    needs_copy = a.device != "cpu" or a.dtype == "bfloat16" or (dtype is not None and np.dtype(dtype) != _np_dtype(a.dtype))
    if copy is False and needs_copy:
        raise ValueError(f"[numpy] cannot convert a {a.dtype} tensor on {a.device} without a copy")
    if a.device != "cpu":
        a = a.to("cpu")
    if a.dtype == "bfloat16":
        a = a.astype("float32")
    out = _C.to_numpy(a)
    if dtype is not None and out.dtype != np.dtype(dtype):
        out = out.astype(dtype)
    elif copy:
        out = out.copy()
    return out


def _np_dtype(name):
    return np.dtype(np.float32) if name == "bfloat16" else np.dtype(name)


def format_tensor(t: Tensor) -> str:
    arr = to_numpy(t.detach())
    body = np.array2string(arr, separator=", ", prefix="tensor(", precision=4)
    extras = []
    if t.dtype not in (_dt.float32, _dt.int64, _dt.bool):
        extras.append(f"dtype={t.dtype!r}")
    if str(t.device) != "cpu":
        extras.append(f"device='{t.device}'")
    if t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
