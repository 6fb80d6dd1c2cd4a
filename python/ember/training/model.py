"""Keras-style training on any Module: compile / fit / evaluate / predict / summary, bound as
Module methods at the end of this file (training sits above nn, so nn never imports it). The loop is plain: batches of NumPy rows become tensors, forward, loss
(+ L1/L2 penalties), backward, one fused optimizer step; metrics read the outputs afterwards.

Multi-task: a model returning a dict of heads trains with a dict of losses (and optionally
loss_weights and a dict of targets); the reported "loss" is the weighted sum, each head's own loss
is logged as "<head>_loss" and its metrics as "<head>_<metric>"."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..ops.creation import tensor
from ..optim.optimizer import Optimizer
from ..optim.optimizers import BY_NAME as OPTIMIZERS
from ..distributed.fit import DistributedFit, check_same_data
from ..ops.creation import randint
from . import metrics as metrics_mod
from .history import History
from .inference import batches, group_logs, predict, prepare, require_compiled, target_tensor

# Loss names (Keras's and PyTorch's spellings); "cross_entropy" takes logits and class indices.
LOSSES = {"mse": nn.functional.mse_loss, "mean_squared_error": nn.functional.mse_loss,
          "mae": nn.functional.l1_loss, "l1": nn.functional.l1_loss, "mean_absolute_error": nn.functional.l1_loss,
          "cross_entropy": nn.functional.cross_entropy,
          "sparse_categorical_crossentropy": nn.functional.cross_entropy,
          "categorical_crossentropy": nn.functional.cross_entropy,
          "binary_crossentropy": nn.functional.binary_cross_entropy_with_logits,
          "bce_with_logits": nn.functional.binary_cross_entropy_with_logits}


@dataclass
class Compiled:
    optimizer: Optimizer
    losses: dict            # head (None for a single output) -> loss fn(pred, target)
    loss_weights: dict
    metrics: dict           # head -> list of metric specs
    l1: float = 0.0
    l2: float = 0.0
    heads: list = field(default_factory=list)


# ---- compile ---------------------------------------------------------------------------------

def _resolve_loss(spec):
    if isinstance(spec, str):
        if spec.lower() not in LOSSES:
            raise ValueError(f"[compile] unknown loss {spec!r}; expected one of {sorted(LOSSES)}, a callable or a dict")
        return LOSSES[spec.lower()]
    if callable(spec):
        return spec
    raise TypeError(f"[compile] loss must be a name, a callable or a dict of them, got {type(spec).__name__}")


def _resolve_optimizer(spec):
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec.lower() in OPTIMIZERS:
        return OPTIMIZERS[spec.lower()]()
    raise ValueError(f"[compile] unknown optimizer {spec!r}; expected one of {sorted(OPTIMIZERS)} or an Optimizer")


def compile(self, optimizer="adam", loss=None, metrics=None, loss_weights=None, l1=0.0, l2=0.0):
    """Sets the optimizer (a name or an Optimizer, bound to this model's parameters if made without
    any), the loss (a name, a callable(pred, target), or {head: loss}), metrics (a list, or
    {head: list}), loss_weights ({head: weight}) and L1/L2 penalties on the weights (parameters of
    >= 2 dims: l1 * sum|w| + l2 * sum w^2, added to the loss, so the reported loss includes them)."""
    if loss is None:
        raise ValueError("[compile] a loss is required")
    if not (0 <= l1 < math.inf and 0 <= l2 < math.inf):  # NaN fails both comparisons
        raise ValueError(f"[compile] l1 and l2 must be finite and >= 0, got {l1}, {l2}")
    losses = {h: _resolve_loss(s) for h, s in loss.items()} if isinstance(loss, dict) else {None: _resolve_loss(loss)}
    weights = dict(loss_weights or {})
    unknown = [h for h in weights if h not in losses]
    if unknown:
        raise ValueError(f"[compile] loss_weights for heads without a loss: {unknown}")
    if isinstance(metrics, dict):
        metric_specs = {h: list(m) for h, m in metrics.items()}
    else:
        metric_specs = {h: list(metrics or []) for h in losses}
    for specs in metric_specs.values():
        for s in specs:
            metrics_mod.get(s)  # unknown names fail here, not in the middle of fit
    self._compiled = Compiled(_resolve_optimizer(optimizer), losses, weights, metric_specs, float(l1), float(l2),
                              list(losses))
    opt = self._compiled.optimizer
    if not opt.bound and _is_built(self):
        opt.bind([p for p in self.parameters() if p.requires_grad])
    elif not opt.bound:  # bound by the first fit/evaluate/predict; until then say why it has no parameters
        opt._unbound_reason = (f"model.compile could not bind it, the model had no weights yet ({_unbuilt_message(self)}); "
                               f"fit/evaluate/predict bind it, or call optimizer.bind(model.parameters())")
    return self


def _is_built(model):
    return all(getattr(m, "built", True) for m in model.modules())


def _unbuilt_message(model):
    """Which layers have no weights yet, and the two ways to give them their input size."""
    names = [f"{name or type(model).__name__} ({type(m).__name__})" for name, m in model.named_modules()
             if not getattr(m, "built", True)]
    return (f"layers {', '.join(names)} do not know their input size yet; give the first one input_shape=(...), "
            f"or run the model on a batch (fit, evaluate and predict do that first)")


# ---- data ------------------------------------------------------------------------------------


# ---- one step --------------------------------------------------------------------------------

def _outputs(out, heads):
    if isinstance(out, dict):
        missing = [h for h in heads if h not in out]
        if missing:
            raise ValueError(f"[fit] the model returned heads {sorted(out)}, the losses need {missing}")
        return out
    if heads != [None]:
        raise ValueError(f"[fit] losses are given for heads {heads} but the model returned one output")
    return {None: out}


def _penalty(model, cfg):
    total = None
    for p in model.parameters():
        if p.ndim < 2 or not p.requires_grad:
            continue
        term = (p.abs().sum() * cfg.l1 if cfg.l1 else 0) + ((p * p).sum() * cfg.l2 if cfg.l2 else 0)
        total = term if total is None else total + term
    return total


def _loss(model, cfg, outs, ys):
    """The weighted total loss and each head's loss value."""
    total, per_head = None, {}
    for h in cfg.heads:
        fn = cfg.losses[h]
        target = target_tensor(ys[h], fn, outs[h], h)
        value = fn(outs[h], target)
        per_head[h] = value
        weighted = value * cfg.loss_weights[h] if h in cfg.loss_weights else value
        total = weighted if total is None else total + weighted
    if cfg.l1 or cfg.l2:
        pen = _penalty(model, cfg)
        if pen is not None:
            total = total + pen
    return total, per_head


