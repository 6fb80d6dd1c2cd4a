"""Property-based differential tests of ember's public ops against float64 NumPy: random shapes (0-d,
empty and size-1 dims), broadcasting, four memory layouts (contiguous, transposed, negative-stride,
strided), every dtype the op supports, forward and backward. See fuzz_inputs.py for what is drawn."""
import math
import warnings

import numpy as np
import pytest
from fuzz_inputs import CASES, FLOAT, HALF, INT, broadcast_pair, check, layouts, leaf, seeds, shapes, values
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ember as em

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name: (ember fn, float64 NumPy fn, value range, kinks/poles to stay away from, dtypes)
UNARY = {
    "neg": (em.neg, np.negative, (-2, 2), (), FLOAT + HALF + INT),
    "exp": (em.exp, np.exp, (-3, 3), (), FLOAT + HALF),
    "log": (em.log, np.log, (0.05, 3), (), FLOAT + HALF),
    "sqrt": (em.sqrt, np.sqrt, (0.05, 3), (), FLOAT + HALF),
    "abs": (em.abs, np.abs, (-2, 2), (0,), FLOAT + HALF + INT),
    "tanh": (em.tanh, np.tanh, (-3, 3), (), FLOAT + HALF),
    "sigmoid": (em.sigmoid, _sigmoid, (-4, 4), (), FLOAT + HALF),
    "relu": (em.relu, lambda x: np.maximum(x, 0), (-2, 2), (0,), FLOAT + HALF + INT),
    "silu": (em.silu, lambda x: x * _sigmoid(x), (-4, 4), (), FLOAT + HALF),
    "gelu": (em.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), (-3, 3), (), FLOAT + HALF),
    "gelu_tanh": (lambda x: em.gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))), (-3, 3), (),
                  FLOAT + HALF),
    "sign": (em.sign, np.sign, (-2, 2), (0,), FLOAT + HALF + INT),
    "square": (em.square, np.square, (-2, 2), (), FLOAT + HALF + INT),
    "reciprocal": (em.reciprocal, np.reciprocal, (0.2, 3), (), FLOAT + HALF),
    "clamp": (lambda x: em.clamp(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), (-2, 2), (-0.5, 0.7), FLOAT + HALF),
    "clamp_min": (lambda x: em.clamp(x, min=0.3), lambda x: np.maximum(x, 0.3), (-2, 2), (0.3,), FLOAT + HALF),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data(), shape=shapes(), layout=layouts, seed=seeds)
def test_unary(name, data, shape, layout, seed):
    em_fn, np_fn, (low, high), avoid, dtypes = UNARY[name]
    dtype = data.draw(st.sampled_from(dtypes), label="dtype")
    a = values(np.random.default_rng(seed), shape, dtype, low, high, avoid)
    check(name, em_fn, np_fn, [a], dtype, [layout], grad=name != "sign", exact=dtype in INT)


# name: (ember fn, NumPy fn, range of a, range of b, dtypes)
BINARY = {
    "add": (em.add, np.add, (-2, 2), (-2, 2), FLOAT + HALF + INT),
    "sub": (em.sub, np.subtract, (-2, 2), (-2, 2), FLOAT + HALF + INT),
    "mul": (em.mul, np.multiply, (-2, 2), (-2, 2), FLOAT + HALF + INT),
    "div": (em.div, np.divide, (-2, 2), (0.3, 2), FLOAT + HALF),
    "pow": (em.pow, np.power, (0.2, 2), (-2, 2), FLOAT),
    "maximum": (em.maximum, np.maximum, (-2, 2), (-2, 2), FLOAT + HALF + INT),
    "minimum": (em.minimum, np.minimum, (-2, 2), (-2, 2), FLOAT + HALF + INT),
}
COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
           "ge": np.greater_equal}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data(), pair=broadcast_pair(), lay=st.tuples(layouts, layouts), seed=seeds)
