"""Attention and transformer layers with PyTorch's names, state_dict keys and mask conventions:
MultiheadAttention (in_proj_weight/in_proj_bias, out_proj), TransformerEncoderLayer (self_attn,
linear1/2, norm1/2), TransformerDecoderLayer (plus multihead_attn and norm3 for cross-attention).
Attention itself is the flash-style kernel (F.scaled_dot_product_attention): no T x T matrix is
built unless need_weights asks for the weights."""
from __future__ import annotations

import math

from .. import dtypes
from ..ops.creation import empty, zeros
from ..ops.linalg import linear
from . import functional as F
from . import init
from .checks import positive_int, rate
from .layers import Dropout, Linear
from .module import Module, Parameter
from .norm import LayerNorm


def causal_mask(L, S, device=None):
    """(L, S) bool, True where query i may see key j <= i (top-left aligned, as SDPA's is_causal)."""
    from ..ops.creation import arange
    return arange(L, device=device).unsqueeze(1) >= arange(S, device=device).unsqueeze(0)


def attention_probabilities(q, k, mask=None, causal=False):
    """softmax(q k^T / sqrt(d) + mask) as a (B, H, L, S) tensor: the weights the flash kernel never
    materialises, built only when someone asks for them (need_weights, ember.explain). mask is an
    SDPA mask: bool True = may attend, or additive."""
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        mask = causal_mask(s.shape[-2], s.shape[-1], s.device)
    if mask is not None:
        s = s.masked_fill(~mask, -math.inf) if mask.dtype == dtypes.bool else s + mask
    return s.softmax(-1)


def record_weights(module, weights):
    """Hands a layer's (B, H, L, S) attention probabilities to the list that ember.explain set on
    it (module.attention_sink); a layer without a sink (the default) records nothing."""
    module.attention_sink.append(weights.detach().cpu().numpy())


def _sdpa_mask(attn_mask, key_padding_mask, B, H, L, S):
    """PyTorch's MHA masks (bool True = may NOT attend; float = added to the scores; attn_mask (L, S)
    or (B*H, L, S), key_padding_mask (B, S)) as one SDPA mask (bool True = may attend, or additive),
    broadcastable to (B, H, L, S)."""
    def allowed_or_additive(m, shape):
        m = m.reshape(*shape)
        return ~m if m.dtype == dtypes.bool else m

    parts = []
    if attn_mask is not None:
        if attn_mask.ndim == 3:
            parts.append(allowed_or_additive(attn_mask, (B, H, L, S)))
        else:
            parts.append(allowed_or_additive(attn_mask, (L, S)))
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (B, S):
            raise ValueError(f"[MultiheadAttention] key_padding_mask must be (batch, source length) = {(B, S)}, "
                             f"got {tuple(key_padding_mask.shape)}")
        parts.append(allowed_or_additive(key_padding_mask, (B, 1, 1, S)))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    a, b = parts
    if a.dtype == dtypes.bool and b.dtype == dtypes.bool:
        return a & b
    as_add = lambda m: zeros(*m.shape, device=m.device).masked_fill(~m, -math.inf) if m.dtype == dtypes.bool else m  # noqa: E731
    return as_add(a) + as_add(b)


