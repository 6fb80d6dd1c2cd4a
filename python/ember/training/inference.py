"""What evaluate, predict and the callbacks share with fit, below the training loop: arrays made
NumPy, targets made tensors, batches, predict, and the per-group losses and metrics of the fairness
report. ember.training.model (the loop) and ember.training.callbacks both build on this file."""
from __future__ import annotations

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..ops.creation import tensor
from ..tensor import Tensor
from . import metrics as metrics_mod


def takes_class_indices(loss_fn):
    return loss_fn is nn.functional.cross_entropy or isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss))


def require_compiled(model, op):
    if getattr(model, "_compiled", None) is None:
        raise RuntimeError(f"[{op}] call model.compile(optimizer=..., loss=...) first")
    return model._compiled


def to_numpy(a, what):
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype == object:
        raise TypeError(f"[fit] {what} must be numeric arrays, got dtype object")
    if a.dtype.kind == "f" and a.dtype != np.float32:
        a = a.astype(np.float32)  # float64 NumPy input is accepted and cast, as Keras does
    return a


def prepare(x, y, heads, what="fit"):
    """NumPy versions of x and of y (a dict by head when there are several heads)."""
    x = to_numpy(x, "x")
    if y is None:
        return x, None
    if isinstance(y, dict):
        missing = [h for h in heads if h not in y]
        if missing:
            raise ValueError(f"[{what}] targets missing for heads {missing} (given {sorted(y)})")
        y = {h: to_numpy(y[h], f"y[{h!r}]") for h in heads}
    elif heads != [None]:
        raise ValueError(f"[{what}] the model has heads {heads}: pass y as a dict of targets")
    else:
        y = {None: to_numpy(y, "y")}
    for h, t in y.items():
        if len(t) != len(x):
            raise ValueError(f"[{what}] x has {len(x)} samples but y{'' if h is None else f'[{h!r}]'} has "
                             f"{len(t)} (shapes {x.shape} and {t.shape})")
    return x, y


def target_tensor(t: np.ndarray, loss_fn, pred: Tensor, head):
    """Class-index targets for cross-entropy: integral floats become int64, (N, 1) becomes (N,)."""
    if takes_class_indices(loss_fn) and t.dtype.kind in "fiu" and t.shape != tuple(pred.shape):
        if t.ndim == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.dtype.kind == "f":
            if not np.all(np.mod(t, 1) == 0):
                raise TypeError(f"[fit] cross-entropy targets{'' if head is None else f' of {head!r}'} must be "
                                f"class indices; got non-integer floats (shape {t.shape})")
        t = t.astype(np.int64)
    return tensor(np.ascontiguousarray(t), device=pred.device)


def batches(n, batch_size, order):
    for s in range(0, n, batch_size):
        yield order[s:s + batch_size]


def group_logs(model, x, y, groups, batch_size=256):
    """Loss and metrics per group, and the gaps between groups (metrics.fairness_report), over
    (x, y) with one group label per sample in `groups`. Single-output models only."""
    cfg = require_compiled(model, "evaluate")
    if cfg.heads != [None]:
        raise ValueError(f"[evaluate] groups= needs a single-output model; this one has heads {cfg.heads}")
    x, y = prepare(x, y, cfg.heads, "evaluate")
    fn = cfg.losses[None]

    def loss_of(pred_rows, target_rows):
        with no_grad():
            p = tensor(np.ascontiguousarray(pred_rows))
            return fn(p, target_tensor(target_rows, fn, p, None)).item()

    return metrics_mod.fairness_report(predict(model, x, batch_size), y[None], groups, loss_of)


def predict(self, x, batch_size=32, verbose=0):
    """The model's outputs on x as NumPy (a dict of arrays for a multi-head model), in eval mode."""
    x = to_numpy(x, "x")
    was = self.training
    self.eval()
    parts = []
    try:
        with no_grad():
            for idx in batches(len(x), int(batch_size), np.arange(len(x))):
                parts.append(self(tensor(np.ascontiguousarray(x[idx]))))
    finally:
        self.train(was)
    if not parts:
        raise ValueError("[predict] x has no samples")
    if isinstance(parts[0], dict):
        return {h: np.concatenate([p[h].cpu().numpy() for p in parts]) for h in parts[0]}
    return np.concatenate([p.cpu().numpy() for p in parts])
