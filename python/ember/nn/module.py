"""Module: the container every layer and model derives from (PyTorch's contract). Assigning a
Parameter, a Module or a buffer to an attribute registers it, so parameters(), state_dict() and to()
find everything without being told. Keras-style compile/fit/evaluate/predict are methods of every
Module too: ember.training.model, which sits above nn, binds them (nn never imports training)."""
from __future__ import annotations

from collections import OrderedDict, namedtuple

from .. import dtypes
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (requires_grad=True unless told otherwise)."""
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        src = data if isinstance(data, Tensor) else Tensor(data)
        self._a = src.detach()._a
        self._init_autograd(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration ------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"[{type(self).__name__}] call super().__init__() before assigning attributes")
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        # Registered parameters and children are also plain attributes, so that reading one (self.weight,
        # in every forward) is an instance-dict hit, not a failed lookup and then __getattr__ (~0.4 us).
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(table)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self.__dict__.pop(name, None)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is None:
            self._parameters[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not trained (BatchNorm's running mean): in state_dict when
        persistent, moved by to()."""
        self._buffers[name] = tensor
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def add_module(self, name, module):
        setattr(self, name, module)

    # ---- traversal ---------------------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        """Every module, self first (as named_modules, without building the dotted names)."""
        yield self
        for m in self._modules.values():
            if m is not None:
                yield from m.modules()

    def children(self):
        return (m for m in self._modules.values() if m is not None)

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in modules:
            for name, p in m._parameters.items():
                if p is not None and id(p) not in seen:  # a shared (tied) parameter is listed once
                    seen.add(id(p))
                    yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse=True):
        """As named_parameters, without the names (zero_grad walks this every step)."""
        seen = set()
        for m in (self.modules() if recurse else (self,)):
            for p in m._parameters.values():
                if p is not None and id(p) not in seen:  # a shared (tied) parameter is listed once
                    seen.add(id(p))
                    yield p

    def named_buffers(self, prefix=""):
        for mprefix, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    def num_parameters(self, trainable_only=False):
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self, keep_vars=False):
        """Parameters and persistent buffers by dotted name, as PyTorch gives them: tensors outside
        the graph that share the module's storage (no copies; writing into one writes the module),
        or with keep_vars=True the Parameter objects themselves (requires_grad, .grad)."""
        out = OrderedDict()
        for mprefix, m in self.named_modules():
            skip = m.__dict__.get("_non_persistent", ())
            for table in (m._parameters, m._buffers):
                for name, t in table.items():
                    if t is not None and name not in skip:
                        out[f"{mprefix}.{name}" if mprefix else name] = t if keep_vars else t.detach()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copies values into this module's tensors in place (the optimizer keeps pointing at the
        same parameters). strict: the key sets must match exactly. Shapes must always match."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"[load_state_dict] {type(self).__name__}: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        for k, t in own.items():
            if k not in state_dict:
                continue
            src = state_dict[k]
            src = src if isinstance(src, Tensor) else Tensor(src)
            if tuple(src.shape) != tuple(t.shape):
                raise ValueError(f"[load_state_dict] {k}: shape {tuple(src.shape)} in the state dict, "
                                 f"{tuple(t.shape)} in the model")
            t._a.copy_(src._a)
        return IncompatibleKeys(missing, unexpected)

    # ---- modes and devices -------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Freezes (False) or unfreezes every parameter: frozen ones get no grad and no update."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = p.grad.detach() * 0

    def apply(self, fn):
        """Calls fn on every submodule, children first, then self (PyTorch's order)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs):
        """Moves/casts every parameter and buffer in place, so existing references stay valid."""
        for m in self.modules():
            for table in (m._parameters, m._buffers):
                for name, t in table.items():
                    if t is None:
                        continue
                    moved = t.to(*args, **kwargs)
                    if moved.dtype != t.dtype and not t.dtype.is_floating_point:
                        moved = moved.to(t.dtype)  # dtype casts apply to floating tensors only
                    t._a = moved._a
                    if t.grad is not None:
                        t.grad = t.grad.to(*args, **kwargs)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device)

    def float(self):
        return self.to(dtype=dtypes.float32)

    def double(self):
        return self.to(dtype=dtypes.float64)

    # ---- calling -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"[{type(self).__name__}] subclasses define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- repr --------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self.named_children():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        if len(lines) == 1:
            return lines[0] + ")"
        total = self.num_parameters()
        trainable = self.num_parameters(trainable_only=True)
        note = f"  # {total:,} parameters" + (f", {trainable:,} trainable" if trainable != total else "")
        return "\n".join(lines) + "\n)" + note
