"""Every path of the CUDA GEMM (csrc/cuda/gemm.cu) against a float64 reference of the rounded inputs:
exact float32, TF32 (em.set_float32_matmul_precision("high")), bfloat16 and float16 (the sm_90a wgmma
kernel where the GPU has it, else the sm_80 pipelined one, and the mma_gemm fallback for operands it
refuses); odd sizes (1, 7, 33, 127, 1000, 4097 along each dim), every transpose mode, misaligned
views, batches, alpha/beta and the bias + activation epilogue. Outputs are poisoned with NaN before
each run (beta = 0 never reads C), so an element a kernel forgets to write fails the test.
Bounds, per element, with |A||B| the float64 product of the absolute values (>= |A B|):
  float32: 1e-5 |A||B|  (accumulation: ~sqrt(K) 2^-24 in practice, the worst case is K 2^-24)
  TF32:    2^-10 |A||B| + 1e-5 |A||B|  (each input rounded to 11 significant bits: 2 * 2^-11 per product)
  16-bit:  one rounding of the output (2^-8 bf16, 2^-11 fp16) of |AB| + 1e-5 |A||B| (exact products,
           float32 sums). Skipped without a GPU."""
import numpy as np
import pytest

import ember as em
from ember import _C
from helpers.check import rng

pytestmark = pytest.mark.cuda