def test_binary(name, data, pair, lay, seed):
    em_fn, np_fn, ra, rb, dtypes = BINARY[name]
    dtype = data.draw(st.sampled_from(dtypes), label="dtype")
    r = np.random.default_rng(seed)
    a, b = values(r, pair[0], dtype, *ra), values(r, pair[1], dtype, *rb)
    if name in ("maximum", "minimum") and dtype in FLOAT:   # ties have no derivative
        assume(not np.any(np.isclose(*np.broadcast_arrays(a, b), atol=1e-3)))
    check(name, em_fn, np_fn, [a, b], dtype, lay, exact=dtype in INT)


@pytest.mark.parametrize("name", sorted(COMPARE))
@given(data=st.data(), pair=broadcast_pair(), lay=st.tuples(layouts, layouts), seed=seeds)
def test_compare(name, data, pair, lay, seed):
    dtype = data.draw(st.sampled_from(FLOAT + HALF + INT), label="dtype")
    r = np.random.default_rng(seed)
    # Small integers in every dtype, so equality is hit often.
    a, b = (r.integers(-2, 3, size=s).astype(np.float64) for s in pair)
    check(name, getattr(em, name), COMPARE[name], [a, b], dtype, lay, grad=False)


@given(pair=broadcast_pair(), lay=st.tuples(layouts, layouts, layouts), seed=seeds,
       dtype=st.sampled_from(FLOAT + INT))
def test_where(pair, lay, seed, dtype):
    r = np.random.default_rng(seed)
    cond = r.random(pair[0]) > 0.5
    a, b = values(r, pair[0], dtype), values(r, pair[1], dtype)
    c, _ = leaf(cond, "bool", lay[0], False)
    check("where", lambda x, y: em.where(c, x, y), lambda x, y: np.where(cond, x, y), [a, b], dtype, lay[1:],
          exact=dtype in INT)


# ---- reductions ------------------------------------------------------------------------------

@st.composite
def dims(draw, ndim, tuples=True, none=True):
    """A reduction's dim argument for an ndim-d input: None, one dim (maybe negative) or a tuple."""
    options = (["none"] if none else []) + (["int"] if ndim else []) + (["tuple"] if tuples and ndim else [])
    kind = draw(st.sampled_from(options))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return tuple(draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)))


def _axis(dim):
    return dim if dim is None or isinstance(dim, int) else tuple(dim)


def _reduced_count(shape, dim):
    axes = range(len(shape)) if dim is None else [dim] if isinstance(dim, int) else dim
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _quiet(fn):
    """A NumPy reference that returns NaN for an empty mean without warning, as ember does."""
    def run(*args, **kwargs):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    return run


def _logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


# name: (ember fn(x, dim, keepdim), NumPy fn(x, axis, keepdims), value range, dtypes, tuple dims?,
#        smallest reduced count the op is defined on)
REDUCE = {
    "sum": (em.sum, np.sum, (-2, 2), FLOAT + HALF + INT, True, 0),
    "mean": (em.mean, _quiet(np.mean), (-2, 2), FLOAT + HALF, True, 0),
    "var": (em.var, lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims, ddof=1), (-2, 2), FLOAT,
            True, 2),
    "std": (em.std, lambda x, axis, keepdims: np.std(x, axis=axis, keepdims=keepdims, ddof=1), (-2, 2), FLOAT,
            True, 2),
    "prod": (em.prod, np.prod, (0.6, 1.4), FLOAT, False, 0),
    "amax": (em.amax, np.amax, (-2, 2), FLOAT + HALF + INT, True, 1),
    "amin": (em.amin, np.amin, (-2, 2), FLOAT + HALF + INT, True, 1),
    "max": (lambda x, d, k: em.max(x) if d is None else em.max(x, d, k)[0], np.amax, (-2, 2), FLOAT + INT, False, 1),
    "min": (lambda x, d, k: em.min(x) if d is None else em.min(x, d, k)[0], np.amin, (-2, 2), FLOAT + INT, False, 1),
    "logsumexp": (em.logsumexp, _logsumexp, (-3, 3), FLOAT, False, 1),
}


