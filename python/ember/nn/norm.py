"""LayerNorm, and BatchNorm1d / BatchNorm2d (PyTorch's semantics, names and buffers: weight, bias, running_mean,
running_var, num_batches_tracked). Training normalises with the batch's statistics (biased
variance) and updates the running ones as running = (1 - momentum) * running + momentum * batch (unbiased
variance); momentum=None makes that a cumulative average (factor 1 / num_batches_tracked). Eval uses the
running statistics. The arithmetic is ember.ops.norm.batch_norm, on the fused kernels."""
from __future__ import annotations

from ..autograd import no_grad
from ..ops.creation import ones, zeros
from ..ops.norm import batch_norm, layer_norm
from . import init
from .checks import positive, positive_int, rate
from .module import Module, Parameter


class _BatchNorm(Module):
    """A bias just before a batch norm (Conv2d(bias=True) -> BatchNorm2d) has a true gradient of zero: what
    arrives is rounding noise, which Adam normalises into steps of +-lr in a sign neither framework controls.
    Such a bias, and the running mean that follows it, drifts apart from PyTorch's after a few steps even
    though both are right (measured: 0.09 after 20 Adam steps at lr 1e-2; 1e-7 with SGD). Use bias=False."""
    dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None):
        super().__init__()
        name = type(self).__name__
        num_features, eps = positive_int(name, "num_features", num_features), positive(name, "eps", eps)
        if momentum is not None:
            momentum = rate(name, "momentum", momentum)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(ones(num_features, dtype=dtype, device=device))
            self.bias = Parameter(zeros(num_features, dtype=dtype, device=device))
        else:
            self.weight = self.bias = None
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", zeros((), dtype="int64", device=device))
        else:
            self.running_mean = self.running_var = None

    def reset_parameters(self):
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        if x.ndim not in self.dims:
            raise ValueError(f"[{type(self).__name__}] expects a {' or '.join(map(str, self.dims))}-d input, "
                             f"got shape {x.shape}")
        use_batch = self.training or not self.track_running_stats
        momentum = self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.copy_(self.num_batches_tracked + 1)
            if momentum is None:  # PyTorch's cumulative moving average
                momentum = 1.0 / int(self.num_batches_tracked.item())
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_batch,
                          0.0 if momentum is None else momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    dims = (4,)


class LayerNorm(Module):
    """Normalises over the trailing normalized_shape dims (PyTorch's names: weight, bias), on the fused
    layer-norm kernel. bias=False keeps the weight only, as in PyTorch."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        shape = tuple(positive_int("LayerNorm", "normalized_shape", n) for n in shape)
        eps = positive("LayerNorm", "eps", eps)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = Parameter(ones(*shape, dtype=dtype, device=device)) if elementwise_affine else None
        self.bias = Parameter(zeros(*shape, dtype=dtype, device=device)) if elementwise_affine and bias else None

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
