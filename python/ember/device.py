"""Devices: 'cpu', 'cuda', 'cuda:N'. A device compares equal to its string form."""
from __future__ import annotations


class device:
    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"[device] expected a string such as 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, num = spec.partition(":")
        if kind not in ("cpu", "cuda") or (num and not num.isdigit()) or (kind == "cpu" and num):
            raise ValueError(f"[device] unknown device {spec!r} (expected 'cpu', 'cuda' or 'cuda:N')")
        self.type = kind
        self.index = int(num) if num else (index if index is not None else (0 if kind == "cuda" else None))

    def __str__(self):
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self):
        return f"device('{self}')"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (ValueError, TypeError):
                return False
        return isinstance(other, device) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))
