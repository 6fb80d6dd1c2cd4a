"""BERT as Hugging Face lays it out, so a folder with config.json + model.safetensors loads as it is
(parameter names are the checkpoint's: embeddings.word_embeddings.weight,
encoder.layer.N.attention.self.query.weight, ...), and SentenceEncoder: sentence-transformers'
pipeline for models such as all-MiniLM-L6-v2 (tokenise with the folder's tokenizer.json, encode,
mean-pool over the attention mask, L2-normalise).

The encoder layer is post-norm: x = LN(x + attn(x)); x = LN(x + W2 gelu(W1 x)). Attention runs on the
flash-style kernel with the padding mask as a bool (B, 1, 1, T) mask; q, k and v come from one GEMM
over the three weights side by side."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..nn import functional as F
from ..nn.transformer import attention_probabilities, record_weights
from ..ops.creation import arange, tensor, zeros
from ..ops.linalg import linear
from ..ops.shape import cat
from ..tensor import Tensor


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            raw = json.load(f)
        if raw.get("model_type", "bert") != "bert":
            raise ValueError(f"[BertConfig] {path} describes a {raw.get('model_type')!r} model, not BERT")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"[BertConfig] only absolute position embeddings are supported ({path})")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


# hidden_act -> the fused GEMM epilogue's name (ember.ops.linalg.linear).
_ACTS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}


class _Dense(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual): BERT's attention output and layer output."""

    def __init__(self, n_in, n_out, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        self.LayerNorm = nn.LayerNorm(n_out, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _SelfAttention(nn.Module):
    attention_sink = None   # a list set by ember.explain.record_attention: every forward appends its weights

    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads, self.head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        self.query, self.key, self.value = (nn.Linear(c.hidden_size, c.hidden_size) for _ in range(3))
        self.p = c.attention_probs_dropout_prob

    def forward(self, x, mask):
        B, T, E = x.shape
        w = cat([self.query.weight, self.key.weight, self.value.weight], 0)
        b = cat([self.query.bias, self.key.bias, self.value.bias], 0)
        qkv = linear(x, w, b).reshape(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask,
                                             dropout_p=self.p if self.training else 0.0)
        if self.attention_sink is not None:
            record_weights(self, attention_probabilities(qkv[0], qkv[1], mask))
        return out.permute(0, 2, 1, 3).reshape(B, T, E)


class _Attention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Dense(c.hidden_size, c.hidden_size, c)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        if c.hidden_act not in _ACTS:
            raise ValueError(f"[BertModel] unsupported hidden_act {c.hidden_act!r}; expected one of {sorted(_ACTS)}")
        self.dense, self.act = nn.Linear(c.hidden_size, c.intermediate_size), _ACTS[c.hidden_act]

    def forward(self, x):
        return linear(x, self.dense.weight, self.dense.bias, self.act)


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention, self.intermediate = _Attention(c), _Intermediate(c)
        self.output = _Dense(c.intermediate_size, c.hidden_size, c)

    def forward(self, x, mask):
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, ids, token_type_ids):
        T = ids.shape[1]
        pos = arange(T, device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class _Pooler(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, hidden):
        return self.dense(hidden[:, 0]).tanh()


def _as_ids(x, device, name):
    t = x if isinstance(x, Tensor) else tensor(np.asarray(x, dtype=np.int64), device=device)
    if t.ndim != 2:
        raise ValueError(f"[BertModel] {name} must be (batch, tokens), got shape {t.shape}")
    return t


class BertModel(nn.Module):
    """bert(input_ids, attention_mask=None, token_type_ids=None) -> last hidden state (B, T, hidden);
    bert.pooler(hidden) gives BERT's pooled [CLS] output."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"[BertModel] hidden_size {config.hidden_size} is not divisible by "
                             f"num_attention_heads {config.num_attention_heads}")
        self.config = config
        self.embeddings, self.encoder = _Embeddings(config), _Encoder(config)
        self.pooler = _Pooler(config) if add_pooling_layer else None

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        ids = _as_ids(input_ids, None, "input_ids")
        B, T = ids.shape
        if T > self.config.max_position_embeddings:
            raise ValueError(f"[BertModel] {T} tokens exceed max_position_embeddings "
                             f"{self.config.max_position_embeddings}")
        types = zeros(B, T, dtype="int64", device=ids.device) if token_type_ids is None else \
            _as_ids(token_type_ids, ids.device, "token_type_ids")
        mask = None
        if attention_mask is not None:
            am = _as_ids(attention_mask, ids.device, "attention_mask")
            if tuple(am.shape) != (B, T):
                raise ValueError(f"[BertModel] attention_mask {am.shape} must match input_ids {ids.shape}")
            mask = (am != 0).reshape(B, 1, 1, T)
        return self.encoder(self.embeddings(ids, types), mask)

    @classmethod
    def from_pretrained(cls, path, add_pooling_layer: bool = True) -> "BertModel":
        """Loads a Hugging Face BERT folder (config.json + model.safetensors). Keys may carry a
        'bert.' prefix (checkpoints saved from a task model); heads other than the pooler are
        ignored, and every parameter of this model must be present."""
        from ..io.safetensors_io import load
        model = cls(BertConfig.from_json(os.path.join(path, "config.json")), add_pooling_layer)
        weights = os.path.join(path, "model.safetensors")
        if not os.path.exists(weights):
            raise FileNotFoundError(f"[BertModel.from_pretrained] no model.safetensors in {path}")
        raw = load(weights)
        own = model.state_dict()
        state = {k[5:] if k.startswith("bert.") else k: v for k, v in raw.items()}
        missing = [k for k in own if k not in state]
        if missing:
            raise KeyError(f"[BertModel.from_pretrained] {weights} lacks {len(missing)} parameters, e.g. {missing[:3]}")
        model.load_state_dict({k: state[k] for k in own})
        return model.eval()


class SentenceEncoder:
    """sentence-transformers' encoding: tokens -> BERT -> mean over the attention mask -> L2 norm.
    encode(list_of_str) -> np.ndarray (N, hidden), float32."""

    def __init__(self, model: BertModel, tokenizer, max_length: int = 256, normalize: bool = True):
        self.model, self.tokenizer, self.max_length, self.normalize = model, tokenizer, max_length, normalize
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=model.config.pad_token_id)

    @classmethod
    def from_pretrained(cls, path) -> "SentenceEncoder":
        try:
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ImportError("[SentenceEncoder] needs the tokenizers package: pip install 'ember[bert]'") from e
        max_length = 256
        cfg = os.path.join(path, "sentence_bert_config.json")
        if os.path.exists(cfg):
            with open(cfg) as f:
                max_length = int(json.load(f).get("max_seq_length", max_length))
        normalize = True
        modules = os.path.join(path, "modules.json")
        if os.path.exists(modules):
            with open(modules) as f:
                normalize = any(m.get("type", "").endswith("Normalize") for m in json.load(f))
        model = BertModel.from_pretrained(path, add_pooling_layer=False)
        return cls(model, Tokenizer.from_file(os.path.join(path, "tokenizer.json")), max_length, normalize)

    def tokenize(self, sentences):
        """(input_ids, attention_mask, token_type_ids) as int64 (N, T) arrays, padded to the longest."""
        enc = self.tokenizer.encode_batch(list(sentences))
        as_array = lambda attr: np.array([getattr(e, attr) for e in enc], dtype=np.int64)  # noqa: E731
        return as_array("ids"), as_array("attention_mask"), as_array("type_ids")

    def embed(self, ids, mask, types) -> Tensor:
        """Pooled (and normalised) embeddings as a Tensor, differentiable (for fine-tuning)."""
        hidden = self.model(ids, mask, types)
        m = (tensor(mask, device=hidden.device) if not isinstance(mask, Tensor) else mask).to(hidden.dtype)
        m = m.unsqueeze(-1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = pooled / (pooled * pooled).sum(-1, keepdim=True).sqrt().clamp(min=1e-12)
        return pooled

    def encode(self, sentences, batch_size: int = 32) -> np.ndarray:
        if isinstance(sentences, str):
            sentences = [sentences]
        sentences = list(sentences)
        out = np.zeros((len(sentences), self.model.config.hidden_size), dtype=np.float32)
        # Sorting by length keeps each batch's padding short (sentence-transformers does the same).
        order = np.argsort([-len(s) for s in sentences], kind="stable")
        was_training = self.model.training
        self.model.eval()
        with no_grad():
            for start in range(0, len(sentences), batch_size):
                pick = order[start:start + batch_size]
                out[pick] = self.embed(*self.tokenize(sentences[i] for i in pick)).numpy()
        self.model.train(was_training)
        return out


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, d) arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-30)


