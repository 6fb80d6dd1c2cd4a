"""Preprocessing (em.preprocessing), scikit-learn's names and behaviour: StandardScaler,
MinMaxScaler, one_hot, train_test_split. They take NumPy arrays or ember Tensors and give back the
kind they got (a Tensor on the device it came from). Statistics are computed in float64; scaled
values come back as float32, ember's compute dtype, whatever the input dtype."""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from ..tensor import Tensor
from .loader import draw_seed


def _to_numpy(x):
    """(array, source): source is the Tensor x was, so results can go back to its kind and device."""
    return (x.detach().cpu().numpy(), x) if isinstance(x, Tensor) else (np.asarray(x), None)


def _like(out, source):
    if source is None:
        return out
    from ..ops.creation import tensor
    return tensor(out, device=source.device)


class _Scaler:
    """x -> (x - center) / divisor per feature (the trailing dims flattened); fit learns both."""
    _center = _divisor = None

    def _statistics(self, a):
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
        if self._divisor is None:
            raise RuntimeError(f"[{type(self).__name__}.{op}] this scaler is not fitted yet; call fit() first")
        a, source = _to_numpy(x)
        flat = a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, -1)
        if flat.shape[1] != self.n_features_in_:
            raise ValueError(f"[{type(self).__name__}.{op}] fitted on {self.n_features_in_} features, got shape "
                             f"{a.shape}")
        return a.shape, flat.astype(np.float64), source

    def transform(self, x):
        shape, flat, source = self._check(x, "transform")
        return _like(((flat - self._center) / self._divisor).reshape(shape).astype(np.float32), source)

    def inverse_transform(self, x):
        shape, flat, source = self._check(x, "inverse_transform")
        return _like((flat * self._divisor + self._center).reshape(shape).astype(np.float32), source)

    def fit_transform(self, x):
        return self.fit(x).transform(x)


def _constant(var, mean, n):
    """Features whose variance is rounding noise, by scikit-learn's bound (_is_constant_feature):
    the mean of n copies of 0.1 is off by an ulp, and dividing by that tiny std would blow it up."""
    eps = np.finfo(np.float64).eps
    return var <= n * eps * var + (n * mean * eps) ** 2


class StandardScaler(_Scaler):
    """Zero mean, unit variance per feature (population std, as scikit-learn); a constant feature
    gets scale 1, so it maps to 0 instead of dividing by zero."""

    def __init__(self, with_mean: bool = True, with_std: bool = True):
        self.with_mean, self.with_std = with_mean, with_std

    def _statistics(self, a):
        self.mean_, self.var_ = a.mean(0), a.var(0)
        std = np.where(_constant(self.var_, self.mean_, len(a)), 1.0, np.sqrt(self.var_))
        self.scale_ = std if self.with_std else None
        self._center = self.mean_ if self.with_mean else np.zeros_like(self.mean_)
        self._divisor = std if self.with_std else np.ones_like(std)


class MinMaxScaler(_Scaler):
    """Each feature mapped linearly onto feature_range (default [0, 1]); a constant feature maps to
    the range's low end. scale_ and min_ mean what they mean in scikit-learn: x * scale_ + min_."""

    def __init__(self, feature_range=(0.0, 1.0)):
        lo, hi = feature_range
        if not lo < hi:
            raise ValueError(f"[MinMaxScaler] feature_range must be increasing, got {feature_range}")
        self.feature_range = (float(lo), float(hi))

    def _statistics(self, a):
        lo, hi = self.feature_range
        self.data_min_, self.data_max_ = a.min(0), a.max(0)
        self.data_range_ = self.data_max_ - self.data_min_
        self._divisor = np.where(self.data_range_ == 0, 1.0, self.data_range_) / (hi - lo)
        self._center = self.data_min_ - lo * self._divisor
        self.scale_ = 1.0 / self._divisor
        self.min_ = lo - self.data_min_ * self.scale_


