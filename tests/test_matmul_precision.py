"""em.set_float32_matmul_precision / get_float32_matmul_precision: PyTorch's names and values. The
setting lives in the C++ core (the CUDA GEMM reads it); the CPU kernels ignore it."""
import numpy as np
import pytest

import ember as em


def test_round_trip_and_default():
    before = em.get_float32_matmul_precision()
    assert before == "highest"
    try:
        for p in ["high", "medium", "highest"]:
            em.set_float32_matmul_precision(p)
            assert em.get_float32_matmul_precision() == p
    finally:
        em.set_float32_matmul_precision(before)


@pytest.mark.parametrize("bad", ["", "HIGH", "tf32", "low", "highest "])
def test_rejects_unknown_strings(bad):
    with pytest.raises(ValueError, match="set_float32_matmul_precision"):
        em.set_float32_matmul_precision(bad)
    assert em.get_float32_matmul_precision() == "highest"


def test_cpu_ignores_it():
    a = np.random.default_rng(0).standard_normal((17, 33)).astype(np.float32)
    want = (em.tensor(a) @ em.tensor(a.T)).numpy()
    em.set_float32_matmul_precision("medium")
    try:
        assert np.array_equal((em.tensor(a) @ em.tensor(a.T)).numpy(), want)
    finally:
        em.set_float32_matmul_precision("highest")
