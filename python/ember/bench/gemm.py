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

import contextlib
import os

import numpy as np

import ember as em
from ember import _C

from .harness import EPS32, NAN, Result, check_close, fp32_peak_gflops, measure, run_case, time_ms, torch_peer


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


# ---- the shape sweep (--sweep) ---------------------------------------------------------------------
# Each case: (name, group, A's shape as multiplied, B's, how each operand is laid out). Layouts:
# "n" contiguous, "t" the transpose of a contiguous array (column-major), "s2" every other column of a
# twice-as-wide array (column stride 2), "sub" a window of a larger array (row stride > width).

def _sweep_cases():
    sq = [(f"odd {n}^3", "odd", (n, n), (n, n), "n", "n") for n in (97, 127, 129, 255, 257, 383, 513, 769, 1023)]
    return sq + [
        ("tall 8192x64 @ 64x64", "tall-skinny", (8192, 64), (64, 64), "n", "n"),
        ("tall 4096x256 @ 256x32", "tall-skinny", (4096, 256), (256, 32), "n", "n"),
        ("wide 64x64 @ 64x8192", "tall-skinny", (64, 64), (64, 8192), "n", "n"),
        ("rows 16 @ 1024x1024", "tall-skinny", (16, 1024), (1024, 1024), "n", "n"),
        ("cols 1024x1024 @ 16", "tall-skinny", (1024, 1024), (1024, 16), "n", "n"),
        ("gemv 1 @ 1024x1024", "tall-skinny", (1, 1024), (1024, 1024), "n", "n"),
        ("gemv 1024x1024 @ 1", "tall-skinny", (1024, 1024), (1024, 1), "n", "n"),
        ("inner 64x8192 @ 8192x64", "tall-skinny", (64, 8192), (8192, 64), "n", "n"),
        ("k=1 512x1 @ 1x512", "small K", (512, 1), (1, 512), "n", "n"),
        ("k=4 1024x4 @ 4x1024", "small K", (1024, 4), (4, 1024), "n", "n"),
        ("k=16 2048x16 @ 16x2048", "small K", (2048, 16), (16, 2048), "n", "n"),
        ("k=48 1000x48 @ 48x1000", "small K", (1000, 48), (48, 1000), "n", "n"),
        ("batch 4096 x 8^3", "batched", (4096, 8, 8), (4096, 8, 8), "n", "n"),
        ("batch 1024 x 16^3", "batched", (1024, 16, 16), (1024, 16, 16), "n", "n"),
        ("batch 256 x 32^3", "batched", (256, 32, 32), (256, 32, 32), "n", "n"),
        ("batch 64 x 100x20 @ 20x100", "batched", (64, 100, 20), (64, 20, 100), "n", "n"),
        ("batch 48 x 128x64 @ 64x128", "batched", (48, 128, 64), (48, 64, 128), "n", "n"),
        ("batch 7 x 200^3", "batched", (7, 200, 200), (7, 200, 200), "n", "n"),
        ("A^T 512^3", "transposed", (512, 512), (512, 512), "t", "n"),
        ("B^T 512^3", "transposed", (512, 512), (512, 512), "n", "t"),
        ("A^T B^T 512^3", "transposed", (512, 512), (512, 512), "t", "t"),
        ("A^T 300x700 @ 700x200", "transposed", (300, 700), (700, 200), "t", "n"),
        ("B^T 129x1000 @ 1000x130", "transposed", (129, 1000), (1000, 130), "n", "t"),
        ("A^T B^T 257^3", "transposed", (257, 257), (257, 257), "t", "t"),
        ("A[:, ::2] 512^3", "strided", (512, 512), (512, 512), "s2", "n"),
        ("B[:, ::2] 512^3", "strided", (512, 512), (512, 512), "n", "s2"),
        ("window 500^3 of 640^2", "strided", (500, 500), (500, 500), "sub", "sub"),
        ("B^T[:, ::2] 384^3", "strided", (384, 384), (384, 384), "n", "ts2"),
    ]


def _operand(rng, shape, layout):
    """A float32 array of `shape` (as multiplied) laid out as `layout` says, as a NumPy view."""
    if layout == "n":
        return rng.standard_normal(shape).astype(np.float32)
    if layout == "t":
        return np.swapaxes(rng.standard_normal(shape[:-2] + shape[:-3:-1]).astype(np.float32), -1, -2)
    if layout == "s2":
        return rng.standard_normal(shape[:-1] + (2 * shape[-1],)).astype(np.float32)[..., ::2]
    if layout == "ts2":  # transposed, then every other column
        return _operand(rng, shape[:-1] + (2 * shape[-1],), "t")[..., ::2]
    big = rng.standard_normal(tuple(s + 140 for s in shape)).astype(np.float32)  # "sub"
    return big[..., 7:7 + shape[-2], 3:3 + shape[-1]]


