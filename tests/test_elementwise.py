"""Elementwise ops against float64 NumPy, forward and backward, on awkward shapes and both devices."""
import math

import numpy as np
import pytest

import ember as em
from helpers.check import AWKWARD, BIG, assert_close, check_op, gradcheck_op, rng, tolerance

try:
    from scipy.special import erf as _erf
except ImportError:  # NumPy has no erf; math.erf vectorised is exact enough for a reference
    _erf = np.vectorize(math.erf)


def np_sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))  # 1 / (1 + e^-x) without overflow or cancellation


def np_gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


# (name, ember fn, numpy fn, input range)
UNARY = [
    ("neg", em.neg, np.negative, (-3, 3)),
    ("exp", em.exp, np.exp, (-10, 10)),
    ("log", em.log, np.log, (0.01, 10)),
    ("sqrt", em.sqrt, np.sqrt, (0.01, 10)),
    ("abs", em.abs, np.abs, (-3, 3)),
    ("tanh", em.tanh, np.tanh, (-5, 5)),
    ("sigmoid", em.sigmoid, np_sigmoid, (-10, 10)),
    ("relu", em.relu, lambda x: np.maximum(x, 0), (-3, 3)),
    ("gelu", em.gelu, np_gelu, (-4, 4)),
    ("gelu_tanh", lambda x: em.gelu(x, approximate="tanh"), np_gelu_tanh, (-4, 4)),
    ("silu", em.silu, lambda x: x * np_sigmoid(x), (-6, 6)),
    ("square", em.square, np.square, (-3, 3)),
    ("reciprocal", em.reciprocal, np.reciprocal, (0.5, 3)),
    ("clamp", lambda x: em.clamp(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), (-2, 2)),
    ("clamp_min", lambda x: x.clamp(min=0.1), lambda x: np.maximum(x, 0.1), (-2, 2)),
]
UNARY_IDS = [u[0] for u in UNARY]


@pytest.mark.parametrize("name,fn,ref,dom", UNARY, ids=UNARY_IDS)
@pytest.mark.parametrize("shape", [(1,), (7, 13), (3, 1, 17), (257,)])
def test_unary(name, fn, ref, dom, shape, device):
    check_op(fn, ref, [shape], device, low=dom[0], high=dom[1])


@pytest.mark.parametrize("name,fn,ref,dom", UNARY, ids=UNARY_IDS)
@pytest.mark.parametrize("n", BIG + [65537])
def test_unary_large_forward(name, fn, ref, dom, n, device):
    # Long rows reach the vectorised loops, their tails and the threaded split.
    check_op(fn, ref, [(n,)], device, low=dom[0], high=dom[1], grad=False)


@pytest.mark.parametrize("name,fn,ref,dom", UNARY, ids=UNARY_IDS)
def test_unary_gradcheck(name, fn, ref, dom):
    gradcheck_op(fn, [(3, 4)], low=dom[0], high=dom[1])


@pytest.mark.parametrize("name,fn,ref,dom", UNARY, ids=UNARY_IDS)
def test_unary_non_contiguous(name, fn, ref, dom, device):
    r, _ = rng()
    base = r.uniform(dom[0], dom[1], size=(9, 14))
    t = em.tensor(base, device=device)[1::2, ::3].transpose(0, 1)
    want = ref(t.cpu().double().numpy())
    assert not t.is_contiguous()
    assert_close(fn(t).cpu().numpy(), want, tolerance("float32", ulps=8))


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
@pytest.mark.parametrize("name,fn,ref,dom", [u for u in UNARY if u[0] in ("exp", "tanh", "relu", "gelu", "sigmoid")],
                         ids=["exp", "tanh", "relu", "gelu", "sigmoid"])
def test_unary_dtypes(name, fn, ref, dom, dtype, device):
    check_op(fn, ref, [(5, 33)], device, dtype=dtype, low=dom[0], high=dom[1])


def test_exp_extremes(device):
    x = em.tensor([-np.inf, -200.0, -87.0, -1e-30, 0.0, 88.5, 89.0, np.inf, np.nan], device=device)
    got = em.exp(x).cpu().numpy().astype(np.float64)
    want = np.exp(x.cpu().double().numpy())
    with np.errstate(over="ignore"):
        want = want.astype(np.float32).astype(np.float64)
    assert_close(got, want, tolerance("float32", ulps=4), atol=0.0)


def test_tanh_sigmoid_saturate(device):
    x = em.tensor([-1e4, -50.0, -1e-6, 1e-6, 50.0, 1e4], device=device)
    assert_close(em.tanh(x).cpu().numpy(), np.tanh(x.cpu().double().numpy()), tolerance("float32"), atol=0.0)
    assert_close(em.sigmoid(x).cpu().numpy(), np_sigmoid(x.cpu().double().numpy()), tolerance("float32"), atol=0.0)


