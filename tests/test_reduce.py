"""Reductions and the softmax family against float64 NumPy, forward and backward."""
import math

import numpy as np
import pytest

import ember as em
from helpers.check import AWKWARD, assert_close, check_op, gradcheck_op, rng, tolerance

SHAPES_DIMS = [
    ((7,), None), ((7,), 0), ((1,), 0), ((5, 13), 1), ((5, 13), 0), ((5, 13), None), ((3, 4, 17), (0, 2)),
    ((3, 4, 17), (1, 2)), ((3, 4, 17), -1), ((2, 3, 5, 7), (1, 3)), ((2, 3, 5, 7), (0, 1)), ((2049,), 0),
    ((3, 300, 2), 1),
]


def _n(shape, dim):
    dims = range(len(shape)) if dim is None else ([dim] if isinstance(dim, int) else dim)
    return math.prod(shape[d] for d in dims)


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS, ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean(shape, dim, keepdim, device):
    n = _n(shape, dim)
    check_op(lambda x: x.sum(dim, keepdim=keepdim), lambda x: np.sum(x, axis=dim, keepdims=keepdim),
             [shape], device, reduce_n=n, fd_limit=600)
    check_op(lambda x: x.mean(dim, keepdim=keepdim), lambda x: np.mean(x, axis=dim, keepdims=keepdim),
             [shape], device, reduce_n=n, fd_limit=600)


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS, ids=str)
@pytest.mark.parametrize("correction", [0, 1])
def test_var_std(shape, dim, correction, device):
    n = _n(shape, dim)
    if n - correction <= 0:
        pytest.skip("variance undefined")
    check_op(lambda x: x.var(dim, correction=correction), lambda x: np.var(x, axis=dim, ddof=correction),
             [shape], device, reduce_n=n, fd_limit=600, ulps=16)
    # std at zero variance (one element, correction 0) has an infinite derivative: forward only.
    check_op(lambda x: x.std(dim, correction=correction), lambda x: np.std(x, axis=dim, ddof=correction),
             [shape], device, reduce_n=n, fd_limit=600, ulps=16, grad=n > 1)


def test_var_single_element_is_nan(device):
    assert math.isnan(em.tensor([3.0], device=device).var().item())


@pytest.mark.parametrize("op,ref", [("amax", np.max), ("amin", np.min)])
@pytest.mark.parametrize("shape,dim", [s for s in SHAPES_DIMS if s[1] is None or isinstance(s[1], int)], ids=str)
def test_max_min(op, ref, shape, dim, device):
    check_op(lambda x: getattr(x, op)(dim), lambda x: ref(x, axis=dim), [shape], device, fd_limit=600)


@pytest.mark.parametrize("shape,dim", [((5, 13), 1), ((5, 13), 0), ((3, 4, 17), 1), ((2049,), 0)], ids=str)
def test_max_with_dim_returns_values_and_indices(shape, dim, device):
    r, _ = rng()
    a = r.standard_normal(shape)
    t = em.tensor(a, dtype="float32", device=device)
    values, indices = t.max(dim)
    assert indices.dtype == em.int64
    np.testing.assert_array_equal(indices.cpu().numpy(), np.argmax(a.astype(np.float32), axis=dim))
    assert_close(values.cpu().numpy(), np.max(a.astype(np.float32), axis=dim), 0.0, atol=0.0)
    np.testing.assert_array_equal(t.argmin(dim).cpu().numpy(), np.argmin(a.astype(np.float32), axis=dim))


def test_argmax_first_of_ties_and_nan(device):
    x = em.tensor([[1.0, 3.0, 3.0, 0.0], [np.nan, 5.0, np.nan, 1.0]], device=device)
    assert x.argmax(1).tolist() == [1, 0]
    assert x.argmax().item() == 4
    assert np.isnan(x.amax(1).cpu().numpy()[1]) and np.isnan(x.max().item())


