"""em.save / em.load: the safetensors format, readable by safetensors, PyTorch and Hugging Face
tools. A file is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte
offsets, plus "__metadata__": str -> str) and the raw little-endian tensor bytes: loading can never
run code (no pickle anywhere).

The safetensors library writes the files and validates every file before it is read; ember then
reads each tensor's bytes straight into a tensor of its own (one copy, no mapping left open), which
safetensors' NumPy loader cannot do for bfloat16, a dtype NumPy lacks."""
from __future__ import annotations

import json
import os

import numpy as np
import safetensors

from .. import dtypes
from ..ops.creation import empty, tensor
from ..tensor import Tensor
from .atomic import replace_atomically

# safetensors dtype code -> NumPy dtype of the stored bytes. bfloat16 is stored as its uint16 bits;
# the small integer types, which ember lacks, widen to int64 on load.
_CODES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
          "BOOL": np.bool_}
_NUMPY_OK = {np.dtype(t) for c, t in _CODES.items() if c != "BF16"}


def _contiguous(a: np.ndarray) -> np.ndarray:
    """A C-contiguous, native-order array of the same shape (np.ascontiguousarray makes 0-d 1-d)."""
    a = a.astype(a.dtype.newbyteorder("="), copy=False)
    return a if a.flags.c_contiguous else a.copy(order="C")


def _tensor_bytes(t: Tensor):
    """(safetensors dtype name, contiguous NumPy array holding the bytes) of a tensor."""
    t = t.detach().cpu()
    if t.dtype == dtypes.bfloat16:  # bfloat16 is the top half of the float32 of the same value
        bits = _contiguous(t.float().numpy()).view(np.uint32) >> 16
        return "bfloat16", np.asarray(bits, dtype=np.uint16)  # asarray: 0-d arithmetic gives a NumPy scalar
    return t.dtype.name, _contiguous(t.numpy())


def _array_bytes(key, value):
    """(safetensors dtype name, contiguous NumPy array) of one state_dict entry, checked."""
    if not isinstance(key, str):
        raise TypeError(f"[save] keys must be strings, got {key!r}")
    if key == "__metadata__":
        raise ValueError("[save] the key '__metadata__' is reserved by the safetensors format")
    if isinstance(value, Tensor):
        return _tensor_bytes(value)
    if isinstance(value, np.ndarray):
        a = _contiguous(value)
        if a.dtype not in _NUMPY_OK:
            raise TypeError(f"[save] {key!r}: NumPy dtype {value.dtype} cannot be stored (bool, int8..int64, "
                            "uint8..uint32, float16, float32, float64 can)")
        return a.dtype.name, a
    raise TypeError(f"[save] {key!r}: expected a Tensor or a NumPy array, got {type(value).__name__}")


def _spec(name: str, arr: np.ndarray):
    if hasattr(safetensors, "TensorSpec"):  # safetensors >= 0.7 reads the bytes in place
        return safetensors.TensorSpec(dtype=name, shape=list(arr.shape), data_ptr=arr.ctypes.data,
                                      data_len=arr.nbytes)
    return {"dtype": name, "shape": list(arr.shape), "data": arr.tobytes()}


def write(path, tensors, metadata=None) -> str:
    """Writes name -> Tensor/array to `path` atomically, with {"format": "ember"} plus `metadata`
    (values become strings) in __metadata__."""
    meta = {"format": "ember", **{str(k): str(v) for k, v in (metadata or {}).items()}}
    arrays = {key: _array_bytes(key, value) for key, value in tensors.items()}  # alive while serialising
    specs = {key: _spec(name, arr) for key, (name, arr) in arrays.items()}
    with replace_atomically(path) as tmp:
        safetensors.serialize_file(specs, tmp, metadata=meta)
    return os.fspath(path)


def save(state_dict, path, metadata=None) -> str:
    """Writes a state_dict (name -> Tensor or NumPy array) to a safetensors file, atomically: an
    existing file at `path` is replaced only by a complete new one."""
    return write(path, dict(state_dict), metadata)


def _corrupt(path, why) -> ValueError:
    return ValueError(f"[load] {os.fspath(path)}: corrupt or truncated safetensors file ({why})")


def _header(f, path) -> dict:
    """The JSON header of an open safetensors file, after the safetensors library has checked the
    whole layout (header size and syntax, dtypes, shapes against byte ranges, ranges inside the file)."""
    try:
        with safetensors.safe_open(path, framework="numpy"):
            pass
    except safetensors.SafetensorError as e:
        raise _corrupt(path, str(e).splitlines()[0]) from None
    return json.loads(f.read(int.from_bytes(f.read(8), "little")))


def _read_into(f, arr: np.ndarray, start: int, path):
    f.seek(start)
    if f.readinto(arr.reshape(-1).view(np.uint8)) != arr.nbytes:
        raise _corrupt(path, "the file ended while reading it")


def _read_tensor(f, base: int, name: str, entry: dict, path) -> Tensor:
    """One entry read from the open file into a new CPU tensor."""
    code, shape, start = entry["dtype"], tuple(entry["shape"]), base + entry["data_offsets"][0]
    if code not in _CODES:
        raise ValueError(f"[load] {os.fspath(path)}: {name!r} has dtype {code}, which ember cannot hold "
                         f"(it reads {', '.join(_CODES)})")
    np_dtype = np.dtype(_CODES[code])
    target = dtypes.from_numpy_dtype(np_dtype)
    if code != "BF16" and np.dtype(target.name) == np_dtype:  # read straight into the tensor's memory
        t = empty(shape, dtype=target)
        _read_into(f, t.numpy(), start, path)
        return t
    raw = np.empty(shape, np_dtype)
    _read_into(f, raw, start, path)
    if code == "BF16":
        return tensor((raw.astype(np.uint32) << 16).view(np.float32), dtype=dtypes.bfloat16)
    return tensor(raw)


def read(path, device="cpu"):
    """(name -> Tensor, __metadata__ dict) of a safetensors file."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        header = _header(f, path)
        base = f.tell()
        metadata = header.pop("__metadata__", None) or {}
        tensors = {}
        for name, entry in header.items():  # one tensor at a time on the host, even when loading to a GPU
            t = _read_tensor(f, base, name, entry, path)
            tensors[name] = t if device == "cpu" else t.to(device)
    return tensors, metadata


def load(path, device="cpu") -> dict:
    """name -> Tensor of a safetensors file, ember's own or any other tool's, on `device`."""
    return read(path, device)[0]