def _metric_objects(cfg):
    """Fresh accumulators for one pass (a Metric given as an instance is copied, not shared)."""
    return {h: [metrics_mod.fresh(s) for s in cfg.metrics.get(h, [])] for h in cfg.heads}


def _name(head, base):
    return base if head is None else f"{head}_{base}"


class _Running:
    """Sample-weighted means of the losses, and the metrics, over one pass."""

    def __init__(self, cfg):
        self.metrics = _metric_objects(cfg)
        self.sums, self.n = {}, 0

    def add(self, total, per_head, outs, ys, count, multi):
        self.n += count
        self.sums["loss"] = self.sums.get("loss", 0.0) + total * count
        if multi:
            for h, v in per_head.items():
                self.sums[_name(h, "loss")] = self.sums.get(_name(h, "loss"), 0.0) + float(v) * count
        for h, ms in self.metrics.items():
            if ms and outs is not None:  # None: a distributed rank with no rows in this batch
                pred = outs[h].detach().cpu().numpy()
                for m in ms:
                    m.update(pred, ys[h])

    def logs(self, prefix=""):
        out = {prefix + k: v / max(self.n, 1) for k, v in self.sums.items()}
        for h, ms in self.metrics.items():
            for m in ms:
                out[prefix + _name(h, m.name)] = m.result()
        return out


# ---- fit -------------------------------------------------------------------------------------

def _ensure_built(model, x):
    """Lazy layers (Dense without input_shape) get their weights from one sample, then the
    optimizer is bound to the now-complete parameter list."""
    cfg = model._compiled
    if not _is_built(model):
        was = model.training
        with no_grad():
            model.eval()
            model(tensor(x[:1]))
        model.train(was)
    if not cfg.optimizer.bound:
        cfg.optimizer.bind([p for p in model.parameters() if p.requires_grad])


def _split_validation(x, y, validation_split, validation_data, heads):
    if validation_data is not None:
        xv, yv = prepare(validation_data[0], validation_data[1], heads, "fit")
        return x, y, xv, yv
    if not validation_split:
        return x, y, None, None
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"[fit] validation_split must be in (0, 1), got {validation_split}")
    cut = len(x) - int(math.ceil(len(x) * validation_split))  # the last samples, before shuffling (Keras)
    if cut <= 0:
        raise ValueError(f"[fit] validation_split={validation_split} leaves no training samples out of {len(x)}")
    return x[:cut], {h: t[:cut] for h, t in y.items()}, x[cut:], {h: t[cut:] for h, t in y.items()}