SIZES = [(1, 1, 1), (7, 33, 127), (127, 1000, 33), (1000, 7, 4097), (33, 4097, 7), (4097, 127, 33)]
PATHS = ["float32", "tf32", "bfloat16", "float16"]
OUT_ROUNDING = {"float32": 0.0, "tf32": 0.0, "bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}


@pytest.fixture(params=PATHS)
def path(request):
    """The path under test; tf32 is float32 under the "high" precision setting (restored after)."""
    before = em.get_float32_matmul_precision()
    em.set_float32_matmul_precision("high" if request.param == "tf32" else "highest")
    yield request.param
    em.set_float32_matmul_precision(before)


def dtype_of(path):
    return "float32" if path == "tf32" else path


def rounded(a, path):
    """The values the GPU sees: a stored in the path's dtype, back in float64."""
    return em.tensor(a, dtype=dtype_of(path)).to("float64").numpy()


def check(got, want, scale, path, msg):
    got = np.asarray(got, dtype=np.float64)
    assert not np.isnan(got).any(), f"{msg}: {int(np.isnan(got).sum())} output elements not written (NaN)"
    tol = 1e-5 + (2.0 ** -10 if path == "tf32" else 0.0)
    bound = OUT_ROUNDING[path] * np.abs(want) + tol * scale + 1e-30
    err = np.abs(got - want)
    i = np.unravel_index(np.argmax(err / bound), err.shape)
    assert np.all(err <= bound), f"{msg}: error {err[i]:.3g} > bound {bound[i]:.3g} at {i}: got {got[i]}, want {want[i]}"


def device_tensor(a, path, transpose=False):
    """a on the GPU in the path's dtype; with transpose, stored as a^T and viewed back (strided)."""
    if not transpose:
        return em.tensor(a, dtype=dtype_of(path), device="cuda")
    return em.tensor(np.ascontiguousarray(np.swapaxes(a, -1, -2)), dtype=dtype_of(path), device="cuda").transpose(-1, -2)


def gemm_poisoned(a, b, path, alpha=1.0, beta=0.0, c0=None, ta=False, tb=False):
    """C = alpha A B + beta C through _C.gemm_ into a NaN-filled (or c0-filled) output."""
    B, M, N = a.shape[0], a.shape[1], b.shape[2]
    ea, eb = device_tensor(a, path, ta), device_tensor(b, path, tb)
    c = em.full((B, M, N), float("nan"), dtype=dtype_of(path), device="cuda") if c0 is None else \
        em.tensor(c0, dtype=dtype_of(path), device="cuda")
    _C.gemm_(ea._a, eb._a, c._a, alpha, beta)
    return c.to("float64").cpu().numpy()


@pytest.mark.parametrize("mnk", SIZES)
def test_sizes(path, mnk):
    r, seed = rng()
    M, N, K = mnk
    a, b = r.standard_normal((1, M, K)), r.standard_normal((1, K, N))
    got = gemm_poisoned(a, b, path)
    ra, rb = rounded(a, path), rounded(b, path)
    check(got, ra @ rb, np.abs(ra) @ np.abs(rb), path, f"{path} {mnk} seed {seed}")


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_transposes_batches_alpha(path, ta, tb):
    r, seed = rng()
    a, b = r.standard_normal((3, 130, 67)), r.standard_normal((3, 67, 129))
    got = gemm_poisoned(a, b, path, alpha=0.5, ta=ta, tb=tb)
    ra, rb = rounded(a, path), rounded(b, path)
    check(got, 0.5 * (ra @ rb), 0.5 * (np.abs(ra) @ np.abs(rb)), path, f"{path} ta={ta} tb={tb} seed {seed}")


# Sizes whose strides qualify for the 16-byte and TMA paths (multiples of 8 elements) in every
# transpose mode, with edges inside every tile (K = 8, 136 = 128 + 8, 264 = 256 + 8); and odd M, N
# with K % 8 == 0, where only A and B both K-major (ta = False, tb = True: x @ W^T, the sm_90a wgmma
# layout) take the fast paths.
@pytest.mark.parametrize("mnk", [(1000, 136, 264), (8, 4104, 64), (4104, 24, 8), (127, 1001, 136)])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_fast_path_layouts(path, mnk, ta, tb):
    r, seed = rng()
    M, N, K = mnk
    a, b = r.standard_normal((2, M, K)), r.standard_normal((2, K, N))
    got = gemm_poisoned(a, b, path, ta=ta, tb=tb)
    ra, rb = rounded(a, path), rounded(b, path)
    check(got, ra @ rb, np.abs(ra) @ np.abs(rb), path, f"{path} {mnk} ta={ta} tb={tb} seed {seed}")


def test_beta_accumulates(path):
    r, seed = rng()
    a, b, c0 = r.standard_normal((2, 33, 129)), r.standard_normal((2, 129, 65)), r.standard_normal((2, 33, 65))
    got = gemm_poisoned(a, b, path, alpha=2.0, beta=0.75, c0=c0)
    ra, rb, rc = rounded(a, path), rounded(b, path), rounded(c0, path)
    want = 2.0 * (ra @ rb) + 0.75 * rc
    check(got, want, 2.0 * (np.abs(ra) @ np.abs(rb)) + np.abs(rc), path, f"{path} beta seed {seed}")


def test_misaligned_and_strided_views(path):
    """Views at odd offsets and with non-unit inner strides: the fast paths must refuse or cope."""
    r, seed = rng()
    a, b = r.standard_normal((2, 45, 71)), r.standard_normal((2, 70, 2 * 37))
    ea = em.tensor(a, dtype=dtype_of(path), device="cuda")[:, :, 1:]  # base off by one element
    eb = em.tensor(b, dtype=dtype_of(path), device="cuda")[:, :, ::2]  # column stride 2
    c = em.full((2, 45, 37), float("nan"), dtype=dtype_of(path), device="cuda")
    _C.gemm_(ea._a, eb._a, c._a, 1.0, 0.0)
    ra, rb = rounded(a, path)[:, :, 1:], rounded(b, path)[:, :, ::2]
    check(c.to("float64").cpu().numpy(), ra @ rb, np.abs(ra) @ np.abs(rb), path, f"{path} views seed {seed}")


def test_broadcast_batch(path):
    """A batch stride of 0 (one weight matrix for every batch entry)."""
    r, seed = rng()
    a, w = r.standard_normal((4, 33, 40)), r.standard_normal((40, 24))
    got = (device_tensor(a, path) @ device_tensor(w, path)).to("float64").cpu().numpy()
    ra, rw = rounded(a, path), rounded(w, path)
    check(got, ra @ rw, np.abs(ra) @ np.abs(rw), path, f"{path} broadcast seed {seed}")


@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_bias_activation_epilogue(path, act):
    r, seed = rng()
    x, w, bias = r.standard_normal((3, 45, 72)), r.standard_normal((33, 72)), r.standard_normal(33)
    # Poison the pool: the output allocation below most likely reuses this block (same size).
    em.full((3, 45, 33), float("nan"), dtype=dtype_of(path), device="cuda")
    got = em.linear(device_tensor(x, path), device_tensor(w, path), device_tensor(bias, path), act)
    z = rounded(x, path) @ rounded(w, path).T + rounded(bias, path)
    if act == "relu":
        want = np.maximum(z, 0)
    else:
        from math import erf
        want = 0.5 * z * (1 + np.vectorize(erf)(z / np.sqrt(2)))
    scale = np.abs(rounded(x, path)) @ np.abs(rounded(w, path)).T + np.abs(rounded(bias, path))
    check(got.to("float64").cpu().numpy(), want, scale, path, f"{path} {act} seed {seed}")


def test_tf32_is_opt_in():
    """The default precision is exact float32: a product TF32 would round visibly stays exact."""
    assert em.get_float32_matmul_precision() == "highest"
    x = 1.0 + 2.0 ** -20  # not representable in TF32's 10-bit mantissa
    a = em.full((1, 1, 8), x, dtype="float32", device="cuda")
    b = em.full((1, 8, 1), 1.0, dtype="float32", device="cuda")
    assert (a @ b).item() == np.float32(8 * np.float32(x))