@pytest.mark.parametrize("name", sorted(REDUCE))
@given(data=st.data(), shape=shapes(), layout=layouts, seed=seeds, keepdim=st.booleans())
def test_reduce(name, data, shape, layout, seed, keepdim):
    em_fn, np_fn, (low, high), dtypes, tuples, min_count = REDUCE[name]
    dtype = data.draw(st.sampled_from(dtypes), label="dtype")
    assume(shape or name != "logsumexp")   # its dim is required; NumPy has no axis 0 on a 0-d array
    dim = data.draw(dims(len(shape), tuples=tuples, none=name != "logsumexp"), label="dim")
    if name in ("max", "min") and dim is None:
        keepdim = False
    count = _reduced_count(shape, dim)
    assume(count >= min_count and (min_count == 0 or np.prod(shape) > 0))
    a = values(np.random.default_rng(seed), shape, dtype, low, high)
    ulps = 8.0
    if name in ("var", "std") and a.size:   # their gradients divide x - mean by std: the rounding of
        spread = np.std(a, axis=_axis(dim), ddof=1)             # x - mean grows by max|x| / std
        ulps *= max(1.0, float(np.max(np.abs(a)) / max(np.min(spread), 1e-12)))
    check(name, lambda x: em_fn(x, dim, keepdim), lambda x: np_fn(x, axis=_axis(dim), keepdims=keepdim),
          [a], dtype, [layout], reduce_n=max(count, 1), ulps=ulps, exact=dtype in INT)


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin", "argmax", "argmin"])
@given(shape=shapes(min_dims=1), data=st.data())
def test_extreme_of_nothing_raises(name, shape, data):
    """An empty reduction has no extreme: a clear error, not garbage (PyTorch raises too)."""
    CASES[name + " of nothing"] += 1
    dim = data.draw(st.integers(0, len(shape) - 1), label="dim")
    x = em.zeros(shape[:dim] + (0,) + shape[dim + 1:])
    with pytest.raises(ValueError, match=r"\[a?(arg)?(max|min)\] cannot reduce over an empty dimension"):
        getattr(em, name)(x, dim)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(data=st.data(), shape=shapes(min_side=1), layout=layouts, seed=seeds, keepdim=st.booleans())
def test_argextreme(name, data, shape, layout, seed, keepdim):
    """Ties included (small integers): the first index wins, as in NumPy and PyTorch."""
    dtype = data.draw(st.sampled_from(FLOAT + INT), label="dtype")
    dim = data.draw(dims(len(shape), tuples=False), label="dim")
    a = np.random.default_rng(seed).integers(-2, 3, size=shape).astype(np.float64)
    np_fn = getattr(np, name)

    def ref(x):
        out = np_fn(x, axis=dim, keepdims=keepdim and dim is not None)
        return np.asarray(out)

    check(name, lambda x: getattr(em, name)(x, dim, keepdim and dim is not None), ref, [a], dtype, [layout],
          grad=False)


@pytest.mark.parametrize("name", ["any", "all"])
@given(data=st.data(), shape=shapes(), layout=layouts, seed=seeds, keepdim=st.booleans())
def test_any_all(name, data, shape, layout, seed, keepdim):
    dim = data.draw(dims(len(shape), tuples=False), label="dim")
    a = np.random.default_rng(seed).random(shape) > 0.3
    check(name, lambda x: getattr(em, name)(x, dim, keepdim), lambda x: getattr(np, name)(x, axis=dim,
          keepdims=keepdim), [a], "bool", [layout], grad=False)


def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data(), shape=shapes(min_dims=1), layout=layouts, seed=seeds)
def test_softmax(name, data, shape, layout, seed):
    dtype = data.draw(st.sampled_from(FLOAT + HALF), label="dtype")
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    a = values(np.random.default_rng(seed), shape, dtype, -4, 4)
    ref = (lambda x: _softmax(x, dim)) if name == "softmax" else (lambda x: np.log(_softmax(x, dim)))
    check(name, lambda x: getattr(em, name)(x, dim), ref, [a], dtype, [layout], reduce_n=shape[dim])


