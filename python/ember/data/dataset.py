"""Datasets: anything with __len__ and __getitem__ (PyTorch's map-style contract). TensorDataset
holds same-length arrays and serves whole batches by fancy indexing, which is what DataLoader uses."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


class Dataset:
    """Map-style data set: len(ds) samples, ds[i] one sample (a tuple of arrays, or one array)."""

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, i):
        raise NotImplementedError


def as_array(a, what="array"):
    """NumPy view of an ember Tensor or array-like in the dtypes ember computes with: float64 becomes
    float32 (ember's default float), every integer type int64 (the label and index dtype)."""
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype.kind in "iu" and a.dtype != np.int64:
        return a.astype(np.int64)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"[data] {what} must be numeric, got dtype {a.dtype}")
    return a


class TensorDataset(Dataset):
    """Rows of several arrays (inputs, labels, ...) that share their first dimension."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("[TensorDataset] needs at least one array")
        self.arrays = [as_array(a, f"array {i}") for i, a in enumerate(arrays)]
        lengths = {len(a) if a.ndim else -1 for a in self.arrays}
        if len(lengths) != 1 or -1 in lengths:
            raise ValueError(f"[TensorDataset] arrays must share their first dimension, got shapes "
                             f"{[a.shape for a in self.arrays]}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, i):
        return tuple(a[i] for a in self.arrays)

    def batch(self, indices):
        """The rows at `indices` of every array: one fancy index per array, fresh contiguous copies."""
        return tuple(np.ascontiguousarray(a[indices]) for a in self.arrays)
