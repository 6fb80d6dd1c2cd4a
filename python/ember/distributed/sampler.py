"""DistributedSampler: each rank's share of a dataset's indices, for em.data.DataLoader(sampler=...).

Epoch e's order is the permutation np.random.default_rng((seed, e)) draws (the DataLoader's own rule),
padded by wrapping around to a multiple of num_replicas (or cut, with drop_last), and rank r takes
every num_replicas-th index starting at r. So with a local batch b on every rank, the ranks' k-th
batches together are exactly positions [k*b*W, (k+1)*b*W) of that order: the k-th batch of a single
process with batch b*W and the same seed."""
from __future__ import annotations

import numpy as np

from . import comm


class DistributedSampler:
    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        self.num_replicas = comm.world_size() if num_replicas is None else int(num_replicas)
        self.rank = comm.rank() if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"[DistributedSampler] rank {self.rank} out of range for {self.num_replicas} replicas")
        if int(seed) < 0:
            raise ValueError(f"[DistributedSampler] seed must be >= 0, got {seed}")
        self.dataset_size = len(dataset)
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, int(seed), drop_last, 0
        n, w = self.dataset_size, self.num_replicas
        self.num_samples = n // w if drop_last else -(-n // w)

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch __iter__ draws its order for (a DataLoader passes its own epoch instead)."""
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        n = self.dataset_size
        order = np.random.default_rng((self.seed, epoch)).permutation(n) if self.shuffle else np.arange(n)
        total = self.num_samples * self.num_replicas
        if total > n:  # wrap around: every rank gets the same number of samples
            order = np.resize(order, total)
        return order[:total][self.rank::self.num_replicas]

    def __iter__(self):
        return iter(self.indices(self.epoch).tolist())