def test_relu_keeps_nan(device):
    y = em.relu(em.tensor([np.nan, -1.0, 2.0], device=device)).cpu().numpy()
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 2


# ---- binary ------------------------------------------------------------------------------------

BINARY = [
    ("add", lambda a, b: a + b, np.add, (-3, 3)),
    ("sub", lambda a, b: a - b, np.subtract, (-3, 3)),
    ("mul", lambda a, b: a * b, np.multiply, (-3, 3)),
    ("div", lambda a, b: a / b, np.divide, (0.5, 3)),
    ("pow", lambda a, b: a ** b, np.power, (0.5, 2)),
    ("maximum", em.maximum, np.maximum, (-3, 3)),
    ("minimum", em.minimum, np.minimum, (-3, 3)),
]
BROADCAST = [
    ((5,), (5,)), ((1,), (7,)), ((4, 1), (1, 3)), ((3, 5, 7), (5, 1)), ((2, 1, 13), (2, 17, 1)),
    ((), (3, 2)), ((31,), ()), ((1, 1), (1, 1)),
]


@pytest.mark.parametrize("name,fn,ref,dom", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
def test_binary_broadcast(name, fn, ref, dom, shapes, device):
    check_op(fn, ref, list(shapes), device, low=dom[0], high=dom[1])


@pytest.mark.parametrize("name,fn,ref,dom", BINARY, ids=[b[0] for b in BINARY])
def test_binary_gradcheck(name, fn, ref, dom):
    gradcheck_op(fn, [(3, 1), (1, 4)], low=dom[0], high=dom[1])


@pytest.mark.parametrize("n", AWKWARD + BIG)
def test_add_sizes(n, device):
    check_op(lambda a, b: a + b, np.add, [(n,), (n,)], device, grad=n <= 257)


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_binary_dtypes(dtype, device):
    check_op(lambda a, b: a * b + a, lambda a, b: a * b + a, [(6, 9), (9,)], device, dtype=dtype)


def test_binary_non_contiguous(device):
    r, _ = rng()
    a = em.tensor(r.standard_normal((8, 10)), device=device).t()
    b = em.tensor(r.standard_normal((20, 8)), device=device)[::2]
    assert not a.is_contiguous() and not b.is_contiguous()
    got = (a * b + 1).cpu().numpy()
    want = a.cpu().double().numpy() * b.cpu().double().numpy() + 1
    assert_close(got, want, tolerance("float32"))


def test_maximum_tie_gradient_is_shared():
    a = em.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = em.tensor([1.0, 5.0, 0.0], requires_grad=True)
    em.maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 0.0, 1.0] and b.grad.tolist() == [0.5, 1.0, 0.0]


def test_pow_exponent_gradient_at_zero_base():
    a = em.tensor([0.0, 2.0])
    b = em.tensor([2.0, 3.0], requires_grad=True)
    (a ** b).sum().backward()
    assert_close(b.grad.numpy(), [0.0, 8 * math.log(2)], 1e-6)


def test_integer_arithmetic(device):
    a = em.tensor([7, -7, 3, 0], device=device)
    b = em.tensor([2, 2, -2, 5], device=device)
    assert (a + b).dtype == em.int64 and (a + b).tolist() == [9, -5, 1, 5]
    assert (a * b).tolist() == [14, -14, -6, 0]
    assert (a / b).dtype == em.float32 and (a / b).tolist() == [3.5, -3.5, -1.5, 0.0]
    assert (a ** 2).tolist() == [49, 49, 9, 0]


def test_python_scalar_promotion(device):
    i = em.tensor([1, 2], device=device)
    f = em.tensor([1.0, 2.0], device=device)
    assert (i + 1).dtype == em.int64
    assert (i + 0.5).dtype == em.float32 and (i + 0.5).tolist() == [1.5, 2.5]
    assert (f * 2).dtype == em.float32
    assert (2 - f).tolist() == [1.0, 0.0] and (1 / f).tolist() == [1.0, 0.5]
    assert (em.tensor([1.0], dtype="float16", device=device) + 1.0).dtype == em.float16


def test_mixed_dtype_promotion(device):
    a = em.tensor([1.5], device=device)
    b = em.tensor([2.0], dtype="float64", device=device)
    assert (a + b).dtype == em.float64
    assert (em.tensor([True], device=device) + em.tensor([2], device=device)).dtype == em.int64
    assert (em.tensor([1.0], dtype="float16", device=device) + em.tensor([1.0], dtype="bfloat16", device=device)).dtype == em.float32


# ---- comparisons and where -----------------------------------------------------------------

