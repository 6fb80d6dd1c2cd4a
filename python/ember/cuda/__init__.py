"""Device queries for CUDA: availability, count, synchronize, memory in use."""
from __future__ import annotations

from .. import _C


def is_available() -> bool:
    return _C.cuda_device_count() > 0


def device_count() -> int:
    return _C.cuda_device_count()


def is_compiled() -> bool:
    return _C.cuda_compiled()


def _check_available(index=0):
    if not _C.cuda_compiled():
        raise RuntimeError("[cuda] ember was built without CUDA")
    n = _C.cuda_device_count()
    if n == 0:
        raise RuntimeError("[cuda] no CUDA GPU is available")
    if index is not None and not 0 <= index < n:
        raise RuntimeError(f"[cuda] device cuda:{index} requested but only {n} GPU(s) are present")


def _index(device):
    if device is None:
        return 0
    if isinstance(device, int):
        return device
    s = str(device)
    return int(s.split(":")[1]) if ":" in s else 0


def synchronize(device=None) -> None:
    """Waits for all work queued on the device."""
    _check_available(_index(device))
    _C.cuda_synchronize(_index(device))


def memory_allocated(device=None) -> int:
    """Bytes currently held by ember's tensors on the device (0 without CUDA)."""
    if not is_available():
        return 0
    return _C.cuda_memory_allocated(_index(device))
