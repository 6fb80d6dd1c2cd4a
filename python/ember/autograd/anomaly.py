"""em.autograd.detect_anomaly(): find the first op that made a NaN or an infinity.

    with em.autograd.detect_anomaly():
        loss = model(x).sum()      # RuntimeError naming the op whose forward produced NaN/Inf
        loss.backward()            # ... or whose backward did, and for which input

PyTorch's name and use (also a decorator; set_detect_anomaly(True) switches it on for good). While
active, every op's result and every gradient a backward step returns is copied to the host and
checked, so it is slow: a debugging tool. Forward results are blamed only on an op whose tensor
inputs were all finite; a non-finite input that came from outside the graph (data, a parameter) is
named as such. Ops run through ember's graph (ops/_util.make) are checked; the few graph-free fast
paths that never record a node (e.g. linear under no_grad) are not."""
from __future__ import annotations

import contextlib

import numpy as np

from . import graph

_MESSAGE = "[detect_anomaly] {where} (shape {shape})"


def _bad_values(t) -> str | None:
    """'NaN', 'Inf', 'NaN and Inf' if the floating tensor t holds any; None if all finite."""
    if t is None or not t.dtype.is_floating_point:
        return None
    a = np.asarray(t.detach().cpu().numpy())   # bfloat16 arrives as float32
    if np.isfinite(a).all():
        return None
    kinds = [k for k, present in (("NaN", np.isnan(a).any()), ("Inf", np.isinf(a).any())) if present]
    return " and ".join(kinds)


def _check_forward(out, parents, name):
    what = _bad_values(out)
    if what is None:
        return
    name = graph.op_name(name)
    for i, p in enumerate(parents):
        bad = _bad_values(p) if hasattr(p, "dtype") else None
        if bad is not None:
            raise RuntimeError(_MESSAGE.format(
                where=f"input {i} of {name} already holds {bad}, and it was not made by a checked op "
                      "(data, a parameter, or a result from before detect_anomaly)", shape=p.shape))
    raise RuntimeError(_MESSAGE.format(where=f"the forward of {name} produced {what} from finite inputs",
                                       shape=out.shape))


def _check_backward(node, grads):
    for i, g in enumerate(grads):
        what = _bad_values(g)
        if what is not None:
            raise RuntimeError(_MESSAGE.format(where=f"the backward of {node.name} returned {what} in the "
                                                     f"gradient of its input {i}", shape=g.shape))


def set_detect_anomaly(mode: bool) -> None:
    graph._forward_check = _check_forward if mode else None
    graph._backward_check = _check_backward if mode else None


def is_anomaly_enabled() -> bool:
    return graph._forward_check is not None


class detect_anomaly(contextlib.ContextDecorator):
    """Checks every op's forward result and backward gradients for NaN/Inf while active."""

    def __init__(self, check_nan: bool = True):
        self.mode = bool(check_nan)

    def __enter__(self):
        self.previous = is_anomaly_enabled()
        set_detect_anomaly(self.mode)
        return self

    def __exit__(self, *exc):
        set_detect_anomaly(self.previous)
        return False
