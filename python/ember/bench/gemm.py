"""GEMM: GFLOP/s of ember's matmul next to NumPy (OpenBLAS) and PyTorch in the same run, as a ratio
to the best peer and as a fraction of the FP32 peak (the measured per-core FMA rate times the
threads; see harness.fp32_peak_gflops). Small sizes are also timed through the public API
(`a @ b` on Tensors), since there the call overhead is the cost a user sees."""
from __future__ import annotations

import os

import numpy as np

import ember as em
from ember import _C

from .harness import Result, fp32_peak_gflops, time_ms, torch_peer


def _cases(quick):
    squares = [32, 64, 128, 256, 512, 1024] + ([] if quick else [2048, 4096])
    cases = [(f"square_{n}", (n, n), (n, n), False, False) for n in squares]
    t = 128 if quick else 512  # tokens: a BERT-base layer's MLP, forward and both backward products
    cases += [
        ("mlp_up x@W1", (t, 768), (768, 3072), False, False),
        ("mlp_down h@W2", (t, 3072), (3072, 768), False, False),
        ("dX = dY@W^T", (t, 3072), (3072, 768), False, True),
        ("dW = X^T@dY", (768, t), (t, 3072), True, False),
        ("batched_attn", (16, 128, 64), (16, 64, 128), False, False),
        ("batched_256", (8, 256, 256), (8, 256, 256), False, False),
    ]
    return cases


def run(device="cpu", quick=False, repeat=10):
    rng = np.random.default_rng(0)
    torch = torch_peer(device)
    cuda = str(device).startswith("cuda")
    peak = float("nan") if cuda else fp32_peak_gflops()
    results = []
    for name, sa, sb, ta, tb in _cases(quick):
        a = rng.standard_normal(sa[::-1] if ta else sa).astype(np.float32)
        b = rng.standard_normal(sb[::-1] if tb else sb).astype(np.float32)
        A, Bm = (a.T if ta else a), (b.T if tb else b)
        ea, eb = em.tensor(a, device=device), em.tensor(b, device=device)
        ea, eb = (ea.t() if ta else ea), (eb.t() if tb else eb)
        out = em.Tensor._wrap(_C.matmul(ea._a, eb._a)).cpu().numpy()
        ref = A.astype(np.float64) @ Bm.astype(np.float64)
        k = A.shape[-1]
        valid = np.allclose(out, ref, rtol=1e-4, atol=1e-5 * np.sqrt(k) * np.abs(ref).max())
        flops = 2.0 * np.prod(ref.shape) * k
        ms = time_ms(lambda: _C.matmul(ea._a, eb._a), device, repeat) if valid else float("nan")
        peer, peer_ms = ("numpy", time_ms(lambda: A @ Bm, "cpu", repeat)) if not cuda else ("", float("nan"))
        if torch is not None:
            tA, tB = torch.from_numpy(a), torch.from_numpy(b)
            if cuda:
                tA, tB = tA.cuda(), tB.cuda()
            tA, tB = (tA.T if ta else tA), (tB.T if tb else tB)
            t_ms = time_ms(lambda: (tA @ tB, torch.cuda.synchronize() if cuda else None), "cpu", repeat)
            if not peer or t_ms < peer_ms:
                peer, peer_ms = "torch", t_ms
        shape = f"{'x'.join(map(str, A.shape))}@{'x'.join(map(str, Bm.shape[-2:]))}"
        results.append(Result("gemm", name, shape, "float32", str(device), ms, flops / ms / 1e6, "GFLOP/s",
                              peer, peer_ms, flops / peer_ms / 1e6, peak, bool(valid)))
        if not cuda and sa[0] <= 256 and len(sa) == 2:  # the public API's time per call
            api_ms = time_ms(lambda: ea @ eb, device, repeat)
            np_ms = time_ms(lambda: A @ Bm, "cpu", repeat)
            results.append(Result("gemm", name + " (api)", shape, "float32", str(device), api_ms,
                                  flops / api_ms / 1e6, "GFLOP/s", "numpy", np_ms, flops / np_ms / 1e6, peak, bool(valid)))
    return results


def plot(results, path):
    """GFLOP/s against size for the square cases (PNG), when matplotlib is installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sq = [r for r in results if r.case.startswith("square_") and "(api)" not in r.case]
    if not sq:
        return None
    n = [int(r.case.split("_")[1]) for r in sq]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(n, [r.rate for r in sq], "o-", label="ember")
    ax.plot(n, [r.peer_rate for r in sq], "s--", label=sq[0].peer or "peer")
    if sq[0].roofline == sq[0].roofline:
        ax.axhline(sq[0].roofline, color="gray", lw=0.8, label="FP32 peak")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("n (n x n x n)")
    ax.set_ylabel("GFLOP/s")
    ax.legend()
    ax.grid(alpha=0.3)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path