# ---- shape ops -------------------------------------------------------------------------------

@given(shape=shapes(), layout=layouts, seed=seeds, dtype=st.sampled_from(FLOAT + INT), data=st.data())
def test_reshape(shape, layout, seed, dtype, data):
    """To any shape with as many elements: the sizes permuted, with 1s put in, or one -1."""
    sizes = list(data.draw(st.permutations(shape), label="sizes"))
    sizes[data.draw(st.integers(0, len(sizes)), label="one at"):0] = [1] * data.draw(st.integers(0, 2), label="ones")
    if sizes and 0 not in sizes and data.draw(st.booleans(), label="-1"):
        sizes[data.draw(st.integers(0, len(sizes) - 1), label="inferred")] = -1
    a = values(np.random.default_rng(seed), shape, dtype)
    check("reshape", lambda x: x.reshape(*sizes), lambda x: x.reshape(sizes), [a], dtype, [layout],
          exact=dtype in INT)


@given(shape=shapes(), layout=layouts, seed=seeds, dtype=st.sampled_from(FLOAT + HALF + INT), data=st.data())
def test_permute_transpose_flatten(shape, layout, seed, dtype, data):
    n = len(shape)
    order = data.draw(st.permutations(range(n)), label="order")
    op = data.draw(st.sampled_from(["permute", "transpose", "flatten", "unsqueeze", "squeeze"]), label="op")
    if op == "permute":
        fns = (lambda x: x.permute(*order), lambda x: np.transpose(x, order))
    elif op == "transpose" and n:
        i, j = order[0], order[-1]
        fns = (lambda x: x.transpose(i, j), lambda x: np.swapaxes(x, i, j))
    elif op == "flatten" and n:
        i, j = sorted((order[0], order[-1]))
        fns = (lambda x: x.flatten(i, j),
               lambda x: x.reshape(x.shape[:i] + (int(np.prod(x.shape[i:j + 1])),) + x.shape[j + 1:]))
    elif op == "unsqueeze" or not n:
        d = data.draw(st.integers(-n - 1, n), label="dim")
        fns = (lambda x: x.unsqueeze(d), lambda x: np.expand_dims(x, d))
    else:
        d = order[0]
        fns = (lambda x: x.squeeze(d), lambda x: np.squeeze(x, d) if x.shape[d] == 1 else x)
    a = values(np.random.default_rng(seed), shape, dtype)
    check(op, *fns, [a], dtype, [layout], exact=dtype not in FLOAT + HALF)


@given(pair=broadcast_pair(), layout=layouts, seed=seeds, dtype=st.sampled_from(FLOAT + INT))
def test_expand(pair, layout, seed, dtype):
    target = np.broadcast_shapes(*pair)
    a = values(np.random.default_rng(seed), pair[0], dtype)
    check("broadcast_to", lambda x: em.broadcast_to(x, target), lambda x: np.broadcast_to(x, target), [a], dtype,
          [layout], exact=dtype in INT)


@pytest.mark.parametrize("name", ["cat", "stack"])
@given(shape=shapes(min_dims=1), count=st.integers(1, 3), data=st.data(), seed=seeds,
       dtype=st.sampled_from(FLOAT + HALF + INT))
def test_cat_stack(name, shape, count, data, seed, dtype):
    n = len(shape)
    dim = data.draw(st.integers(-n - (name == "stack"), n - 1), label="dim")
    r = np.random.default_rng(seed)
    parts = []
    for _ in range(count):   # cat: each part its own size along dim
        s = list(shape)
        if name == "cat":
            s[dim] = data.draw(st.integers(0, 4), label="size along dim")
        parts.append(values(r, tuple(s), dtype))
    lay = data.draw(st.lists(layouts, min_size=count, max_size=count), label="layouts")
    em_fn, np_fn = (em.cat, np.concatenate) if name == "cat" else (em.stack, np.stack)
    check(name, lambda *xs: em_fn(list(xs), dim), lambda *xs: np_fn(xs, axis=dim), parts, dtype, lay,
          exact=dtype not in FLOAT)


