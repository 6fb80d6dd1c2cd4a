"""ember's kernels inside PyTorch models.

    import ember.interop.torch as et
    y = et.linear(x, w, b, activation="relu")      # torch tensors in, torch tensors out, autograd works
    report = et.patch(model)                        # swap supported submodules for ember-backed ones
    opt = et.AdamW(model.parameters(), lr=1e-3)     # ember's fused single-pass update on torch params

The ops are `torch.library` custom ops in the namespace `ember` (torch.ops.ember.linear, ...) with
registered backward and fake kernels, so torch.autograd and torch.compile(fullgraph=True) see them
as single ops. Tensors cross through DLPack without copies. See docs/interop.md.

Importing this module imports torch; `import ember` alone never does."""
from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only where torch is absent
    raise ImportError("ember.interop.torch needs PyTorch: pip install 'ember[torch]' (or pip install torch>=2.4)") \
        from e

from ._bridge import to_ember, to_torch
from .modules import GELU, GRU, LSTM, Conv2d, LayerNorm, Linear, MultiheadAttention, PatchReport, patch
from .ops import conv2d, gelu, gru_layer, layer_norm, linear, lstm_layer, matmul, scaled_dot_product_attention
from .optim import SGD, Adam, AdamW

__all__ = ["to_ember", "to_torch", "matmul", "linear", "gelu", "layer_norm", "scaled_dot_product_attention", "conv2d",
           "lstm_layer", "gru_layer", "Linear", "Conv2d", "LSTM", "GRU", "MultiheadAttention", "LayerNorm", "GELU",
           "patch", "PatchReport", "SGD", "Adam", "AdamW"]