@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons(op, device):
    r, _ = rng()
    a = r.integers(-3, 3, size=(4, 5)).astype(np.float32)
    b = r.integers(-3, 3, size=(5,)).astype(np.float32)
    got = getattr(em, op)(em.tensor(a, device=device), em.tensor(b, device=device))
    assert got.dtype == em.bool
    np.testing.assert_array_equal(got.cpu().numpy(), getattr(np, {"eq": "equal", "ne": "not_equal", "lt": "less",
                                  "le": "less_equal", "gt": "greater", "ge": "greater_equal"}[op])(a, b))


def test_comparison_with_nan(device):
    x = em.tensor([np.nan, 1.0], device=device)
    assert (x == x).tolist() == [False, True] and (x != x).tolist() == [True, False]


@pytest.mark.parametrize("shapes", [((4, 5), (4, 5), (4, 5)), ((4, 1), (1, 5), ()), ((3,), (2, 3), (1,))], ids=str)
def test_where(shapes, device):
    r, _ = rng()
    cond = r.random(shapes[0]) > 0.5
    c = em.tensor(cond, device=device)
    check_op(lambda a, b: em.where(c, a, b), lambda a, b: np.where(cond, a, b), list(shapes[1:]), device)


def test_where_scalars(device):
    x = em.tensor([-1.0, 2.0, -3.0], device=device)
    assert em.where(x > 0, x, 0.0).tolist() == [0.0, 2.0, 0.0]
    assert em.where([True, False, True], x, 0.0).tolist() == [-1.0, 0.0, -3.0]
    assert em.where(False, x, 1.0).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("cond", [[1.0, 0.0, 2.0], [1, 0, 1], np.array([0.5, 0.0, 1.0])], ids=str)
def test_where_refuses_a_number_condition(cond, device):
    """As PyTorch: a float or integer condition is a TypeError, not read as "non-zero"."""
    x = em.tensor([-1.0, 2.0, -3.0], device=device)
    c = em.tensor(cond, device=device)
    for given in (c, cond):
        with pytest.raises(TypeError, match=r"\[where\] the condition must be bool, got (float|int)"):
            em.where(given, x, 0.0)


def test_bool_comparisons_and_extremes(device):
    a = em.tensor([True, False, True], device=device)
    b = em.tensor([True, True, False], device=device)
    assert (a == b).tolist() == [True, False, False] and (a != b).tolist() == [False, True, True]
    assert em.maximum(a, b).dtype == em.bool and em.maximum(a, b).tolist() == [True, True, True]
    assert em.minimum(a, b).tolist() == [True, False, False]
    assert (a + b).dtype == em.int64 and (a + b).tolist() == [2, 1, 1]


@pytest.mark.parametrize("n", [(1 << 22) + 3, (1 << 21) + 17])
def test_streaming_store_path(n, device):
    # Outputs of >= 1M floats per thread take the streaming-store path (and its unaligned head/tail).
    r, _ = rng()
    a = r.standard_normal(n).astype(np.float32)
    b = r.standard_normal(n).astype(np.float32)
    A, B = em.tensor(a, device=device), em.tensor(b, device=device)
    np.testing.assert_array_equal((A + B).cpu().numpy(), a + b)
    np.testing.assert_array_equal((A[1:] * B[:-1]).cpu().numpy(), a[1:] * b[:-1])  # misaligned output start
    np.testing.assert_array_equal(em.relu(A[3:]).cpu().numpy(), np.maximum(a[3:], 0))
    np.testing.assert_array_equal((A * 2.0).cpu().numpy(), a * np.float32(2.0))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32", "bool"])
@pytest.mark.parametrize("number", [True, 3, -2, 2.5])
def test_python_number_operands_match_torch(dtype, number):
    """tensor (op) number and number (op) tensor (the binary_scalar path): PyTorch's result dtypes
    and values, for every dtype and kind of number."""
    torch = pytest.importorskip("torch")
    a = np.array([[0, 1, 2], [3, 1, 0]]).astype(dtype)
    x, tx = em.tensor(a), torch.from_numpy(a)
    ops = [("add", lambda p, q: p + q), ("sub", lambda p, q: p - q), ("mul", lambda p, q: p * q),
           ("div", lambda p, q: p / q), ("eq", lambda p, q: p == q), ("lt", lambda p, q: p < q),
           ("ge", lambda p, q: p >= q)]
    for name, op in ops:
        for args, targs in (((x, number), (tx, number)), ((number, x), (number, tx))):
            if dtype == "bool" and isinstance(number, bool) and name in ("add", "sub", "mul"):
                continue  # bool arithmetic counts in int64 in ember (docs/architecture.md), torch ORs
            try:
                want = op(*targs)
            except RuntimeError:  # torch refuses it (e.g. bool - bool); ember need not agree
                continue
            got = op(*args)
            assert got.dtype.name == str(want.dtype).replace("torch.", ""), (name, args)
            np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), rtol=1e-3, err_msg=name)
