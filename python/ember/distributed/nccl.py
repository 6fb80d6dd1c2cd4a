"""NCCL through ctypes: the library of the nvidia-nccl-cu12/cu13 wheel (or the system's libnccl.so.2),
loaded only when init(backend="nccl") asks for it, so CPU-only machines never touch it.

Bootstrap: rank 0 draws an ncclUniqueId and MPI broadcasts it; each rank then binds its GPU (its
local rank modulo the GPUs present) and joins with ncclCommInitRank. Collectives are queued on
ember's current stream of that GPU, so they are ordered after the kernels that produced the data
and before the ones that read it: nothing waits on the host. Errors: every call's ncclResult_t is
checked, and the communicator's asynchronous error (a peer gone) is polled before each launch."""
from __future__ import annotations

import ctypes
import glob
import os

from .. import _C

_DTYPES = {"int32": 2, "int64": 4, "float16": 6, "float32": 7, "float64": 8, "bfloat16": 9}  # ncclDataType_t
_OPS = {"sum": 0, "product": 1, "max": 2, "min": 3, "mean": 4}  # ncclRedOp_t; mean is ncclAvg


class UniqueId(ctypes.Structure):
    _fields_ = [("internal", ctypes.c_byte * 128)]  # NCCL_UNIQUE_ID_BYTES


def _library_paths():
    """The wheel's copy first (nvidia/nccl/lib inside site-packages), then the loader's search path."""
    try:
        import nvidia.nccl as wheel
        for root in wheel.__path__:
            yield from sorted(glob.glob(os.path.join(root, "lib", "libnccl.so*")))
    except ImportError:
        pass
    yield "libnccl.so.2"


def load():
    """The NCCL shared library, with the argument types of the calls used here."""
    errors = []
    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise ImportError("[distributed] backend 'nccl' needs NCCL: pip install nvidia-nccl-cu12 (or -cu13); "
                          f"tried: {'; '.join(errors)}")
    p, i, size = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    lib.ncclGetErrorString.restype = ctypes.c_char_p
    lib.ncclGetUniqueId.argtypes = [ctypes.POINTER(UniqueId)]
    lib.ncclCommInitRank.argtypes = [ctypes.POINTER(p), i, UniqueId, i]
    lib.ncclAllReduce.argtypes = [p, p, size, i, i, p, p]
    lib.ncclBroadcast.argtypes = [p, p, size, i, i, p, p]
    lib.ncclAllGather.argtypes = [p, p, size, i, p, p]
    lib.ncclCommGetAsyncError.argtypes = [p, ctypes.POINTER(i)]
    lib.ncclCommDestroy.argtypes = [p]
    return lib


def _bind_device(index):
    """Makes GPU `index` current for this thread (NCCL joins on the current device), via the driver."""
    cuda = ctypes.CDLL("libcuda.so.1")
    dev, ctx = ctypes.c_int(), ctypes.c_void_p()
    _driver(cuda.cuInit(0), "cuInit", index)
    _driver(cuda.cuDeviceGet(ctypes.byref(dev), index), "cuDeviceGet", index)
    _driver(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "cuDevicePrimaryCtxRetain", index)
    _driver(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", index)


def _driver(status, name, index):
    if status != 0:  # CUDA_SUCCESS
        raise RuntimeError(f"[distributed] {name} failed with CUDA driver error {status} (device {index})")


class Communicator:
    def __init__(self, lib, comm, device):
        self.lib, self.comm, self.device = lib, comm, device

    @classmethod
    def over_mpi(cls, mpi_comm, local_rank):
        gpus = _C.cuda_device_count()
        if gpus == 0:
            raise RuntimeError("[distributed.init] backend 'nccl' needs a CUDA GPU; use backend 'mpi' on CPUs")
        lib = load()
        device = local_rank % gpus
        _bind_device(device)
        uid = UniqueId()
        if mpi_comm.Get_rank() == 0:
            _check(lib, lib.ncclGetUniqueId(ctypes.byref(uid)), "ncclGetUniqueId")
        raw = bytearray(bytes(uid))
        mpi_comm.Bcast(raw, root=0)
        uid = UniqueId.from_buffer_copy(bytes(raw))
        comm = ctypes.c_void_p()
        _check(lib, lib.ncclCommInitRank(ctypes.byref(comm), mpi_comm.Get_size(), uid, mpi_comm.Get_rank()),
               "ncclCommInitRank")
        return cls(lib, comm, device)

    def _args(self, t, what):
        if t._a.dtype not in _DTYPES:
            raise TypeError(f"[{what}] NCCL has no {t._a.dtype} (shape {t.shape})")
        if not t.is_contiguous():
            raise ValueError(f"[{what}] needs a contiguous tensor (shape {t.shape}); call .contiguous() first")
        if t.device.index != self.device:
            raise ValueError(f"[{what}] tensor on {t.device}, this rank's NCCL device is cuda:{self.device}")
        self._check_peers(what)
        return ctypes.c_void_p(t.data_ptr()), t.numel(), _DTYPES[t._a.dtype], ctypes.c_void_p(
            _C.cuda_current_stream(self.device))

    def _check_peers(self, what):
        status = ctypes.c_int()
        _check(self.lib, self.lib.ncclCommGetAsyncError(self.comm, ctypes.byref(status)), what)
        _check(self.lib, status.value, f"{what} (asynchronous error: a peer failed or left)")

    def all_reduce(self, t, op):
        if op not in _OPS:
            raise ValueError(f"[all_reduce] unknown op {op!r}; expected one of {sorted(_OPS)}")
        ptr, n, dtype, stream = self._args(t, "all_reduce")
        _check(self.lib, self.lib.ncclAllReduce(ptr, ptr, n, dtype, _OPS[op], self.comm, stream), "ncclAllReduce")

    def broadcast(self, t, src):
        ptr, n, dtype, stream = self._args(t, "broadcast")
        _check(self.lib, self.lib.ncclBroadcast(ptr, ptr, n, dtype, int(src), self.comm, stream), "ncclBroadcast")

    def all_gather(self, t, world):
        from ..ops.creation import empty
        out = empty(world, *t.shape, dtype=t.dtype, device=t.device)
        ptr, n, dtype, stream = self._args(t, "all_gather")
        _check(self.lib, self.lib.ncclAllGather(ptr, ctypes.c_void_p(out.data_ptr()), n, dtype, self.comm, stream),
               "ncclAllGather")
        return out


def _check(lib, status, what):
    if status != 0:  # ncclSuccess
        message = lib.ncclGetErrorString(status).decode(errors="replace")
        raise RuntimeError(f"[distributed] {what} failed: NCCL error {status} ({message})")
