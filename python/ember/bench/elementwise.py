"""Elementwise and reduction kernels: GB/s of ember next to NumPy and PyTorch in the same run, and the
percentage of the measured memory-bandwidth roofline (docs/kernels/elementwise.md has the table).

Bytes moved are counted honestly: every input read once, the output written once. ember is called
through `_C` directly (`_C.binary(BinaryOp.add, a, b)`, `_C.reduce(ReduceOp.sum, x, [], False)`),
the very functions the Tensor ops call, so the Tensor wrapper's Python overhead (about a microsecond
per call) is not in the numbers; the peers are called through their usual Python API."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

import ember as em
from ember import _C

from .harness import EPS32, memory_roofline, run_case, torch_peer

B, U, R = _C.BinaryOp, _C.UnaryOp, _C.ReduceOp


@dataclass
class Case:
    name: str
    shapes: list          # input shapes
    ember: Callable       # on _C.Array inputs
    numpy: Callable       # on NumPy arrays (float32 for timing, float64 for the reference), out=None
    torch: Callable       # on torch tensors, out=None
    tol: Callable         # (float64 inputs, reference) -> allowed |error|
    out: bool = True      # the peers write into a preallocated output (out=): elementwise ops


def _torch():
    return sys.modules["torch"]  # only called when torch_peer() imported it


# Tolerances, derived from float32's unit roundoff u = 2^-24.
def rounded(units):
    """|error| <= units * u * |result|: one correctly rounded op is within 1 u (2 allowed); exp is
    within 2 ulp in ember and a little more in NumPy's SIMD exp, and 1 ulp <= 2 u (8 allowed)."""
    return lambda xs, ref: units * EPS32 * np.abs(ref)


def exact(xs, ref):
    """max/relu pick an input value: no rounding at all."""
    return 0.0


def summed(axis):
    """A float32 sum of n terms: error grows like sqrt(n) u times the sum of magnitudes."""
    def tol(xs, ref):
        n = xs[0].size if axis is None else xs[0].shape[axis]
        return 4 * EPS32 * math.sqrt(n) * np.abs(xs[0]).sum(axis=axis)
    return tol


def _binary(op):
    return lambda a, b: _C.binary(op, a, b)


def _unary(op):
    return lambda a: _C.unary(op, a)


def _reduce(op, dims):
    return lambda a: _C.reduce(op, a, dims, False)


def _sizes(quick):
    """(vector lengths, square side, awkward 2-D shape): 1M and 16M float32 (4 and 64 MiB, in and out
    of a typical last-level cache), 4096^2, and 2049 x 4097 whose rows are no multiple of a vector."""
    if quick:
        return [1 << 14, 1 << 16], 256, (129, 257)
    return [1 << 20, 1 << 24], 4096, (2049, 4097)


def cases(quick=False):
    lengths, side, odd = _sizes(quick)
    # ember, numpy, torch, tolerance (reductions: tiny outputs, so the peers allocate them)
    add = [_binary(B.add), np.add, lambda a, b, out=None: _torch().add(a, b, out=out), rounded(2)]
    mul = [_binary(B.mul), np.multiply, lambda a, b, out=None: _torch().mul(a, b, out=out), rounded(2)]
    exp = [_unary(U.exp), np.exp, lambda a, out=None: _torch().exp(a, out=out), rounded(8)]
    relu = [_unary(U.relu), lambda a, out=None: np.maximum(a, a.dtype.type(0), out=out),
            lambda a, out=None: _torch().clamp(a, min=0, out=out), exact]
    sum_all = [_reduce(R.sum, []), np.sum, lambda a: a.sum(), summed(None), False]
    sum_last = [_reduce(R.sum, [1]), lambda a: a.sum(1), lambda a: a.sum(1), summed(1), False]
    sum_first = [_reduce(R.sum, [0]), lambda a: a.sum(0), lambda a: a.sum(0), summed(0), False]
    max_last = [_reduce(R.max, [1]), lambda a: a.max(1), lambda a: a.amax(1), exact, False]
    out = []
    for n in lengths:
        out += [Case("add", [(n,), (n,)], *add), Case("mul", [(n,), (n,)], *mul), Case("exp", [(n,)], *exp),
                Case("relu", [(n,)], *relu), Case("sum_all", [(n,)], *sum_all)]
    return out + [Case("add", [odd, odd], *add),
                  Case("add_row_bcast", [(side, side), (side,)], *add),
                  Case("add_row_bcast", [odd, odd[1:]], *add),
                  Case("sum_last_dim", [(side, side)], *sum_last),
                  Case("sum_first_dim", [(side, side)], *sum_first),
                  Case("max_last_dim", [(side, side)], *max_last)]


def shape_label(shapes):
    """'16777216', '4096x4096+4096' (a broadcast second operand), '2049x4097'."""
    first = "x".join(map(str, shapes[0]))
    rest = ["x".join(map(str, s)) for s in shapes[1:] if s != shapes[0]]
    return "+".join([first] + rest)


def _peers(case, host, out_shape, device, torch):
    """The peers' calls on their own copies of the inputs: NumPy on the CPU, PyTorch on ember's
    device when installed. Elementwise peers write into a preallocated output (out=): otherwise each
    64 MiB result is a fresh mmap whose page faults cost more than the add (ember's allocator reuses
    freed blocks), and the table would compare allocators rather than kernels."""
    peers = {}
    if not str(device).startswith("cuda"):
        out = np.empty(out_shape, np.float32) if case.out else None
        peers["numpy"] = (lambda: case.numpy(*host, out=out)) if case.out else (lambda: case.numpy(*host))
    if torch is not None:
        dev = "cuda" if str(device).startswith("cuda") else "cpu"
        tt = [torch.from_numpy(h).to(dev) for h in host]
        out_t = torch.empty(out_shape, dtype=torch.float32, device=dev) if case.out else None
        peers["torch"] = (lambda: case.torch(*tt, out=out_t)) if case.out else (lambda: case.torch(*tt))
    return peers


def run_one(case, device, repeat, rng, torch):
    host = [rng.standard_normal(s, dtype=np.float32) for s in case.shapes]
    host64 = [h.astype(np.float64) for h in host]
    arrays = [em.tensor(h, device=device)._a for h in host]
    reference = case.numpy(*host64)
    read, written = sum(h.nbytes for h in host), 4 * np.size(reference)  # each input once, the output once
    roof, in_cache = memory_roofline(read, written, device, torch)
    return run_case("elementwise", case.name, shape_label(case.shapes), ember=lambda: case.ember(*arrays),
                    peers=_peers(case, host, np.shape(reference), device, torch), reference=reference,
                    tol=case.tol(host64, reference), work=read + written, unit="GB/s", device=device,
                    repeat=repeat, roofline=roof, in_cache=in_cache,
                    cold=not in_cache and not str(device).startswith("cuda"))


def run(device="cpu", quick=False, repeat=20):
    rng = np.random.default_rng(0)
    torch = torch_peer(device)
    return [run_one(case, device, repeat, rng, torch) for case in cases(quick)]
