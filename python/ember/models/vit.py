"""A Vision Transformer (Dosovitskiy et al. 2021) sized for small images such as the 8x8 digits:
the image is cut into patch x patch squares, each flattened and linearly embedded; a learned [CLS]
token and learned position embeddings are added, pre-norm encoder layers (nn.TransformerEncoderLayer,
GELU) mix the tokens, and a linear head reads the final layer-normed [CLS] token.

Attention maps come out through ember.explain.attention_maps(vit, images): one (B, heads, 1 + P,
1 + P) array per layer, token 0 being [CLS]."""
from __future__ import annotations

from dataclasses import dataclass

from .. import nn
from ..nn import init
from ..ops.creation import zeros
from ..ops.shape import cat


@dataclass
class ViTConfig:
    image_size: int = 8
    patch_size: int = 2
    channels: int = 1
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_dim: int = 128
    dropout: float = 0.1
    classes: int = 10
    pool: str = "cls"       # "cls": the [CLS] token feeds the head; "mean": the mean of the patch tokens

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class ViT(nn.Module):
    def __init__(self, config: ViTConfig = None, **overrides):
        super().__init__()
        c = config or ViTConfig(**overrides)
        if config is not None and overrides:
            raise ValueError("[ViT] pass either a ViTConfig or keyword settings, not both")
        if c.pool not in ("cls", "mean"):
            raise ValueError(f"[ViT] pool must be 'cls' or 'mean', got {c.pool!r}")
        if c.image_size % c.patch_size:
            raise ValueError(f"[ViT] image_size {c.image_size} is not a multiple of patch_size {c.patch_size}")
        self.config = c
        self.patch_embed = nn.Linear(c.channels * c.patch_size ** 2, c.dim)
        self.cls_token = nn.Parameter(zeros(1, 1, c.dim))
        self.pos_embed = nn.Parameter(zeros(1, 1 + c.patches, c.dim))
        # Position embeddings start as large as the patch embeddings: at ViT's usual std 0.02 they are
        # drowned out, the model starts blind to where each patch is, and on the 8x8 digits it sat at
        # chance for the first 2-3 epochs (measured); at std 1 it learns from the first epoch.
        init.normal_(self.pos_embed, std=1.0)
        self.dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(c.dim, c.heads, c.mlp_dim, c.dropout, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.classes)

    def patchify(self, x):
        """(B, C, H, W), or (B, H, W) when C = 1 -> (B, patches, C * patch * patch), row-major patches."""
        c = self.config
        B = x.shape[0]
        expect = (c.image_size, c.image_size) if c.channels == 1 and x.ndim == 3 else \
            (c.channels, c.image_size, c.image_size)
        if tuple(x.shape[1:]) != expect:
            raise ValueError(f"[ViT] expects images (B, {', '.join(map(str, expect))}), got shape {x.shape}")
        g, p = c.image_size // c.patch_size, c.patch_size
        x = x.reshape(B, c.channels, g, p, g, p).permute(0, 2, 4, 1, 3, 5)   # (B, g, g, C, p, p)
        return x.reshape(B, g * g, c.channels * p * p)

    def forward(self, x):
        tokens = self.patch_embed(self.patchify(x))
        B = tokens.shape[0]
        h = cat([self.cls_token.expand(B, 1, self.config.dim), tokens], 1) + self.pos_embed
        h = self.dropout(h)
        for layer in self.layers:
            h = layer(h)
        pooled = h[:, 0] if self.config.pool == "cls" else h[:, 1:].mean(1)
        return self.head(self.norm(pooled))