@pytest.mark.parametrize("n", [1, 7, 33, 2049])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_argmax_argmin_rows_with_ties_and_nans_match_numpy(n, dtype, device):
    """Rows (the float32 vector path on the CPU) and columns: the first extreme, a NaN winning (as
    NumPy's argmax/argmin), ties far apart, all-equal rows."""
    r, _ = rng()
    a = np.round(r.standard_normal((6, n)) * 2).astype(dtype)  # rounded: many ties
    a[1] = a[1, 0]  # all equal
    a[2, n // 2] = np.nan
    a[3, n - 1] = np.nan
    a[4, n // 3] = a[4].max() + 1
    a[4, n - 1] = a[4, n // 3]
    t = em.tensor(a, device=device)
    for dim in (1, 0):
        np.testing.assert_array_equal(t.argmax(dim).cpu().numpy(), np.argmax(a, axis=dim))
        np.testing.assert_array_equal(t.argmin(dim).cpu().numpy(), np.argmin(a, axis=dim))


def test_full_max_gradient_split_among_ties():
    x = em.tensor([1.0, 4.0, 4.0, 2.0], requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.5, 0.0]


def test_max_dim_gradient_goes_to_index():
    x = em.tensor([[1.0, 4.0, 4.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.max(1).values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


@pytest.mark.parametrize("n", AWKWARD + [1 << 16, (1 << 20) + 3])
def test_sum_long_rows_accuracy(n, device):
    # Long reductions take the threaded split path; the error must stay ~sqrt(n) eps.
    check_op(lambda x: x.sum(), np.sum, [(n,)], device, grad=False, reduce_n=n)
    check_op(lambda x: x.amax(), np.max, [(n,)], device, grad=False)


def test_sum_of_ints_and_bools(device):
    assert em.tensor([[1, 2], [3, 4]], device=device).sum(0).tolist() == [4, 6]
    assert em.tensor([True, False, True], device=device).sum().item() == 2
    assert em.tensor([True, False, True], device=device).sum().dtype == em.int64


def test_empty_reductions(device):
    z = em.zeros(0, 3, device=device)
    assert z.sum(0).tolist() == [0.0, 0.0, 0.0]
    assert all(math.isnan(v) for v in z.mean(0).tolist())
    with pytest.raises(ValueError, match=r"\[max\]"):
        z.amax(0)


def test_prod(device):
    check_op(lambda x: x.prod(1), lambda x: np.prod(x, axis=1), [(4, 6)], device, low=0.5, high=1.5, reduce_n=6)


@pytest.mark.parametrize("fn", [lambda x: x.sum(1), lambda x: x.mean((0, 2)), lambda x: x.var(2), lambda x: x.amax(1),
                                lambda x: x.logsumexp(1)], ids=["sum", "mean", "var", "amax", "logsumexp"])
def test_reduce_gradcheck(fn):
    gradcheck_op(fn, [(2, 3, 4)])


# ---- softmax family ------------------------------------------------------------------------

def np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis):
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 17), -1), ((3, 17), 0), ((2, 5, 33), 1), ((1, 2049), 1)], ids=str)
def test_softmax_log_softmax(shape, dim, device):
    check_op(lambda x: em.softmax(x, dim), lambda x: np_softmax(x, dim), [shape], device, low=-8, high=8, fd_limit=400)
    check_op(lambda x: em.log_softmax(x, dim), lambda x: np_log_softmax(x, dim), [shape], device, low=-8, high=8,
             fd_limit=400, reduce_n=shape[dim])
    check_op(lambda x: em.logsumexp(x, dim), lambda x: np.log(np.sum(np.exp(x), axis=dim)), [shape], device,
             low=-8, high=8, fd_limit=400, reduce_n=shape[dim])


def test_softmax_with_neg_inf_entries(device):
    x = em.tensor([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, 2.0]], device=device)
    want = np_softmax(np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, 2.0]]), 1)
    assert_close(em.softmax(x, 1).cpu().numpy(), want, tolerance("float32"))
    with np.errstate(divide="ignore"):
        log_want = np.log(want)
    assert_close(em.log_softmax(x, 1).cpu().numpy(), log_want, tolerance("float32"), atol=1e-6)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_edge_inputs(log, device):
    """The fused kernel's edges: empty, 0-d, one column, 16-bit and integer input, NaN/inf rows."""
    fn = em.log_softmax if log else em.softmax
    ref = np_log_softmax if log else np_softmax
    assert fn(em.zeros(0, 5, device=device), 1).shape == (0, 5)
    assert fn(em.zeros(3, 0, device=device), 1).shape == (3, 0)
    assert fn(em.tensor(2.0, device=device), 0).item() == (0.0 if log else 1.0)
    np.testing.assert_allclose(fn(em.randn(4, 1, device=device), 1).cpu().numpy(), np.full((4, 1), 0.0 if log else 1.0))
    r, _ = rng()
    a = r.standard_normal((3, 37))
    for dtype, tol in (("float16", 2e-3), ("bfloat16", 1e-2)):
        got = fn(em.tensor(a, dtype=dtype, device=device), 1)
        assert got.dtype.name == dtype
        np.testing.assert_allclose(got.float().cpu().numpy(), ref(a, 1), atol=tol * 8, rtol=tol * 4)
    ints = fn(em.tensor([[1, 2, 3]], device=device), 1)
    assert ints.dtype == em.float32
    np.testing.assert_allclose(ints.cpu().numpy(), ref(np.array([[1.0, 2.0, 3.0]]), 1), rtol=1e-6)
    bad = fn(em.tensor([[0.0, np.nan, 1.0], [1.0, np.inf, 0.0], [1.0, 2.0, 3.0]], device=device), 1).cpu().numpy()
    assert np.isnan(bad[:2]).all() and np.isfinite(bad[2]).all()  # the same on every backend


def test_softmax_large_logits_do_not_overflow(device):
    x = em.tensor([[1000.0, 1001.0, 999.0]], device=device)
    assert_close(em.softmax(x, 1).cpu().numpy(), np_softmax(np.array([[1000.0, 1001.0, 999.0]]), 1), tolerance("float32"))


@pytest.mark.parametrize("fn", [lambda x: em.softmax(x, 1), lambda x: em.log_softmax(x, 0)], ids=["softmax", "log_softmax"])
def test_softmax_gradcheck(fn):
    gradcheck_op(fn, [(3, 5)])
