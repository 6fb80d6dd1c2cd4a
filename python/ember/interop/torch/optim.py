"""torch.optim-compatible SGD, Adam and AdamW whose step is ember's fused single-pass update
(_C.sgd_step_/_C.adam_step_, the kernels ember.optim calls) on torch parameters, through DLPack.

They subclass torch.optim.Optimizer, so param_groups, state_dict/load_state_dict, zero_grad and the
torch.optim.lr_scheduler classes work as with torch's own; the state tensors are torch tensors with
torch's names (exp_avg, exp_avg_sq, momentum_buffer). Parameters are grouped by (device, dtype,
step) and each group is one kernel call: one pass per tensor on the CPU, one launch on CUDA."""
from __future__ import annotations

import torch

from ... import _C
from ._bridge import to_ember


class _Fused(torch.optim.Optimizer):
    state_names: tuple = ()

    def __init__(self, params, defaults):
        super().__init__(params, defaults)
        self._views: dict = {}  # id(param) -> (data_ptr, ember arrays of the param and its state)

    def _state_names(self, group):
        return self.state_names

    def _arrays(self, p, st, group):
        """ember views of p and its state tensors, made once per tensor (a view stays valid while the
        tensor keeps its storage; the data pointer tells when it does not)."""
        names = self._state_names(group)
        key = (p.data_ptr(), *(st[n].data_ptr() for n in names))
        cached = self._views.get(id(p))
        if cached is None or cached[0] != key:
            cached = (key, [to_ember(p)] + [to_ember(st[n]) for n in names])
            self._views[id(p)] = cached
        return cached[1]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            buckets: dict = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse or p.grad.shape != p.shape:
                    raise ValueError(f"[{type(self).__name__}] needs a dense gradient shaped like its parameter "
                                     f"(param {tuple(p.shape)}, grad {tuple(p.grad.shape)})")
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    for n in self._state_names(group):
                        st[n] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] = int(st["step"]) + 1
                arrays = self._arrays(p, st, group)
                buckets.setdefault((p.device, p.dtype, st["step"]), []).append((arrays, to_ember(p.grad)))
            for (_, _, step), items in buckets.items():
                self._update(group, [a for a, _ in items], [g for _, g in items], step)
        return loss


class SGD(_Fused):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"[SGD] lr, momentum and weight_decay must be >= 0 (lr={lr}, momentum={momentum}, "
                             f"weight_decay={weight_decay})")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("[SGD] nesterov needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] else ()

    def _update(self, group, arrays, grads, step):
        bufs = [a[1] for a in arrays] if group["momentum"] else []
        _C.sgd_step_([a[0] for a in arrays], grads, bufs, group["lr"], group["momentum"], group["dampening"],
                     group["weight_decay"], group["nesterov"], step == 1)


class Adam(_Fused):
    """Adam with bias correction; weight_decay is the L2 form (added to the gradient), as torch.optim.Adam."""
    state_names = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"[{type(self).__name__}] needs lr, eps, weight_decay >= 0 and betas in [0, 1) "
                             f"(lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay})")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, group, arrays, grads, step):
        b1, b2 = group["betas"]
        _C.adam_step_([a[0] for a in arrays], grads, [a[1] for a in arrays], [a[2] for a in arrays], group["lr"],
                      b1, b2, group["eps"], group["weight_decay"], self.decoupled, step)


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * wd before the step), as torch.optim.AdamW."""
    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay)