@pytest.mark.parametrize("name", ["split", "chunk"])
@given(shape=shapes(min_dims=1), data=st.data(), seed=seeds, layout=layouts)
def test_split_chunk(name, shape, data, seed, layout):
    dim = data.draw(st.integers(0, len(shape) - 1), label="dim")
    size = data.draw(st.integers(1, 4), label="size or chunks")
    n = shape[dim]
    bounds = list(range(size, n, size)) if name == "split" else list(range(-(-n // size), n, -(-n // size) or 1))
    a = values(np.random.default_rng(seed), shape, "float32")
    piece = data.draw(st.integers(0, len(bounds)), label="piece")
    em_fn = (lambda x: em.split(x, size, dim)) if name == "split" else (lambda x: em.chunk(x, size, dim))
    out_count = len(em_fn(em.zeros(shape)))
    assume(piece < out_count)
    check(name, lambda x: em_fn(x)[piece], lambda x: np.split(x, bounds, axis=dim)[piece], [a], "float32",
          [layout])


# ---- indexing --------------------------------------------------------------------------------

def _dim_keys(draw, sizes):
    """Per dim an int or a slice with a positive step (ints only where the dim is not empty)."""
    keys = []
    for n in sizes:
        if n and draw(st.booleans()):
            keys.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.none() | st.integers(-n - 2, n + 2)
            keys.append(slice(draw(bound), draw(bound), draw(st.none() | st.integers(1, 3))))
    return keys


@st.composite
def basic_keys(draw, shape):
    """A basic-indexing key: entries for some leading dims, maybe an Ellipsis followed by entries
    for some trailing dims, maybe a None (new axis) anywhere."""
    front = draw(st.integers(0, len(shape)))
    key = _dim_keys(draw, shape[:front])
    if draw(st.booleans()):
        back = draw(st.integers(0, len(shape) - front))
        key += [Ellipsis] + _dim_keys(draw, shape[len(shape) - back:])
    if draw(st.booleans()):
        key.insert(draw(st.integers(0, len(key))), None)
    return tuple(key)


@given(shape=shapes(), data=st.data(), layout=layouts, seed=seeds, dtype=st.sampled_from(FLOAT + INT))
def test_basic_indexing(shape, data, layout, seed, dtype):
    key = data.draw(basic_keys(shape), label="key")
    a = values(np.random.default_rng(seed), shape, dtype)
    check("getitem basic", lambda x: x[key], lambda x: x[key], [a], dtype, [layout], exact=dtype in INT)


@given(shape=shapes(min_dims=1, min_side=1), data=st.data(), layout=layouts, seed=seeds,
       dtype=st.sampled_from(FLOAT + INT))
def test_integer_array_indexing(shape, data, layout, seed, dtype):
    """x[idx] and x[:, idx] with an integer array of any shape (negative entries and repeats)."""
    r = np.random.default_rng(seed)
    dim = data.draw(st.integers(0, len(shape) - 1), label="dim")
    idx = r.integers(-shape[dim], shape[dim], size=data.draw(shapes(max_dims=2), label="index shape"))
    key = (slice(None),) * dim + (idx,)
    a = values(r, shape, dtype)
    check("getitem int array", lambda x: x[(slice(None),) * dim + (em.tensor(idx),)], lambda x: x[key], [a], dtype,
          [layout], exact=dtype in INT)


@given(shape=shapes(min_dims=1), layout=layouts, seed=seeds, dtype=st.sampled_from(FLOAT + INT))
def test_boolean_mask_indexing(shape, layout, seed, dtype):
    r = np.random.default_rng(seed)
    mask = r.random(shape) > 0.5
    a = values(r, shape, dtype)
    check("getitem bool mask", lambda x: x[em.tensor(mask)], lambda x: x[mask], [a], dtype, [layout],
          exact=dtype in INT)


@given(shape=shapes(min_dims=1), data=st.data(), layout=layouts, seed=seeds)
def test_gather_index_select(shape, data, layout, seed):
    r = np.random.default_rng(seed)
    dim = data.draw(st.integers(0, len(shape) - 1), label="dim")
    n = shape[dim]
    k = data.draw(st.integers(0 if n else 0, 4 if n else 0), label="picked")
    a = values(r, shape, "float32")
    if data.draw(st.booleans(), label="gather"):
        idx = r.integers(0, max(n, 1), size=shape[:dim] + (k,) + shape[dim + 1:])
        check("gather", lambda x: em.gather(x, dim, em.tensor(idx)), lambda x: np.take_along_axis(x, idx, dim),
              [a], "float32", [layout])
    else:
        idx = r.integers(0, max(n, 1), size=k)
        check("index_select", lambda x: em.index_select(x, dim, em.tensor(idx)), lambda x: np.take(x, idx, dim),
              [a], "float32", [layout])


@given(pair=broadcast_pair(), layout=layouts, seed=seeds, dtype=st.sampled_from(FLOAT + INT))
def test_masked_fill(pair, layout, seed, dtype):
    """The mask broadcasts against x (but does not grow it, as in PyTorch)."""
    target = np.broadcast_shapes(*pair)
    r = np.random.default_rng(seed)
    mask = r.random(pair[1]) > 0.5
    a = values(r, target, dtype)
    check("masked_fill", lambda x: em.masked_fill(x, em.tensor(mask), -3.0), lambda x: np.where(mask, -3.0, x), [a],
          dtype, [layout], exact=dtype in INT)


# ---- matmul ----------------------------------------------------------------------------------

@st.composite
def matmul_shapes(draw):
    """(a shape, b shape) as np.matmul takes them: 1-d on either side, batch dims that broadcast."""
    n, k, m = (draw(st.integers(0, 6), label=s) for s in "nkm")
    batch_a, batch_b = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)).input_shapes
    a = (k,) if draw(st.booleans()) and not batch_a else batch_a + (n, k)
    b = (k,) if draw(st.booleans()) and not batch_b else batch_b + (k, m)
    return a, b


@given(pair=matmul_shapes(), lay=st.tuples(layouts, layouts), seed=seeds, dtype=st.sampled_from(FLOAT + HALF))
def test_matmul(pair, lay, seed, dtype):
    r = np.random.default_rng(seed)
    a, b = values(r, pair[0], dtype), values(r, pair[1], dtype)
    check("matmul", em.matmul, np.matmul, [a, b], dtype, lay, reduce_n=max(pair[0][-1], 1), ulps=16)


# ---- special values: NaN, infinities, signed zeros, denormals, huge ----------------------------

SPECIAL_UNARY = ["neg", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "sign", "square", "reciprocal"]
SPECIAL_BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]


