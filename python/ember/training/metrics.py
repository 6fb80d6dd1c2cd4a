"""Metrics for fit/evaluate: each accumulates over batches (update) and reports one number (result).
They read predictions as NumPy arrays after the step, outside the autograd graph.

Accuracy follows the shapes, as Keras's "accuracy" does: class scores (N, C) against indices (N,)
or one-hot (N, C) compare argmaxes; a single score per sample (N,) or (N, 1) against 0/1 labels is
binary, thresholded at 0 because ember's binary loss takes logits (sigmoid(0) = 0.5)."""
from __future__ import annotations

import copy
import re

import numpy as np


class Metric:
    name = "metric"

    def __init__(self):
        self.reset()

    def reset(self):
        self.total, self.count = 0.0, 0

    def update(self, pred: np.ndarray, target: np.ndarray):
        values = self.values(pred, target)
        self.total += float(np.sum(values))
        self.count += int(np.size(values))

    def values(self, pred, target):
        raise NotImplementedError

    def result(self) -> float:
        return self.total / self.count if self.count else float("nan")


def _class_targets(pred, target):
    if target.ndim == pred.ndim and target.shape == pred.shape:  # one-hot or probabilities
        return np.argmax(target, axis=-1)
    return target.reshape(pred.shape[:-1])


class Accuracy(Metric):
    name = "accuracy"

    def values(self, pred, target):
        binary = pred.ndim == 1 or pred.shape[-1] == 1
        if binary:
            return (pred.reshape(-1) > 0) == (target.reshape(-1) > 0.5)
        return np.argmax(pred, axis=-1) == _class_targets(pred, target)


class TopKAccuracy(Metric):
    def __init__(self, k: int = 5):
        self.k = int(k)
        self.name = f"top{self.k}_accuracy"
        super().__init__()

    def values(self, pred, target):
        t = _class_targets(pred, target)
        k = min(self.k, pred.shape[-1])
        top = np.argpartition(-pred, k - 1, axis=-1)[..., :k]
        return np.any(top == t[..., None], axis=-1)


class MeanSquaredError(Metric):
    name = "mse"

    def values(self, pred, target):
        return (pred - target.reshape(pred.shape)) ** 2


class MeanAbsoluteError(Metric):
    name = "mae"

    def values(self, pred, target):
        return np.abs(pred - target.reshape(pred.shape))


_NAMES = {"accuracy": Accuracy, "acc": Accuracy, "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
          "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError}


def get(spec) -> Metric:
    """A Metric from a name ("accuracy", "mse", "mae", "top_k_accuracy" (k=5), "top3_accuracy", ...)
    or an instance (returned as is)."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        if spec in _NAMES:
            return _NAMES[spec]()
        if spec == "top_k_accuracy":
            return TopKAccuracy(5)
        m = re.fullmatch(r"top(\d+)_accuracy", spec)
        if m:
            return TopKAccuracy(int(m.group(1)))
    raise ValueError(f"[metrics] unknown metric {spec!r}; expected one of {sorted(_NAMES)}, "
                     f"'top_k_accuracy', 'top<k>_accuracy' or a Metric")


def fresh(spec) -> Metric:
    """A new, reset Metric for spec (instances are copied so passes never share counts)."""
    m = copy.deepcopy(get(spec))
    m.reset()
    return m
