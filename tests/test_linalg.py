"""GEMM, matmul and linear against float64 NumPy: transposes, odd sizes, views, batches, alpha/beta,
the fused epilogue, gradients, and every ISA's micro-kernel."""
import math

import numpy as np
import pytest

import ember as em
from ember import _C
from helpers.check import assert_close, check_op, gradcheck_op, rng, run_with_simd_cap, tolerance

ODD = [1, 7, 31, 33, 127, 129]


def _gemm_tol(k, dtype="float32"):
    return tolerance(dtype, n=k, ulps=4)


@pytest.mark.parametrize("m", ODD)
@pytest.mark.parametrize("n", ODD)
def test_matmul_odd_sizes(m, n, device):
    k = 37
    check_op(lambda a, b: a @ b, np.matmul, [(m, k), (k, n)], device, reduce_n=k, grad=m * n <= 1000)


@pytest.mark.parametrize("mkn", [(1000, 129, 33), (33, 1000, 127), (5, 3000, 7), (300, 1, 200)], ids=str)
def test_matmul_large_k_or_m(mkn, device):
    m, k, n = mkn
    check_op(lambda a, b: a @ b, np.matmul, [(m, k), (k, n)], device, reduce_n=k, grad=False)


def test_every_remainder_of_the_register_tile(device):
    # m and n through 1..70 cover every remainder of MR (4, 6, 8, 12) and NR (8, 16, 32).
    r, seed = rng()
    k = 19
    for m in range(1, 71, 3):
        for n in range(1, 71):
            a, b = r.standard_normal((m, k)), r.standard_normal((k, n))
            got = (em.tensor(a, dtype="float32", device=device) @ em.tensor(b, dtype="float32", device=device))
            want = a.astype(np.float32).astype(np.float64) @ b.astype(np.float32).astype(np.float64)
            assert_close(got.cpu().numpy(), want, _gemm_tol(k), msg=f"seed {seed} m={m} n={n}")


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_transpose_modes_without_copies(ta, tb, device):
    r, _ = rng()
    m, k, n = 45, 70, 33
    a = r.standard_normal((k, m) if ta else (m, k))
    b = r.standard_normal((n, k) if tb else (k, n))
    A = em.tensor(a, dtype="float32", device=device)
    B = em.tensor(b, dtype="float32", device=device)
    A, B = (A.t() if ta else A), (B.t() if tb else B)
    want = (a.T if ta else a).astype(np.float32).astype(np.float64) @ (b.T if tb else b).astype(np.float32).astype(np.float64)
    assert_close((A @ B).cpu().numpy(), want, _gemm_tol(k))


def test_non_contiguous_views(device):
    r, _ = rng()
    a = em.tensor(r.standard_normal((40, 60)), dtype="float32", device=device)[::2, 1::3]   # (20, 20)
    b = em.tensor(r.standard_normal((50, 30)), dtype="float32", device=device)[5:25, ::2]   # (20, 15)
    want = a.cpu().double().numpy() @ b.cpu().double().numpy()
    assert_close((a @ b).cpu().numpy(), want, _gemm_tol(20))


@pytest.mark.parametrize("shapes", [((4, 5, 7), (4, 7, 3)), ((2, 1, 5, 7), (3, 7, 6)), ((3, 5, 7), (7, 2)),
                                    ((7,), (2, 7, 3)), ((2, 5, 7), (7,)), ((7,), (7,)), ((6, 2, 3), (1, 3, 4))], ids=str)
def test_batched_broadcast(shapes, device):
    check_op(lambda a, b: a @ b, np.matmul, list(shapes), device, reduce_n=7)


def test_float64(device):
    if device == "cuda":
        pytest.skip("float64 GEMM is CPU only")
    check_op(lambda a, b: a @ b, np.matmul, [(33, 65), (65, 17)], device, dtype="float64", reduce_n=65)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.5, 2.0), (0.0, 0.5)])
def test_gemm_alpha_beta(alpha, beta, device):
    r, _ = rng()
    a, b, c = r.standard_normal((3, 29, 41)), r.standard_normal((3, 41, 35)), r.standard_normal((3, 29, 35))
    A, B = (em.tensor(x, dtype="float32", device=device) for x in (a, b))
    C = em.tensor(c, dtype="float32", device=device)
    _C.gemm_(A._a, B._a, C._a, alpha, beta)
    f = lambda x: x.astype(np.float32).astype(np.float64)  # noqa: E731
    assert_close(C.cpu().numpy(), alpha * f(a) @ f(b) + beta * f(c), _gemm_tol(41))


