"""Optimizer: parameter groups, per-parameter state and the fused update call. Each subclass names
its state tensors and calls one _C kernel per (device, dtype, step) bucket: on the CPU one pass
over every element, on CUDA one launch for all tensors.

Keras style: an optimizer made without params (`Adam()`, `Adam(lr=1e-3)`) is bound to a model's
parameters by model.compile (or `opt.bind(params)`)."""
from __future__ import annotations

import copy

from ..autograd import no_grad
from ..ops.creation import zeros_like
from ..tensor import Tensor


def _rule(must: str, test):
    """A hyperparameter's rule: what it must be (for the message) and the test (a TypeError counts as failing)."""
    return must, test


AT_LEAST_0 = _rule(">= 0", lambda v: v >= 0)
IN_0_1 = _rule("in [0, 1]", lambda v: 0 <= v <= 1)
A_PAIR_IN_0_1 = _rule("a pair of values in [0, 1)", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v))


class Optimizer:
    state_names: tuple = ()       # the state tensors of each parameter, in the kernel's order
    # Checked on the defaults at construction (a Keras-style optimizer has no params yet) and on every
    # param group (a group may override a default), so a bad value fails before any step.
    rules: dict = {"lr": AT_LEAST_0}

    def __init__(self, params, defaults: dict):
        self._check_group(defaults)
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}     # id(param) -> {"step": int, name: Tensor, ...}
        if params is not None:
            self.bind(params)

    # ---- parameters --------------------------------------------------------------------------
    def bind(self, params):
        """Attaches the parameters (a list of tensors or of group dicts with their own options)."""
        if isinstance(params, Tensor):
            raise TypeError("[optimizer] params must be an iterable of tensors or dicts, got one Tensor")
        params = list(params)
        if not params:
            raise ValueError("[optimizer] got an empty parameter list")
        self.param_groups = []
        for group in (params if isinstance(params[0], dict) else [{"params": params}]):
            self.add_param_group(group)
        return self

    @property
    def bound(self):
        return bool(self.param_groups)

    def add_param_group(self, group: dict):
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.dtype.is_floating_point:
                raise TypeError(f"[optimizer] parameters must be floating Tensors, got {type(p).__name__}")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        for key, (must, test) in self.rules.items():
            try:
                good = bool(test(group[key]))
            except TypeError:
                good = False
            if not good:
                raise ValueError(f"[{type(self).__name__}] {key} must be {must}, got {group[key]!r}")

    def _require_bound(self):
        if not self.param_groups:
            reason = getattr(self, "_unbound_reason", "pass them, or model.compile(optimizer=...)")
            raise RuntimeError(f"[{type(self).__name__}] has no parameters: {reason}")

    # ---- stepping ----------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad._a.copy_(zeros_like(p.grad)._a)

    def _state_of(self, p):
        st = self.state.get(id(p))
        if st is None:
            st = {"step": 0}
            for name in self._state_names_for(self._group_of(p)):
                st[name] = zeros_like(p)
            self.state[id(p)] = st
        return st

    def _state_names_for(self, group):
        return self.state_names

    def _group_of(self, p):
        for g in self.param_groups:
            if any(q is p for q in g["params"]):
                return g
        raise KeyError("[optimizer] parameter not in any group")

    def step(self, closure=None):
        """One update of every parameter that has a gradient."""
        self._require_bound()
        loss = closure() if closure is not None else None
        with no_grad():
            for group in self.param_groups:
                buckets: dict = {}
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    a = p._a  # device and dtype names straight from the array: no objects per param and step
                    if p.grad._a.shape != a.shape:
                        raise ValueError(f"[{type(self).__name__}] grad shape {p.grad.shape} != param shape {p.shape}")
                    st = self._state_of(p)
                    st["step"] += 1
                    buckets.setdefault((a.device, a.dtype, st["step"]), []).append((p, st))
                for (_, _, step), items in buckets.items():
                    self._update(group, [p for p, _ in items], [st for _, st in items], step)
        return loss

    def _update(self, group, params, states, step):
        raise NotImplementedError

    # ---- state dict (PyTorch's layout: params are numbered across groups in order) -----------
    def _indexed_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        self._require_bound()
        index = {id(p): i for i, p in enumerate(self._indexed_params())}
        state = {index[pid]: dict(st) for pid, st in self.state.items() if pid in index}
        groups, start = [], 0
        for g in self.param_groups:
            d = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            d["params"] = list(range(start, start + len(g["params"])))
            start += len(g["params"])
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        """Restores hyperparameters and state (copied into fresh tensors on each param's device)."""
        self._require_bound()
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError(f"[{type(self).__name__}.load_state_dict] the saved param groups do not match "
                             f"this optimizer's (sizes {[len(g['params']) for g in groups]} vs "
                             f"{[len(g['params']) for g in self.param_groups]})")
        params = self._indexed_params()
        self.state = {}
        for key, st in state_dict["state"].items():
            p = params[int(key)]
            restored = {}
            for k, v in st.items():
                if isinstance(v, Tensor) or hasattr(v, "__array__") and not isinstance(v, (int, float)):
                    t = v if isinstance(v, Tensor) else Tensor(v)
                    if tuple(t.shape) != tuple(p.shape):
                        raise ValueError(f"[{type(self).__name__}.load_state_dict] state {k!r} of param {key} has "
                                         f"shape {tuple(t.shape)}, param has {tuple(p.shape)}")
                    restored[k] = t.to(p.device).to(p.dtype).detach() * 1  # a private copy
                else:
                    restored[k] = int(v) if k == "step" else v
            self.state[id(p)] = restored
        for mine, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    mine[k] = tuple(v) if isinstance(mine.get(k), tuple) else v

    def __repr__(self):
        opts = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({opts})"


def arrays(ts):
    """The _C arrays of a list of tensors (what the fused kernels take)."""
    return [t._a for t in ts]
