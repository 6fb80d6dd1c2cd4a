"""Scaled dot-product attention against the naive float64 NumPy definition softmax(QK^T s + M) V,
forward and backward (analytic float64 gradients of the same definition), for causal and not, bool
and additive masks, odd lengths, head dims, dropout, cross-attention lengths; gradcheck; the
kernel's workspace growing linearly in T; PyTorch's SDPA when installed; bad input."""
import math

import numpy as np
import pytest

import ember as em
import ember.nn.functional as F
from helpers.check import assert_close, rng


def np_attention(q, k, v, mask=None, causal=False, scale=None, keep=None, p=0.0):
    """Output and the gradient function of the naive definition, in float64. keep: dropout mask."""
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    S = q @ np.swapaxes(k, -1, -2) * s
    if mask is not None:
        S = np.where(mask, S, -np.inf) if mask.dtype == bool else S + mask
    if causal:
        tq, tk = S.shape[-2:]
        S = np.where(np.tril(np.ones((tq, tk), bool)), S, -np.inf)
    mx = np.max(S, -1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    E = np.exp(S - mx)
    den = E.sum(-1, keepdims=True)
    P = np.where(den > 0, E / np.where(den > 0, den, 1), 0.0)
    Pd = P if keep is None else P * keep / (1 - p)
    out = Pd @ v

    def grads(dout):
        dv = np.swapaxes(Pd, -1, -2) @ dout
        dP = dout @ np.swapaxes(v, -1, -2)
        if keep is not None:
            dP = dP * keep / (1 - p)
        dS = P * (dP - (dP * P).sum(-1, keepdims=True)) * s
        return dS @ k, np.swapaxes(dS, -1, -2) @ q, dv

    return out, grads


def run_case(B, H, Tq, Tk, D, Dv=None, mask=None, causal=False, scale=None, dtype="float32", tol=2e-5):
    r, seed = rng()
    Dv = D if Dv is None else Dv
    q, k, v = r.standard_normal((B, H, Tq, D)), r.standard_normal((B, H, Tk, D)), r.standard_normal((B, H, Tk, Dv))
    dout = r.standard_normal((B, H, Tq, Dv))
    tq, tk, tv = (em.tensor(a, dtype=dtype, requires_grad=True) for a in (q, k, v))
    em_mask = None if mask is None else em.tensor(mask, dtype="bool" if mask.dtype == bool else dtype)
    out = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=em_mask, is_causal=causal, scale=scale)
    out.backward(em.tensor(dout, dtype=dtype))
    cast = lambda a: a.astype(np.float32).astype(np.float64) if dtype == "float32" else a  # noqa: E731
    want, grads = np_attention(cast(q), cast(k), cast(v), mask, causal, scale)
    msg = f"B={B} H={H} Tq={Tq} Tk={Tk} D={D} causal={causal} seed={seed}"
    assert_close(out.detach().numpy(), want, tol, msg=msg + " out")
    for name, got, exp in zip("qkv", (tq.grad, tk.grad, tv.grad), grads(cast(dout))):
        assert_close(got.numpy(), exp, tol * 5, msg=f"{msg} d{name}")


@pytest.mark.parametrize("T", [1, 17, 257, 1000])
@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_odd_lengths(T, causal):
    run_case(1, 2, T, T, 64, causal=causal)


@pytest.mark.parametrize("D", [32, 64, 128, 5])
def test_head_dims(D):
    run_case(2, 3, 73, 73, D, causal=D == 64)


def test_cross_attention_lengths_and_value_dim():
    run_case(2, 2, 19, 131, 16, Dv=24)
    run_case(1, 1, 200, 7, 8, Dv=3, causal=True)  # causal with Tk < Tq: top-left aligned, as PyTorch


def test_bool_padding_mask_broadcast():
    B, T = 3, 45
    lengths = np.array([45, 20, 1])
    mask = (np.arange(T)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, Tk): padding
    run_case(B, 2, T, T, 32, mask=mask)


def test_additive_mask_full_shape():
    r, _ = rng()
    mask = r.standard_normal((2, 3, 30, 41)) * 2
    mask[0, 1, :, 5:9] = -np.inf
    run_case(2, 3, 30, 41, 16, mask=mask, scale=0.3)


def test_float64_path_is_exact():
    run_case(1, 2, 130, 129, 24, causal=True, dtype="float64", tol=1e-12)


def test_fully_masked_rows_give_zeros_and_no_nan_gradients():
    q = em.randn(1, 1, 4, 8, requires_grad=True)
    k = em.randn(1, 1, 6, 8, requires_grad=True)
    v = em.randn(1, 1, 6, 8, requires_grad=True)
    mask = np.ones((4, 6), bool)
    mask[2] = False
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=em.tensor(mask))
    out.sum().backward()
    assert np.all(out.detach().numpy()[0, 0, 2] == 0)
    assert np.all(q.grad.numpy()[0, 0, 2] == 0)
    for g in (q.grad, k.grad, v.grad):
        assert np.all(np.isfinite(g.numpy()))


def test_leading_dims_other_than_two():
    r, seed = rng()
    q, k, v = (r.standard_normal(s) for s in ((5, 9, 8), (5, 11, 8), (5, 11, 4)))
    out = F.scaled_dot_product_attention(*(em.tensor(a, dtype="float64") for a in (q, k, v)))
    assert out.shape == (5, 9, 4)
    assert_close(out.detach().numpy(), np_attention(q, k, v)[0], 1e-12, msg=f"seed {seed}")


