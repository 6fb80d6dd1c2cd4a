"""DistributedDataParallel: the same model on every rank, each rank a shard of the batch, gradients
averaged so that every rank takes the same optimizer step.

At construction: the model's parameter names, shapes and dtypes are compared across ranks (a
mismatch raises on every rank, naming the first difference), then rank 0's parameters and buffers
are broadcast, so all ranks start equal whatever their seeds.

Gradients travel in buckets: the trainable parameters, in reverse registration order (roughly the
order backward produces their gradients), grouped by device and dtype into buckets of at most
bucket_cap_mb. A post-accumulate-grad hook (ember.autograd) marks each parameter ready; when a
bucket's last one is ready, its gradients are packed (scaled by grad_weight on the way) into one flat
buffer and a non-blocking all-reduce (sum) starts, while backward goes on with the layers below. At
the end of backward the remaining buckets are sent, all are waited for, and each parameter's .grad
becomes a view of its bucket's reduced buffer (a fresh buffer every step, so a .grad kept from an
earlier step never changes).

grad_weight is what each rank's gradient counts for in the sum: 1/world_size by default (the mean,
for equal shards); model.fit(distributed=True) sets it to local_batch / global_batch, which gives the
single-process gradient for uneven shards too. A parameter without a gradient on some rank (unused
in that forward) counts as zeros there, so every rank still ends with the same gradients."""
from __future__ import annotations

import contextlib
import hashlib

import numpy as np

from .. import nn
from ..autograd import queue_callback, register_post_accumulate_grad_hook
from ..interop import from_numpy
from ..ops.creation import zeros
from ..ops.shape import cat
from . import comm


class _Bucket:
    """Parameters whose gradients are reduced together in one flat buffer."""

    def __init__(self, params):
        self.params = params
        self.sizes = [p.numel() for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int).tolist()
        self.reset()

    def reset(self):
        self.grads = [None] * len(self.params)
        self.ready, self.flat, self.work = 0, None, None

    @property
    def complete(self):
        return self.ready == len(self.params)


def _packed(bucket, weight):
    """The bucket's gradients scaled by weight, back to back in one contiguous tensor (a missing
    gradient is zeros)."""
    return (pack_with_ops if bucket.params[0].is_cuda else pack_on_host)(bucket, weight)


def pack_on_host(bucket, weight):
    """CPU: one NumPy pass per gradient writes the copy and the scale at once."""
    flat = np.zeros(bucket.offsets[-1], dtype=comm.host_view(bucket.params[0], "DistributedDataParallel").dtype)
    for g, start, end in zip(bucket.grads, bucket.offsets, bucket.offsets[1:]):
        if g is not None:
            np.multiply(comm.host_view(g.contiguous(), "DistributedDataParallel").reshape(-1), weight,
                        out=flat[start:end])
    return from_numpy(flat)


def pack_with_ops(bucket, weight):
    """Any device (CUDA): ember's own cat and multiply, queued on the device's stream."""
    parts = [(g if g is not None else zeros(p.shape, dtype=p.dtype, device=p.device)).reshape(-1)
             for p, g in zip(bucket.params, bucket.grads)]
    return cat(parts) * weight


def _signature(module):
    """What must be equal on every rank: each parameter's and buffer's name, shape, dtype, trainability."""
    rows = [("param", n, tuple(p.shape), str(p.dtype), p.requires_grad) for n, p in module.named_parameters()]
    return rows + [("buffer", n, tuple(b.shape), str(b.dtype), False) for n, b in module.named_buffers()]


def _describe(row):
    kind, name, shape, dtype, trainable = row
    return f"{kind} {name!r} {shape} {dtype} (trainable {trainable})"


def _first_difference(mine, theirs):
    for a, b in zip(mine, theirs):
        if a != b:
            return f"{_describe(a)} vs {_describe(b)}"
    return f"{len(mine)} vs {len(theirs)} tensors"


def check_same_model(module):
    """Raises DistributedError on every rank when the ranks' models differ in any name/shape/dtype."""
    sig = _signature(module)
    digests = comm.all_gather_object(hashlib.sha256(repr(sig).encode()).hexdigest())
    if len(set(digests)) == 1:
        return
    signatures = comm.all_gather_object(sig)
    other = next(r for r, d in enumerate(digests) if d != digests[0])
    raise comm.DistributedError(
        f"[DistributedDataParallel] the model differs between ranks 0 and {other}: "
        f"{_first_difference(signatures[0], signatures[other])}; every rank must build the same model")


