"""ember.explain against cases with a known answer (a linear model: IG = (x - b) * w exactly; a
quadratic: IG = x^2), central finite differences of a float64 NumPy copy of an MLP, completeness of
integrated gradients, and attention probabilities against float64 NumPy softmax(q k^T / sqrt(d))."""
import numpy as np
import pytest

import ember as em
import ember.explain as ex
import ember.nn as nn
from ember.models import BertConfig, BertModel
from helpers.check import assert_close, rng

F64 = 2.0 ** -53


def linear_model(n_in, n_out):
    m = nn.Linear(n_in, n_out).double()
    return m, m.weight.detach().numpy(), m.bias.detach().numpy()


class Quadratic(nn.Module):
    def forward(self, x):
        return (x * x).sum(-1)


def mlp(n_in, hidden, n_out):
    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out)).double()


def np_mlp(model):
    """A float64 NumPy copy of mlp(): shares no code with ember."""
    p = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return lambda x: np.tanh(x @ p["0.weight"].T + p["0.bias"]) @ p["2.weight"].T + p["2.bias"]


def fd_grad(f, x, target, h=1e-6):
    """d f(x)[i, target[i]] / d x[i] by central differences, one sample at a time."""
    g = np.zeros_like(x)
    for i in range(len(x)):
        for j in range(x.shape[1]):
            e = np.zeros_like(x[i])
            e[j] = h
            g[i, j] = (f(x[i] + e)[target[i]] - f(x[i] - e)[target[i]]) / (2 * h)
    return g


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (7, 3), (13, 1)])
def test_linear_model_attributions_are_exact(n_in, n_out):
    r, seed = rng()
    m, w, b = linear_model(n_in, n_out)
    x, base = r.standard_normal((5, n_in)), r.standard_normal(n_in)
    t = r.integers(0, n_out, 5)
    wt = w[t]  # each sample's gradient: its target row of w
    tol = 8 * F64 * n_in
    assert_close(ex.saliency(m, x, t), np.abs(wt), tol, msg=f"seed {seed}")
    assert_close(ex.saliency(m, x, t, absolute=False), wt, tol, msg=f"seed {seed}")
    assert_close(ex.gradient_x_input(m, x, t), x * wt, tol, msg=f"seed {seed}")
    for steps in (1, 5):
        attr, gap = ex.integrated_gradients(m, x, t, baseline=base, steps=steps, return_gap=True)
        assert_close(attr, (x - base) * wt, tol * 4, msg=f"IG steps={steps} seed {seed}")
        assert np.all(np.abs(gap) < 1e-12), gap
    assert_close(ex.smoothgrad(m, x, t, samples=3), wt, tol, msg=f"seed {seed}")


def test_quadratic_integrated_gradients_equal_x_squared():
    r, seed = rng()
    x = r.standard_normal((4, 9))
    attr = ex.integrated_gradients(Quadratic().double(), x, steps=1)  # 1 Gauss node integrates 2*alpha*x exactly
    assert_close(attr, x * x, 8 * F64, msg=f"seed {seed}")
    assert_close(ex.saliency(Quadratic().double(), x, absolute=False), 2 * x, 8 * F64, msg=f"seed {seed}")


@pytest.mark.parametrize("n_in,hidden,n_out", [(1, 3, 2), (5, 17, 3), (11, 8, 4)])
def test_mlp_gradients_match_finite_differences(n_in, hidden, n_out):
    r, seed = rng()
    m = mlp(n_in, hidden, n_out)
    x = r.standard_normal((3, n_in))
    t = r.integers(0, n_out, 3)
    ref = fd_grad(np_mlp(m), x, t)
    assert_close(ex.saliency(m, x, t, absolute=False), ref, 1e-7, msg=f"seed {seed}")
    assert_close(ex.gradient_x_input(m, x, t), x * ref, 1e-7, msg=f"seed {seed}")


def test_integrated_gradients_complete_and_converged_on_an_mlp():
    r, seed = rng()
    m = mlp(6, 10, 3)
    f = np_mlp(m)
    x, base = r.standard_normal((4, 6)) * 2, r.standard_normal((4, 6)) * 0.1
    t = r.integers(0, 3, 4)
    attr, gap = ex.integrated_gradients(m, x, t, baseline=base, steps=24, return_gap=True)
    fx, fb = f(x)[np.arange(4), t], f(base)[np.arange(4), t]
    assert_close(attr.sum(1), fx - fb, 1e-9, msg=f"completeness, seed {seed}")
    assert np.all(np.abs(gap) < 1e-9), gap
    # The path integral by the midpoint rule over finite-difference gradients of the NumPy copy.
    alphas = (np.arange(400) + 0.5) / 400
    ref = sum(fd_grad(f, base + a * (x - base), t) for a in alphas) / len(alphas) * (x - base)
    assert_close(attr, ref, 1e-5, msg=f"seed {seed}")
    assert_close(ex.completeness_gap(m, x, attr, t, base), gap, 1e-12)