def test_dropout_matches_philox_mask_forward_and_backward():
    B, H, T, D, p = 2, 2, 37, 16, 0.3
    r, seed = rng()
    q, k, v = (r.standard_normal((B, H, T, D)) for _ in range(3))
    dout = r.standard_normal((B, H, T, D))
    g = em.Generator().manual_seed(seed)
    keep = em.rand(B, H, T, T, generator=g).numpy() >= p  # the same draws the kernel makes
    g.manual_seed(seed)
    tq, tk, tv = (em.tensor(a, dtype="float64", requires_grad=True) for a in (q, k, v))
    out = F.scaled_dot_product_attention(tq, tk, tv, dropout_p=p, is_causal=True, generator=g)
    out.backward(em.tensor(dout, dtype="float64"))
    want, grads = np_attention(q, k, v, causal=True, keep=keep, p=p)
    assert_close(out.detach().numpy(), want, 1e-12, msg=f"seed {seed}")
    for got, exp in zip((tq.grad, tk.grad, tv.grad), grads(dout)):
        assert_close(got.numpy(), exp, 1e-11, msg=f"seed {seed}")


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(causal):
    r, seed = rng()
    tens = [em.tensor(r.standard_normal(s), dtype="float64", requires_grad=True)
            for s in ((1, 2, 5, 3), (1, 2, 7, 3), (1, 2, 7, 4))]
    mask = None if causal else em.tensor(r.standard_normal((5, 7)), dtype="float64")
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)  # noqa: E731
    assert em.autograd.gradcheck(fn, tens, eps=1e-6, atol=1e-6, rtol=1e-4), f"seed {seed}"


def test_workspace_grows_linearly_not_quadratically():
    from ember.ops.attention import attention_workspace_bytes

    def ws(T, backward):
        q = em.zeros(1, 2, T, 64)
        return attention_workspace_bytes(q, q, q, backward)

    for backward in (False, True):
        small, big = ws(2048, backward), ws(8192, backward)
        assert big < 4.5 * small, (backward, small, big)  # 4x the length: ~4x memory, not 16x
        assert big < 8192 * 8192 * 4 / 4  # far below one float32 T x T matrix (256 MiB)


def test_matches_torch_sdpa():
    torch = pytest.importorskip("torch")
    r, seed = rng()
    q, k, v = (r.standard_normal((2, 4, 100, 32)).astype(np.float32) for _ in range(3))
    mask = r.random((2, 1, 100, 100)) > 0.2
    for kw_em, kw_t in (({"is_causal": True}, {"is_causal": True}),
                        ({"attn_mask": em.tensor(mask)}, {"attn_mask": torch.from_numpy(mask)})):
        got = F.scaled_dot_product_attention(em.tensor(q), em.tensor(k), em.tensor(v), **kw_em).numpy()
        want = torch.nn.functional.scaled_dot_product_attention(
            torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), **kw_t).numpy()
        assert_close(got, want, 1e-5, msg=f"seed {seed}")


def test_bad_input_names_op_and_shapes():
    q = em.zeros(2, 3, 5, 8)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention.*\(2, 3, 5, 8\)"):
        F.scaled_dot_product_attention(q, em.zeros(2, 3, 5, 7), em.zeros(2, 3, 5, 8))
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        F.scaled_dot_product_attention(q, q, em.zeros(2, 3, 6, 8))
    with pytest.raises(ValueError, match="does not broadcast"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=em.zeros(4, 5, dtype="bool"))
    with pytest.raises(TypeError, match="attn_mask"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=em.zeros(5, 5, dtype="int64"))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=em.ones(5, 5, dtype="bool"), is_causal=True)
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.0)


def test_strided_heads_are_read_in_place_and_match():
    """q, k, v sliced from one (B, T, 3, H, D) projection (no unit stride but along D), and a
    gradient arriving in yet another layout."""
    r, seed = rng()
    B, T, H, D = 2, 37, 3, 16
    qkv = r.standard_normal((B, T, 3, H, D))
    t = em.tensor(qkv, dtype="float64", requires_grad=True)
    heads = t.permute(2, 0, 3, 1, 4)  # (3, B, H, T, D) view
    out = F.scaled_dot_product_attention(heads[0], heads[1], heads[2], is_causal=True)
    merged = out.permute(0, 2, 1, 3).reshape(B, T, H * D)
    dout = r.standard_normal((B, T, H * D))
    merged.backward(em.tensor(dout, dtype="float64"))
    q, k, v = (np.transpose(qkv[:, :, i], (0, 2, 1, 3)) for i in range(3))
    want, grads = np_attention(q, k, v, causal=True)
    assert_close(merged.detach().numpy(), np.transpose(want, (0, 2, 1, 3)).reshape(B, T, H * D), 1e-12,
                 msg=f"seed {seed}")
    dq, dk, dv = grads(np.transpose(dout.reshape(B, T, H, D), (0, 2, 1, 3)))
    want_grad = np.stack([np.transpose(g, (0, 2, 1, 3)) for g in (dq, dk, dv)], 2)
    assert_close(t.grad.numpy(), want_grad, 1e-11, msg=f"seed {seed}")
