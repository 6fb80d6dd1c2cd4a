"""Layer norm, embedding and the transformer layers: layer norm forward/backward against float64
NumPy and gradcheck; embedding's gather and deterministic scatter-add gradient; MultiheadAttention
and the encoder/decoder layers against PyTorch with the same state_dict (keys identical); masks;
bad input."""
import numpy as np
import pytest

import ember as em
import ember.nn as nn
import ember.nn.functional as F
from helpers.check import assert_close, gradcheck_op, rng


def np_layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


@pytest.mark.parametrize("n", [1, 7, 33, 384, 1000])
def test_layer_norm_forward_backward(n):
    r, seed = rng()
    x, w, b = r.standard_normal((5, 3, n)) * 3 + 1, r.standard_normal(n), r.standard_normal(n)
    dy = r.standard_normal((5, 3, n))
    tx, tw, tb = (em.tensor(a, dtype="float32", requires_grad=True) for a in (x, w, b))
    y = F.layer_norm(tx, n, tw, tb, 1e-5)
    y.backward(em.tensor(dy, dtype="float32"))
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    assert_close(y.detach().numpy(), np_layer_norm(f32(x), f32(w), f32(b), 1e-5), 2e-5, msg=f"seed {seed}")
    # Analytic float64 gradients of the definition.
    xf, wf = f32(x), f32(w)
    mu, var = xf.mean(-1, keepdims=True), xf.var(-1, keepdims=True)
    xhat, rstd = (xf - mu) / np.sqrt(var + 1e-5), 1 / np.sqrt(var + 1e-5)
    g = dy * wf
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    assert_close(tx.grad.numpy(), dx, 1e-4, msg=f"dx seed {seed}")
    assert_close(tw.grad.numpy(), (dy * xhat).sum((0, 1)), 1e-4, msg=f"dw seed {seed}")
    assert_close(tb.grad.numpy(), dy.sum((0, 1)), 1e-5, msg=f"db seed {seed}")


def test_layer_norm_gradcheck_and_multi_dim_shape():
    gradcheck_op(lambda x, w, b: F.layer_norm(x, (2, 3), w, b), [(4, 2, 3), (2, 3), (2, 3)])
    gradcheck_op(lambda x: F.layer_norm(x, 5), [(3, 5)])


def test_layer_norm_module_matches_torch():
    torch = pytest.importorskip("torch")
    t = torch.nn.LayerNorm(17, eps=1e-12)
    with torch.no_grad():
        t.weight.normal_(), t.bias.normal_()
    e = nn.LayerNorm(17, eps=1e-12)
    e.load_state_dict({k: em.tensor(v.numpy()) for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 17)).astype(np.float32)
    assert_close(e(em.tensor(x)).detach().numpy(), t(torch.from_numpy(x)).detach().numpy(), 1e-5)


def test_embedding_gather_and_gradient():
    r, seed = rng()
    emb = nn.Embedding(11, 6, padding_idx=0)
    assert np.all(emb.weight.detach().numpy()[0] == 0)
    idx = r.integers(0, 11, size=(4, 9))
    out = emb(em.tensor(idx))
    assert out.shape == (4, 9, 6)
    assert_close(out.detach().numpy(), emb.weight.detach().numpy()[idx], 0)
    dy = r.standard_normal((4, 9, 6))
    out.backward(em.tensor(dy, dtype="float32"))
    want = np.zeros((11, 6))
    np.add.at(want, idx, dy)
    want[0] = 0  # padding_idx gets no gradient
    assert_close(emb.weight.grad.numpy(), want, 1e-5, msg=f"seed {seed}")
    with pytest.raises(IndexError, match=r"embedding.*\[0, 11\)"):
        emb(em.tensor([[3, 11]]))