def _ember_view(x):
    """The same view over ember memory: the strides of the NumPy view, on a copy of its base."""
    base = x.base if x.base is not None else x
    while base.base is not None:
        base = base.base
    t = em.tensor(np.ascontiguousarray(base))
    offset = (x.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // 4
    return em.Tensor._wrap(t._a.as_strided(list(x.shape), [s // 4 for s in x.strides], offset))


def _torch_view(torch, x):
    base = x.base if x.base is not None else x
    while base.base is not None:
        base = base.base
    offset = (x.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // 4
    return torch.from_numpy(np.ascontiguousarray(base)).as_strided(x.shape, [s // 4 for s in x.strides], offset)


def _interleaved(fns, repeat, rounds):
    """Median ms of each fn over `rounds` rounds in which every fn is measured once in turn, so that a
    slow phase of the shared machine falls on all of them alike; the min over all samples too."""
    per = {name: [] for name in fns}
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = measure(fn, "cpu", max(3, repeat // rounds))
            per[name].append(t.median_ms)
            best[name] = min(best[name], t.min_ms)
    return {name: float(np.median(v)) for name, v in per.items()}, best


def _numpy_threads(n):
    """NumPy's BLAS held to n threads like the other two (threadpoolctl, when installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def sweep(repeat=20, rounds=3, only=None):
    """Every sweep case validated against float64, then ember's _C.matmul, NumPy and PyTorch timed
    interleaved; Results carry the ratio to the best peer (`only`: a substring of the case names)."""
    with _numpy_threads(em.get_num_threads()):
        return _sweep(repeat, rounds, only)


def _sweep(repeat, rounds, only):
    rng = np.random.default_rng(0)
    torch = torch_peer("cpu")
    peak = fp32_peak_gflops()
    results = []
    for name, group, sa, sb, la, lb in _sweep_cases():
        if only and only not in name:
            continue
        A, B = _operand(rng, sa, la), _operand(rng, sb, lb)
        ea, eb = _ember_view(A), _ember_view(B)
        k = A.shape[-1]
        ref = A.astype(np.float64) @ B.astype(np.float64)
        tol = 4 * np.sqrt(k) * EPS32 * (np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64)) + 1e-30
        fns = {"ember": lambda: _C.matmul(ea._a, eb._a), "numpy": lambda: A @ B}
        if torch is not None:
            tA, tB = _torch_view(torch, A), _torch_view(torch, B)
            fns["torch"] = lambda: tA @ tB
        checks = {n: check_close(fn(), ref, tol) for n, fn in fns.items()}
        notes = [f"{n} check failed: {why}" for n, (ok, why) in checks.items() if not ok]
        med, best = _interleaved({n: fn for n, fn in fns.items() if checks[n][0]}, repeat, rounds)
        flops = 2.0 * np.prod(ref.shape) * k
        peers = {n: v for n, v in med.items() if n != "ember"}
        top = min(peers, key=peers.get) if peers else ""
        ms = med.get("ember", NAN)
        results.append(Result("gemm", name, _shape_str(A, B, la, lb), "float32", "cpu", ms, flops / ms / 1e6,
                              "GFLOP/s", top, peers.get(top, NAN), flops / peers[top] / 1e6 if top else NAN, peak,
                              checks["ember"][0], ms_min=best.get("ember", NAN),
                              peers={n: flops / v / 1e6 for n, v in peers.items()}, note="; ".join(notes),
                              extra={"group": group, "min_ratio": _min_ratio(best)}))
    return results


def _min_ratio(best):
    """The best peer's fastest sample over ember's: on a machine shared with other work, where a
    sample that lost its core lifts the medians of all three libraries at random, the fastest sample
    is the steadier measure of what each can do (noise only adds time)."""
    peers = [v for n, v in best.items() if n != "ember"]
    return min(peers) / best["ember"] if peers and best.get("ember", 0) > 0 else NAN


def _shape_str(A, B, la, lb):
    mark = {"n": "", "t": "T", "s2": "s", "sub": "w", "ts2": "Ts"}
    return f"{'x'.join(map(str, A.shape))}{mark[la]}@{'x'.join(map(str, B.shape[-2:]))}{mark[lb]}"


def sweep_summary(results):
    """The lines under the sweep's table: the worst ratios, the median, and the median per group."""
    valid = [r for r in results if r.ratio == r.ratio]
    if not valid:
        return ["no valid cases"]
    ratios = sorted(valid, key=lambda r: r.ratio)
    lines = [f"median ratio to the best peer {np.median([r.ratio for r in valid]):.2f} over {len(valid)} cases; "
             f"worst: " + ", ".join(f"{r.case} {r.ratio:.2f}" for r in ratios[:3])]
    mins = sorted((r.extra["min_ratio"], r.case) for r in valid if r.extra.get("min_ratio", NAN) == r.extra.get("min_ratio"))
    if mins:
        lines.append(f"on fastest samples: median {np.median([v for v, _ in mins]):.2f}; worst: "
                     + ", ".join(f"{c} {v:.2f}" for v, c in mins[:3]))
    groups = sorted({r.extra.get("group", "") for r in valid})
    lines.append("per group (median): " + ", ".join(
        f"{g} {np.median([r.ratio for r in valid if r.extra.get('group') == g]):.2f}" for g in groups))
    return lines


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
