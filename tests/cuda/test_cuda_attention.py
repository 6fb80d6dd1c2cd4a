"""CUDA attention, layer norm and the transformer pieces against the float64 CPU reference of
tests/test_attention.py: float32 and bfloat16/float16 storage, causal and not, padding and additive
masks, odd lengths, head dims up to 128, dropout (the same Philox draws as the CPU), strided heads;
outputs poisoned first (NaN-filled buffers would show unwritten elements). Skipped without a GPU."""
import numpy as np
import pytest

import ember as em
import ember.nn.functional as F
from helpers.check import assert_close, rng
from test_attention import np_attention

pytestmark = pytest.mark.cuda

TOL = {"float32": 2e-5, "bfloat16": 2e-2, "float16": 4e-3}


def run_on_cuda(B, H, Tq, Tk, D, Dv=None, dtype="float32", causal=False, mask=None):
    r, seed = rng()
    Dv = D if Dv is None else Dv
    q, k, v = r.standard_normal((B, H, Tq, D)), r.standard_normal((B, H, Tk, D)), r.standard_normal((B, H, Tk, Dv))
    dout = r.standard_normal((B, H, Tq, Dv))
    ts = [em.tensor(a, dtype=dtype, device="cuda", requires_grad=True) for a in (q, k, v)]
    m = None if mask is None else em.tensor(mask, device="cuda", dtype="bool" if mask.dtype == bool else dtype)
    out = F.scaled_dot_product_attention(*ts, attn_mask=m, is_causal=causal)
    out.backward(em.tensor(dout, dtype=dtype, device="cuda"))
    rounded = [t.detach().to("float64").cpu().numpy() for t in ts]
    want, grads = np_attention(*rounded, mask=mask, causal=causal)
    msg = f"{dtype} B{B} H{H} Tq{Tq} Tk{Tk} D{D} causal={causal} seed={seed}"
    tol = TOL[dtype]
    assert_close(out.detach().to("float64").cpu().numpy(), want, tol, msg=msg)
    for name, t, g in zip("qkv", ts, grads(em.tensor(dout, dtype=dtype).to("float64").numpy())):
        assert_close(t.grad.to("float64").cpu().numpy(), g, tol * 10, msg=f"{msg} d{name}")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("T", [1, 17, 257, 1000])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_reference(dtype, T, causal):
    run_on_cuda(2, 3, T, T, 64, dtype=dtype, causal=causal)


@pytest.mark.parametrize("D", [32, 128, 5])
def test_head_dims_and_cross_lengths(D):
    run_on_cuda(1, 2, 45, 131, D, Dv=D if D != 5 else 7)


def test_masks():
    r, _ = rng()
    pad = (np.arange(40)[None, :] < np.array([40, 9, 1])[:, None])[:, None, None, :]
    run_on_cuda(3, 2, 40, 40, 32, mask=pad)
    run_on_cuda(2, 2, 33, 50, 16, mask=r.standard_normal((2, 2, 33, 50)))


def test_dropout_matches_cpu():
    r, seed = rng()
    q, k, v = (r.standard_normal((2, 2, 70, 32)).astype(np.float32) for _ in range(3))
    outs = []
    for device in ("cpu", "cuda"):
        g = em.Generator().manual_seed(seed)
        ts = [em.tensor(a, device=device) for a in (q, k, v)]
        outs.append(F.scaled_dot_product_attention(*ts, dropout_p=0.25, generator=g).cpu().numpy())
    assert_close(outs[1], outs[0], 1e-4, msg=f"seed {seed}")


def test_layer_norm_matches_cpu():
    r, seed = rng()
    x, w, b = r.standard_normal((37, 385)), r.standard_normal(385), r.standard_normal(385)
    dy = r.standard_normal((37, 385))
    res = {}
    for device in ("cpu", "cuda"):
        tx, tw, tb = (em.tensor(a, device=device, requires_grad=True) for a in (x, w, b))
        y = F.layer_norm(tx, 385, tw, tb)
        y.backward(em.tensor(dy, device=device, dtype="float32"))
        res[device] = [a.detach().cpu().numpy() for a in (y, tx.grad, tw.grad, tb.grad)]
    for got, want in zip(res["cuda"], res["cpu"]):
        assert_close(got, want, 1e-4, msg=f"seed {seed}")


def test_bert_layer_on_cuda_matches_cpu():
    cfg = em.models.BertConfig(vocab_size=60, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=96, max_position_embeddings=32)
    em.manual_seed(0)
    model = em.models.BertModel(cfg).eval()
    ids = np.random.default_rng(0).integers(0, 60, size=(3, 20))
    mask = np.ones((3, 20), np.int64)
    mask[1, 12:] = 0
    with em.no_grad():
        want = model(ids, mask).numpy()
        got = model.to("cuda")(em.tensor(ids, device="cuda"), em.tensor(mask, device="cuda")).cpu().numpy()
    assert_close(got, want, 1e-4)
