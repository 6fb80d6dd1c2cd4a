"""em.save / em.load: the safetensors format (the safetensors library does the encoding), readable
by safetensors, PyTorch and Hugging Face tools. A file holds only a JSON header and raw tensor bytes:
loading can never run code (no pickle anywhere). __metadata__ carries {"format": "ember"} plus any
string metadata given."""
from __future__ import annotations

import os

import numpy as np
import safetensors

from .. import dtypes
from ..tensor import Tensor
from .atomic import write_atomic

# ember dtype name -> (safetensors dtype name for writing, NumPy dtype of the stored bytes)
_WRITE = {"float32": ("float32", np.float32), "float64": ("float64", np.float64), "float16": ("float16", np.float16),
          "bfloat16": ("bfloat16", np.uint16), "int64": ("int64", np.int64), "int32": ("int32", np.int32),
          "bool": ("bool", np.bool_)}
# safetensors dtype code in a file -> NumPy dtype of its bytes (BF16 handled separately)
_READ = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
         "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _contiguous(a):
    """A C-contiguous array of the same shape (np.ascontiguousarray would turn 0-d into 1-d)."""
    return a if a.flags.c_contiguous else a.copy(order="C")


def _raw(value, key):
    """(safetensors dtype name, contiguous NumPy array of the bytes) of a Tensor or NumPy array."""
    if isinstance(value, Tensor):
        t = value.detach().cpu()
        if t.dtype == dtypes.bfloat16:  # bfloat16 = the top 16 bits of the float32 of the same value
            bits = _contiguous(t.float().numpy()).view(np.uint32) >> 16
            return "bfloat16", bits.astype(np.uint16)
        return _WRITE[t.dtype.name][0], _contiguous(t.numpy())
    if isinstance(value, np.ndarray):
        a = _contiguous(value)
        if a.dtype.kind in "iub" and a.dtype not in (np.int64, np.int32, np.bool_):
            a = a.astype(np.int64)
        name = {np.dtype(v[1]): k for k, v in _WRITE.items() if k != "bfloat16"}.get(a.dtype)
        if name is None:
            raise TypeError(f"[save] {key!r}: dtype {a.dtype} cannot be stored")
        return name, a
    raise TypeError(f"[save] {key!r}: expected a Tensor or a NumPy array, got {type(value).__name__}")


def _spec(name, arr):
    if hasattr(safetensors, "TensorSpec"):  # safetensors >= 0.7: pointers, no copy
        return safetensors.TensorSpec(dtype=name, shape=list(arr.shape), data_ptr=arr.ctypes.data,
                                      data_len=arr.nbytes)
    return {"dtype": name, "shape": list(arr.shape), "data": arr.tobytes()}


def encode(tensors: dict, metadata: dict | None = None) -> bytes:
    """The bytes of a safetensors file holding `tensors` (name -> Tensor or NumPy array)."""
    meta = {"format": "ember", **{str(k): str(v) for k, v in (metadata or {}).items()}}
    raws = {}
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"[save] keys must be strings, got {key!r}")
        raws[key] = _raw(value, key)
    specs = {k: _spec(name, arr) for k, (name, arr) in raws.items()}
    return safetensors.serialize(specs, metadata=meta)  # raws keeps the arrays alive until here


def save(state_dict, path, metadata=None) -> str:
    """Writes name -> Tensor/array to `path` atomically (a temporary file, then a rename)."""
    return write_atomic(path, encode(dict(state_dict), metadata))


def _corrupt(path, why):
    return ValueError(f"[load] {os.fspath(path)}: corrupt or truncated safetensors file ({why})")


def decode(data: bytes, path, device="cpu"):
    """(tensors, metadata) of a safetensors file's bytes."""
    import json
    if len(data) < 8:
        raise _corrupt(path, f"{len(data)} bytes, no header")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise _corrupt(path, f"header of {header_len} bytes in a {len(data)}-byte file")
    try:
        metadata = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
        entries = safetensors.deserialize(data)
    except Exception as e:  # SafetensorError, JSON errors: all mean the bytes are not a valid file
        raise _corrupt(path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    from ..ops.creation import tensor
    out = {}
    for name, entry in entries:
        if entry["dtype"] not in _READ:
            raise _corrupt(path, f"{name!r} has unsupported dtype {entry['dtype']}")
        arr = np.frombuffer(entry["data"], dtype=_READ[entry["dtype"]]).reshape(entry["shape"]).copy()
        if entry["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
            out[name] = tensor(arr, device=device).to(dtypes.bfloat16)
        else:
            out[name] = tensor(arr, device=device)
    return out, metadata


def load(path, device="cpu") -> dict:
    """name -> Tensor of a safetensors file (ember's own or any other tool's)."""
    with open(os.fspath(path), "rb") as f:
        data = f.read()
    return decode(data, path, device)[0]
