"""The autograd graph: each result of a differentiable op keeps a Node with its parents and the
closure that maps the output's gradient to theirs (micrograd's design). backward() visits the
nodes in reverse topological order and accumulates with +=."""
from __future__ import annotations

import threading
import weakref

class _State(threading.local):
    """Per thread grad mode, set in __init__ (run once in each thread): reading it never misses, as a
    getattr default on a threading.local would (~0.4 us through AttributeError, on every op)."""

    def __init__(self):
        self.enabled = True


_state = _State()


def is_grad_enabled() -> bool:
    return _state.enabled


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class _GradMode:
    """Context manager and decorator that sets grad mode for its extent."""

    def __init__(self, mode: bool):
        self.mode = mode

    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(self.mode)

    def __exit__(self, *exc):
        set_grad_enabled(self.prev)

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self.mode):
                return fn(*args, **kwargs)

        return wrapper


def no_grad():
    return _GradMode(False)


def enable_grad():
    return _GradMode(True)


def op_name(name) -> str:
    """An op's name as ops give it: a string, or their _C enum (UnaryOp.exp), whose .name is read only
    when shown (reading it takes longer than a small op's whole Python layer)."""
    return name if isinstance(name, str) else name.name


class Node:
    __slots__ = ("parents", "backward", "_name")

    def __init__(self, parents, backward, name):
        self.parents = parents      # tuple of Tensors (or None for non-tensor inputs)
        self.backward = backward    # grad_out (Tensor) -> tuple of grads (Tensor or None), one per parent
        self._name = name

    @property
    def name(self) -> str:
        return op_name(self._name)


# Set by em.autograd.detect_anomaly (anomaly.py) while it is active: check(out, parents, name)
# after each op's forward, check(node, grads) after each node's backward.
_forward_check = None
_backward_check = None


def attach(out, parents, backward, name):
    """Records out = op(parents) in the graph when grad mode is on and a parent needs a gradient."""
    if _forward_check is not None:
        _forward_check(out, parents, name)
    for p in parents:
        if p is not None and p.requires_grad:
            break
    else:
        return out
    if is_grad_enabled():
        out.requires_grad = True
        out._node = Node(tuple(parents), backward, name)
    return out


# ---- hooks (what DistributedDataParallel overlaps its gradient all-reduce with) ---------------
_grad_hooks: dict = {}       # id(leaf) -> [hook(leaf)], dropped when the leaf is collected
_end_callbacks: list = []    # run once when the backward pass in progress finishes


class HookHandle:
    def __init__(self, key, hook):
        self.key, self.hook = key, hook

    def remove(self):
        hooks = _grad_hooks.get(self.key, [])
        if self.hook in hooks:
            hooks.remove(self.hook)
        if not hooks:
            _grad_hooks.pop(self.key, None)


def register_post_accumulate_grad_hook(leaf, hook) -> HookHandle:
    """Calls hook(leaf) each time a backward pass has finished accumulating into leaf.grad (PyTorch's
    Tensor.register_post_accumulate_grad_hook): the grad is final for that pass when the hook runs,
    since a leaf is visited after every node that feeds it. Returns a handle with remove()."""
    if leaf._node is not None or not leaf.requires_grad:
        raise ValueError("[register_post_accumulate_grad_hook] the tensor must be a leaf that requires grad "
                         f"(shape {leaf.shape}, requires_grad={leaf.requires_grad}, leaf={leaf._node is None})")
    key = id(leaf)
    if key not in _grad_hooks:
        _grad_hooks[key] = []
        weakref.finalize(leaf, _grad_hooks.pop, key, None)  # an id is reused once its tensor is gone
    _grad_hooks[key].append(hook)
    return HookHandle(key, hook)


def queue_callback(fn) -> None:
    """Runs fn() once, when the backward pass in progress has finished (called from a hook)."""
    _end_callbacks.append(fn)


def _run_end_callbacks():
    while _end_callbacks:
        _end_callbacks.pop(0)()


def _topological_order(root):
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._node is not None:
            for p in t._node.parents:
                if p is not None and p.requires_grad and id(p) not in seen:
                    stack.append((p, False))
    return order[::-1]  # root first


def run_backward(root, grad):
    state, enabled = _state, _state.enabled  # no_grad() for the pass, without a context object per call
    state.enabled = False
    try:
        _backward_pass(_topological_order(root), {id(root): grad})
        _run_end_callbacks()
    finally:
        state.enabled = enabled
        _end_callbacks.clear()  # a failed pass leaves nothing queued for the next one


def _backward_pass(order, grads):
    for t in order:
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if t._node is None:  # a leaf: accumulate into .grad
            if t.grad is None:
                t.grad = type(g)._wrap(g._a.clone()) if g._a.same_storage(t._a) else g
            else:
                t.grad = t.grad + g
            if _grad_hooks:
                for hook in tuple(_grad_hooks.get(id(t), ())):
                    hook(t)
            continue
        if t._retain_grad:
            t.grad = g if t.grad is None else t.grad + g
        parent_grads = t._node.backward(g)
        if _backward_check is not None:
            _backward_check(t._node, parent_grads)
        for p, pg in zip(t._node.parents, parent_grads):
            if p is None or pg is None or not p.requires_grad:
                continue
            if pg._a.dtype != p._a.dtype:  # the arrays' dtype names: no dtype objects per edge
                pg = pg.to(p.dtype)
            if pg._a.shape != p._a.shape:
                raise RuntimeError(f"[backward] {t._node.name} produced a gradient of shape "
                                   f"{pg.shape} for an input of shape {p.shape}")
            prev = grads.get(id(p))
            grads[id(p)] = pg if prev is None else prev + pg
