"""The CUDA GEMM's 16-bit paths (tensor cores on sm_80+): bfloat16 and float16 matmul/linear
against a float64 reference of the rounded inputs, odd sizes (1, 7, 33, 127, 1000, 4097 along
each dim), transposed operands, batches, the bias + activation epilogue. Skipped without a GPU."""
import numpy as np
import pytest

import ember as em
from helpers.check import assert_close, rng

pytestmark = pytest.mark.cuda

TOL = {"bfloat16": 2 ** -7, "float16": 2 ** -10}


def rounded(a, dtype):
    return em.tensor(a, dtype=dtype).to("float64").numpy()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("mnk", [(1, 1, 1), (7, 33, 127), (127, 1000, 33), (1000, 7, 4097), (33, 4097, 7)])
def test_matmul_16bit(dtype, mnk):
    r, seed = rng()
    M, N, K = mnk
    a, b = r.standard_normal((M, K)), r.standard_normal((K, N))
    got = (em.tensor(a, dtype=dtype, device="cuda") @ em.tensor(b, dtype=dtype, device="cuda"))
    want = rounded(a, dtype) @ rounded(b, dtype)
    # float32 accumulation, then one rounding to the 16-bit output
    assert_close(got.to("float64").cpu().numpy(), want, TOL[dtype] * 2, atol=TOL[dtype] * np.sqrt(K) * 4,
                 msg=f"{dtype} {mnk} seed {seed}")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_transposes_batches_and_epilogue(dtype):
    r, seed = rng()
    x, w, bias = r.standard_normal((3, 45, 70)), r.standard_normal((33, 70)), r.standard_normal(33)
    got = em.linear(em.tensor(x, dtype=dtype, device="cuda"), em.tensor(w, dtype=dtype, device="cuda"),
                    em.tensor(bias, dtype=dtype, device="cuda"), "relu")
    want = np.maximum(rounded(x, dtype) @ rounded(w, dtype).T + rounded(bias, dtype), 0)
    assert_close(got.to("float64").cpu().numpy(), want, TOL[dtype] * 2, atol=TOL[dtype] * 40, msg=f"seed {seed}")
    a, b = r.standard_normal((5, 64, 31)), r.standard_normal((5, 64, 17))
    ta = em.tensor(a, dtype=dtype, device="cuda").transpose(1, 2)  # strided A
    got = ta @ em.tensor(b, dtype=dtype, device="cuda")
    want = np.swapaxes(rounded(a, dtype), 1, 2) @ rounded(b, dtype)
    assert_close(got.to("float64").cpu().numpy(), want, TOL[dtype] * 2, atol=TOL[dtype] * 40, msg=f"seed {seed}")
