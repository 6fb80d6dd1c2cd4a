"""DLPack, as the Python array API standard specifies it.

Export: Tensor.__dlpack__(*, stream, max_version, dl_device, copy) returns a versioned capsule
("dltensor_versioned") when the consumer passes max_version with major >= 1, else the legacy one
("dltensor"). For CUDA tensors, `stream` is the consumer's stream (1 = legacy default, 2 =
per-thread default, else a cudaStream_t as an int; -1 = no synchronization): ember makes that stream
wait for its pending work. Import: from_dlpack(obj) consumes either capsule kind, renames it
"used_..." and calls the producer's deleter exactly once, when the last ember view is gone."""
from __future__ import annotations

from .. import _C
from ..tensor import Tensor

kDLCPU, kDLCUDA = 1, 2


def export(t: Tensor, stream=None, max_version=None, dl_device=None, copy=None):
    a = t._a
    copied = False
    if dl_device is not None and tuple(dl_device) != tuple(_C.dlpack_device(a)):
        if copy is False:
            raise BufferError(f"[__dlpack__] exporting to device {tuple(dl_device)} needs a copy but copy=False")
        if tuple(dl_device)[0] != kDLCPU:
            raise BufferError(f"[__dlpack__] unsupported target device {tuple(dl_device)}")
        a, copied = a.to("cpu"), True
    if copy and not copied:
        a, copied = a.clone(), True
    if a.device.startswith("cuda"):
        index = int(a.device.split(":")[1])
        if stream is not None and stream != -1:
            if stream == 0:
                raise ValueError("[__dlpack__] stream=0 is ambiguous for CUDA and not allowed by the standard")
            _C.cuda_stream_wait(index, int(stream))
        elif stream is None:
            _C.cuda_stream_wait(index, 1)  # None means the legacy default stream
    elif stream is not None and stream != -1:
        raise ValueError(f"[__dlpack__] stream must be None for CPU tensors, got {stream!r}")
    versioned = max_version is not None and int(max_version[0]) >= 1
    return _C.to_dlpack(a, versioned, copied)


def from_dlpack(obj, *, device=None, copy=None) -> Tensor:
    """A tensor sharing memory with any DLPack producer (NumPy, PyTorch, CuPy, JAX, or a capsule)."""
    if type(obj).__name__ == "PyCapsule":
        return Tensor._wrap(_C.from_dlpack_capsule(obj))
    if isinstance(obj, Tensor):
        return obj if not copy else obj.clone().detach()
    if not hasattr(obj, "__dlpack__"):
        raise TypeError(f"[from_dlpack] {type(obj).__name__} does not implement __dlpack__")
    dev_type, dev_id = obj.__dlpack_device__()
    kwargs = {}
    if dev_type == kDLCUDA:
        kwargs["stream"] = _consumer_stream(int(dev_id))
    if copy is not None:
        kwargs["copy"] = copy
    try:
        capsule = obj.__dlpack__(max_version=(1, 0), **kwargs)
    except TypeError:  # producers that predate the versioned protocol
        kwargs.pop("copy", None)
        capsule = obj.__dlpack__(**kwargs)
    t = Tensor._wrap(_C.from_dlpack_capsule(capsule))
    return t.to(device) if device is not None else t


def _consumer_stream(index):
    s = _C.cuda_current_stream(index)
    return 1 if s == 0 else s  # ember's default is the legacy default stream
