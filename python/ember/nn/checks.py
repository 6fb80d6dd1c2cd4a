"""Argument checks shared by the layers' constructors: a bad size or rate fails where it is given, naming
the layer, instead of as a ZeroDivisionError in an initialiser or a wrong shape several calls later."""
from __future__ import annotations

import numbers


def positive_int(layer: str, name: str, value) -> int:
    """value as an int >= 1 (a bool, a float or a non-positive value is refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"[{layer}] {name} must be a positive int, got {value!r}")
    return int(value)


def int_tuple(layer: str, name: str, value, dims: int, minimum: int) -> tuple:
    """An int or `dims` ints (a kernel size, stride, padding, dilation), each >= minimum, as a tuple."""
    values = (value,) * dims if isinstance(value, numbers.Integral) else tuple(value)
    if len(values) != dims or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum
                                      for v in values):
        raise ValueError(f"[{layer}] {name} must be an int or {dims} ints, each >= {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


def an_int(layer: str, name: str, value) -> int:
    """value as an int of any sign (a dim)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"[{layer}] {name} must be an int, got {value!r}")
    return int(value)


def rate(layer: str, name: str, value, top_inclusive: bool = True) -> float:
    """value as a float in [0, 1] (or [0, 1) when top_inclusive is False)."""
    ok = isinstance(value, numbers.Real) and (0 <= value <= 1 if top_inclusive else 0 <= value < 1)
    if not ok:
        raise ValueError(f"[{layer}] {name} must be in [0, {'1]' if top_inclusive else '1)'}, got {value!r}")
    return float(value)


def positive(layer: str, name: str, value) -> float:
    """value as a float > 0 (an epsilon)."""
    if not (isinstance(value, numbers.Real) and value > 0):
        raise ValueError(f"[{layer}] {name} must be > 0, got {value!r}")
    return float(value)


REDUCTIONS = ("mean", "sum", "none")


def reduction(layer: str, value) -> str:
    """A loss's reduction, checked when the loss is made rather than at its first call."""
    if value not in REDUCTIONS:
        raise ValueError(f"[{layer}] reduction must be one of {REDUCTIONS}, got {value!r}")
    return value
