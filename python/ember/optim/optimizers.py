"""SGD, Adam, AdamW and RMSprop: PyTorch's update rules and defaults, each step one fused kernel
(core/optim_math.h holds the formulas shared by the CPU and CUDA kernels)."""
from __future__ import annotations

from .. import _C
from .optimizer import A_PAIR_IN_0_1, AT_LEAST_0, IN_0_1, Optimizer, arrays


def _grads(params):
    return [p.grad._a for p in params]


class SGD(Optimizer):
    rules = {"lr": AT_LEAST_0, "momentum": AT_LEAST_0, "dampening": IN_0_1, "weight_decay": AT_LEAST_0}

    def __init__(self, params=None, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("[SGD] nesterov needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _state_names_for(self, group):
        return ("momentum_buffer",) if group["momentum"] else ()

    def _update(self, group, params, states, step):
        bufs = [st["momentum_buffer"]._a for st in states] if group["momentum"] else []
        _C.sgd_step_(arrays(params), _grads(params), bufs, group["lr"], group["momentum"], group["dampening"],
                     group["weight_decay"], group["nesterov"], step == 1)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; weight_decay is the L2 form (added to the gradient)."""
    state_names = ("exp_avg", "exp_avg_sq")
    decoupled = False
    rules = {"lr": AT_LEAST_0, "betas": A_PAIR_IN_0_1, "eps": AT_LEAST_0, "weight_decay": AT_LEAST_0}

    def __init__(self, params=None, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        betas = tuple(betas) if isinstance(betas, (list, tuple)) else betas  # anything else fails the rule
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _update(self, group, params, states, step):
        b1, b2 = group["betas"]
        _C.adam_step_(arrays(params), _grads(params), [st["exp_avg"]._a for st in states],
                      [st["exp_avg_sq"]._a for st in states], group["lr"], b1, b2, group["eps"],
                      group["weight_decay"], self.decoupled, step)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): p *= 1 - lr * wd before the step."""
    decoupled = True

    def __init__(self, params=None, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    # alpha > 1 would weight the new squared gradient negatively: square_avg could go below zero
    rules = {"lr": AT_LEAST_0, "alpha": IN_0_1, "eps": AT_LEAST_0, "weight_decay": AT_LEAST_0,
             "momentum": AT_LEAST_0}

    def __init__(self, params=None, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def _state_names_for(self, group):
        return ("square_avg",) + (("momentum_buffer",) if group["momentum"] else ()) + (
            ("grad_avg",) if group["centered"] else ())

    def _update(self, group, params, states, step):
        pick = lambda name, on: [st[name]._a for st in states] if on else []  # noqa: E731
        _C.rmsprop_step_(arrays(params), _grads(params), pick("square_avg", True),
                         pick("momentum_buffer", group["momentum"]), pick("grad_avg", group["centered"]),
                         group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"],
                         group["centered"])


BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}
