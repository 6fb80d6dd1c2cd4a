"""What the fuzz tests draw and how they check it.

Hypothesis draws the structure of a case (shapes with 0- and 1-sized dims and 0 dims, broadcasting,
dtype, memory layout, dim arguments) plus one seed; the values come from NumPy with that seed, away
from the kinks of the op under test. Drawing structure and not values keeps shrinking meaningful
(a failure shrinks to the smallest shape and simplest layout) and keeps finite differences valid.

Each input becomes an ember leaf tensor in one of four layouts holding the same values:
contiguous, transposed (last two dims swapped in memory), reversed (a NumPy view with a negative
stride in every dim, shared through em.from_numpy) and strided (every other element of a wider ember tensor,
taken by ember's own slicing). The reference is the float64 NumPy function on the values rounded
to the tested dtype; gradients are checked against central differences of that function."""
from __future__ import annotations

import collections

import numpy as np
from helpers.check import assert_close, numeric_grad, tolerance
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ember as em

CASES = collections.Counter()   # cases run per op, reported by conftest at the end of the run

FLOAT = ["float32", "float64"]
HALF = ["float16", "bfloat16"]
INT = ["int32", "int64"]
LAYOUTS = ["contiguous", "transposed", "reversed", "strided"]
MAX_SIDE = 5


def shapes(min_dims=0, max_dims=4, min_side=0):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=MAX_SIDE)


def broadcast_pair(min_dims=0, max_dims=4):
    """Two shapes that broadcast against each other (NumPy's rules)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             max_side=MAX_SIDE).map(lambda r: r.input_shapes)


seeds = st.integers(0, 2 ** 32 - 1)
layouts = st.sampled_from(LAYOUTS)


def values(r, shape, dtype, low=-2.0, high=2.0, avoid=()):
    """Random values for one input; integers for integer dtypes. Values within 1e-3 of a point in
    `avoid` (an op's kink or pole) are pushed away so central differences stay valid."""
    if dtype in INT or dtype == "bool":
        a = r.integers(int(low) - 1, int(high) + 2, size=shape)
        return (a > 0) if dtype == "bool" else a.astype(np.float64)
    a = r.uniform(low, high, size=shape)
    for k in avoid:
        near = np.abs(a - k) < 1e-3
        a[near] = k + np.where(a[near] >= k, 2e-3, -2e-3)
    return a


def rounded(a, dtype):
    """a as ember stores it in dtype, back in float64 (bool stays bool)."""
    return em.tensor(a, dtype=dtype).double().numpy() if dtype != "bool" else a


def as_layout(a, dtype, layout) -> em.Tensor:
    """An ember tensor with a's values (already representable in dtype) laid out as asked; layouts
    that do not fit the shape or dtype fall back to contiguous."""
    if layout == "transposed" and a.ndim >= 2:
        return em.tensor(np.ascontiguousarray(a.swapaxes(-1, -2)), dtype=dtype).transpose(-1, -2)
    if layout == "reversed" and a.ndim >= 1 and dtype != "bfloat16":   # bfloat16 has no NumPy dtype
        stored = np.flip(a).astype(dtype if dtype != "bool" else np.bool_)   # every stride negative
        return em.from_numpy(np.flip(stored))
    if layout == "strided" and a.ndim >= 1:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1] + 1,), dtype=a.dtype)
        wide[..., 1::2] = a
        return em.tensor(wide, dtype=dtype)[..., 1::2]
    return em.tensor(a, dtype=dtype)


def leaf(a, dtype, layout, grad):
    """(ember leaf tensor, its float64 reference values)."""
    ref = rounded(a, dtype)
    t = as_layout(ref, dtype, layout).detach()
    assert np.array_equal(t.double().numpy() if dtype != "bool" else t.numpy(), ref), layout
    return t.requires_grad_(grad), ref


def is_float(dtype):
    return dtype in FLOAT or dtype in HALF


def check(name, em_fn, np_fn, arrays, dtype, layouts_, grad=True, reduce_n=1, ulps=8.0, exact=False):
    """em_fn on leaves built from arrays against np_fn in float64, forward and (float32/float64
    only: the 16-bit types round the finite-difference reference away) backward."""
    CASES[name] += 1
    grad = grad and dtype in FLOAT
    pairs = [leaf(a, dtype, lay, grad) for a, lay in zip(arrays, layouts_)]
    tens, refs = [p[0] for p in pairs], [p[1] for p in pairs]
    out = em_fn(*tens)
    want = np.asarray(np_fn(*refs))
    tag = f"[{name} {dtype} shapes {[r.shape for r in refs]} layouts {list(layouts_)}]"
    got = out.detach().numpy() if out.dtype in (em.bool, em.int64, em.int32) else out.detach().double().numpy()
    if exact or not np.issubdtype(want.dtype, np.floating):
        assert got.shape == want.shape and np.array_equal(got, want), f"{tag} forward: got {got}, want {want}"
    else:
        assert_close(got, want, tolerance(dtype, reduce_n, ulps), msg=f"{tag} forward")
    if not grad:
        return
    cot = np.random.default_rng(0).standard_normal(want.shape)
    (out * em.tensor(cot, dtype=dtype)).sum().backward()
    for i, (t, ref) in enumerate(zip(tens, refs)):
        expect = numeric_grad(np_fn, refs, cot, i)
        got = np.zeros(ref.shape) if t.grad is None else t.grad.double().numpy()
        summed = max(reduce_n, want.size // max(ref.size, 1))   # a broadcast input's gradient is a sum
        assert_close(got, expect, max(tolerance(dtype, summed, 2 * ulps), 1e-6), msg=f"{tag} grad of input {i}")
