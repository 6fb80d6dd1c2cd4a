"""ember: a small deep-learning framework with hand-written C++ and CUDA kernels.

    import ember as em
    x = em.randn(3, 4, requires_grad=True)
    (x.relu() * 2).sum().backward()
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import _C
from .dtypes import (bfloat16, bool, double, dtype, float, float16, float32, float64, half, int,  # noqa: A004
                     int32, int64, long)
from .device import device
from .tensor import Tensor
from .random import Generator, default_generator, initial_seed, manual_seed, seed
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from . import autograd, cuda
from . import amp
from .amp import autocast
from .ops.creation import (arange, empty, empty_like, eye, full, full_like, linspace, ones, ones_like, rand,
                           rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like)
from .ops.elementwise import (abs, add, clamp, clip, div, eq, exp, ge, gelu, gt, le, log, logical_and,  # noqa: A004
                              logical_not, logical_or, lt, maximum, minimum, mul, ne, neg, pow, reciprocal,
                              relu, sigmoid, sign, silu, sqrt, square, sub, tanh, where)
from .ops.reduce import (all, amax, amin, any, argmax, argmin, log_softmax, logsumexp, max, mean, min,  # noqa: A004
                         prod, softmax, std, sum, var)
from .ops.shape import (broadcast_to, cat, chunk, concat, flatten, permute, reshape, split, squeeze, stack,
                        transpose, unsqueeze)
from .ops.linalg import bmm, linear, matmul, mm
from .ops.index import gather, index_select, masked_fill, nonzero, scatter_add
from .interop import from_dlpack, from_numpy
from . import data, datasets, distributed, explain, io, nn, optim, training, tune
from . import models
from .data import preprocessing
from .io import load, load_checkpoint, save, save_checkpoint
from .training import callbacks, metrics

# em.preprocessing / em.callbacks / em.metrics also work as import paths ("from ember.callbacks
# import EarlyStopping"), as in Keras; the modules themselves live in data/ and training/.
import sys as _sys
for _name, _mod in {"preprocessing": preprocessing, "callbacks": callbacks, "metrics": metrics}.items():
    _sys.modules[f"{__name__}.{_name}"] = _mod
del _sys, _name, _mod


def set_num_threads(n: int) -> None:
    """Threads used by CPU kernels (OpenMP)."""
    _C.set_num_threads(n)


def get_num_threads() -> int:
    return _C.get_num_threads()


def set_float32_matmul_precision(precision: str) -> None:
    """PyTorch's setting of the same name: "highest" (the default) keeps float32 matmuls exact;
    "high" and "medium" let CUDA use TF32 tensor cores (inputs rounded to a 10-bit mantissa, float32
    accumulation: ~1e-3 relative error, several times faster). The CPU ignores it."""
    _C.set_float32_matmul_precision(precision)


def get_float32_matmul_precision() -> str:
    return _C.get_float32_matmul_precision()


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)
