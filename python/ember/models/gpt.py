"""A small decoder-only transformer (GPT-2's layout): token + position embeddings, pre-norm causal
blocks (nn.TransformerDecoderLayer without cross-attention, GELU feed-forward), a final LayerNorm
and a linear head over the vocabulary. generate() samples with temperature and top-k."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..nn import functional as F
from ..ops.creation import arange, rand, tensor
from ..tensor import Tensor


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 128   # the longest context the position table covers
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([
            nn.TransformerDecoderLayer(c.n_embd, c.n_head, 4 * c.n_embd, c.dropout, activation="gelu",
                                       batch_first=True, norm_first=True, cross_attention=False)
            for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self):
        # GPT-2's: N(0, 0.02) for embeddings and projections, zero biases; residual projections
        # scaled by 1/sqrt(2 n_layer) so the residual stream's variance does not grow with depth.
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.ndim == 2:
                residual = name.endswith(("out_proj.weight", "linear2.weight"))
                nn.init.normal_(p, 0.0, std / (2 * self.config.n_layer) ** 0.5 if residual else std)

    def forward(self, idx, targets=None):
        """idx (B, T) int64 -> logits (B, T, vocab); with targets (B, T), (logits, mean cross-entropy)."""
        idx = idx if isinstance(idx, Tensor) else tensor(np.asarray(idx, dtype=np.int64))
        if idx.ndim != 2:
            raise ValueError(f"[GPT] expects token ids (B, T), got shape {idx.shape}")
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"[GPT] sequence of {T} tokens exceeds block_size {self.config.block_size}")
        x = self.drop(self.wte(idx) + self.wpe(arange(T, device=idx.device)))
        for block in self.blocks:
            x = block(x)  # causal self-attention
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        t = targets if isinstance(targets, Tensor) else tensor(np.asarray(targets, dtype=np.int64))
        return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), t.reshape(-1))

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None, generator=None) -> np.ndarray:
        """Appends max_new_tokens sampled tokens to each row of idx (B, T); returns (B, T + new) int64.
        The context is cropped to the last block_size tokens; temperature divides the logits; top_k
        keeps the k most likely tokens. Draws come from ember's Philox stream (em.manual_seed)."""
        if temperature <= 0:
            raise ValueError(f"[GPT.generate] temperature must be > 0, got {temperature}")
        seq = np.array(idx, dtype=np.int64, ndmin=2)
        was_training = self.training
        self.eval()
        with no_grad():
            for _ in range(max_new_tokens):
                ctx = seq[:, -self.config.block_size:]
                logits = self(ctx)[:, -1].numpy().astype(np.float64) / temperature
                if top_k is not None and top_k < logits.shape[-1]:
                    kth = np.sort(logits, -1)[:, -top_k][:, None]
                    logits = np.where(logits < kth, -np.inf, logits)
                p = np.exp(logits - logits.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                u = rand(len(seq), 1, generator=generator, dtype="float64").numpy()
                nxt = np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1)
                seq = np.concatenate([seq, nxt[:, None]], 1)
        self.train(was_training)
        return seq
