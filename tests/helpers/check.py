"""One op-check helper for the whole suite (tinygrad's helper_test_op): fresh random inputs, the op
against a float64 NumPy reference forward and backward, tolerances derived from the dtype.

    check_op(em.exp, np.exp, [(3, 5)], device)

Backward reference: central differences of the float64 NumPy function (or an explicit np_grad),
so every gradient is checked against float64 math that shares no code with ember."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np

import ember as em

# Unit roundoff per dtype: float32 2^-24, float16 2^-11, bfloat16 2^-8, float64 2^-53.
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float64": 2.0 ** -53}

# Sizes that exercise every remainder path: 1, primes, 2^k + 1, sizes around vector widths.
AWKWARD = [1, 2, 3, 5, 7, 13, 17, 31, 33, 61, 127, 257]
BIG = [2049, 4097]


def rng():
    """A fresh generator per call; the seed is printed on failure through the assertion message."""
    seed = int.from_bytes(os.urandom(4), "little")
    return np.random.default_rng(seed), seed


def tolerance(dtype, n=1, ulps=4.0):
    """Relative tolerance for a result computed in dtype from n accumulated terms: a few ulps per
    operation (transcendentals are within 2-4 ulp) growing like sqrt(n) for sums."""
    u = UNIT_ROUNDOFF[str(dtype).replace("ember.", "")]
    return ulps * u * max(1.0, math.sqrt(n))


def assert_close(actual, expected, rtol, atol=None, msg=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{msg}: shape {actual.shape} != {expected.shape}"
    scale = max(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0), 1.0)
    atol = rtol * scale if atol is None else atol
    same_nan = np.array_equal(np.isnan(actual), np.isnan(expected))
    assert same_nan, f"{msg}: NaN positions differ"
    finite = np.isfinite(expected)
    assert np.array_equal(actual[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)]), \
        f"{msg}: infinities differ"
    err = np.abs(actual[finite] - expected[finite])
    bound = atol + rtol * np.abs(expected[finite])
    if err.size and not np.all(err <= bound):
        i = int(np.argmax(err - bound))
        raise AssertionError(f"{msg}: max error {err.max():.3g} exceeds tolerance (rtol={rtol:.2g}, atol={atol:.2g}); "
                             f"worst at flat index {i}: got {actual[finite][i]!r}, want {expected[finite][i]!r}")


def numeric_grad(np_fn, arrays, cot, i, h=1e-6):
    """d/d arrays[i] of sum(np_fn(*arrays) * cot), by central differences in float64."""
    x = arrays[i].astype(np.float64, copy=True)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        orig = flat[j]
        step = h * max(1.0, abs(orig))
        args = list(arrays)
        flat[j] = orig + step
        args[i] = x
        fp = np.sum(np_fn(*args) * cot)
        flat[j] = orig - step
        fm = np.sum(np_fn(*args) * cot)
        flat[j] = orig
        gflat[j] = (fp - fm) / (2 * step)
    return g


def make_inputs(shapes, low=-2.0, high=2.0, r=None):
    r = r or rng()[0]
    return [r.uniform(low, high, size=s) for s in shapes]


def check_op(em_fn, np_fn, shapes, device="cpu", dtype="float32", grad=True, low=-2.0, high=2.0,
             np_grad=None, reduce_n=1, ulps=8.0, inputs=None, fd_limit=3000, grad_ulps=None):
    """Runs em_fn on fresh random inputs of the given shapes and compares with np_fn in float64,
    forward and (if grad) backward. Returns the inputs used."""
    r, seed = rng()
    arrays = inputs if inputs is not None else make_inputs(shapes, low, high, r)
    # Round inputs to the tested dtype first so the reference sees exactly what ember sees.
    tens = [em.tensor(a, dtype=dtype, device=device, requires_grad=grad) for a in arrays]
    arrays = [t.detach().cpu().double().numpy() for t in tens]
    out = em_fn(*tens)
    ref = np.asarray(np_fn(*arrays), dtype=np.float64)
    tag = f"[seed {seed}, shapes {shapes}, {dtype} on {device}]"
    rtol = tolerance(dtype, reduce_n, ulps)
    assert str(out.device).split(":")[0] == device, f"{tag} output on {out.device}"
    assert_close(out.detach().cpu().double().numpy(), ref, rtol, msg=f"{tag} forward")
    if not grad:
        return arrays
    cot = r.standard_normal(ref.shape)
    (out * em.tensor(cot, dtype=dtype, device=device)).sum().backward()
    for i, t in enumerate(tens):
        if np_grad is not None:
            want = np_grad(i, cot, *arrays)
        elif arrays[i].size <= fd_limit:
            want = numeric_grad(np_fn, arrays, cot, i)
        else:
            continue
        got = np.zeros(arrays[i].shape) if t.grad is None else t.grad.cpu().double().numpy()
        # The finite-difference reference itself carries ~1e-9 relative error.
        gtol = max(tolerance(dtype, reduce_n, grad_ulps or ulps * 2), 1e-7)
        assert_close(got, want, gtol, msg=f"{tag} grad of input {i}")
    return arrays


def gradcheck_op(em_fn, shapes, low=-2.0, high=2.0):
    """em.autograd.gradcheck in float64 on the CPU (small shapes)."""
    r, seed = rng()
    tens = [em.tensor(r.uniform(low, high, size=s), dtype="float64", requires_grad=True) for s in shapes]
    assert em.autograd.gradcheck(em_fn, tens, eps=1e-6, atol=1e-6, rtol=1e-4), f"seed {seed}"


def run_with_simd_cap(isa, code, timeout=120):
    """Runs code (which imports ember as em) in a fresh interpreter with EMBER_SIMD=isa, since the cap
    holds for a whole process, and checks that it passed on that ISA (or the portable fallback)."""
    out = subprocess.run([sys.executable, "-c", code + "print(em._C.simd_level())\n"],
                         env={**os.environ, "EMBER_SIMD": isa}, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] in (isa, "portable")
