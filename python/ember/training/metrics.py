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


# ---- fairness: metrics per group and the gaps between groups ----------------------------------
# Predictions are labels here: predicted_labels turns model outputs into them the way Accuracy
# reads outputs. Binary rates count `positive` (class 1 by default) as the positive outcome; for
# more than two classes they are one-vs-rest for that class, while accuracy stays multi-class.
# A rate with no sample to count over (a group without positives has no recall) is NaN, and the
# gaps are taken over the groups where it is defined (fairlearn's max - min definitions).

def predicted_labels(pred: np.ndarray) -> np.ndarray:
    """Class labels from outputs: a logit per sample (N,) or (N, 1) thresholded at 0, else argmax."""
    pred = np.asarray(pred)
    if pred.ndim == 1 or pred.shape[-1] == 1:
        return (pred.reshape(-1) > 0).astype(np.int64)
    return np.argmax(pred, axis=-1)


def _ratio(num, den):
    return num / den if den else float("nan")


def binary_rates(y_true, y_pred, positive=1) -> dict:
    """Accuracy, precision, recall (= true positive rate), F1, false positive rate and selection
    rate (share predicted positive) of label arrays."""
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"[metrics] y_true {y_true.shape} and y_pred {y_pred.shape} must have the same length")
    t, p = y_true == positive, y_pred == positive
    tp, fp, fn = int(np.sum(t & p)), int(np.sum(~t & p)), int(np.sum(t & ~p))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {"accuracy": _ratio(int(np.sum(y_true == y_pred)), len(y_true)), "precision": precision,
            "recall": recall, "f1": f1, "fpr": _ratio(fp, int(np.sum(~t))), "selection_rate": _ratio(int(p.sum()),
                                                                                                   len(p))}


def _check_groups(groups, n):
    groups = np.asarray(groups).reshape(-1) if np.ndim(groups) else None
    if groups is None or len(groups) != n:
        raise ValueError(f"[metrics] groups must give one group per sample ({n}), got shape {np.shape(groups)}")
    return groups


def group_metrics(y_true, y_pred, groups, positive=1) -> dict:
    """{group: binary_rates(...) of its samples, plus "count"}, groups in sorted order."""
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    groups = _check_groups(groups, len(y_true))
    out = {}
    for g in np.unique(groups):
        m = groups == g
        out[g.item() if hasattr(g, "item") else g] = {**binary_rates(y_true[m], y_pred[m], positive),
                                                      "count": int(m.sum())}
    return out


def _spread(per_group, key):
    values = np.array([r[key] for r in per_group.values()], dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.max() - values.min()) if len(values) else float("nan")


def demographic_parity_difference(y_pred, groups, positive=1) -> float:
    """The largest gap between groups in the share predicted positive."""
    y_pred = np.asarray(y_pred).reshape(-1)
    return _spread(group_metrics(y_pred, y_pred, groups, positive), "selection_rate")


def equal_opportunity_difference(y_true, y_pred, groups, positive=1) -> float:
    """The largest gap between groups in the true positive rate (recall)."""
    return _spread(group_metrics(y_true, y_pred, groups, positive), "recall")


def equalized_odds_difference(y_true, y_pred, groups, positive=1) -> float:
    """max(gap in true positive rate, gap in false positive rate) between groups."""
    per_group = group_metrics(y_true, y_pred, groups, positive)
    return max(_spread(per_group, "recall"), _spread(per_group, "fpr"))


def fairness_report(pred, y_true, groups, loss_of=None, positive=1) -> dict:
    """A flat dict for evaluate/History: "<metric>/<group>" for accuracy, precision, recall, f1,
    selection_rate (and loss, when loss_of(pred_rows, target_rows) -> float is given), and
    demographic_parity_difference, equal_opportunity_difference, equalized_odds_difference."""
    pred, y_true = np.asarray(pred), np.asarray(y_true)
    labels, truth = predicted_labels(pred), _class_targets_any(pred, y_true)
    groups = _check_groups(groups, len(labels))
    per_group = group_metrics(truth, labels, groups, positive)
    out = {}
    for g, rates in per_group.items():
        if loss_of is not None:
            out[f"loss/{g}"] = float(loss_of(pred[groups == g], y_true[groups == g]))
        for k in ("accuracy", "precision", "recall", "f1", "selection_rate"):
            out[f"{k}/{g}"] = rates[k]
    out["demographic_parity_difference"] = _spread(per_group, "selection_rate")
    out["equal_opportunity_difference"] = _spread(per_group, "recall")
    out["equalized_odds_difference"] = max(out["equal_opportunity_difference"], _spread(per_group, "fpr"))
    return out


def _class_targets_any(pred, target):
    """Class labels of the targets for outputs `pred`: 0/1 for one logit per sample, else indices."""
    if pred.ndim == 1 or pred.shape[-1] == 1:
        return (target.reshape(-1) > 0.5).astype(np.int64)
    return _class_targets(pred, target).astype(np.int64)


# ---- ranking ------------------------------------------------------------------------------------

def recall_at_k(scores, relevant, k=10, exclude=None) -> float:
    """Mean over users (rows) with at least one relevant item of |top-k ∩ relevant| / |relevant|.
    scores: (U, I) floats; relevant, exclude: (U, I) bools (exclude: items never ranked, such as
    those seen in training)."""
    scores = np.array(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.shape != relevant.shape or (exclude is not None and np.shape(exclude) != scores.shape):
        raise ValueError(f"[recall_at_k] scores {scores.shape}, relevant {relevant.shape} and exclude "
                         f"{None if exclude is None else np.shape(exclude)} must have one shape (users, items)")
    if not 1 <= int(k) <= scores.shape[1]:
        raise ValueError(f"[recall_at_k] k must be in [1, {scores.shape[1]}], got {k}")
    if exclude is not None:
        scores[np.asarray(exclude, dtype=bool)] = -np.inf
    rows = relevant.any(1)
    top = np.argpartition(-scores[rows], int(k) - 1, axis=1)[:, :int(k)]
    hits = np.take_along_axis(relevant[rows], top, axis=1).sum(1)
    return float(np.mean(hits / relevant[rows].sum(1))) if rows.any() else float("nan")