def one_hot(labels, num_classes=None):
    """float32 (..., num_classes) rows with a 1 at each label (num_classes defaults to max + 1)."""
    y, source = _to_numpy(labels)
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise TypeError(f"[one_hot] labels must be integers, got dtype {y.dtype}")
    if num_classes is None and y.size == 0:
        raise ValueError("[one_hot] cannot infer num_classes from empty labels; pass num_classes")
    y = y.astype(np.int64)
    n = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ValueError(f"[one_hot] labels must lie in [0, {n}), got {int(y.min())}..{int(y.max())}")
    out = np.zeros(y.shape + (n,), np.float32)
    np.put_along_axis(out, y[..., None], 1.0, axis=-1)
    return _like(out, source)


def _count(size, n, name, rounding):
    """A part's size from a count or a fraction (scikit-learn rounds test up and train down)."""
    if isinstance(size, Integral) and not isinstance(size, bool):
        return int(size)
    if isinstance(size, Real) and 0.0 < size < 1.0:
        return int(rounding(size * n))
    raise ValueError(f"[train_test_split] {name} must be a count or a fraction in (0, 1), got {size!r}")


def _split_sizes(n, test_size, train_size):
    if test_size is None and train_size is None:
        test_size = 0.25
    test = _count(test_size, n, "test_size", math.ceil) if test_size is not None else None
    train = _count(train_size, n, "train_size", math.floor) if train_size is not None else n - test
    test = n - train if test is None else test
    if train < 1 or test < 1 or train + test > n:
        raise ValueError(f"[train_test_split] test_size={test_size}, train_size={train_size} give {train} train and "
                         f"{test} test rows of {n}: a part would be empty or too large")
    return train, test


def _class_ids(stratify, n):
    """One class id per row; 2-D labels (multi-output) count each distinct row as a class."""
    labels, _ = _to_numpy(stratify)
    if len(labels) != n:
        raise ValueError(f"[train_test_split] stratify has {len(labels)} labels for {n} rows")
    if labels.ndim == 1:
        return labels
    return np.unique(labels.reshape(n, -1), axis=0, return_inverse=True)[1].reshape(n)


def _stratified_rows(labels, count, rng):
    """`count` rows taken from every class in proportion (largest remainders for the rounding)."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * count / len(labels)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: count - take.sum()]:
        take[i] += 1
    rows = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.concatenate(rows)


def _stratified_split(labels, train, test, rng):
    test_rows = _stratified_rows(labels, test, rng)
    rest = np.ones(len(labels), bool)
    rest[test_rows] = False
    rest = np.flatnonzero(rest)
    if train < len(rest):  # train_size left some rows out: pick the train part stratified too
        rest = rest[_stratified_rows(labels[rest], train, rng)]
    return rng.permutation(rest), rng.permutation(test_rows)


def train_test_split(*arrays, test_size=None, train_size=None, shuffle=True, stratify=None, seed=None):
    """[a_train, a_test, b_train, b_test, ...] as scikit-learn. test_size/train_size: a fraction or
    a count (default test 0.25; with both given, rows in neither part are left out). stratify:
    labels whose class proportions both parts keep. seed=None draws one from ember's generator, so
    em.manual_seed fixes the split."""
    if not arrays:
        raise ValueError("[train_test_split] needs at least one array")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"[train_test_split] arrays differ in length: {[len(a) for a in arrays]}")
    train, test = _split_sizes(n, test_size, train_size)
    rng = np.random.default_rng(draw_seed() if seed is None else seed)
    if stratify is not None:
        if not shuffle:
            raise ValueError("[train_test_split] stratify needs shuffle=True")
        train_rows, test_rows = _stratified_split(_class_ids(stratify, n), train, test, rng)
    else:
        order = rng.permutation(n) if shuffle else np.arange(n)
        train_rows, test_rows = order[:train], order[train:train + test]
    out = []
    for a in arrays:
        arr, source = _to_numpy(a)
        out += [_like(arr[train_rows], source), _like(arr[test_rows], source)]
    return out
