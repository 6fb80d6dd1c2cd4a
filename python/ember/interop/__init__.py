"""Interop: NumPy (zero copy where layouts allow) and DLPack, both directions."""
from .dlpack import from_dlpack
from .numpy import from_numpy

__all__ = ["from_dlpack", "from_numpy"]
