"""Pooling layers (PyTorch's names and arguments), on ember.ops.pool."""
from __future__ import annotations

from ..ops import pool as P
from ..ops.pool import _pair as _checked_pair
from .module import Module


def _check_window(layer, kernel_size, stride, padding, dilation):
    """The functional form's checks, made when the layer is (its input is not needed for them)."""
    _checked_pair(kernel_size, "kernel_size", layer, 1)
    _checked_pair(kernel_size if stride is None else stride, "stride", layer, 1)
    _checked_pair(padding, "padding", layer), _checked_pair(dilation, "dilation", layer, 1)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        _check_window("MaxPool2d", kernel_size, stride, padding, dilation)
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return P.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        _check_window("AvgPool2d", kernel_size, stride, padding, 1)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        return P.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
        _checked_pair([1 if s is None else s for s in sizes], "output_size", "AdaptiveAvgPool2d", 1)  # None: keep
        self.output_size = output_size

    def forward(self, x):
        return P.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
