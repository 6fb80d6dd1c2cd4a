"""Mixed precision, PyTorch's way: `autocast` runs the GEMM-heavy ops (matmul, linear, attention) in
bfloat16 or float16 while the parameters stay float32 (master weights: the casts are ops, so their
gradients arrive back in float32), and keeps the numerically touchy ones (cross-entropy) in
float32. `GradScaler` multiplies the loss so float16 gradients do not underflow, unscales them
before the step, skips steps whose gradients hold inf/NaN and adapts the scale.

    scaler = em.amp.GradScaler()
    with em.autocast("cuda", dtype=em.float16):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()

On the CPU the 16-bit GEMM widens its inputs to float32 and rounds the result (the same numbers a
bfloat16 GEMM with float32 accumulation gives), so autocast("cpu") trains with bfloat16 numerics."""
from __future__ import annotations

import functools
import threading

from . import dtypes as _dt
from .autograd.graph import no_grad

class _State(threading.local):
    """Per thread, the stack of active autocast regions. Set in __init__ (run once in each thread)
    so that reading it never misses: a getattr that misses on a threading.local goes through
    AttributeError and cost ~0.5 us on every GEMM call."""

    def __init__(self):
        self.stack = []


_state = _State()
_LOW = (_dt.bfloat16, _dt.float16)


def _stack():
    return _state.stack


class autocast:
    """Context manager (and decorator) enabling mixed precision for ops on `device_type`
    ("cuda" or "cpu"). dtype: bfloat16 or float16 (default: float16 on cuda, bfloat16 on cpu)."""

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True):
        if device_type not in ("cuda", "cpu"):
            raise ValueError(f"[autocast] device_type must be 'cuda' or 'cpu', got {device_type!r}")
        dtype = _dt.get_dtype(dtype) if dtype is not None else (_dt.float16 if device_type == "cuda" else _dt.bfloat16)
        if dtype not in _LOW:
            raise ValueError(f"[autocast] dtype must be bfloat16 or float16, got {dtype}")
        self.device_type, self.dtype, self.enabled = device_type, dtype, bool(enabled)

    def __enter__(self):
        _stack().append(self)
        return self

    def __exit__(self, *exc):
        _stack().pop()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled):
                return fn(*args, **kwargs)
        return wrapped


def autocast_dtype(device):
    """The 16-bit dtype ops on `device` run in under the innermost autocast, or None."""
    kind = str(device).split(":")[0]
    for a in reversed(_stack()):
        if a.device_type == kind:
            return a.dtype if a.enabled else None
    return None


def autocasting() -> bool:
    """Whether an autocast region is open on this thread (ops skip their cast step when not)."""
    return bool(_state.stack)


def cast_for_gemm(*tensors):
    """Inside autocast: the floating inputs of a GEMM-heavy op cast to the autocast dtype (None
    entries pass through). Outside: the inputs unchanged."""
    if not _state.stack:  # the common case, kept to one attribute lookup
        return tensors
    first = next(t for t in tensors if t is not None)
    dt = autocast_dtype(first.device)
    if dt is None:
        return tensors
    return tuple(t.to(dt) if t is not None and t.dtype.is_floating_point and t.dtype != dt else t for t in tensors)


def float32_for_loss(t):
    """Inside autocast, a 16-bit input of a loss is computed in float32 (PyTorch's fp32 op list)."""
    if not _state.stack:
        return t
    return t.to(_dt.float32) if autocast_dtype(t.device) is not None and t.dtype in _LOW else t


class GradScaler:
    """Dynamic loss scaling (PyTorch's GradScaler): scale(loss) multiplies by the scale; step(opt)
    unscales the gradients (unless unscale_ was called) and skips the step when any is inf/NaN;
    update() halves the scale after a skipped step and doubles it after growth_interval clean ones."""

    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        if growth_factor <= 1.0 or not 0.0 < backoff_factor < 1.0:
            raise ValueError("[GradScaler] growth_factor must be > 1 and backoff_factor in (0, 1)")
        self.device, self._enabled = device, bool(enabled)
        self._scale, self._growth, self._backoff = float(init_scale), float(growth_factor), float(backoff_factor)
        self._interval, self._tracker = int(growth_interval), 0
        self._per_optimizer = {}  # id(optimizer) -> {"unscaled": bool, "found_inf": bool}

    def is_enabled(self):
        return self._enabled

    def get_scale(self):
        return self._scale if self._enabled else 1.0

    def scale(self, outputs):
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        return outputs * self._scale

    def _state(self, optimizer):
        return self._per_optimizer.setdefault(id(optimizer), {"unscaled": False, "found_inf": False})

    def unscale_(self, optimizer):
        """Divides the optimizer's gradients by the scale, in place, and records whether any is
        inf/NaN. Call before gradient clipping; at most once per step."""
        if not self._enabled:
            return
        st = self._state(optimizer)
        if st["unscaled"]:
            raise RuntimeError("[GradScaler] unscale_() was already called for this optimizer since the last update()")
        inv, found = 1.0 / self._scale, False
        with no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    p.grad.mul_(inv)
                    found = found or bool(((p.grad - p.grad) != 0).any().item())  # inf - inf and NaN are NaN
        st["unscaled"], st["found_inf"] = True, found

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step() unless the (unscaled) gradients hold inf/NaN; returns its result or None."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        st = self._state(optimizer)
        if not st["unscaled"]:
            self.unscale_(optimizer)
        return None if st["found_inf"] else optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = float(new_scale)
        elif any(st["found_inf"] for st in self._per_optimizer.values()):
            self._scale *= self._backoff
            self._tracker = 0
        else:
            self._tracker += 1
            if self._tracker >= self._interval:
                self._scale *= self._growth
                self._tracker = 0
        self._per_optimizer.clear()

    def state_dict(self):
        return {"scale": self._scale, "growth_factor": self._growth, "backoff_factor": self._backoff,
                "growth_interval": self._interval, "_growth_tracker": self._tracker} if self._enabled else {}

    def load_state_dict(self, state):
        if not state:
            return
        self._scale, self._growth, self._backoff = float(state["scale"]), float(state["growth_factor"]), \
            float(state["backoff_factor"])
        self._interval, self._tracker = int(state["growth_interval"]), int(state["_growth_tracker"])
