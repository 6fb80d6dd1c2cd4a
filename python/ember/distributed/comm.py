"""The process group and the collectives on Tensors.

One group per process, made by init() from the MPI environment that `mpiexec -n N` sets up (mpi4py
reads it). CPU tensors travel through MPI zero-copy: the NumPy view of a contiguous tensor is the MPI
buffer. With backend "nccl", CUDA tensors travel through NCCL (bootstrapped over MPI) and CPU tensors
still through MPI.

No collective waits forever: each one is started non-blocking and polled until the group's timeout,
then raises DistributedTimeoutError naming the operation. An exception that nobody catches aborts
every rank (MPI_Abort), because a rank that simply exits leaves the others waiting in MPI."""
from __future__ import annotations

import faulthandler
import os
import pickle
import sys
import threading
import time

import numpy as np

from .. import _C
from ..interop import from_numpy
from ..tensor import Tensor

DEFAULT_TIMEOUT = 300.0  # seconds; EMBER_DIST_TIMEOUT or init(timeout=...) changes it
# MPI moves a non-blocking collective forward only inside MPI calls (a large one takes many steps),
# so the wait polls without sleeping: a 0.2 ms nap between polls made a 600 KB all-reduce take ~10 ms.
# After SPIN_SECONDS each poll yields the core first, which costs nothing when the core is free and
# lets a rank sharing it (4 ranks on 2 cores) compute.
SPIN_SECONDS = 2e-3
ABORT_SECONDS = 2.0  # how long MPI_Abort may take before the process exits on its own


class DistributedError(RuntimeError):
    """A collective cannot go on: the ranks disagree (model, shapes) or one of them is gone."""


class DistributedTimeoutError(DistributedError, TimeoutError):
    """A collective waited longer than the group's timeout for the other ranks."""


class ReduceOp:
    """PyTorch's names for the reductions; plain strings work too."""
    SUM, MEAN, MAX, MIN, PRODUCT = "sum", "mean", "max", "min", "product"


class _Group:
    def __init__(self, comm, backend, timeout, nccl=None):
        self.comm, self.backend, self.timeout, self.nccl = comm, backend, timeout, nccl
        self.rank, self.size = comm.Get_rank(), comm.Get_size()


_group: _Group | None = None