class MultiheadAttention(Module):
    """PyTorch's nn.MultiheadAttention for embed_dim-sized queries, keys and values (kdim = vdim =
    embed_dim). forward returns (output, weights averaged over heads or None)."""

    attention_sink = None   # a list set by ember.explain.record_attention: every forward appends its weights

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, device=None, dtype=None):
        super().__init__()
        positive_int("MultiheadAttention", "embed_dim", embed_dim)
        positive_int("MultiheadAttention", "num_heads", num_heads)
        rate("MultiheadAttention", "dropout", dropout, top_inclusive=False)
        if embed_dim % num_heads:
            raise ValueError(f"[MultiheadAttention] embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        dtype = dtype or dtypes.float32
        self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dtype, device=device))
        self.in_proj_bias = Parameter(zeros(3 * embed_dim, dtype=dtype, device=device)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self):
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, x, i):
        E = self.embed_dim
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * E:(i + 1) * E]
        return linear(x, self.in_proj_weight[i * E:(i + 1) * E], b)

    def _heads(self, x, B, T):  # (B, T, E) -> (B, H, T, hd)
        return x.reshape(B, T, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (t.unsqueeze(1 if not self.batch_first else 0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if query.shape[-1] != self.embed_dim or key.shape[-1] != self.embed_dim or value.shape[-1] != self.embed_dim:
            raise ValueError(f"[MultiheadAttention] expects embed_dim {self.embed_dim} inputs, got query "
                             f"{query.shape}, key {key.shape}, value {value.shape}")
        B, L, S = query.shape[0], query.shape[1], key.shape[1]
        if query is key and key is value:  # self-attention: one GEMM for q, k and v
            qkv = linear(query, self.in_proj_weight, self.in_proj_bias)
            q, k, v = qkv.chunk(3, -1)
        else:
            q, k, v = self._project(query, 0), self._project(key, 1), self._project(value, 2)
        q, k, v = self._heads(q, B, L), self._heads(k, B, S), self._heads(v, B, S)
        mask = _sdpa_mask(attn_mask, key_padding_mask, B, self.num_heads, L, S)
        causal = is_causal and mask is None
        if is_causal and mask is not None and attn_mask is None:  # causal plus padding: one mask
            tri = causal_mask(L, S, q.device)
            mask = mask & tri if mask.dtype == dtypes.bool else mask.masked_fill(~tri, -math.inf)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        out = self.out_proj(out.permute(0, 2, 1, 3).reshape(B, L, self.embed_dim))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(1 if not self.batch_first else 0)
        weights = None
        if need_weights or self.attention_sink is not None:
            weights = attention_probabilities(q, k, mask, causal)
            if self.attention_sink is not None:
                record_weights(self, weights)
        if need_weights:
            weights = weights.mean(1) if average_attn_weights else weights
            if unbatched:
                weights = weights.squeeze(0)
        return out, weights if need_weights else None

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def _activation_fn(activation):
    if callable(activation):
        return activation
    if activation not in ("relu", "gelu"):
        raise ValueError(f"[Transformer] activation must be 'relu', 'gelu' or a callable, got {activation!r}")
    return activation


class _FeedForward:
    """linear2(dropout(act(linear1(x)))): relu runs fused in linear1's GEMM epilogue."""

    def _init_ff(self, d_model, dim_feedforward, dropout, activation, bias, device, dtype):
        positive_int(type(self).__name__, "dim_feedforward", dim_feedforward)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.activation = _activation_fn(activation)

    def _ff(self, x):
        if self.activation == "relu":
            h = linear(x, self.linear1.weight, self.linear1.bias, "relu")
        elif self.activation == "gelu":
            h = F.gelu(self.linear1(x))
        else:
            h = self.activation(self.linear1(x))
        return self.linear2(self.dropout(h))


class TransformerEncoderLayer(_FeedForward, Module):
    """Self-attention + feed-forward with residuals; post-norm (BERT, the original) or pre-norm
    (norm_first=True). PyTorch's constructor, forward and state_dict keys."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        Module.__init__(self)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, bias, batch_first, device, dtype)
        self._init_ff(d_model, dim_feedforward, dropout, activation, bias, device, dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)

    def _sa(self, x, mask, padding, causal):
        return self.dropout1(self.self_attn(x, x, x, key_padding_mask=padding, attn_mask=mask, need_weights=False,
                                            is_causal=causal)[0])

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self.dropout2(self._ff(self.norm2(x)))
        x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self.dropout2(self._ff(x)))


class TransformerDecoderLayer(_FeedForward, Module):
    """Causal self-attention, then (with cross_attention, PyTorch's default) attention over `memory`,
    then feed-forward. With cross_attention=False it is the GPT block: no multihead_attn/norm3.
    The self-attention is causal unless tgt_mask is given or tgt_is_causal=False (PyTorch's layer
    needs an explicit mask for that; ember makes the decoder's usual case the default)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, cross_attention=True, device=None, dtype=None):
        Module.__init__(self)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, bias, batch_first, device, dtype)
        self.cross_attention = cross_attention
        if cross_attention:
            self.multihead_attn = MultiheadAttention(d_model, nhead, dropout, bias, batch_first, device, dtype)
        self._init_ff(d_model, dim_feedforward, dropout, activation, bias, device, dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, layer_norm_eps, bias=bias, device=device, dtype=dtype)
        if cross_attention:
            self.norm3 = LayerNorm(d_model, layer_norm_eps, bias=bias, device=device, dtype=dtype)
            self.dropout3 = Dropout(dropout)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)

    def forward(self, tgt, memory=None, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        causal = tgt_mask is None if tgt_is_causal is None else tgt_is_causal
        if memory is not None and not self.cross_attention:
            raise ValueError("[TransformerDecoderLayer] memory given to a layer built with cross_attention=False")

        def sa(x):
            return self.dropout1(self.self_attn(x, x, x, key_padding_mask=tgt_key_padding_mask, attn_mask=tgt_mask,
                                                need_weights=False, is_causal=causal)[0])

        def ca(x):
            return self.dropout2(self.multihead_attn(x, memory, memory, key_padding_mask=memory_key_padding_mask,
                                                     attn_mask=memory_mask, need_weights=False,
                                                     is_causal=memory_is_causal)[0])

        use_memory = memory is not None
        ff_norm = self.norm3 if self.cross_attention else self.norm2
        ff_drop = self.dropout3 if self.cross_attention else self.dropout2
        x = tgt
        if self.norm_first:
            x = x + sa(self.norm1(x))
            if use_memory:
                x = x + ca(self.norm2(x))
            return x + ff_drop(self._ff(ff_norm(x)))
        x = self.norm1(x + sa(x))
        if use_memory:
            x = self.norm2(x + ca(x))
        return ff_norm(x + ff_drop(self._ff(x)))
