"""CPU GEMM paths by shape, against float64 NumPy with the bound 4 sqrt(K) eps |A| |B|: the
matrix-vector forms (one row or one column), short and narrow products (operands read in place),
batches, and every operand layout the shape sweep of `python -m ember bench gemm --sweep`
times (transposed, strided, windows of larger arrays)."""
import json
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
