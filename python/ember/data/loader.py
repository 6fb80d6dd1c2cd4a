"""DataLoader: batches of a dataset as ember Tensors, shuffled per epoch from a seed, resumable.

Shuffling: epoch e uses the permutation drawn by np.random.default_rng((seed, e)), so the order of
any epoch depends only on the seed and the epoch number. state_dict() records (seed, epoch, batches
already served in that epoch); load_state_dict() makes the next iteration continue at exactly that
batch, which is what a checkpoint needs to resume bitwise."""
from __future__ import annotations

import numpy as np

from ..ops.creation import tensor
from .dataset import TensorDataset


def _default_seed():
    """A seed drawn from ember's Philox stream, so em.manual_seed(n) fixes an unseeded loader too."""
    from ..ops.creation import randint
    return int(randint(0, 2 ** 62, (1,)).item())


class DataLoader:
    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False, seed=None,
                 device=None):
        if int(batch_size) < 1:
            raise ValueError(f"[DataLoader] batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.device = device
        self.seed = int(seed) if seed is not None else (_default_seed() if shuffle else 0)
        self.epoch, self.position = 0, 0

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng((self.seed, epoch)).permutation(n)

    def _fetch(self, idx):
        if isinstance(self.dataset, TensorDataset):
            parts = self.dataset.batch(idx)
        else:
            rows = [self.dataset[int(i)] for i in idx]
            rows = [r if isinstance(r, tuple) else (r,) for r in rows]
            parts = tuple(np.stack([np.asarray(r[k]) for r in rows]) for k in range(len(rows[0])))
        return tuple(tensor(p, device=self.device) for p in parts)

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
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict):
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])