def test_beta_zero_ignores_nan_in_c():
    C = em.full((1, 2, 2), float("nan"))
    _C.gemm_(em.ones(1, 2, 3)._a, em.ones(1, 3, 2)._a, C._a, 1.0, 0.0)
    assert C.tolist() == [[[3.0, 3.0], [3.0, 3.0]]]


def test_k_zero_gives_bias_only():
    out = em.linear(em.ones(3, 0), em.ones(4, 0), em.tensor([1.0, -2.0, 3.0, 0.5]), "relu")
    assert out.tolist() == [[1.0, 0.0, 3.0, 0.5]] * 3


def _np_gelu(z):
    return 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


@pytest.mark.parametrize("act,ref", [(None, lambda z: z), ("relu", lambda z: np.maximum(z, 0)), ("gelu", _np_gelu),
                                     ("gelu_tanh", lambda z: 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3))))])
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7), (1, 7), (130, 7)], ids=str)
def test_linear_fused_epilogue(act, ref, shape, device):
    check_op(lambda x, w, b: em.linear(x, w, b, act), lambda x, w, b: ref(x @ w.T + b),
             [shape, (33, 7), (33,)], device, reduce_n=7, fd_limit=2000)


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh"])
def test_linear_gelu_runs_fused_without_a_graph(act):
    """No graph (inference): GELU runs in the GEMM epilogue (vectorised on float32), not as its own op."""
    r, seed = rng()
    x, w, b = r.standard_normal((131, 40)), r.standard_normal((70, 40)), r.standard_normal(70)
    z = x.astype(np.float32).astype(np.float64) @ w.astype(np.float32).astype(np.float64).T + b.astype(np.float32)
    want = _np_gelu(z) if act == "gelu" else 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    with em.no_grad():
        got = em.linear(em.tensor(x, dtype="float32"), em.tensor(w, dtype="float32"), em.tensor(b, dtype="float32"), act)
    assert_close(got.numpy(), want, 2e-5, msg=f"seed {seed}")