def test_integrated_gradients_check_raises_when_steps_are_too_few():
    m = mlp(4, 6, 2)
    x = np.random.default_rng(3).standard_normal((3, 4)) * 4
    with pytest.raises(ValueError, match="completeness fails"):
        ex.integrated_gradients(m, x, steps=1, check=1e-9)
    ex.integrated_gradients(m, x, steps=48, check=1e-6)


def test_smoothgrad_averages_noisy_gradients():
    r, seed = rng()
    x = r.standard_normal((3, 50))
    q = Quadratic().double()
    assert_close(ex.smoothgrad(q, x, noise=0.0, samples=2), 2 * x, 8 * F64)
    n, level = 64, 0.1
    sg = ex.smoothgrad(q, x, samples=n, noise=level, seed=7)
    sigma = level * (x.max(1) - x.min(1))[:, None]
    # grad = 2 (x + sigma eps): the mean over n draws is within 6 standard errors of 2x.
    assert np.all(np.abs(sg - 2 * x) < 6 * 2 * sigma / np.sqrt(n)), f"seed {seed}"
    assert np.array_equal(sg, ex.smoothgrad(q, x, samples=n, noise=level, seed=7))
    assert not np.array_equal(sg, ex.smoothgrad(q, x, samples=n, noise=level, seed=8))


