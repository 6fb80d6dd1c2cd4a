"""CPU GEMM paths by shape, against float64 NumPy with the bound 4 sqrt(K) eps |A| |B|: the
matrix-vector forms (one row or one column), short and narrow products (operands read in place),
batches, and every operand layout the shape sweep of `python -m ember bench gemm --sweep`
times (transposed, strided, windows of larger arrays)."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import ember as em
from ember import _C
from helpers.check import assert_close, check_op, rng, run_with_simd_cap

LAYOUTS = ["n", "t", "s2", "sub"]


def _laid_out(r, shape, layout, dtype):
    """A NumPy view of `shape` in one of the sweep's layouts."""
    if layout == "n":
        return r.standard_normal(shape).astype(dtype)
    if layout == "t":
        return np.swapaxes(r.standard_normal(shape[:-2] + shape[:-3:-1]).astype(dtype), -1, -2)
    if layout == "s2":
        return r.standard_normal(shape[:-1] + (2 * shape[-1],)).astype(dtype)[..., ::2]
    big = r.standard_normal(shape[:-2] + (shape[-2] + 5, shape[-1] + 9)).astype(dtype)
    return big[..., 2:2 + shape[-2], 3:3 + shape[-1]]


def _ember_view(x):
    """The same strides over a copy of the NumPy view's base array, so ember sees the layout as is."""
    base = x
    while base.base is not None:
        base = base.base
    t = em.tensor(np.ascontiguousarray(base))
    offset = (x.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // x.itemsize
    return em.Tensor._wrap(t._a.as_strided(list(x.shape), [s // x.itemsize for s in x.strides], offset))


def _check_product(a, b):
    got = em.Tensor._wrap(_C.matmul(_ember_view(a)._a, _ember_view(b)._a)).numpy()
    want = a.astype(np.float64) @ b.astype(np.float64)
    bound = 4 * np.sqrt(a.shape[-1]) * np.finfo(a.dtype).eps * (np.abs(a).astype(np.float64) @ np.abs(b))
    err = np.abs(got - want)
    assert np.all(err <= bound + 1e-300), f"max error / bound {np.max(err / (bound + 1e-300)):.3g}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("la", LAYOUTS)
@pytest.mark.parametrize("lb", LAYOUTS)
@pytest.mark.parametrize("mkn", [(1, 1, 1), (1, 37, 1), (1, 1, 9), (1, 300, 97), (1, 16, 64), (129, 33, 1),
                                 (5, 1, 1), (1, 1000, 17), (300, 7, 1), (2, 67, 1)], ids=str)
def test_one_row_or_one_column(mkn, la, lb, dtype):
    """M == 1 or N == 1 runs the matrix-vector forms (both, by the matrix operand's unit stride)."""
    r, _ = rng()
    m, k, n = mkn
    _check_product(_laid_out(r, (m, k), la, dtype), _laid_out(r, (k, n), lb, dtype))


def test_one_row_alpha_beta_and_nan_in_c():
    r, _ = rng()
    a, b, c = r.standard_normal((2, 1, 45)), r.standard_normal((2, 45, 70)), r.standard_normal((2, 1, 70))
    A, B, C = (em.tensor(x, dtype="float32") for x in (a, b, c))
    _C.gemm_(A._a, B._a, C._a, -1.5, 0.5)
    f = lambda x: x.astype(np.float32).astype(np.float64)  # noqa: E731
    assert_close(C.numpy(), -1.5 * f(a) @ f(b) + 0.5 * f(c), 4 * np.sqrt(45) * 2.0 ** -24 * 50)
    C = em.full((1, 70, 1), float("nan"))
    _C.gemm_(em.ones(1, 70, 3)._a, em.ones(1, 3, 1)._a, C._a, 1.0, 0.0)  # beta = 0: C is not read
    assert np.all(C.numpy() == 3.0)


@pytest.mark.parametrize("act,ref", [(None, lambda z: z), ("relu", lambda z: np.maximum(z, 0))])
@pytest.mark.parametrize("shape", [((1, 300), (41, 300)), ((57, 300), (1, 300))], ids=["one-row", "one-output"])
def test_linear_epilogue_on_the_matrix_vector_path(act, ref, shape):
    r, _ = rng()
    x, w = r.standard_normal(shape[0]).astype(np.float32), r.standard_normal(shape[1]).astype(np.float32)
    b = r.standard_normal(w.shape[0]).astype(np.float32)
    got = em.linear(em.tensor(x), em.tensor(w), em.tensor(b), act).numpy()
    assert_close(got, ref(x.astype(np.float64) @ w.T.astype(np.float64) + b), 4 * np.sqrt(300) * 2.0 ** -24 * 40)


@pytest.mark.parametrize("shapes", [((1, 40), (40, 33)), ((29, 40), (40, 1)), ((1, 40), (40, 1))], ids=str)
def test_matrix_vector_gradients(shapes):
    check_op(lambda a, b: a @ b, np.matmul, list(shapes), reduce_n=40)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("la", LAYOUTS)
@pytest.mark.parametrize("lb", LAYOUTS)
@pytest.mark.parametrize("mkn", [(13, 257, 7), (40, 129, 33), (25, 64, 100), (97, 300, 31), (12, 1, 64),
                                 (16, 300, 100), (7, 50, 70), (13, 1000, 40), (30, 1500, 17)], ids=str)
def test_short_and_narrow_products(mkn, la, lb, dtype):
    """Few columns or few rows, where the AVX-512 tile reads A or B in place instead of packing it
    (whole tiles in place, ragged edges packed; K in several slices): every layout."""
    r, _ = rng()
    m, k, n = mkn
    _check_product(_laid_out(r, (m, k), la, dtype), _laid_out(r, (k, n), lb, dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mkn", [(100, 257, 40), (100, 1031, 16), (98, 513, 45), (101, 257, 16), (4, 2049, 100)],
                         ids=str)
def test_ragged_row_tiles_with_odd_depth(mkn, dtype):
    """Last row blocks of 4 or fewer rows (and 16-column panels), whose tiles split the depth over
    several accumulator sets: every depth left over by that split (K odd, K = 1 mod 4)."""
    r, _ = rng()
    m, k, n = mkn
    _check_product(_laid_out(r, (m, k), "n", dtype), _laid_out(r, (k, n), "t", dtype))


@pytest.mark.parametrize("la", LAYOUTS)
@pytest.mark.parametrize("lb", LAYOUTS)
@pytest.mark.parametrize("shapes", [((9, 8, 8), (9, 8, 8)), ((5, 17, 20), (5, 20, 3)), ((3, 1, 50), (3, 50, 40)),
                                    ((4, 30, 20), (4, 20, 1))], ids=str)
def test_batches_in_every_layout(shapes, la, lb):
    r, _ = rng()
    _check_product(_laid_out(r, shapes[0], la, "float32"), _laid_out(r, shapes[1], lb, "float32"))


@pytest.mark.parametrize("isa", ["avx2", "portable"])
def test_matrix_vector_forms_on_narrower_isas(isa):
    code = (
        "import numpy as np, ember as em\n"
        "r = np.random.default_rng()\n"
        "for m, k, n in [(1, 1, 1), (1, 37, 70), (53, 29, 1), (1, 5, 3), (6, 300, 40)]:\n"
        "    for dt in ('float32', 'float64'):\n"
        "        a, b = r.standard_normal((m, k)), r.standard_normal((k, n))\n"
        "        got = (em.tensor(a, dtype=dt) @ em.tensor(b, dtype=dt)).numpy()\n"
        "        want = a.astype(dt).astype(np.float64) @ b.astype(dt).astype(np.float64)\n"
        "        bound = 4 * np.sqrt(k) * np.finfo(dt).eps * (np.abs(a) @ np.abs(b))\n"
        "        assert np.all(np.abs(got - want) <= bound), (m, k, n, dt)\n"
    )
    run_with_simd_cap(isa, code)


def test_sweep_cli_validates_every_library_and_prints_the_ratios(tmp_path):
    path = tmp_path / "sweep.json"
    out = subprocess.run([sys.executable, "-m", "ember", "bench", "gemm", "--sweep", "--only", "k=1 ", "--repeat", "3",
                          "--json", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "median ratio to the best peer" in out.stdout and "per group (median): small K" in out.stdout, out.stdout
    (r,) = json.loads(path.read_text())["results"]
    assert r["case"].startswith("k=1 ") and r["valid"] and r["ms"] > 0 and r["peers"].get("numpy", 0) > 0, r
    assert r["extra"]["group"] == "small K"


# ---- the small path: every product under kSerialFlops (0.8 MFLOP), read in place, no packing ----
# Its register tiles (gemm_kernels.cpp: gemm_small): vectors of 16 float32 / 8 float64 lanes on
# AVX-512 (8 / 4 on AVX2, 4 / 2 portable), column blocks of up to 4 vectors (2 below AVX-512), the
# last vector of a block masked; row blocks of at most 12 rows (8 at 3 vectors, 6 at 4), spread
# evenly. SMALL_SIZES crosses each of those edges; 73^3 is just under kSerialFlops and 74^3 over.
SMALL_SIZES = [2, 3, 5, 7, 8, 9, 12, 13, 16, 17, 24, 25, 31, 32, 33, 47, 48, 49, 63, 64, 65]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m", SMALL_SIZES)
def test_small_path_every_row_and_column_edge(m, dtype):
    r, _ = rng()
    for n in SMALL_SIZES + [80, 97, 129]:
        for k in (1, 2, 11, 64):
            _check_product(_laid_out(r, (m, k), "n", dtype), _laid_out(r, (k, n), "n", dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("la", LAYOUTS)
@pytest.mark.parametrize("lb", LAYOUTS)
@pytest.mark.parametrize("mkn", [(2, 1, 2), (8, 8, 8), (13, 29, 7), (32, 32, 32), (61, 37, 53), (64, 64, 64),
                                 (5, 300, 33), (100, 2, 100), (2, 1000, 3), (300, 3, 300), (73, 73, 73), (74, 74, 74)],
                         ids=str)
def test_small_path_in_every_layout(mkn, la, lb, dtype):
    """A is only broadcast (any strides); B with unit column stride is read in place, any other B is
    copied (transposed through the 8 x 8 register transposes, strided element by element)."""
    r, _ = rng()
    m, k, n = mkn
    _check_product(_laid_out(r, (m, k), la, dtype), _laid_out(r, (k, n), lb, dtype))


@pytest.mark.parametrize("dtype,kn", [("float32", (64, 128)), ("float32", (64, 129)), ("float64", (64, 64)),
                                      ("float64", (64, 65)), ("float32", (8192, 1 + 1))], ids=str)
def test_transposed_b_on_both_sides_of_the_copy_bound(dtype, kn):
    """B^T is copied onto the stack up to 32 KiB (K * N * itemsize); past that the product is packed."""
    r, _ = rng()
    k, n = kn
    for m in (3, 12, 31):
        _check_product(_laid_out(r, (m, k), "n", dtype), _laid_out(r, (k, n), "t", dtype))


@pytest.mark.parametrize("la", ["n", "t", "sub"])
@pytest.mark.parametrize("lb", ["n", "t", "s2"])
@pytest.mark.parametrize("shapes", [((4096, 8, 8), (4096, 8, 8)), ((1024, 16, 16), (1024, 16, 16)),
                                    ((7, 13, 5), (7, 5, 17)), ((2, 2, 1), (2, 1, 2)), ((3, 65, 33), (3, 33, 49))],
                         ids=str)
def test_small_batches(shapes, la, lb):
    """Batches of small products, split over the threads when the batch is large (4096 x 8^3)."""
    r, _ = rng()
    _check_product(_laid_out(r, shapes[0], la, "float32"), _laid_out(r, shapes[1], lb, "float32"))


@pytest.mark.parametrize("la", ["n", "t"])
@pytest.mark.parametrize("shapes", [((13, 7), (300, 7, 17)), ((1, 13, 7), (300, 7, 17)), ((300, 13, 7), (7, 17)),
                                    ((300, 13, 7), (1, 7, 17)), ((2, 1, 9, 4), (1, 5, 4, 3))], ids=str)
def test_small_batches_with_broadcast_operands(shapes, la):
    """An operand shared by the whole batch has batch stride 0 (a transposed A keeps (B, M, K) @ (K, N)
    from folding into one product)."""
    r, _ = rng()
    _check_product(_laid_out(r, shapes[0], la, "float32"), _laid_out(r, shapes[1], "n", "float32"))
    _check_product(_laid_out(r, shapes[0], "n", "float32"), _laid_out(r, shapes[1], la, "float32"))


def _gemm_inplace(a, b, c, alpha, beta):
    A, B, C = (em.tensor(x) for x in (a, b, c))
    _C.gemm_(A._a, B._a, C._a, alpha, beta)
    return C.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mkn", [(2, 1, 2), (3, 5, 2), (13, 7, 17), (12, 33, 64), (7, 16, 65), (25, 9, 48)], ids=str)
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-1.5, 0.0), (0.5, 2.0), (1.0, -1.0)])
def test_small_path_alpha_beta(mkn, alpha, beta, dtype):
    r, _ = rng()
    m, k, n = mkn
    a, b, c = (r.standard_normal(s).astype(dtype) for s in ((3, m, k), (3, k, n), (3, m, n)))
    if beta == 0.0:
        c[:] = np.nan  # beta = 0: C is not read
    got = _gemm_inplace(a, b, c, alpha, beta)
    c_read = np.zeros_like(c) if beta == 0.0 else c.astype(np.float64)
    want = alpha * (a.astype(np.float64) @ b) + beta * c_read
    eps = np.finfo(dtype).eps
    bound = 4 * np.sqrt(k + 1) * eps * (abs(alpha) * (np.abs(a).astype(np.float64) @ np.abs(b)) + abs(beta) * np.abs(c_read))
    assert np.all(np.abs(got - want) <= bound + 1e-300)


def _gelu(z):
    return 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


ACTS = {"none": lambda z: z, "relu": lambda z: np.maximum(z, 0), "gelu": _gelu,
        "gelu_tanh": lambda z: 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("mkn", [(2, 3, 2), (13, 7, 17), (32, 10, 64), (9, 40, 33), (61, 5, 97)], ids=str)
@pytest.mark.parametrize("weight_layout", ["B", "W^T"])
def test_small_path_bias_and_activation(mkn, act, dtype, weight_layout):
    """The fused epilogue on the small path: matmul(a, b, bias, act) reads B in place, linear(x, W)
    multiplies by W^T (copied). A NaN row of A stays NaN through ReLU, as elsewhere."""
    r, _ = rng()
    m, k, n = mkn
    a, w, bias = (r.standard_normal(s).astype(dtype) for s in ((m, k), (n, k), (n,)))
    a[m // 2, 0] = np.nan
    A, W, Bias = em.tensor(a), em.tensor(w), em.tensor(bias)
    Bm = em.tensor(np.ascontiguousarray(w.T))
    out = _C.matmul(A._a, Bm._a, Bias._a, getattr(_C.Activation, act)) if weight_layout == "B" else \
        _C.linear(A._a, W._a, Bias._a, getattr(_C.Activation, act))
    got = em.Tensor._wrap(out).numpy()
    z = a.astype(np.float64) @ w.T.astype(np.float64) + bias
    with np.errstate(invalid="ignore"):
        want = ACTS[act](z)
    eps = np.finfo(dtype).eps
    # the product's rounding (|d act / dz| <= 1.13 for GELU) plus a few ulps of the activation itself
    bound = 1.2 * 4 * np.sqrt(k + 1) * eps * (np.abs(a).astype(np.float64) @ np.abs(w.T) + np.abs(bias)) + 8 * eps * np.abs(want)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.all(np.abs(got[ok] - want[ok]) <= bound[ok] + 1e-300)


@pytest.mark.parametrize("isa", ["avx2", "portable"])
def test_small_path_on_narrower_isas(isa):
    """The same tiles with AVX2 (vmaskmov edges) and the portable build (partial copies)."""
    code = (
        "import numpy as np, ember as em\n"
        "from ember import _C\n"
        "r = np.random.default_rng()\n"
        "for m, k, n in [(2, 1, 2), (7, 5, 3), (13, 29, 17), (12, 8, 16), (6, 64, 32), (25, 9, 33), (64, 64, 64), (61, 37, 53)]:\n"
        "    for dt in ('float32', 'float64'):\n"
        "        for bt in (False, True):\n"
        "            a, b, bias = r.standard_normal((m, k)), r.standard_normal((k, n)), r.standard_normal(n)\n"
        "            a, b, bias = a.astype(dt).astype(np.float64), b.astype(dt).astype(np.float64), bias.astype(dt).astype(np.float64)\n"
        "            eb = em.tensor(b.T.copy(), dtype=dt).t() if bt else em.tensor(b, dtype=dt)\n"
        "            got = em.Tensor._wrap(_C.matmul(em.tensor(a, dtype=dt)._a, eb._a, em.tensor(bias, dtype=dt)._a,\n"
        "                                            _C.Activation.relu)).numpy()\n"
        "            want = np.maximum(a @ b + bias, 0)\n"
        "            bound = 4 * np.sqrt(k + 1) * np.finfo(dt).eps * (np.abs(a) @ np.abs(b) + np.abs(bias))\n"
        "            assert np.all(np.abs(got - want) <= bound), (m, k, n, dt, bt)\n"
        "            c = r.standard_normal((1, m, n)).astype(dt)\n"
        "            C = em.tensor(c)\n"
        "            _C.gemm_(em.tensor(a[None], dtype=dt)._a, em.tensor(b[None], dtype=dt)._a, C._a, 2.0, -0.5)\n"
        "            want = 2 * (a @ b) - 0.5 * c[0]\n"
        "            bound = 4 * np.sqrt(k) * np.finfo(dt).eps * (2 * np.abs(a) @ np.abs(b) + np.abs(c[0]))\n"
        "            assert np.all(np.abs(C.numpy()[0] - want) <= bound), (m, k, n, dt, 'beta')\n"
    )
    run_with_simd_cap(isa, code)
