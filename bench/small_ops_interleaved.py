"""The small ops of `python -m ember bench overhead`, timed the way a shared machine allows: for each
case, ember and PyTorch (and NumPy for matmul) alternate, `timeit` of 2000 calls per turn, 15
rounds, and the fastest turn of each is kept. Medians of back-to-back runs swing by up to 2x for
every library when other work shares the cores; alternating minima do not. Prints a table; run from
the repository root: `python bench/small_ops_interleaved.py`."""
from __future__ import annotations

import timeit

import numpy as np
import torch

import ember as em
from ember.bench.overhead import _small_ops


def cases():
    """name -> (ember fn, torch fn, numpy fn or None)."""
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((32, 32)).astype(np.float32), rng.standard_normal((32, 32)).astype(np.float32) + 3
    one = rng.standard_normal(1).astype(np.float32)
    e_ops = _small_ops(em, em.tensor(a), em.tensor(b), em.tensor(one))
    t_ops = _small_ops(torch, torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(one))
    out = {name: (e_ops[name][1], t_ops[name][1], None) for name in e_ops}
    e1, t1 = em.tensor(one), torch.from_numpy(one)
    out["add 1"] = (lambda: e1 + e1, lambda: t1 + t1, None)
    for n in (32, 64):
        x, y = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
        ex, ey, tx, ty = em.tensor(x), em.tensor(y), torch.from_numpy(x), torch.from_numpy(y)
        out[f"matmul {n}^3"] = ((lambda p, q: lambda: p @ q)(ex, ey), (lambda p, q: lambda: p @ q)(tx, ty),
                                (lambda p, q: lambda: p @ q)(x, y))
    return out


def fastest(fns, rounds=15, number=2000):
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], timeit.timeit(fn, number=number) / number)
    return best


def main():
    torch.set_num_threads(em.get_num_threads())
    print(f"{'case':14s} {'ember us':>9s} {'torch us':>9s} {'vs torch':>9s} {'numpy us':>9s} {'vs numpy':>9s}")
    for name, (e, t, n) in cases().items():
        times = fastest([e, t] + ([n] if n else []))
        row = f"{name:14s} {times[0] * 1e6:9.3f} {times[1] * 1e6:9.3f} {times[1] / times[0]:8.2f}x"
        if n:
            row += f" {times[2] * 1e6:9.3f} {times[2] / times[0]:8.2f}x"
        print(row, flush=True)


if __name__ == "__main__":
    main()
