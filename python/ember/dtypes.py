"""ember's dtypes: small named objects that compare equal to their names (em.float32 == "float32")."""
from __future__ import annotations

import numpy as np


class dtype:
    __slots__ = ("name", "itemsize", "is_floating_point", "is_signed")

    def __init__(self, name: str, itemsize: int, is_floating_point: bool, is_signed: bool = True):
        self.name, self.itemsize = name, itemsize
        self.is_floating_point, self.is_signed = is_floating_point, is_signed

    def __repr__(self):
        return f"ember.{self.name}"

    def __eq__(self, other):
        if isinstance(other, dtype):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self):
        return hash(self.name)

    def __reduce__(self):
        return (get_dtype, (self.name,))


float32 = dtype("float32", 4, True)
float64 = dtype("float64", 8, True)
float16 = dtype("float16", 2, True)
bfloat16 = dtype("bfloat16", 2, True)
int64 = dtype("int64", 8, False)
int32 = dtype("int32", 4, False)
bool = dtype("bool", 1, False, False)  # noqa: A001 - the public name, as torch.bool
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001

_BY_NAME = {d.name: d for d in (float32, float64, float16, bfloat16, int64, int32, bool)}
_NUMPY_TO_EMBER = {
    np.dtype(np.float32): float32, np.dtype(np.float64): float64, np.dtype(np.float16): float16,
    np.dtype(np.int64): int64, np.dtype(np.int32): int32, np.dtype(np.bool_): bool,
}


def get_dtype(d) -> dtype:
    """Accepts an ember dtype, its name, or a NumPy dtype / scalar type."""
    if isinstance(d, dtype):
        return d
    if isinstance(d, str) and d in _BY_NAME:
        return _BY_NAME[d]
    try:
        nd = np.dtype(d)
    except TypeError:
        raise TypeError(f"[dtype] unknown dtype {d!r}") from None
    if nd in _NUMPY_TO_EMBER:
        return _NUMPY_TO_EMBER[nd]
    raise TypeError(f"[dtype] NumPy dtype {nd} has no ember equivalent")


def from_numpy_dtype(nd: np.dtype) -> dtype:
    """The ember dtype a NumPy array converts to when copied (unsigned/small ints widen to int64)."""
    nd = np.dtype(nd)
    if nd in _NUMPY_TO_EMBER:
        return _NUMPY_TO_EMBER[nd]
    if nd.kind in "iu":
        return int64
    if nd.kind == "f":
        return float64
    raise TypeError(f"[tensor] NumPy dtype {nd} has no ember equivalent")