def _copy_weights(e, t):
    assert sorted(e.state_dict()) == sorted(t.state_dict()), "state_dict keys differ from PyTorch's"
    e.load_state_dict({k: em.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first, activation):
    torch = pytest.importorskip("torch")
    t = torch.nn.TransformerEncoderLayer(32, 4, 61, dropout=0.0, activation=activation, batch_first=True,
                                         norm_first=norm_first).eval()
    e = nn.TransformerEncoderLayer(32, 4, 61, dropout=0.0, activation=activation, batch_first=True,
                                   norm_first=norm_first).eval()
    _copy_weights(e, t)
    r, seed = rng()
    x = r.standard_normal((3, 13, 32)).astype(np.float32)
    pad = np.zeros((3, 13), bool)
    pad[1, 6:] = True
    with torch.no_grad():
        want = t(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(pad)).numpy()
    got = e(em.tensor(x), src_key_padding_mask=em.tensor(pad)).detach().numpy()
    assert_close(got, want, 2e-5, msg=f"seed {seed}")


def test_decoder_layer_matches_torch_and_gradients_flow():
    torch = pytest.importorskip("torch")
    t = torch.nn.TransformerDecoderLayer(16, 2, 40, dropout=0.0).eval()
    e = nn.TransformerDecoderLayer(16, 2, 40, dropout=0.0).eval()
    _copy_weights(e, t)
    r, seed = rng()
    x, mem = r.standard_normal((9, 2, 16)).astype(np.float32), r.standard_normal((5, 2, 16)).astype(np.float32)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(9)
    tx = torch.from_numpy(x).requires_grad_()
    want = t(tx, torch.from_numpy(mem), tgt_mask=causal, tgt_is_causal=True)
    want.sum().backward()
    ex = em.tensor(x, requires_grad=True)
    got = e(ex, em.tensor(mem))  # causal by default
    got.sum().backward()
    assert_close(got.detach().numpy(), want.detach().numpy(), 2e-5, msg=f"seed {seed}")
    assert_close(ex.grad.numpy(), tx.grad.numpy(), 1e-4, msg=f"seed {seed}")
    for (name, p), tp in zip(e.named_parameters(), [dict(t.named_parameters())[n] for n, _ in e.named_parameters()]):
        assert_close(p.grad.numpy(), tp.grad.numpy(), 1e-4, msg=f"{name} seed {seed}")


def test_gpt_block_has_no_cross_attention():
    blk = nn.TransformerDecoderLayer(16, 2, 32, cross_attention=False, batch_first=True)
    assert not any(k.startswith(("multihead_attn", "norm3")) for k in blk.state_dict())
    x = em.randn(2, 7, 16)
    y = blk.eval()(x)
    # Causal: the first 3 outputs do not depend on later positions.
    x2 = x.detach().numpy().copy()
    x2[:, 3:] = 0
    y2 = blk(em.tensor(x2))
    assert_close(y.detach().numpy()[:, :3], y2.detach().numpy()[:, :3], 1e-6)
    with pytest.raises(ValueError, match="cross_attention=False"):
        blk(x, em.randn(2, 3, 16))


def test_multihead_attention_masks_and_weights_match_torch():
    torch = pytest.importorskip("torch")
    t, e = torch.nn.MultiheadAttention(16, 4).eval(), nn.MultiheadAttention(16, 4).eval()
    _copy_weights(e, t)
    r, seed = rng()
    q, k = r.standard_normal((4, 3, 16)).astype(np.float32), r.standard_normal((6, 3, 16)).astype(np.float32)
    for am in (r.standard_normal((4, 6)).astype(np.float32), r.random((4, 6)) < 0.3):
        am[:, 0] = 0 if am.dtype != bool else False
        kpm = np.zeros((3, 6), bool)
        kpm[2, 4:] = True
        if am.dtype != bool:  # PyTorch wants both masks of one kind
            kpm = np.where(kpm, -np.inf, 0).astype(np.float32)
        with torch.no_grad():
            o_t, w_t = t(*(torch.from_numpy(a) for a in (q, k, k)), attn_mask=torch.from_numpy(am),
                         key_padding_mask=torch.from_numpy(kpm))
        o_e, w_e = e(em.tensor(q), em.tensor(k), em.tensor(k), attn_mask=em.tensor(am), key_padding_mask=em.tensor(kpm))
        assert_close(o_e.detach().numpy(), o_t.numpy(), 2e-5, msg=f"seed {seed}")
        assert_close(w_e.detach().numpy(), w_t.numpy(), 2e-5, msg=f"seed {seed}")


def test_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match=r"layer_norm.*\(4, 5\)"):
        F.layer_norm(em.zeros(4, 5), 6)
    with pytest.raises(ValueError, match="embed_dim 8"):
        nn.MultiheadAttention(8, 2, batch_first=True)(em.zeros(1, 3, 6), em.zeros(1, 3, 6), em.zeros(1, 3, 6))
    with pytest.raises(ValueError, match="key_padding_mask"):
        mha = nn.MultiheadAttention(8, 2, batch_first=True)
        x = em.zeros(2, 3, 8)
        mha(x, x, x, key_padding_mask=em.zeros(2, 4, dtype="bool"))