def _shuffle_seed(seed):
    """Shuffling follows ember's seed: without an explicit seed, one number is drawn from ember's
    default Philox stream, so em.manual_seed(n) makes fit reproducible."""
    if seed is None:
        seed = int(randint(0, 2 ** 62, (1,)).item())
    return seed


def _epoch_rng(seed, epoch):
    """Epoch e's order depends on (seed, e) alone, as the DataLoader's: fit(initial_epoch=e) after
    loading a checkpoint shuffles exactly as the uninterrupted run did."""
    return np.random.default_rng((seed, epoch))


def _progress(verbose, epoch, epochs, n):
    if verbose != 1:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=n, desc=f"Epoch {epoch + 1}/{epochs}", unit="samples", file=sys.stderr, leave=True,
                dynamic_ncols=True, mininterval=0.2)


def _format(logs):
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items() if k != "lr")


def _forward(model, cfg, x, y, idx):
    """One batch (the rows idx) through the model: loss tensor, its value, per-head losses, outputs, targets."""
    xb, yb = tensor(np.ascontiguousarray(x[idx])), {h: t[idx] for h, t in y.items()}
    outs = _outputs(model(xb), cfg.heads)
    loss, per_head = _loss(model, cfg, outs, yb)
    return loss, float(loss.item()), per_head, outs, yb


def _train_epoch(model, cfg, x, y, batch_size, rng, callbacks, bar, plan=None):
    """plan: an ember.distributed DistributedFit, or None for one process."""
    model.train()
    order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
    run, multi = _Running(cfg), cfg.heads != [None]
    last_post = 0.0
    forward = _forward if plan is None else plan.forward
    for b, idx in enumerate(batches(len(x), batch_size, order)):
        for c in callbacks:
            c.on_batch_begin(b)
        loss, value, per_head, outs, yb = forward(model, cfg, x, y, idx)
        if not math.isfinite(value):
            # Stop before the bad step is applied: the weights stay those of the last good batch.
            return None, f"loss became {value} at batch {b}; training stopped before applying that step"
        if loss is not None:  # None: this rank's share of a distributed batch is empty
            loss.backward()
        if plan is not None:
            plan.finish_backward()
        cfg.optimizer.step()
        cfg.optimizer.zero_grad()
        run.add(value, per_head, outs, yb, len(idx), multi)
        for c in callbacks:
            c.on_batch_end(b, {"loss": value, "size": len(idx)})
        if bar is not None:
            bar.update(len(idx))
            if time.perf_counter() - last_post > 0.2:
                bar.set_postfix_str(f"loss {run.sums['loss'] / run.n:.4f}", refresh=False)
                last_post = time.perf_counter()
        if model.stop_training:
            break
    if plan is not None:
        plan.merge_metrics(run.metrics)
    return run.logs(), None


def fit(self, x, y=None, epochs=1, batch_size=32, validation_split=0.0, validation_data=None, callbacks=None,
        shuffle=True, verbose=1, initial_epoch=0, seed=None, distributed=False):
    """Trains for `epochs` passes over (x, y); returns a History. verbose: 0 silent, 1 a progress
    bar per epoch (loss, samples/s), 2 one line per epoch. distributed: data-parallel over the ranks
    of `mpiexec -n N` (batch_size is the global batch; see ember.distributed.fit)."""
    cfg = require_compiled(self, "fit")
    if batch_size is None or int(batch_size) < 1:
        raise ValueError(f"[fit] batch_size must be >= 1, got {batch_size}")
    if y is None:
        raise ValueError("[fit] targets y are required")
    x, y = prepare(x, y, cfg.heads)
    x, y, xv, yv = _split_validation(x, y, validation_split, validation_data, cfg.heads)
    if len(x) == 0:
        raise ValueError("[fit] no training samples")
    _ensure_built(self, x)
    plan = None
    if distributed:
        check_same_data(x, y, batch_size, epochs)
        plan = DistributedFit(self, _forward)
        callbacks, verbose = plan.callbacks(callbacks), plan.verbose(verbose)
        seed = plan.seed(seed) if shuffle else seed
    try:
        return _fit_epochs(self, cfg, x, y, xv, yv, epochs, int(batch_size), callbacks, shuffle, verbose,
                           initial_epoch, seed, plan)
    finally:
        if plan is not None:
            plan.close()


