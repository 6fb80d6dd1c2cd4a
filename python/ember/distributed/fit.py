"""What model.fit(..., distributed=True) changes in the Keras loop (ember.training.model).

Every rank walks the same global batches (the shuffle seed is rank 0's), takes its contiguous share of
each (sizes differ by at most one), and weights its gradient by share / batch, so the averaged
gradient is the single-process gradient of the whole batch. The loss of a batch is that same
weighted sum, one scalar all-reduce, so all ranks log (and stop on) the same numbers; metrics merge
their (total, count) sums at the end of the epoch. Validation runs on every rank over the whole
validation set (the weights are equal), and rank 0's epoch logs and stop decision are broadcast so
the callbacks of all ranks agree. Only rank 0 shows progress and keeps the callbacks that write
files (ModelCheckpoint, CSVLogger, or any callback with rank_zero_only = True)."""
from __future__ import annotations

import hashlib

import numpy as np

from ..data.loader import draw_seed
from ..interop import from_numpy
from . import comm
from .ddp import DistributedDataParallel


def check_same_data(x, y, batch_size, epochs):
    """Every rank must pass the same x, y and settings (fit shares each global batch out), or the
    ranks would walk different batches and wait for each other at the end of an epoch."""
    if not comm.is_initialized():
        comm.init()
    theirs = comm.all_gather_object(_data_signature(x, y, batch_size, epochs))
    other = next((r for r, sig in enumerate(theirs) if sig != theirs[0]), None)
    if other is not None:
        raise comm.DistributedError(
            f"[fit] distributed=True: rank {other} passed other data or settings than rank 0 ({theirs[other]} vs "
            f"{theirs[0]}); give every rank the same x, y, batch_size and epochs (fit splits the batches)")


class DistributedFit:
    def __init__(self, model, local_forward):
        if not comm.is_initialized():
            comm.init()
        self.rank, self.size = comm.rank(), comm.world_size()
        self.ddp = DistributedDataParallel(model)
        self.local_forward = local_forward  # (module, cfg, x, y, idx) -> (loss, value, per_head, outs, yb)

    @property
    def is_rank_zero(self):
        return self.rank == 0

    def callbacks(self, callbacks):
        if self.is_rank_zero:
            return list(callbacks or [])
        return [c for c in callbacks or [] if not getattr(c, "rank_zero_only", False)]

    def verbose(self, verbose):
        return verbose if self.is_rank_zero else 0

    def seed(self, seed):
        """Rank 0's shuffle seed (drawn from ember's stream when None) for every rank."""
        if seed is None:
            seed = draw_seed()
        return comm.broadcast_object(seed, src=0)

    def forward(self, model, cfg, x, y, idx):
        """This rank's share of the global batch idx through the wrapped model; the loss value and
        per-head values returned are those of the whole batch."""
        share = np.array_split(idx, self.size)[self.rank]
        self.ddp.grad_weight = len(share) / len(idx)
        if len(share):
            loss, value, per_head, outs, yb = self.local_forward(self.ddp, cfg, x, y, share)
        else:  # a last batch smaller than the world: this rank adds zeros to the gradient sum
            self.ddp._begin_step()
            loss, value, per_head, outs, yb = None, 0.0, {h: 0.0 for h in cfg.heads}, None, None
        local = np.array([value] + [float(per_head[h]) for h in cfg.heads]) * self.ddp.grad_weight
        total = self._sum(local)
        return loss, float(total[0]), dict(zip(cfg.heads, total[1:].tolist())), outs, yb

    def finish_backward(self):
        self.ddp.sync_gradients()  # already done at the end of backward, unless this rank had no data

    def merge_metrics(self, metrics):
        """Sums every metric's (total, count) over the ranks, so result() covers the whole epoch."""
        ms = [m for per_head in metrics.values() for m in per_head]
        if not ms:
            return
        sums = self._sum(np.array([[m.total, m.count] for m in ms], dtype=np.float64))
        for m, (total, count) in zip(ms, sums):
            m.total, m.count = float(total), int(round(count))

    def agree(self, value):
        """Rank 0's value (epoch logs, the stop flag) on every rank."""
        return comm.broadcast_object(value, src=0)

    def close(self):
        self.ddp.remove_hooks()

    def _sum(self, values):
        values = np.ascontiguousarray(values, dtype=np.float64)
        comm.all_reduce(from_numpy(values), "sum")
        return values


def _data_signature(x, y, batch_size, epochs):
    """Shapes, dtypes, settings and a digest of up to 256 evenly spaced rows of every array."""
    rows = np.unique(np.linspace(0, len(x) - 1, min(len(x), 256)).astype(np.int64))
    digest = hashlib.sha256()
    for a in [x] + [y[h] for h in sorted(y, key=str)]:
        digest.update(np.ascontiguousarray(a[rows]).tobytes())
    shapes = [tuple(a.shape) for a in [x, *y.values()]]
    return {"shapes": shapes, "batch_size": int(batch_size), "epochs": int(epochs), "rows": digest.hexdigest()[:16]}
