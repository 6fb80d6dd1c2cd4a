"""Randomness: one Philox stream per generator, seeded by em.manual_seed. A seed fixes every later
draw (on every dtype and device); the draws have the right distribution. Seeds come from rng(), so
every run checks new streams; the seed is in each failure message."""
import math

import numpy as np
import pytest

import ember as em
from helpers.check import AWKWARD, UNIT_ROUNDOFF, rng

DRAWS = {
    "rand": lambda n, **kw: em.rand(n, **kw),
    "randn": lambda n, **kw: em.randn(n, **kw),
    "randint": lambda n, **kw: em.randint(-1000, 1000, (n,), **kw),
}


def fresh_seed():
    return rng()[1]


def draw_with_seed(name, seed, n, **kw):
    em.manual_seed(seed)
    return DRAWS[name](n, **kw).cpu().numpy()


@pytest.mark.parametrize("n", [1, 5, 4099])
@pytest.mark.parametrize("name", DRAWS)
def test_same_seed_same_numbers(name, n):
    seed = fresh_seed()
    a, b = draw_with_seed(name, seed, n), draw_with_seed(name, seed, n)
    assert np.array_equal(a, b), f"seed {seed}"


@pytest.mark.parametrize("name", DRAWS)
def test_different_seeds_differ(name):
    seed = fresh_seed()
    assert not np.array_equal(draw_with_seed(name, seed, 257), draw_with_seed(name, seed + 1, 257)), f"seed {seed}"


@pytest.mark.parametrize("name", DRAWS)
def test_successive_draws_differ(name):
    seed = fresh_seed()
    em.manual_seed(seed)
    first, second = DRAWS[name](257).numpy(), DRAWS[name](257).numpy()
    assert not np.array_equal(first, second), f"seed {seed}"


@pytest.mark.parametrize("n", [1, 3, 5, 17])
def test_a_draw_takes_whole_blocks_of_four(n):
    """A draw of n numbers uses ceil(n / 4) Philox blocks; the next draw starts at the next block."""
    seed = fresh_seed()
    em.manual_seed(seed)
    a, b = em.rand(n).numpy(), em.rand(n).numpy()
    start = 4 * math.ceil(n / 4)
    whole = draw_with_seed("rand", seed, 2 * start)
    assert np.array_equal(a, whole[:n]) and np.array_equal(b, whole[start:start + n]), f"seed {seed}"


@pytest.mark.parametrize("name", DRAWS)
def test_generator_matches_manual_seed(name):
    seed = fresh_seed()
    g = em.Generator().manual_seed(seed)
    assert np.array_equal(DRAWS[name](61, generator=g).numpy(), draw_with_seed(name, seed, 61)), f"seed {seed}"


def test_generator_does_not_touch_the_default_stream():
    seed, other = fresh_seed(), fresh_seed()
    expected = draw_with_seed("randn", seed, 33)
    em.manual_seed(seed)
    g = em.Generator().manual_seed(other)
    em.randn(1000, generator=g)
    assert np.array_equal(em.randn(33).numpy(), expected), f"seeds {seed}, {other}"


def test_default_stream_does_not_touch_a_generator():
    seed = fresh_seed()
    g1, g2 = em.Generator().manual_seed(seed), em.Generator().manual_seed(seed)
    em.randn(1000)
    assert np.array_equal(em.rand(17, generator=g1).numpy(), em.rand(17, generator=g2).numpy()), f"seed {seed}"


# ---- distributions ---------------------------------------------------------------------------

N = 200_003


def test_randn_moments(device):
    seed = fresh_seed()
    x = draw_with_seed("randn", seed, N, device=device).astype(np.float64)
    assert abs(x.mean()) < 5 / math.sqrt(N), f"seed {seed}: mean {x.mean()}"
    assert abs(x.std() - 1) < 5 / math.sqrt(2 * N), f"seed {seed}: std {x.std()}"