def _fit_epochs(self, cfg, x, y, xv, yv, epochs, batch_size, callbacks, shuffle, verbose, initial_epoch, seed, plan):
    history = History()
    # History goes last (as in Keras), so it records what callbacks add to the epoch's logs.
    callbacks = list(callbacks or []) + [history]
    for c in callbacks:
        c.set_model(self)
    self.stop_training = False
    seed = _shuffle_seed(seed) if shuffle else None
    for c in callbacks:
        c.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        for c in callbacks:
            c.on_epoch_begin(epoch)
        bar = _progress(verbose, epoch, epochs, len(x))
        t0 = time.perf_counter()
        rng = _epoch_rng(seed, epoch) if shuffle else None
        logs, stop = _train_epoch(self, cfg, x, y, batch_size, rng, callbacks, bar, plan)
        if stop is not None:
            if bar is not None:
                bar.close()
            history.stop_reason = f"epoch {epoch + 1}: {stop}"
            print(f"[fit] {history.stop_reason}", file=sys.stderr)
            break
        if xv is not None:
            logs.update(_evaluate(self, cfg, xv, yv, batch_size, prefix="val_"))
        logs["lr"] = cfg.optimizer.param_groups[0]["lr"]
        if plan is not None:
            logs = plan.agree(logs)  # rank 0's, so every rank's callbacks decide alike
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.set_postfix_str(_format(logs), refresh=False)
            bar.close()
        elif verbose == 2:
            print(f"Epoch {epoch + 1}/{epochs} - {seconds:.2f}s - {_format(logs)}", file=sys.stderr)
        for c in callbacks:
            c.on_epoch_end(epoch, logs)
        if plan is not None:
            self.stop_training = plan.agree(self.stop_training)
        if self.stop_training:
            history.stop_reason = history.stop_reason or f"stopped by a callback after epoch {epoch + 1}"
            break
    for c in callbacks:
        c.on_train_end()
    return history


# ---- evaluate / predict ----------------------------------------------------------------------

def _evaluate(model, cfg, x, y, batch_size, prefix=""):
    was = model.training
    model.eval()
    run, multi = _Running(cfg), cfg.heads != [None]
    with no_grad():
        for idx in batches(len(x), batch_size, np.arange(len(x))):
            outs = _outputs(model(tensor(np.ascontiguousarray(x[idx]))), cfg.heads)
            yb = {h: t[idx] for h, t in y.items()}
            loss, per_head = _loss(model, cfg, outs, yb)
            run.add(float(loss.item()), per_head, outs, yb, len(idx), multi)
    model.train(was)
    return run.logs(prefix)


def evaluate(self, x, y, batch_size=32, verbose=0, groups=None):
    """The loss and metrics over (x, y), in eval mode, as a dict. With groups (one label per
    sample, e.g. a protected attribute) it also holds "<metric>/<group>" and the fairness gaps."""
    cfg = require_compiled(self, "evaluate")
    x, y = prepare(x, y, cfg.heads, "evaluate")
    _ensure_built(self, x)
    logs = _evaluate(self, cfg, x, y, int(batch_size))
    if groups is not None:
        logs.update(group_logs(self, x, y.get(None, y), groups, int(batch_size)))
    if verbose:
        print(_format(logs), file=sys.stderr)
    return logs


def summary(self, print_fn=print):
    """A table of the model's direct children: name, type, parameters; then the totals, and what is
    missing while lazy layers have no weights (their counts are not final until then)."""
    rows = [(name, type(m).__name__, m.num_parameters()) for name, m in self.named_children()]
    width = max([len(r[0]) for r in rows] + [5])
    lines = [f"{'layer':<{width}}  {'type':<22} {'params':>12}", "-" * (width + 37)]
    lines += [f"{n:<{width}}  {t:<22} {p:>12,}" for n, t, p in rows]
    total, trainable = self.num_parameters(), self.num_parameters(trainable_only=True)
    lines += ["-" * (width + 37), f"total parameters: {total:,}  (trainable {trainable:,}, frozen {total - trainable:,})"]
    if not _is_built(self):
        lines.append(f"not built: {_unbuilt_message(self)}")
    text = "\n".join(lines)
    print_fn(text)
    return text


for _method in (compile, fit, evaluate, predict, summary):
    setattr(nn.Module, _method.__name__, _method)
