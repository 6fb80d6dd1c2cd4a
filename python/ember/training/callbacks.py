"""Callbacks for fit (em.callbacks): hooks at the start and end of training, of each epoch and of
each batch, with Keras's names and meanings. A callback sees the model as self.model and may stop
training by setting self.model.stop_training = True."""
from __future__ import annotations

import csv
import math
import os
import sys

from .. import io
from .inference import group_logs


class Callback:
    rank_zero_only = False  # True: under fit(distributed=True) only rank 0 keeps this callback

    def __init__(self):
        self.model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass


def _mode_for(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"[callbacks] mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return mode


def _check_monitor_args(owner, monitor, mode, min_delta=0.0, baseline=None):
    """A callback's monitor arguments, checked when it is made rather than when training starts."""
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"[{owner}] monitor must be the name of a logged quantity, got {monitor!r}")
    _mode_for(monitor, mode)
    if not math.isfinite(min_delta):  # its sign is ignored, as Keras does
        raise ValueError(f"[{owner}] min_delta must be a finite number, got {min_delta}")
    if baseline is not None and math.isnan(baseline):
        raise ValueError(f"[{owner}] baseline must be a number or None, got {baseline}")


class _Monitor:
    """Tracks the best value of a logged quantity (lower or higher is better, by mode)."""

    def __init__(self, monitor, mode, min_delta=0.0, baseline=None):
        self.monitor, self.mode, self.min_delta = monitor, _mode_for(monitor, mode), abs(min_delta)
        self.best = baseline if baseline is not None else (math.inf if self.mode == "min" else -math.inf)

    def value(self, logs):
        if self.monitor not in (logs or {}):
            raise KeyError(f"[callbacks] monitored quantity {self.monitor!r} is not logged; "
                           f"available: {sorted(logs or {})} (val_* needs validation data)")
        return logs[self.monitor]

    def improved(self, v):
        if self.mode == "min":
            return v < self.best - self.min_delta
        return v > self.best + self.min_delta


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class EarlyStopping(Callback):
    """Stops when `monitor` has not improved by min_delta for `patience` epochs. With
    restore_best_weights, the weights of the best epoch are put back when training ends."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", baseline=None,
                 restore_best_weights=False, verbose=0):
        super().__init__()
        _check_monitor_args("EarlyStopping", monitor, mode, min_delta, baseline)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"[EarlyStopping] patience must be an int >= 0, got {patience!r}")
        self.args = (monitor, mode, min_delta, baseline)
        self.patience, self.restore_best_weights, self.verbose = patience, restore_best_weights, verbose

    def on_train_begin(self, logs=None):
        self.tracker = _Monitor(*self.args)
        self.wait, self.stopped_epoch, self.best_epoch, self.best_weights = 0, None, None, None

    def on_epoch_end(self, epoch, logs=None):
        v = self.tracker.value(logs)
        if self.tracker.improved(v):
            self.tracker.best, self.best_epoch, self.wait = v, epoch, 0
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model)
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping ({self.tracker.monitor} best "
                      f"{self.tracker.best:.4g} at epoch {self.best_epoch + 1})", file=sys.stderr)

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Saves the model (safetensors, written atomically) after each epoch, or only when `monitor`
    improves (save_best_only). filepath may use {epoch} and any logged name, e.g.
    "ckpt-{epoch:02d}-{val_loss:.3f}.safetensors". save_weights_only=False also stores the
    optimizer state and epoch (em.save_checkpoint), for resuming."""
    rank_zero_only = True  # writes a file: under fit(distributed=True) only rank 0 keeps it

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto", save_weights_only=True,
                 verbose=0):
        super().__init__()
        _check_monitor_args("ModelCheckpoint", monitor, mode)
        self.filepath, self.save_best_only, self.save_weights_only = os.fspath(filepath), save_best_only, \
            save_weights_only
        self.args, self.verbose = (monitor, mode), verbose

    def on_train_begin(self, logs=None):
        self.tracker = _Monitor(*self.args)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            v = self.tracker.value(logs)
            if not self.tracker.improved(v):
                return
            self.tracker.best = v
        path = self.filepath.format(epoch=epoch + 1, **logs)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # as Keras: "runs/ckpt-{epoch}" needs no mkdir
        if self.save_weights_only:
            io.save(self.model.state_dict(), path)
        else:
            io.save_checkpoint(path, model=self.model, optimizer=self.model._compiled.optimizer, epoch=epoch + 1)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved {path}", file=sys.stderr)


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch's start: schedule(epoch, lr) -> new lr, or an
    em.optim.lr_scheduler object, stepped at each epoch's end."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        if hasattr(self.schedule, "step"):
            return
        opt = self.model._compiled.optimizer
        lr = float(self.schedule(epoch, opt.param_groups[0]["lr"]))
        for g in opt.param_groups:
            g["lr"] = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {lr:.4g}", file=sys.stderr)

    def on_epoch_end(self, epoch, logs=None):
        if hasattr(self.schedule, "step"):
            self.schedule.step()


class TerminateOnNaN(Callback):
    """Stops training at the first non-finite batch loss. (fit does this on its own too, before the
    bad step is applied; this callback exists for Keras code that lists it.)"""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training", file=sys.stderr)
            self.model.stop_training = True


class CSVLogger(Callback):
    """Appends one row per epoch (epoch and every logged value) to a CSV file, flushed each epoch."""
    rank_zero_only = True  # writes a file: under fit(distributed=True) only rank 0 keeps it

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append
        self.file = self.writer = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer, self.keys, self.header_written = None, None, exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.writer is None:
            self.keys = sorted(logs)
            self.writer = csv.DictWriter(self.file, fieldnames=["epoch"] + self.keys, delimiter=self.separator)
            if not self.header_written:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "") for k in self.keys}})
        self.file.flush()

    def on_train_end(self, logs=None):
        if self.file is not None:
            self.file.close()
            self.file = None


class FairnessMonitor(Callback):
    """Adds per-group loss/accuracy/precision/recall/F1/selection rate and the gaps between groups
    (demographic parity, equal opportunity, equalized odds) on (x, y, groups) to each epoch's
    logs, so History records them; names are prefix + "<metric>/<group>" and prefix + the gap's.
    List it before callbacks that monitor these names."""

    def __init__(self, x, y, groups, prefix="val_", batch_size=256):
        super().__init__()
        self.x, self.y, self.groups, self.prefix, self.batch_size = x, y, groups, prefix, batch_size

    def on_epoch_end(self, epoch, logs=None):
        report = group_logs(self.model, self.x, self.y, self.groups, self.batch_size)
        if logs is not None:
            logs.update({self.prefix + k: v for k, v in report.items()})
