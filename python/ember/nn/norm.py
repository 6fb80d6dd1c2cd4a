"""BatchNorm1d / BatchNorm2d (PyTorch's semantics, names and buffers: weight, bias, running_mean,
running_var, num_batches_tracked). Training normalises with the batch's statistics (biased
variance) and updates the running ones with momentum (unbiased variance); eval uses the running
statistics. Written with ember's reductions and broadcast arithmetic; autograd derives the backward.
(A fused one-pass kernel, csrc/*/norm, is still to come: see docs/kernels/conv.md.)"""
from __future__ import annotations

from ..autograd import no_grad
from ..ops.creation import ones, zeros
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


def batch_norm(x: Tensor, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5) -> Tensor:
    """x (N, C, *): per-channel normalisation over every dim but 1."""
    if x.ndim < 2:
        raise ValueError(f"[batch_norm] expects x (N, C, ...), got shape {x.shape}")
    C = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"[batch_norm] {name} must have shape ({C},) for x {x.shape}, got {tuple(t.shape)}")
    dims = [0] + list(range(2, x.ndim))
    view = [1, C] + [1] * (x.ndim - 2)
    if training:
        count = x.numel() // C
        if count < 2:
            raise ValueError(f"[batch_norm] training needs more than one value per channel, got input {x.shape}")
        mean = x.mean(dims)
        var = x.var(dims, correction=0)
        if running_mean is not None:
            with no_grad():
                running_mean.copy_(running_mean * (1 - momentum) + mean.detach() * momentum)
                running_var.copy_(running_var * (1 - momentum) + var.detach() * (momentum * count / (count - 1)))
    else:
        if running_mean is None:
            raise ValueError("[batch_norm] eval mode needs running statistics")
        mean, var = running_mean, running_var
    scale = (var + eps).sqrt().reciprocal()
    if weight is not None:
        scale = scale * weight
    out = (x - mean.reshape(view)) * scale.reshape(view)
    return out + bias.reshape(view) if bias is not None else out


class _BatchNorm(Module):
    dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None):
        super().__init__()
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
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.copy_(self.num_batches_tracked + 1)
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_batch, self.momentum,
                          self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    dims = (4,)