@pytest.mark.parametrize("m", [1, 2, 5, 8])
@pytest.mark.parametrize("k,n", [(320, 1), (331, 6), (787, 33), (1024, 5)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_few_rows_of_x_against_w_in_place(m, k, n, dtype, device):
    """x @ W^T with a small batch and a long K: the dot-product path (both operands read along K in
    place), with the bias + ReLU epilogue, in both float dtypes."""
    r, seed = rng()
    x, w, b = r.standard_normal((m, k)), r.standard_normal((n, k)), r.standard_normal(n)
    with em.no_grad():
        got = em.linear(em.tensor(x, dtype=dtype, device=device), em.tensor(w, dtype=dtype, device=device),
                        em.tensor(b, dtype=dtype, device=device), "relu")
    rd = lambda a: a.astype(dtype).astype(np.float64)  # noqa: E731 - the inputs as ember holds them
    want = np.maximum(rd(x) @ rd(w).T + rd(b), 0)
    # Rounding scales with the sum of |products|, not with the result: when ReLU leaves only small
    # outputs (all 5 of a row can be < 1 after cancellation), a bound relative to them fails
    # correct sums (seed 1587504380: error 2.7e-14 on 0.0185, sum of |x w| 660).
    atol = _gemm_tol(k, dtype) * float(np.max(np.abs(rd(x)) @ np.abs(rd(w)).T + np.abs(rd(b))))
    assert_close(got.cpu().numpy(), want, _gemm_tol(k, dtype), atol=atol, msg=f"seed {seed}")


@pytest.mark.parametrize("m", [2, 33])
@pytest.mark.parametrize("k,n", [(1, 130), (2, 77), (5, 512), (8, 785)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_depth_weight_gradient_shape(m, k, n, dtype, device):
    """g^T @ x with K = a small batch (a weight gradient): the row-by-row axpy path for long rows or
    K <= 2, on a transposed left operand, in both float dtypes."""
    r, seed = rng()
    g, x = r.standard_normal((k, m)), r.standard_normal((k, n))
    got = em.tensor(g, dtype=dtype, device=device).T @ em.tensor(x, dtype=dtype, device=device)
    rd = lambda a: a.astype(dtype).astype(np.float64)  # noqa: E731
    assert_close(got.cpu().numpy(), rd(g).T @ rd(x), _gemm_tol(k, dtype), msg=f"seed {seed}")


def test_linear_of_a_vector(device):
    """A 1-d input is one row (PyTorch's F.linear): (in,) -> (out,), forward and backward."""
    check_op(lambda x, w, b: em.linear(x, w, b, "relu"), lambda x, w, b: np.maximum(w @ x + b, 0),
             [(7,), (5, 7), (5,)], device, reduce_n=7)


def test_linear_without_bias(device):
    check_op(lambda x, w: em.linear(x, w), lambda x, w: x @ w.T, [(4, 9), (5, 9)], device, reduce_n=9)


def test_matmul_gradcheck():
    gradcheck_op(lambda a, b: a @ b, [(3, 4), (4, 2)])
    gradcheck_op(lambda a, b: a @ b, [(2, 3, 4), (4, 2)])
    gradcheck_op(lambda x, w, b: em.linear(x, w, b, "relu"), [(3, 4), (5, 4), (5,)])


def test_matmul_errors():
    with pytest.raises(ValueError, match=r"\[matmul\] inner dimensions differ"):
        em.ones(2, 3) @ em.ones(4, 5)
    with pytest.raises(ValueError, match=r"\[matmul\].*broadcast"):
        em.ones(2, 2, 3) @ em.ones(3, 3, 4)
    with pytest.raises(TypeError, match=r"\[matmul\]"):
        em.ones(2, 2, dtype="int64") @ em.ones(2, 2, dtype="int64")
    with pytest.raises(ValueError, match=r"\[linear\] unknown activation"):
        em.linear(em.ones(2, 2), em.ones(2, 2), None, "swish")


@pytest.mark.parametrize("isa", ["avx2", "portable"])
def test_narrower_isas_compute_the_same(isa):
    code = (
        "import numpy as np, ember as em\n"
        "r = np.random.default_rng()\n"
        "for m, k, n in [(1, 1, 1), (7, 33, 31), (67, 129, 70), (200, 300, 150), (5, 331, 9), (8, 784, 32)]:\n"
        "    a, b = r.standard_normal((m, k)), r.standard_normal((k, n))\n"
        "    got = (em.tensor(a, dtype='float32') @ em.tensor(b, dtype='float32')).numpy()\n"
        "    want = a.astype(np.float32).astype(np.float64) @ b.astype(np.float32).astype(np.float64)\n"
        "    assert np.allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max()), (m, k, n)\n"
        "    assert np.allclose((em.tensor(a).exp()).numpy(), np.exp(a), rtol=1e-12)\n"
        "    w = r.standard_normal((n, k))\n"
        "    got = (em.tensor(a[:8], dtype='float32') @ em.tensor(w, dtype='float32').T).numpy()\n"
        "    want = a[:8].astype(np.float32).astype(np.float64) @ w.astype(np.float32).astype(np.float64).T\n"
        "    assert np.allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max()), ('x @ W^T', m, k, n)\n"
    )
    run_with_simd_cap(isa, code)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 31, 33), (32, 700, 129), (13, 1000, 40)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_prepacked_operand_matches_float64(m, k, n, dtype):
    """_C.gemm_pack_b + matmul_packed (an RNN's W_hh, packed once for all steps), with K crossing
    the KC slices, a transposed B, and a bias."""
    from ember import _C
    r = np.random.default_rng(m * 1000 + k)
    a, b, bias = r.standard_normal((m, k)), r.standard_normal((k, n)), r.standard_normal(n)
    ea, eb = em.tensor(a, dtype=dtype), em.tensor(b.T.copy(), dtype=dtype).t()
    packed = _C.gemm_pack_b(eb._a)
    got = em.Tensor._wrap(_C.matmul_packed(ea._a, packed, em.tensor(bias, dtype=dtype)._a)).numpy()
    want = ea.double().numpy() @ eb.double().numpy() + em.tensor(bias, dtype=dtype).double().numpy()
    tol = (1e-5 if dtype == "float32" else 1e-13) * np.sqrt(k)
    assert np.allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    with pytest.raises(ValueError, match=r"matmul.*\(M, " + str(k) + r"\)"):
        _C.matmul_packed(em.zeros(2, k + 1, dtype=dtype)._a, packed)