def _same_floats(got, want):
    """Equal where finite (to a few ulps), and NaN, +inf, -inf in exactly the same places."""
    close = np.isclose(got, want, rtol=1e-6, atol=0) | (got == want) | (np.isnan(got) & np.isnan(want))
    return bool(np.all(close))


@pytest.mark.parametrize("name", SPECIAL_UNARY + SPECIAL_BINARY)
@given(data=st.data(), shape=shapes(min_dims=1), dtype=st.sampled_from(FLOAT))
def test_special_values_match_pytorch(name, data, shape, dtype):
    """Any float32-representable value, NaN, infinities and denormals included, forward only:
    ember's edge semantics are PyTorch's (NumPy differs on some, e.g. sign(-0.0))."""
    torch = pytest.importorskip("torch")
    CASES[name + " special"] += 1
    arrays = [data.draw(hnp.arrays(np.float32, shape, elements=st.floats(width=32)), label=f"x{i}").astype(dtype)
              for i in range(1 if name in SPECIAL_UNARY else 2)]
    got = getattr(em, name)(*[em.tensor(a) for a in arrays]).numpy()
    with np.errstate(all="ignore"):
        want = getattr(torch, name)(*[torch.from_numpy(a) for a in arrays]).numpy()
    assert _same_floats(got, want), f"{name} {dtype}: inputs {arrays}, got {got}, torch {want}"
