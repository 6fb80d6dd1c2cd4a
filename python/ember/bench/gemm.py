"""GEMM: GFLOP/s of ember's matmul next to NumPy (OpenBLAS) and PyTorch in the same run, as a ratio
to the best peer and as a fraction of the FP32 peak (the measured per-core FMA rate times the
threads; see harness.fp32_peak_gflops). Small sizes are also timed through the public API
(`a @ b` on Tensors), since there the call overhead is the cost a user sees.

On CUDA (`--device cuda`) every path of csrc/cuda/gemm.cu is run per dtype: float32 (exact),
tf32 (em.set_float32_matmul_precision("high") and torch.backends.cuda.matmul.allow_tf32 = True),
bfloat16 and float16; square sizes 256..8192 and transformer shapes; rates in GFLOP/s next to
PyTorch (cuBLAS) in the same run, and the roofline is the dense tensor-core (or FP32) peak of the
device's datasheet (GPU_PEAK_TFLOPS, keyed by the device name torch reports)."""
from __future__ import annotations

import os

import numpy as np

import ember as em
from ember import _C

from .harness import Result, fp32_peak_gflops, run_case, time_ms, torch_peer


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


# Dense peaks in TFLOP/s from NVIDIA's datasheets (H100: "NVIDIA H100 Tensor Core GPU" datasheet;
# H200: "NVIDIA H200 Tensor Core GPU" datasheet; A100: "NVIDIA A100 Tensor Core GPU" datasheet), the
# figures without structured sparsity (the H100/H200 sheets print tf32/bf16/fp16 with sparsity: halved here).
GPU_PEAK_TFLOPS = {  # name fragment -> {path: TFLOP/s}
    "H100 SXM": {"float32": 67, "tf32": 495, "bfloat16": 989, "float16": 989},
    "H100 NVL": {"float32": 60, "tf32": 418, "bfloat16": 835, "float16": 835},
    "H100 PCIe": {"float32": 51, "tf32": 378, "bfloat16": 756, "float16": 756},
    "H200": {"float32": 67, "tf32": 495, "bfloat16": 989, "float16": 989},
    "A100": {"float32": 19.5, "tf32": 156, "bfloat16": 312, "float16": 312},
}
# Checks: |ember - float64 reference| <= c sqrt(K) (unit inputs), c from the path's rounding.
GPU_TOL = {"float32": 4e-6, "tf32": 2e-3, "bfloat16": 2e-2, "float16": 4e-3}


def gpu_peak_gflops(torch, path):
    """The datasheet peak of the current GPU for a path (GFLOP/s), NaN for an unlisted GPU."""
    name = torch.cuda.get_device_name() if torch is not None else ""
    if "H100" in name and not any(k in name for k in ("PCIe", "NVL")):
        name = "H100 SXM " + name  # "NVIDIA H100 80GB HBM3" is the SXM part
    for key, peaks in GPU_PEAK_TFLOPS.items():
        if key in name:
            return peaks[path] * 1e3
    return float("nan")


def _cuda_cases(quick):
    squares = [256, 512, 1024, 2048] + ([] if quick else [4096, 8192])
    cases = [(f"square_{n}", (n, n), (n, n), False, False) for n in squares]
    t = 2048 if quick else 8192  # tokens: e.g. 8 sequences of 1024; GPT-2/BERT-base width 768
    cases += [
        ("qkv x@Wqkv^T", (t, 768), (768, 2304), False, True),   # linear: weight stored (out, in)
        ("mlp_up x@W1^T", (t, 768), (768, 3072), False, True),
        ("mlp_down h@W2^T", (t, 3072), (3072, 768), False, True),
        ("dX = dY@W", (t, 3072), (3072, 768), False, False),
        ("dW = dY^T@X", (3072, t), (t, 768), True, False),
        ("batched_attn", (96, 1024, 64), (96, 64, 1024), False, False),  # 8 x 12 heads, Q K^T shapes
    ]
    return cases


