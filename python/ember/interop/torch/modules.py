"""Drop-in torch modules on ember's kernels, and patch(model).

Each module subclasses the torch module it replaces and overrides only forward: the parameters,
their names, init, state_dict, repr and isinstance checks stay torch's. So `et.Linear(4, 3)` is
built like torch.nn.Linear(4, 3), loads its state_dict, and patch() swaps a module in place by
setting its class: the same object, the same Parameter objects (an optimizer made before the patch
keeps working), the same hooks.

Supported configurations (others are left to torch, and patch() says so): Linear; Conv2d with
padding_mode='zeros'; LSTM/GRU without proj_size (a PackedSequence input runs torch's kernel);
MultiheadAttention with one packed in-projection (kdim = vdim = embed_dim), no bias_k/bias_v, no
add_zero_attn; LayerNorm; GELU."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import ops


class Linear(torch.nn.Linear):
    def forward(self, x):
        return ops.linear(x, self.weight, self.bias)


class Conv2d(torch.nn.Conv2d):
    def forward(self, x):
        if self.padding_mode != "zeros":
            raise ValueError(f"[ember.interop.torch.Conv2d] padding_mode {self.padding_mode!r} is not supported "
                             "(only 'zeros')")
        if x.dim() == 3:  # unbatched (C, H, W), as torch accepts
            return self.forward(x.unsqueeze(0)).squeeze(0)
        return ops.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class LayerNorm(torch.nn.LayerNorm):
    def forward(self, x):
        return ops.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class GELU(torch.nn.GELU):
    def forward(self, x):
        return ops.gelu(x, self.approximate)


# ---- recurrent --------------------------------------------------------------------------------

def _recurrent(self, input, hx, lstm: bool):
    """torch.nn.LSTM/GRU.forward on ember's per-layer ops: layers and directions in torch's order and
    parameter names, dropout between layers as torch applies it."""
    if isinstance(input, torch.nn.utils.rnn.PackedSequence):
        return type(self).__mro__[1].forward(self, input, hx)  # variable lengths: torch's kernel
    unbatched = input.dim() == 2
    x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
    dirs = 2 if self.bidirectional else 1
    B = x.shape[1]
    zeros = x.new_zeros(self.num_layers * dirs, B, self.hidden_size)
    if hx is None:
        h0, c0 = zeros, zeros
    else:
        h0, c0 = (hx if lstm else (hx, None))
        if unbatched:
            h0, c0 = h0.unsqueeze(1), (None if c0 is None else c0.unsqueeze(1))
    hs, cs = [], []
    for layer in range(self.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"l{layer}" + ("_reverse" if d else "")
            weights = [getattr(self, f"{n}_{sfx}", None) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            i = layer * dirs + d
            if lstm:
                out, h, c = ops.lstm_layer(x, h0[i], c0[i], *weights, reverse=bool(d))
                cs.append(c)
            else:
                out, h = ops.gru_layer(x, h0[i], *weights, reverse=bool(d))
            outs.append(out)
            hs.append(h)
        x = outs[0] if dirs == 1 else torch.cat(outs, -1)
        if self.dropout and self.training and layer < self.num_layers - 1:
            x = F.dropout(x, self.dropout, True)
    out = x.squeeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)
    h_n = torch.stack(hs)
    h_n = h_n.squeeze(1) if unbatched else h_n
    if not lstm:
        return out, h_n
    c_n = torch.stack(cs)
    return out, (h_n, c_n.squeeze(1) if unbatched else c_n)


class LSTM(torch.nn.LSTM):
    def forward(self, input, hx=None):
        if self.proj_size:
            raise ValueError("[ember.interop.torch.LSTM] proj_size is not supported")
        return _recurrent(self, input, hx, lstm=True)


class GRU(torch.nn.GRU):
    def forward(self, input, hx=None):
        return _recurrent(self, input, hx, lstm=False)


# ---- attention --------------------------------------------------------------------------------

def _allowed(mask):
    """A torch MHA mask (bool: True = masked out; float: added) in SDPA's convention (bool: True = attend)."""
    return mask.logical_not() if mask.dtype == torch.bool else mask


def _merge_masks(attn_mask, key_padding_mask, B, H, Tq, Tk, dtype):
    """torch MHA's attn_mask ((Tq, Tk) or (B*H, Tq, Tk)) and key_padding_mask ((B, Tk)) as one SDPA mask."""
    masks = []
    if attn_mask is not None:
        am = _allowed(attn_mask)
        masks.append(am.view(B, H, Tq, Tk) if am.dim() == 3 else am)
    if key_padding_mask is not None:
        masks.append(_allowed(key_padding_mask).view(B, 1, 1, Tk))
    if not masks:
        return None
    if len(masks) == 1:
        return masks[0]
    if all(m.dtype == torch.bool for m in masks):
        return masks[0] & masks[1]
    additive = [m if m.dtype != torch.bool else torch.zeros((), dtype=dtype, device=m.device).masked_fill(
        m.logical_not(), float("-inf")) for m in masks]
    return additive[0] + additive[1]


