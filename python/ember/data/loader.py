"""DataLoader: batches of a dataset as ember Tensors, shuffled per epoch from a seed, resumable.

Shuffling: epoch e uses the permutation drawn by np.random.default_rng((seed, e)), so the order of
any epoch depends only on the seed and the epoch number. state_dict() records (seed, epoch, batches
already served in that epoch); load_state_dict() makes the next iteration continue at exactly that
batch, which is what a checkpoint needs to resume bitwise. The position lives in the loader, not in
the iterator: an iteration stopped early (a `break`) is continued by the next one, not restarted."""
from __future__ import annotations

import numbers

import numpy as np

from ..interop import from_numpy
from .dataset import TensorDataset, as_array


def draw_seed() -> int:
    """A seed drawn from ember's Philox stream, so em.manual_seed(n) fixes an unseeded loader too."""
    from ..ops.creation import randint
    return int(randint(0, 2 ** 62, (1,)).item())


def _check_seed(seed):
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"[DataLoader] seed must be >= 0, got {seed}")
    return seed


class DataLoader:
    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False, seed=None,
                 device=None, sampler=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"[DataLoader] batch_size must be an int >= 1, got {batch_size!r}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.device = device
        if sampler is not None and shuffle:
            raise ValueError("[DataLoader] pass shuffle to the sampler, not the loader (sampler and shuffle=True)")
        self.sampler = sampler  # indices(epoch) -> this loader's order (ember.distributed.DistributedSampler)
        self.seed = _check_seed(seed) if seed is not None else (draw_seed() if shuffle else 0)
        self.epoch, self.position = 0, 0

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of an epoch: a function of (seed, epoch) only."""
        if self.sampler is not None:
            return np.asarray(self.sampler.indices(epoch))
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng((self.seed, epoch)).permutation(n)

    def _rows(self, idx):
        """A generic Dataset, sample by sample, stacked per field."""
        rows = [self.dataset[int(i)] for i in idx]
        rows = [r if isinstance(r, tuple) else (r,) for r in rows]
        return tuple(as_array(np.stack([np.asarray(r[k]) for r in rows]), f"field {k}") for k in range(len(rows[0])))

    def _fetch(self, idx):
        """One batch as tensors; the arrays are fresh copies, so the tensors can own them (no copy)."""
        parts = self.dataset.batch(idx) if isinstance(self.dataset, TensorDataset) else self._rows(idx)
        tensors = tuple(from_numpy(p) for p in parts)
        return tensors if self.device is None else tuple(t.to(self.device) for t in tensors)

    def __iter__(self):
        order = self.order(self.epoch)
        batches = len(self)
        while self.position < batches:
            b = self.position
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            self.position += 1
            yield self._fetch(idx)
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict:
        """Plain ints (JSON-able): where the next iteration starts."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict):
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= len(self):
            raise ValueError(f"[DataLoader.load_state_dict] epoch {epoch}, position {position} do not fit a loader "
                             f"of {len(self)} batches")
        self.seed, self.epoch, self.position = _check_seed(state["seed"]), epoch, position