def _run_cuda(device, quick, repeat):
    torch = torch_peer(device)
    rng = np.random.default_rng(0)
    results = []
    for path in ["float32", "tf32", "bfloat16", "float16"]:
        dtype = "float32" if path == "tf32" else path
        before = em.get_float32_matmul_precision()
        em.set_float32_matmul_precision("high" if path == "tf32" else "highest")
        if torch is not None:
            torch.backends.cuda.matmul.allow_tf32 = path == "tf32"
        peak = gpu_peak_gflops(torch, path)
        try:
            for name, sa, sb, ta, tb in _cuda_cases(quick):
                a = rng.standard_normal(sa[::-1] if ta else sa).astype(np.float32)
                b = rng.standard_normal(sb[::-1] if tb else sb).astype(np.float32)
                ea, eb = em.tensor(a, dtype=dtype, device=device), em.tensor(b, dtype=dtype, device=device)
                ea, eb = (ea.transpose(-1, -2) if ta else ea), (eb.transpose(-1, -2) if tb else eb)
                k = ea.shape[-1]
                flops = 2.0 * np.prod(ea.shape[:-1]) * eb.shape[-1] * k
                peers = {}
                if torch is not None:
                    tdt = getattr(torch, dtype)
                    tA, tB = torch.from_numpy(a).to(device, tdt), torch.from_numpy(b).to(device, tdt)
                    tA, tB = (tA.transpose(-1, -2) if ta else tA), (tB.transpose(-1, -2) if tb else tB)
                    peers["torch"] = lambda tA=tA, tB=tB: tA @ tB
                    ref = (tA.double() @ tB.double()).cpu().numpy()  # the rounded inputs, in float64
                else:
                    ref = em.Tensor._wrap(ea._a).to("float64").cpu().numpy() @ \
                        em.Tensor._wrap(eb._a).to("float64").cpu().numpy()
                shape = f"{'x'.join(map(str, ea.shape))}@{'x'.join(map(str, eb.shape[-2:]))}"
                r = run_case("gemm", name, shape, ember=lambda ea=ea, eb=eb: _C.matmul(ea._a, eb._a), peers=peers,
                             reference=ref, tol=GPU_TOL[path] * np.sqrt(k), work=flops, unit="GFLOP/s",
                             device=device, repeat=repeat, roofline=peak, dtype=path)
                results.append(r)
                del ea, eb, peers
                if torch is not None:
                    torch.cuda.empty_cache()
        finally:
            em.set_float32_matmul_precision(before)
            if torch is not None:
                torch.backends.cuda.matmul.allow_tf32 = False
    return results


def run(device="cpu", quick=False, repeat=10):
    if str(device).startswith("cuda"):
        return _run_cuda(device, quick, repeat)
    rng = np.random.default_rng(0)
    torch = torch_peer(device)
    peak = fp32_peak_gflops()
    results = []
    for name, sa, sb, ta, tb in _cases(quick):
        a = rng.standard_normal(sa[::-1] if ta else sa).astype(np.float32)
        b = rng.standard_normal(sb[::-1] if tb else sb).astype(np.float32)
        A, Bm = (a.T if ta else a), (b.T if tb else b)
        ea, eb = em.tensor(a), em.tensor(b)
        ea, eb = (ea.t() if ta else ea), (eb.t() if tb else eb)
        out = em.Tensor._wrap(_C.matmul(ea._a, eb._a)).numpy()
        ref = A.astype(np.float64) @ Bm.astype(np.float64)
        k = A.shape[-1]
        valid = np.allclose(out, ref, rtol=1e-4, atol=1e-5 * np.sqrt(k) * np.abs(ref).max())
        flops = 2.0 * np.prod(ref.shape) * k
        ms = time_ms(lambda: _C.matmul(ea._a, eb._a), device, repeat) if valid else float("nan")
        peer, peer_ms = "numpy", time_ms(lambda: A @ Bm, "cpu", repeat)
        if torch is not None:
            tA, tB = torch.from_numpy(a), torch.from_numpy(b)
            tA, tB = (tA.T if ta else tA), (tB.T if tb else tB)
            t_ms = time_ms(lambda: tA @ tB, "cpu", repeat)
            if t_ms < peer_ms:
                peer, peer_ms = "torch", t_ms
        shape = f"{'x'.join(map(str, A.shape))}@{'x'.join(map(str, Bm.shape[-2:]))}"
        results.append(Result("gemm", name, shape, "float32", str(device), ms, flops / ms / 1e6, "GFLOP/s",
                              peer, peer_ms, flops / peer_ms / 1e6, peak, bool(valid)))
        if sa[0] <= 256 and len(sa) == 2:  # the public API's time per call
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
