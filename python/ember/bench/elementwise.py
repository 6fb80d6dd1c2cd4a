"""Elementwise and reduction kernels: GB/s (bytes read + written once) of ember next to NumPy and
PyTorch in the same run, and the fraction of the measured memory-bandwidth roofline. Calls _C
directly, so the numbers are the kernels' (the Tensor wrapper adds about a microsecond per op)."""
from __future__ import annotations

import numpy as np

import ember as em
from ember import _C

from .harness import Result, memory_bandwidth_gbs, time_ms, torch_peer

B, U, R = _C.BinaryOp, _C.UnaryOp, _C.ReduceOp


def _cases(quick):
    big = 1 << 20 if quick else 1 << 24
    side = 1024 if quick else 4096
    f = np.float32
    return [
        # name, shapes, ember fn on arrays, numpy fn, torch fn, reference, bytes
        ("add", [(big,), (big,)], lambda a, b: _C.binary(B.add, a, b), np.add, lambda a, b: a + b),
        ("add", [(1 << 20,), (1 << 20,)], lambda a, b: _C.binary(B.add, a, b), np.add, lambda a, b: a + b),
        ("add_row_broadcast", [(side, side), (side,)], lambda a, b: _C.binary(B.add, a, b), np.add, lambda a, b: a + b),
        ("add_awkward", [(2049, 4097 if not quick else 97), (4097 if not quick else 97,)],
         lambda a, b: _C.binary(B.add, a, b), np.add, lambda a, b: a + b),
        ("mul", [(big,), (big,)], lambda a, b: _C.binary(B.mul, a, b), np.multiply, lambda a, b: a * b),
        ("exp", [(big,)], lambda a: _C.unary(U.exp, a), np.exp, lambda a: a.exp()),
        ("relu", [(big,)], lambda a: _C.unary(U.relu, a), lambda a: np.maximum(a, f(0)), lambda a: a.relu()),
        ("sum_all", [(big,)], lambda a: _C.reduce(R.sum, a, [], False), np.sum, lambda a: a.sum()),
        ("sum_last_dim", [(side, side)], lambda a: _C.reduce(R.sum, a, [1], False), lambda a: a.sum(1),
         lambda a: a.sum(1)),
        ("sum_first_dim", [(side, side)], lambda a: _C.reduce(R.sum, a, [0], False), lambda a: a.sum(0),
         lambda a: a.sum(0)),
        ("max_last_dim", [(side, side)], lambda a: _C.reduce(R.max, a, [1], False), lambda a: a.max(1),
         lambda a: a.amax(1)),
    ]


def run(device="cpu", quick=False, repeat=20):
    rng = np.random.default_rng(0)
    torch = torch_peer(device)
    cuda = str(device).startswith("cuda")
    roof = _gpu_bandwidth(torch) if cuda else memory_bandwidth_gbs()
    results = []
    for name, shapes, em_fn, np_fn, torch_fn in _cases(quick):
        host = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        arrays = [em.tensor(h, device=device)._a for h in host]
        out = em_fn(*arrays)
        ref = np_fn(*[h.astype(np.float64) for h in host])
        got = em.Tensor._wrap(out).cpu().numpy().astype(np.float64)
        n_acc = max(1, host[0].size // max(1, np.size(ref)))
        valid = got.shape == np.shape(ref) and np.allclose(got, ref, rtol=1e-5 * np.sqrt(n_acc), atol=1e-4 * np.sqrt(n_acc))
        nbytes = sum(h.nbytes for h in host) + np.asarray(ref).size * 4
        ms = time_ms(lambda: em_fn(*arrays), device, repeat) if valid else float("nan")
        peer, peer_ms = ("numpy", time_ms(lambda: np_fn(*host), "cpu", repeat)) if not cuda else ("", float("nan"))
        if torch is not None:
            tt = [torch.from_numpy(h).to("cuda" if cuda else "cpu") for h in host]
            t_ms = time_ms(lambda: (torch_fn(*tt), torch.cuda.synchronize() if cuda else None), "cpu", repeat)
            if not peer or t_ms < peer_ms:
                peer, peer_ms = "torch", t_ms
        results.append(Result("elementwise", name, "x".join(map(str, shapes[0])) + (
            "+" + "x".join(map(str, shapes[1])) if len(shapes) > 1 and shapes[1] != shapes[0] else ""),
            "float32", str(device), ms, nbytes / ms / 1e6, "GB/s", peer, peer_ms, nbytes / peer_ms / 1e6, roof, valid))
    return results


def _gpu_bandwidth(torch):
    """Device-to-device copy bandwidth (bytes read + written), the GPU's memory roofline."""
    if torch is None:
        return float("nan")
    x = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = time_ms(lambda: (y.copy_(x), torch.cuda.synchronize()), "cpu", 20)
    return 2 * x.numel() / ms / 1e6
