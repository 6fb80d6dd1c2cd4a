"""Conv1d and Conv2d: PyTorch's layers (parameter names, shapes (O, C/groups, *kernel) and
initialisation: weight and bias uniform in +-1/sqrt(fan_in)), on ember.ops.conv."""
from __future__ import annotations

import math

from .. import dtypes
from ..ops import conv as C
from ..ops.creation import empty
from . import init
from .checks import int_tuple, positive_int
from .module import Module, Parameter


class _ConvNd(Module):
    """The shared layer; subclasses set `dims` and `op` (the functional form they run)."""
    dims = 0
    op = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 device=None, dtype=None):
        super().__init__()
        dims = self.dims
        name = type(self).__name__
        positive_int(name, "in_channels", in_channels), positive_int(name, "out_channels", out_channels)
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"[{name}] groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        kernel = int_tuple(name, "kernel_size", kernel_size, dims, 1)
        int_tuple(name, "stride", stride, dims, 1), int_tuple(name, "dilation", dilation, dims, 1)
        if not isinstance(padding, str):  # 'same' and 'valid' are the functional form's to check
            int_tuple(name, "padding", padding, dims, 0)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        dtype = dtype or dtypes.float32
        self.weight = Parameter(empty(out_channels, in_channels // groups, *kernel, dtype=dtype, device=device))
        self.bias = Parameter(empty(out_channels, dtype=dtype, device=device)) if bias else None
        fan_in = (in_channels // groups) * math.prod(kernel)
        bound = 1.0 / math.sqrt(fan_in)   # = kaiming_uniform(a=sqrt(5)), PyTorch's default
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        extra = "".join(f", {k}={getattr(self, k)}" for k, d in (("stride", 1), ("padding", 0), ("dilation", 1),
                                                                     ("groups", 1)) if getattr(self, k) != d)
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}{extra}"
                + ("" if self.bias is not None else ", bias=False"))

    def forward(self, x):
        return self.op(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    dims, op = 1, staticmethod(C.conv1d)


class Conv2d(_ConvNd):
    dims, op = 2, staticmethod(C.conv2d)