def mpi():
    """mpi4py's MPI module, with an install hint when it is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("[distributed] needs mpi4py and an MPI library: pip install 'ember[dist]' "
                          "(mpi4py + the mpich wheel, which brings mpiexec)") from e
    return MPI


def init(backend: str = "mpi", timeout: float | None = None, abort_on_error: bool = True) -> None:
    """Joins the group of the processes started by `mpiexec -n N` (one process alone is a group of
    1). backend: "mpi" (CPU tensors) or "nccl" (CUDA tensors through NCCL, one GPU per local rank,
    CPU tensors still through MPI). timeout: seconds any collective may wait (default
    $EMBER_DIST_TIMEOUT or 300). abort_on_error: an uncaught exception aborts all ranks."""
    global _group
    if backend not in ("mpi", "nccl"):
        raise ValueError(f"[distributed.init] backend must be 'mpi' or 'nccl', got {backend!r}")
    if _group is not None:
        if _group.backend != backend:
            raise RuntimeError(f"[distributed.init] already initialised with backend {_group.backend!r}")
        return
    timeout = float(timeout if timeout is not None else os.environ.get("EMBER_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    if timeout <= 0:
        raise ValueError(f"[distributed.init] timeout must be > 0 seconds, got {timeout}")
    world = _start_mpi(timeout).COMM_WORLD
    if abort_on_error and world.Get_size() > 1:
        _abort_on_uncaught(world)  # from here on: even a rank that never joins ends the run
    comm = _join(world, timeout)
    group = _Group(comm, backend, timeout)
    if backend == "nccl":
        from . import nccl
        group.nccl = nccl.Communicator.over_mpi(comm, _local_rank(comm))
    _group = group


def _start_mpi(timeout):
    """mpi4py's MPI, initialised. MPI_Init waits for every rank to call it, inside C and holding the
    GIL, so no Python timer can end that wait; faulthandler's watchdog thread is C: if the wait lasts
    longer than the timeout it prints the stack (this line) and exits, and mpiexec ends the rest."""
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        return mpi()  # MPI_Init: a rank that never starts it keeps the others here until the timeout
    finally:
        faulthandler.cancel_dump_traceback_later()


def _join(world, timeout):
    """Our own communicator (a user's MPI traffic never interleaves with ours), then a barrier on it:
    Idup may complete locally, so the barrier is the rendezvous where a rank that never came shows."""
    rank, size = world.Get_rank(), world.Get_size()
    comm, request = world.Idup()
    _wait_until(request, "distributed.init", timeout, rank, size)
    _wait_until(comm.Ibarrier(), "distributed.init", timeout, rank, size)
    return comm


def _local_rank(comm):
    """This process's index among the ranks on its machine (which GPU it takes)."""
    shared = comm.Split_type(mpi().COMM_TYPE_SHARED)
    try:
        return shared.Get_rank()
    finally:
        shared.Free()


def _abort_on_uncaught(comm):
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.write(f"[distributed] rank {comm.Get_rank()} of {comm.Get_size()}: uncaught {kind.__name__}; "
                         "aborting every rank so that none waits for this one\n")
        sys.stdout.flush()
        sys.stderr.flush()
        # MPI_Abort can itself hang (MPICH's does while a rank has not called MPI_Init yet), so it runs
        # in a thread with a deadline. A rank that exits without MPI_Finalize also makes mpiexec end
        # the others, which is the fallback.
        aborter = threading.Thread(target=comm.Abort, args=(1,), daemon=True)
        aborter.start()
        aborter.join(ABORT_SECONDS)
        os._exit(1)

    sys.excepthook = hook


def is_initialized() -> bool:
    return _group is not None


def group() -> _Group:
    if _group is None:
        raise RuntimeError("[distributed] call ember.distributed.init() first (and launch with mpiexec -n N)")
    return _group


def rank() -> int:
    return group().rank


def world_size() -> int:
    return group().size


def backend() -> str:
    return group().backend


def device() -> str:
    """Where this rank's model should live: its GPU with backend "nccl", else "cpu"."""
    g = group()
    return f"cuda:{g.nccl.device}" if g.nccl is not None else "cpu"


# ---- waiting with a deadline -----------------------------------------------------------------

def wait(request, what: str) -> None:
    """Polls an MPI request until it completes or the group's timeout passes."""
    if not request.Test():
        g = group()
        _wait_until(request, what, g.timeout, g.rank, g.size)


def _wait_until(request, what, timeout, rank, size):
    start = time.monotonic()
    while not request.Test():
        waited = time.monotonic() - start
        if waited > timeout:
            raise DistributedTimeoutError(
                f"[{what}] rank {rank} of {size} waited {timeout:g} s for the other ranks: one of them has "
                "died, hangs, or skipped this collective (set the limit with init(timeout=...) or "
                "EMBER_DIST_TIMEOUT)")
        if waited > SPIN_SECONDS:
            os.sched_yield()


class Work:
    """A collective in flight (async_op=True): wait() blocks until it is done (with the timeout)."""

    def __init__(self, request, what, finish=None):
        self.request, self.what, self.finish, self.done = request, what, finish, False

    def is_completed(self) -> bool:
        return self.done or self.request is None or bool(self.request.Test())

    def wait(self):
        if not self.done:
            if self.request is not None:
                wait(self.request, self.what)
            if self.finish is not None:
                self.finish()
            self.done = True
        return self


# ---- the buffers -----------------------------------------------------------------------------

_MPI_DTYPES = ("float32", "float64", "int32", "int64")


def host_view(t: Tensor, what: str) -> np.ndarray:
    """The NumPy view of a contiguous CPU tensor's memory (no copy): what MPI reads and writes."""
    if not isinstance(t, Tensor):
        raise TypeError(f"[{what}] expected an ember Tensor, got {type(t).__name__}")
    if t.is_cuda:
        raise ValueError(f"[{what}] a CUDA tensor (shape {t.shape}) needs init(backend='nccl')")
    if t._a.dtype not in _MPI_DTYPES:
        raise TypeError(f"[{what}] MPI reduces {', '.join(_MPI_DTYPES)}; got {t._a.dtype} (shape {t.shape}): "
                        "cast to float32 first")
    if not t.is_contiguous():
        raise ValueError(f"[{what}] needs a contiguous tensor (shape {t.shape}, strides {t.stride()}); "
                         "call .contiguous() first")
    return _C.to_numpy(t._a)


def _mpi_op(op, what):
    MPI = mpi()
    table = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "product": MPI.PROD}
    if op not in table:
        raise ValueError(f"[{what}] unknown op {op!r}; expected one of {sorted(table)}")
    return table[op]


