"""Learning-rate schedules (PyTorch's): call step() once per epoch (or per batch, for warmup);
each sets every param group's lr from the group's initial lr and the step count."""
from __future__ import annotations

import math
import numbers

from .optimizer import Optimizer


def _require(ok, sched, what, value):
    if not ok:
        raise ValueError(f"[{sched}] {what}, got {value!r}")


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


class LRScheduler:
    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"[{type(self).__name__}] expects an ember Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        optimizer._require_bound()
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def _apply(self):
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(base, self.last_epoch)

    def step(self):
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, d):
        self.last_epoch, self.base_lrs = int(d["last_epoch"]), list(d["base_lrs"])
        self._apply()


class StepLR(LRScheduler):
    """lr = base * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        _require(_is_int(step_size) and step_size >= 1, "StepLR", "step_size must be an int >= 1", step_size)
        _require(isinstance(gamma, numbers.Real) and gamma >= 0, "StepLR", "gamma must be >= 0", gamma)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, held at eta_min after T_max."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        _require(_is_int(T_max) and T_max >= 1, "CosineAnnealingLR", "T_max must be an int >= 1", T_max)
        _require(isinstance(eta_min, numbers.Real) and eta_min >= 0, "CosineAnnealingLR", "eta_min must be >= 0",
                 eta_min)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        e = min(epoch, self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class LinearWarmup(LRScheduler):
    """Linear ramp from start_factor * base to base over warmup_steps, then base (or, with
    total_steps, a linear decay to 0 at total_steps: the BERT fine-tuning schedule)."""

    def __init__(self, optimizer, warmup_steps: int, start_factor: float = 0.0, total_steps: int | None = None):
        _require(_is_int(warmup_steps) and (total_steps is None or _is_int(total_steps)), "LinearWarmup",
                 "warmup_steps and total_steps must be ints", (warmup_steps, total_steps))
        if warmup_steps < 0 or (total_steps is not None and total_steps < warmup_steps):
            raise ValueError(f"[LinearWarmup] need 0 <= warmup_steps <= total_steps, got {warmup_steps}, {total_steps}")
        _require(isinstance(start_factor, numbers.Real) and 0 <= start_factor <= 1, "LinearWarmup",
                 "start_factor must be in [0, 1]", start_factor)
        self.warmup_steps, self.start_factor, self.total_steps = warmup_steps, start_factor, total_steps
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        if epoch < self.warmup_steps:
            return base_lr * (self.start_factor + (1 - self.start_factor) * epoch / self.warmup_steps)
        if self.total_steps is None:
            return base_lr
        left = self.total_steps - self.warmup_steps
        return base_lr * max(0.0, (self.total_steps - epoch) / left) if left else 0.0
