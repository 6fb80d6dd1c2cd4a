"""GPT: shapes, causality (a token's logits never depend on later tokens), the loss, generate's
determinism under a seed, greedy decoding with top_k=1, the text corpus, bad input."""
import numpy as np
import pytest

import ember as em
from ember.datasets import CharVocab, load_python_source
from ember.models import GPT, GPTConfig
from helpers.check import assert_close


def small():
    em.manual_seed(0)
    return GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=16))


def test_forward_shapes_loss_and_causality():
    model = small().eval()
    idx = np.random.default_rng(0).integers(0, 13, size=(3, 11))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 11, 13)
    assert abs(loss.item() - np.log(13)) < 0.5  # near uniform at initialisation
    changed = idx.copy()
    changed[:, 6:] = (changed[:, 6:] + 1) % 13
    with em.no_grad():
        a, b = model(idx).numpy(), model(changed).numpy()
    assert_close(a[:, :6], b[:, :6], 1e-6)
    assert np.abs(a[:, 6:] - b[:, 6:]).max() > 1e-4


def test_training_lowers_the_loss():
    model = small()
    opt = em.optim.Adam(model.parameters(), lr=1e-2)
    seq = np.tile(np.arange(13), 4)[None, :17]  # a deterministic pattern: next = current + 1
    first = None
    for _ in range(40):
        _, loss = model(seq[:, :-1], seq[:, 1:])
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_generate_is_seeded_and_greedy_with_top_k_1():
    model = small()
    em.manual_seed(7)
    a = model.generate([[1, 2, 3]], 20, temperature=1.0)
    em.manual_seed(7)
    b = model.generate([[1, 2, 3]], 20, temperature=1.0)
    assert a.shape == (1, 23) and np.array_equal(a, b)
    greedy = model.generate([[1, 2, 3]], 5, top_k=1)
    ctx = [1, 2, 3]
    for _ in range(5):
        with em.no_grad():
            ctx.append(int(model(np.array([ctx[-16:]]))[0, -1].numpy().argmax()))
    assert greedy[0].tolist() == ctx
    assert model.generate([[0]], 30).shape == (1, 31)  # longer than block_size: the context is cropped


def test_python_source_corpus_and_vocab():
    text = load_python_source(max_chars=5000)
    assert len(text) == 5000 and "def " in text
    vocab = CharVocab(text)
    assert vocab.decode(vocab.encode(text)) == text
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode("\x00")


def test_bad_input():
    model = small()
    with pytest.raises(ValueError, match="block_size 16"):
        model(np.zeros((1, 17), np.int64))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="temperature"):
        model.generate([[1]], 3, temperature=0)