class MultiheadAttention(torch.nn.MultiheadAttention):
    """torch.nn.MultiheadAttention on ember's GEMM and flash attention. The attention weights (when
    need_weights=True) are computed apart, on ember's GEMM and torch's softmax, since the flash
    kernel never forms them; a query row with every key masked gives zeros, not NaN."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if not _mha_supported(self)[0]:
            raise ValueError(f"[ember.interop.torch.MultiheadAttention] {_mha_supported(self)[1]}")
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        if not self.batch_first or unbatched:  # (T, B, E) -> (B, T, E) views
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        B, Tq, E = query.shape
        Tk, H = key.shape[1], self.num_heads
        q, k, v = self._project(query, key, value)
        heads = lambda t: t.unflatten(-1, (H, E // H)).transpose(1, 2)  # noqa: E731 - (B, T, E) -> (B, H, T, D)
        q, k, v = heads(q), heads(k), heads(v)
        mask = _merge_masks(attn_mask, key_padding_mask, B, H, Tq, Tk, q.dtype)
        causal = is_causal and mask is None
        p = self.dropout if self.training else 0.0
        out = ops.scaled_dot_product_attention(q, k, v, mask, p, causal)
        out = ops.linear(out.transpose(1, 2).reshape(B, Tq, E), self.out_proj.weight, self.out_proj.bias)
        weights = self._weights(q, k, mask, causal, average_attn_weights) if need_weights else None
        if unbatched:
            return out.squeeze(0), (None if weights is None else weights.squeeze(0))
        return (out if self.batch_first else out.transpose(0, 1)), weights

    def _project(self, query, key, value):
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:  # self-attention: one GEMM for q, k and v
            return ops.linear(query, w, b).chunk(3, dim=-1)
        E = self.embed_dim
        bs = (None, None, None) if b is None else b.split(E)
        return tuple(ops.linear(t, wi, bi) for t, wi, bi in zip((query, key, value), w.split(E), bs))

    @staticmethod
    def _weights(q, k, mask, causal, average):
        scores = ops.matmul(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        if causal:
            mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
        if mask is not None:
            bool_mask = mask.dtype == torch.bool
            scores = scores.masked_fill(mask.logical_not(), float("-inf")) if bool_mask else scores + mask
        w = torch.softmax(scores, -1)
        return w.mean(1) if average else w


def _mha_supported(m):
    if not m._qkv_same_embed_dim:
        return False, "separate q/k/v projections (kdim or vdim != embed_dim) are not supported"
    if m.bias_k is not None or m.add_zero_attn:
        return False, "add_bias_kv and add_zero_attn are not supported"
    return True, ""


# ---- patch ------------------------------------------------------------------------------------

SWAPS = {torch.nn.Linear: Linear, torch.nn.Conv2d: Conv2d, torch.nn.LSTM: LSTM, torch.nn.GRU: GRU,
         torch.nn.MultiheadAttention: MultiheadAttention, torch.nn.LayerNorm: LayerNorm, torch.nn.GELU: GELU}


def _supported(m):
    """(ok, why not) for a module whose type has an ember version."""
    if isinstance(m, torch.nn.Conv2d) and m.padding_mode != "zeros":
        return False, f"padding_mode {m.padding_mode!r}"
    if isinstance(m, torch.nn.LSTM) and m.proj_size:
        return False, "proj_size"
    if isinstance(m, torch.nn.MultiheadAttention):
        return _mha_supported(m)
    return True, ""


@dataclass
class PatchReport:
    patched: list = field(default_factory=list)   # (name, torch type) swapped to ember
    left: list = field(default_factory=list)      # (name, torch type, why) leaf modules torch still runs

    def __str__(self):
        lines = [f"ember.interop.torch.patch: {len(self.patched)} modules on ember, {len(self.left)} left to torch"]
        lines += [f"  left: {name or '<model>'} ({kind}): {why}" for name, kind, why in self.left]
        return "\n".join(lines)


def _no_fast_path(module, args):
    """A forward pre-hook on torch's TransformerEncoderLayer: any hook turns off its fused inference
    path (torch._transformer_encoder_layer_fwd), which reads the weights directly and would bypass
    the ember modules inside."""
    return None


def patch(model: torch.nn.Module) -> PatchReport:
    """Swaps, in place, every submodule of `model` (and model itself) whose exact type has an ember
    version and a supported configuration. Returns which were swapped and which leaf modules were
    left to torch, and why."""
    report = PatchReport()
    inside = ()  # prefixes of the swapped modules: their children (MHA's out_proj) run in their forward
    for name, m in model.named_modules():
        if inside and name.startswith(inside):
            continue
        new = SWAPS.get(type(m))
        if new is not None:
            ok, why = _supported(m)
            if ok:
                m.__class__ = new
                report.patched.append((name, type(m).__mro__[1].__name__))
                inside += ((name + ".") if name else "",)
                continue
            report.left.append((name, type(m).__name__, why))
        elif isinstance(m, torch.nn.TransformerEncoderLayer):
            if _no_fast_path not in m._forward_pre_hooks.values():
                m.register_forward_pre_hook(_no_fast_path)
        elif isinstance(m, torch.nn.TransformerEncoder):
            m.use_nested_tensor = False  # its nested-tensor inference path would feed ember nested tensors
        elif type(m) not in SWAPS.values() and not list(m.children()):
            report.left.append((name, type(m).__name__, "no ember version"))
    return report