def test_rand_moments(device):
    seed = fresh_seed()
    x = draw_with_seed("rand", seed, N, device=device).astype(np.float64)
    assert abs(x.mean() - 0.5) < 5 * math.sqrt(1 / 12 / N), f"seed {seed}: mean {x.mean()}"
    assert abs(x.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / N), f"seed {seed}: var {x.var()}"


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_rand_in_unit_interval(dtype, device):
    seed = fresh_seed()
    em.manual_seed(seed)
    x = em.rand(N, dtype=dtype, device=device)
    v = x.cpu().to(em.float64).numpy()
    assert x.dtype == dtype and v.min() >= 0 and v.max() < 1, f"seed {seed}: range [{v.min()}, {v.max()}]"


@pytest.mark.parametrize("low, high", [(0, 1), (-3, 4), (10, 23), (-2**40, 2**40 + 1)])
def test_randint_range_and_coverage(low, high, device):
    seed = fresh_seed()
    em.manual_seed(seed)
    x = em.randint(low, high, (4099,), device=device).cpu().numpy()
    assert x.dtype == np.int64 and x.min() >= low and x.max() < high, f"seed {seed}"
    if high - low <= 16:  # every value shows up: P(one missing) < 16 * (15/16)^4099
        assert np.array_equal(np.unique(x), np.arange(low, high)), f"seed {seed}"


def test_randint_high_only():
    assert np.array_equal(np.unique(em.randint(3, (1000,)).numpy()), [0, 1, 2])


@pytest.mark.parametrize("n", [1, 2, 7, 257, 4097])
def test_randperm_is_a_permutation(n):
    p = em.randperm(n)
    assert p.dtype == em.int64 and np.array_equal(np.sort(p.numpy()), np.arange(n))


def test_randperm_follows_the_seed():
    seed = fresh_seed()
    em.manual_seed(seed)
    a = em.randperm(127).numpy()
    em.manual_seed(seed)
    assert np.array_equal(em.randperm(127).numpy(), a), f"seed {seed}"


# ---- one stream, every dtype ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rand", "randn"])
def test_float32_is_float64_rounded(name):
    """Both come from the same Philox words, computed in double: float32 is the float64 draw rounded."""
    seed = fresh_seed()
    a = draw_with_seed(name, seed, 4099, dtype=em.float32)
    b = draw_with_seed(name, seed, 4099, dtype=em.float64)
    assert a.dtype == np.float32 and b.dtype == np.float64
    assert np.array_equal(a, b.astype(np.float32)), f"seed {seed}"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_randn_low_precision_is_float64_rounded(dtype):
    seed = fresh_seed()
    em.manual_seed(seed)
    x = em.randn(4099, dtype=dtype)
    ref = draw_with_seed("randn", seed, 4099, dtype=em.float64)
    # Rounded once to float32 and once to dtype: within a unit roundoff of dtype (plus float32's).
    u = UNIT_ROUNDOFF[dtype] + UNIT_ROUNDOFF["float32"]
    assert x.dtype == dtype
    np.testing.assert_allclose(x.to(em.float64).numpy(), ref, rtol=u, atol=2.0 ** -24, err_msg=f"seed {seed}")


@pytest.mark.parametrize("dtype, bits", [("float16", 11), ("bfloat16", 8)])
def test_rand_low_precision_is_leading_bits_of_float32(dtype, bits):
    """rand in a 16-bit type keeps the leading bits of the float32 draw (never rounds up to 1)."""
    seed = fresh_seed()
    want = np.floor(draw_with_seed("rand", seed, 4099) * 2.0 ** bits) / 2.0 ** bits
    got = draw_with_seed("rand", seed, 4099, dtype=dtype)
    assert np.array_equal(got, want), f"seed {seed}"


@pytest.mark.cuda
@pytest.mark.parametrize("name, rtol", [("rand", 0.0), ("randint", 0.0), ("randn", 1e-6)])
def test_same_seed_same_numbers_on_cpu_and_cuda(name, rtol):
    seed = fresh_seed()
    cpu = draw_with_seed(name, seed, 4099)
    gpu = draw_with_seed(name, seed, 4099, device="cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=rtol, atol=0, err_msg=f"seed {seed}")