def _nccl_for(t, what):
    """The NCCL communicator for a CUDA tensor, None for a CPU one."""
    if not isinstance(t, Tensor):
        raise TypeError(f"[{what}] expected an ember Tensor, got {type(t).__name__}")
    g = group()
    if t.is_cuda:
        if g.nccl is None:
            raise ValueError(f"[{what}] a CUDA tensor (shape {t.shape}) needs init(backend='nccl')")
        return g.nccl
    return None


def _complete(work, async_op):
    """The Work itself for async_op, else None once it is done (PyTorch's convention)."""
    if async_op:
        return work
    work.wait()
    return None


# ---- collectives on tensors ------------------------------------------------------------------

def all_reduce(tensor: Tensor, op: str = "sum", async_op: bool = False):
    """Reduces tensor over all ranks, in place; every rank gets the result. op: sum, mean, max,
    min, product. Returns None, or a Work with wait() when async_op."""
    nccl = _nccl_for(tensor, "all_reduce")
    if nccl is not None:
        nccl.all_reduce(tensor, op)
        return Work(None, "all_reduce") if async_op else None
    view = host_view(tensor, "all_reduce")
    request = group().comm.Iallreduce(mpi().IN_PLACE, view, _mpi_op(op, "all_reduce"))
    mean = (lambda: np.divide(view, group().size, out=view, casting="unsafe")) if op == "mean" else None
    return _complete(Work(request, "all_reduce", mean), async_op)


def broadcast(tensor: Tensor, src: int = 0, async_op: bool = False):
    """Overwrites tensor on every rank with rank src's, in place."""
    _check_rank(src, "broadcast")
    nccl = _nccl_for(tensor, "broadcast")
    if nccl is not None:
        nccl.broadcast(tensor, src)
        return Work(None, "broadcast") if async_op else None
    return _complete(Work(group().comm.Ibcast(host_view(tensor, "broadcast"), root=src), "broadcast"), async_op)


def all_gather(tensor: Tensor) -> Tensor:
    """Every rank's tensor, stacked along a new first dim: shape (world_size, *tensor.shape)."""
    g = group()
    nccl = _nccl_for(tensor, "all_gather")
    if nccl is not None:
        return nccl.all_gather(tensor, g.size)
    view = host_view(tensor, "all_gather")
    out = np.empty((g.size,) + view.shape, dtype=view.dtype)
    wait(g.comm.Iallgather(view, out), "all_gather")
    return from_numpy(out)


def barrier() -> None:
    """Returns once every rank has called barrier() (or raises after the timeout)."""
    wait(group().comm.Ibarrier(), "barrier")


def _check_rank(src, what):
    if not 0 <= int(src) < world_size():
        raise ValueError(f"[{what}] src rank {src} out of range for a world of {world_size()}")


# ---- collectives on Python objects (small: signatures, logs, seeds) ------------------------

def all_gather_object(obj) -> list:
    """Every rank's obj (pickled), in rank order."""
    g = group()
    data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
    sizes = np.empty(g.size, dtype=np.int64)
    wait(g.comm.Iallgather(np.array([data.size], dtype=np.int64), sizes), "all_gather_object")
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    wait(g.comm.Iallgatherv(data, [out, sizes]), "all_gather_object")
    ends = np.cumsum(sizes)
    return [pickle.loads(out[e - s:e].tobytes()) for s, e in zip(sizes, ends)]


def broadcast_object(obj, src: int = 0):
    """Rank src's obj on every rank (the others' obj is ignored)."""
    _check_rank(src, "broadcast_object")
    g = group()
    data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8) if g.rank == src else None
    size = np.array([0 if data is None else data.size], dtype=np.int64)
    wait(g.comm.Ibcast(size, root=src), "broadcast_object")
    buf = data.copy() if data is not None else np.empty(int(size[0]), dtype=np.uint8)
    wait(g.comm.Ibcast(buf, root=src), "broadcast_object")
    return pickle.loads(buf.tobytes())