def test_targets_default_to_the_prediction_and_the_model_is_left_as_it_was():
    m = mlp(5, 7, 4).train()
    x = np.random.default_rng(0).standard_normal((6, 5))
    pred = np.argmax(np_mlp(m)(x), 1)
    assert np.array_equal(ex.saliency(m, x), ex.saliency(m, x, pred))
    assert m.training and all(p.requires_grad and p.grad is None for p in m.parameters())
    with pytest.raises(IndexError, match=r"\[saliency\] target classes must be in \[0, 4\)"):
        ex.saliency(m, x, 4)
    with pytest.raises(ValueError, match=r"\[saliency\] target must be an int or one class per sample"):
        ex.saliency(m, x, [0, 1])
    with pytest.raises(TypeError, match=r"\[gradient_x_input\] attributions need a floating input"):
        ex.gradient_x_input(m, np.zeros((2, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"baseline of shape \(3,\) does not broadcast"):
        ex.integrated_gradients(m, x, baseline=np.zeros(3))


def test_float32_models_work_too():
    m = nn.Sequential(nn.Linear(8, 3))
    x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    attr, gap = ex.integrated_gradients(m, x, 1, return_gap=True)
    assert attr.dtype == np.float32 and np.all(np.abs(gap) < 1e-5)


# ---- attention ---------------------------------------------------------------------------------

def np_softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_self_attention(x, wq, bq, wk, bk, heads, allowed=None):
    """(B, H, T, T) softmax(q k^T / sqrt(d)) with keys outside `allowed` (B, T) masked out."""
    B, T, E = x.shape
    d = E // heads
    q = (x @ wq.T + bq).reshape(B, T, heads, d).transpose(0, 2, 1, 3)
    k = (x @ wk.T + bk).reshape(B, T, heads, d).transpose(0, 2, 1, 3)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    if allowed is not None:
        s = np.where(allowed[:, None, None, :], s, -np.inf)
    return np_softmax(s)


@pytest.mark.parametrize("T,E,H", [(1, 4, 1), (7, 12, 3), (13, 8, 2)])
def test_encoder_layer_attention_maps_match_float64_numpy(T, E, H):
    r, seed = rng()
    layer = nn.TransformerEncoderLayer(E, H, 2 * E, dropout=0.1, batch_first=True).double()
    x = r.standard_normal((3, T, E))
    pad = np.zeros((3, T), dtype=bool)
    pad[1, T // 2 + 1:] = True  # PyTorch's convention: True = padding, not attended to
    tx, tpad = em.tensor(x), em.tensor(pad)
    plain = layer.eval()(tx, src_key_padding_mask=tpad).detach().numpy()
    maps = ex.attention_maps(layer, tx, src_key_padding_mask=tpad)
    w, b = layer.self_attn.in_proj_weight.detach().numpy(), layer.self_attn.in_proj_bias.detach().numpy()
    ref = np_self_attention(x, w[:E], b[:E], w[E:2 * E], b[E:2 * E], H, ~pad)
    assert len(maps) == 1 and maps[0].shape == (3, H, T, T)
    assert_close(maps[0], ref, 64 * F64 * E, msg=f"seed {seed}")
    # Recording changes nothing, and the layers forget the sink afterwards.
    with ex.record_attention(layer):
        recorded = layer(tx, src_key_padding_mask=tpad).detach().numpy()
    assert np.array_equal(recorded, plain)
    assert layer.self_attn.attention_sink is None


def test_decoder_layer_maps_are_causal():
    layer = nn.TransformerDecoderLayer(8, 2, 16, batch_first=True, cross_attention=False).double()
    maps = ex.attention_maps(layer, np.random.default_rng(0).standard_normal((2, 6, 8)))
    assert maps[0].shape == (2, 2, 6, 6)
    assert np.all(np.triu(maps[0], 1) == 0) and np.allclose(maps[0].sum(-1), 1)


def test_bert_attention_maps_per_layer_and_head():
    r, seed = rng()
    cfg = BertConfig(vocab_size=50, hidden_size=12, num_hidden_layers=3, num_attention_heads=3,
                     intermediate_size=20, max_position_embeddings=16)
    bert = BertModel(cfg).double()
    ids = r.integers(1, 50, (2, 9))
    mask = np.ones((2, 9), dtype=np.int64)
    mask[0, 6:] = 0
    maps = ex.attention_maps(bert, ids, mask)
    assert [m.shape for m in maps] == [(2, 3, 9, 9)] * 3
    assert np.all(maps[1][0, :, :, 6:] == 0), "padding keys get no attention"
    # Layer 0 from the embeddings' output (eval mode: no dropout).
    bert.eval()
    x = bert.embeddings(em.tensor(ids), em.zeros(2, 9, dtype="int64")).detach().numpy()
    sa = bert.encoder.layer[0].attention.self
    w = {k: v.detach().numpy() for k, v in sa.state_dict().items()}
    ref = np_self_attention(x, w["query.weight"], w["query.bias"], w["key.weight"], w["key.bias"], 3, mask.astype(bool))
    assert_close(maps[0], ref, 64 * F64 * 12, msg=f"seed {seed}")


def test_attention_rollout_hand_computed():
    a1 = np.array([[[[1.0, 0.0], [0.5, 0.5]]]])   # (B=1, H=1, 2, 2)
    a2 = np.array([[[[0.0, 1.0], [1.0, 0.0]]]])
    # With the residual: layer 1 -> [[1, 0], [.25, .75]], layer 2 -> [[.5, .5], [.5, .5]];
    # rollout = layer2 @ layer1 = [[.625, .375], [.625, .375]].
    out = ex.attention_rollout([a1, a2])
    assert_close(out[0], np.array([[0.625, 0.375], [0.625, 0.375]]), 4 * F64)
    assert_close(ex.attention_rollout([a1, a2], residual=False)[0], np.array([[0.5, 0.5], [1.0, 0.0]]), 4 * F64)
    two_heads = np.concatenate([a1, a2], axis=1)  # mean over heads: [[.5, .5], [.75, .25]]
    assert_close(ex.attention_rollout([two_heads], residual=False)[0], np.array([[0.5, 0.5], [0.75, 0.25]]), 4 * F64)
    eye = np.eye(5)[None, None].repeat(2, 0)
    assert_close(ex.attention_rollout([eye, eye, eye]), np.eye(5)[None].repeat(2, 0), 4 * F64)
    with pytest.raises(ValueError, match=r"\[attention_rollout\] every map must be self-attention"):
        ex.attention_rollout([a1, np.ones((1, 1, 2, 3)) / 3])
    with pytest.raises(ValueError, match="no attention layers"):
        ex.attention_maps(mlp(2, 2, 2), np.zeros((1, 2)))


def test_plots_write_png_files(tmp_path):
    pytest.importorskip("matplotlib")
    x = np.random.default_rng(0).random((3, 8, 8))
    p = ex.plot_attributions(x, [x - 0.5, -x], tmp_path / "attr.png", titles=["a", "b", "c"],
                             row_names=["one", "two"])
    q = ex.plot_attention(np.random.default_rng(1).random((2, 4, 4)), tmp_path / "att.png", tokens=list("abcd"))
    for path in (p, q):
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["att.png", "attr.png"]
    with pytest.raises(ValueError, match=r"\[plot_attention\] expects \(L, S\) maps"):
        ex.plot_attention([np.zeros(3)], tmp_path / "bad.png")
