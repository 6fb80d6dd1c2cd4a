"""Torch tensors <-> ember arrays through DLPack, zero copy both ways.

A torch tensor crosses with its strides and storage offset as they are (a transposed or sliced view
is not copied); the ember kernel then reads it strided or makes the one contiguous copy it needs,
exactly as for an ember view. An ember result crosses back as a torch tensor over the same memory,
which keeps the ember buffer alive until torch frees it.

CUDA: ember queues its work on the legacy default stream. A torch tensor is exported with ember's
stream as the consumer stream, and a result is handed to torch through the DLPack protocol (not a
bare capsule), so each side waits for the other's pending work."""
from __future__ import annotations

import torch
from torch.utils.dlpack import to_dlpack as _to_dlpack

from ... import _C
from ...tensor import Tensor
from ..dlpack import _consumer_stream


def to_ember(t: torch.Tensor) -> _C.Array:
    """An ember array over t's memory (no copy)."""
    if t.is_cuda:  # the protocol, so that ember's stream waits for torch's pending work
        return _C.from_dlpack_capsule(t.detach().__dlpack__(stream=_consumer_stream(t.get_device())))
    # the C entry point: ~0.4 us, where Tensor.__dlpack__'s Python checks take ~2 us (there is no
    # stream to order on the CPU); it also takes tensors that require grad (the data is the same)
    return _C.from_dlpack_capsule(_to_dlpack(t))


def maybe_ember(t):
    return None if t is None else to_ember(t)


def to_torch(a: _C.Array) -> torch.Tensor:
    """A torch tensor over an ember array's memory (no copy)."""
    if a.device == "cpu":
        return torch.from_dlpack(_C.to_dlpack(a, False, False))
    return torch.from_dlpack(Tensor._wrap(a))  # the protocol: torch's stream waits for ember's


def empty_like_none(like: torch.Tensor) -> torch.Tensor:
    """The stand-in for a gradient nobody asked for (an op's outputs must all be tensors)."""
    return like.new_empty(0)