class DistributedDataParallel(nn.Module):
    def __init__(self, module, bucket_cap_mb: float = 1.0, broadcast_buffers: bool = True):
        super().__init__()
        if not comm.is_initialized():
            comm.init()
        if not all(getattr(m, "built", True) for m in module.modules()):
            raise ValueError("[DistributedDataParallel] the model has layers without weights yet (Dense without "
                             "input_shape): call it once on a sample batch first")
        if bucket_cap_mb <= 0:
            raise ValueError(f"[DistributedDataParallel] bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.grad_weight = None  # None: 1 / world_size
        check_same_model(module)
        for t in list(module.parameters()) + list(module.buffers()):
            comm.broadcast(t, src=0)
        self._buckets = self._make_buckets(bucket_cap_mb * 2 ** 20)
        self._where = {id(p): (b, i) for b in self._buckets for i, p in enumerate(b.params)}
        self._handles = [register_post_accumulate_grad_hook(p, self._on_grad) for b in self._buckets for p in b.params]
        # "idle" until a forward, "armed" from forward to the end of backward's sync, then "synced";
        # "local" inside no_sync()
        self._state, self._syncing = "idle", False

    def _make_buckets(self, cap_bytes):
        groups = {}  # (device, dtype) -> [([params of one bucket], bytes), ...]
        for p in reversed([p for p in self.module.parameters() if p.requires_grad]):
            buckets = groups.setdefault((str(p.device), str(p.dtype)), [([], 0)])
            size = p.numel() * p.element_size()
            params, used = buckets[-1]
            if params and used + size > cap_bytes:
                buckets.append(([], 0))
            params, used = buckets[-1]
            params.append(p)
            buckets[-1] = (params, used + size)
        return [_Bucket(params) for buckets in groups.values() for params, _ in buckets]

    # ---- one step: forward arms, hooks launch buckets, the end of backward syncs -------------
    def forward(self, *args, **kwargs):
        self._begin_step()
        if self.broadcast_buffers:
            for b in self.module.buffers():
                comm.broadcast(b, src=0)
        return self.module(*args, **kwargs)

    def _begin_step(self):
        if any(b.work is not None and not b.work.done for b in self._buckets):
            raise comm.DistributedError("[DistributedDataParallel] the previous backward did not finish its "
                                        "gradient sync (did it raise?); the ranks are out of step")
        for b in self._buckets:
            b.reset()
        if self._state != "local":
            self._state = "armed"
        self._syncing = False

    def _on_grad(self, p):
        if self._state == "synced":
            raise comm.DistributedError("[DistributedDataParallel] a second backward after this step's gradients were "
                                        f"averaged (parameter of shape {p.shape}) would leave the ranks apart: call "
                                        "the wrapped model (forward) before each backward, or use no_sync()")
        if self._state != "armed":
            return  # inside no_sync(), or before any forward through the wrapper: gradients stay local
        bucket, i = self._where[id(p)]
        if not self._syncing:
            self._syncing = True
            queue_callback(self.sync_gradients)
        bucket.grads[i], bucket.ready = p.grad, bucket.ready + 1
        if bucket.complete:
            self._launch(bucket)

    def _weight(self):
        return 1.0 / comm.world_size() if self.grad_weight is None else float(self.grad_weight)

    def _launch(self, bucket):
        bucket.flat = _packed(bucket, self._weight())
        bucket.work = comm.all_reduce(bucket.flat, "sum", async_op=True)
        for b in self._buckets:  # MPI moves a non-blocking collective only inside MPI calls: nudge the others
            if b.work is not None and b is not bucket:
                b.work.is_completed()

    def sync_gradients(self):
        """Sends what backward has not (a rank with no data this step calls it instead of backward),
        waits for every bucket and sets each parameter's averaged .grad. Runs by itself at the end of
        backward; calling it again in the same step does nothing."""
        if self._state != "armed":
            return
        self._state = "synced"
        for b in self._buckets:
            if b.work is None:
                self._launch(b)
        for b in self._buckets:
            b.work.wait()
            for p, start, end in zip(b.params, b.offsets, b.offsets[1:]):
                p.grad = b.flat[start:end].reshape(p.shape)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate local gradients only; the first synced backward after it
        averages the accumulated sums (all-reduce is linear, so nothing is lost)."""
        self._state = "local"
        try:
            yield
        finally:
            self._state = "idle"

    def remove_hooks(self):
        """Detaches this wrapper from the parameters (the module trains alone again)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    # state_dict/load_state_dict of the wrapped module itself, without a "module." prefix
    def state_dict(self, keep_vars=False):
        return self.module.state_dict(keep_vars)

    def load_state_dict(self, state_dict, strict=True):
        return self.module.load_state_dict(state_dict, strict)
