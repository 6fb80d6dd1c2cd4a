"""Preprocessing (em.preprocessing), scikit-learn's names and behaviour: StandardScaler,
MinMaxScaler, one_hot, train_test_split. They take NumPy arrays or ember Tensors and give back the
kind they got; statistics are computed in float64 and float inputs come back as float32."""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor


def _to_numpy(x):
    return (x.detach().cpu().numpy(), True) if isinstance(x, Tensor) else (np.asarray(x), False)


def _like(out, was_tensor):
    if was_tensor:
        from ..ops.creation import tensor
        return tensor(out)
    return out


class _Scaler:
    """x -> (x - shift) / scale per feature (the last axis), with shift and scale learned by fit."""
    shift_ = scale_ = None

    def _statistics(self, x):
        raise NotImplementedError

    def fit(self, x):
        a, _ = _to_numpy(x)
        if a.ndim < 1 or a.shape[0] == 0:
            raise ValueError(f"[{type(self).__name__}.fit] needs at least one sample, got shape {a.shape}")
        a = a.reshape(a.shape[0], -1).astype(np.float64)
        self.n_features_in_ = a.shape[1]
        self._statistics(a)
        return self

    def _check(self, x, op):
        if self.scale_ is None:
            raise RuntimeError(f"[{type(self).__name__}.{op}] call fit() first")
        a, was = _to_numpy(x)
        flat = a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, -1)
        if flat.shape[1] != self.n_features_in_:
            raise ValueError(f"[{type(self).__name__}.{op}] fitted on {self.n_features_in_} features, got shape "
                             f"{a.shape}")
        return a, flat.astype(np.float64), was

    def transform(self, x):
        a, flat, was = self._check(x, "transform")
        out = ((flat - self.shift_) / self.scale_).reshape(a.shape)
        return _like(out.astype(np.float32) if a.dtype != np.float64 else out, was)

    def inverse_transform(self, x):
        a, flat, was = self._check(x, "inverse_transform")
        out = (flat * self.scale_ + self.shift_).reshape(a.shape)
        return _like(out.astype(np.float32) if a.dtype != np.float64 else out, was)

    def fit_transform(self, x):
        return self.fit(x).transform(x)


class StandardScaler(_Scaler):
    """Zero mean, unit variance per feature (population std, as scikit-learn); a constant feature
    gets scale 1, so it maps to 0 instead of dividing by zero."""

    def __init__(self, with_mean: bool = True, with_std: bool = True):
        self.with_mean, self.with_std = with_mean, with_std

    def _statistics(self, a):
        self.mean_ = a.mean(0)
        std = a.std(0)
        self.var_ = std ** 2
        self.shift_ = self.mean_ if self.with_mean else np.zeros_like(self.mean_)
        self.scale_ = np.where(std == 0, 1.0, std) if self.with_std else np.ones_like(std)


class MinMaxScaler(_Scaler):
    """Each feature mapped linearly onto feature_range (default [0, 1]); a constant feature maps to
    the range's low end."""

    def __init__(self, feature_range=(0.0, 1.0)):
        lo, hi = feature_range
        if not lo < hi:
            raise ValueError(f"[MinMaxScaler] feature_range must be increasing, got {feature_range}")
        self.feature_range = (float(lo), float(hi))

    def _statistics(self, a):
        lo, hi = self.feature_range
        self.data_min_, self.data_max_ = a.min(0), a.max(0)
        span = self.data_max_ - self.data_min_
        span = np.where(span == 0, 1.0, span)
        self.scale_ = span / (hi - lo)
        self.shift_ = self.data_min_ - lo * self.scale_


def one_hot(labels, num_classes=None):
    """float32 (N, num_classes) rows with a 1 at each label (num_classes defaults to max + 1)."""
    y, was = _to_numpy(labels)
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise TypeError(f"[one_hot] labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    n = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ValueError(f"[one_hot] labels must lie in [0, {n}), got {int(y.min())}..{int(y.max())}")
    out = np.zeros(y.shape + (n,), np.float32)
    np.put_along_axis(out, y[..., None], 1.0, axis=-1)
    return _like(out, was)


def _test_count(n, test_size, train_size):
    if test_size is None and train_size is None:
        test_size = 0.25
    if test_size is None:
        train = train_size if isinstance(train_size, int) else int(math.floor(train_size * n))
        test = n - train
    else:
        test = test_size if isinstance(test_size, int) else int(math.ceil(test_size * n))
    if not 0 < test < n:
        raise ValueError(f"[train_test_split] test_size={test_size}, train_size={train_size} leave an empty part "
                         f"of {n} samples")
    return test


def _stratified_test_rows(labels, test, rng):
    """Test rows taken from every class in proportion (largest remainders for the rounding)."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * test / len(labels)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: test - take.sum()]:
        take[i] += 1
    rows = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.concatenate(rows)


def train_test_split(*arrays, test_size=None, train_size=None, shuffle=True, stratify=None, seed=None):
    """[a_train, a_test, b_train, b_test, ...] as scikit-learn. test_size/train_size: a fraction or
    a count (default test 0.25). stratify: labels whose class proportions both parts keep."""
    if not arrays:
        raise ValueError("[train_test_split] needs at least one array")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"[train_test_split] arrays differ in length: {[len(a) for a in arrays]}")
    test = _test_count(n, test_size, train_size)
    rng = np.random.default_rng(seed)
    if stratify is not None:
        if not shuffle:
            raise ValueError("[train_test_split] stratify needs shuffle=True")
        labels, _ = _to_numpy(stratify)
        test_rows = _stratified_test_rows(labels.reshape(n, -1)[:, 0] if labels.ndim > 1 else labels, test, rng)
        mask = np.zeros(n, bool)
        mask[test_rows] = True
        train_rows = rng.permutation(np.flatnonzero(~mask))
        test_rows = rng.permutation(test_rows)
    else:
        order = rng.permutation(n) if shuffle else np.arange(n)
        train_rows, test_rows = order[: n - test], order[n - test:]
    out = []
    for a in arrays:
        arr, was = _to_numpy(a)
        out += [_like(arr[train_rows], was), _like(arr[test_rows], was)]
    return out
