"""Tensor basics: creation, dtypes, devices, conversion, printing."""
import math

import numpy as np
import pytest

import ember as em


def test_tensor_dtype_inference():
    assert em.tensor([1.0, 2.0]).dtype == em.float32
    assert em.tensor([1, 2]).dtype == em.int64
    assert em.tensor([True]).dtype == em.bool
    assert em.tensor(np.zeros(2)).dtype == em.float64  # NumPy arrays keep their dtype
    assert em.tensor(np.zeros(2, np.int32)).dtype == em.int32
    assert em.tensor(np.zeros(2, np.uint8)).dtype == em.int64
    assert em.tensor(3.5).shape == ()


def test_tensor_copies_its_input():
    a = np.ones(3, dtype=np.float32)
    t = em.tensor(a)
    a[0] = 5
    assert t.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"])
def test_creation_functions(dtype, device):
    z = em.zeros(2, 3, dtype=dtype, device=device)
    o = em.ones((2, 3), dtype=dtype, device=device)
    f = em.full((2,), 1, dtype=dtype, device=device)
    assert z.shape == (2, 3) and z.dtype == dtype and str(z.device).startswith(device)
    assert np.all(z.cpu().float().numpy() == 0) and np.all(o.cpu().float().numpy() == 1)
    assert f.tolist() in ([1, 1], [1.0, 1.0], [True, True])


def test_arange_linspace_eye(device):
    assert em.arange(5, device=device).tolist() == [0, 1, 2, 3, 4]
    assert em.arange(1, 2, 0.25, device=device).tolist() == [1.0, 1.25, 1.5, 1.75]
    assert em.arange(5, 0, -2).tolist() == [5, 3, 1]
    np.testing.assert_allclose(em.linspace(0, 1, 5, device=device).cpu().numpy(), np.linspace(0, 1, 5))
    np.testing.assert_array_equal(em.eye(3).numpy(), np.eye(3))


@pytest.mark.parametrize("src,dst", [("float32", "float16"), ("float32", "bfloat16"), ("float64", "float32"),
                                     ("float32", "int64"), ("int64", "float32"), ("float32", "bool"),
                                     ("bfloat16", "float32"), ("int32", "float64")])
def test_casts(src, dst, device):
    values = np.array([0.0, 1.0, -2.0, 3.0, 100.0, -0.5])
    t = em.tensor(values, dtype=src, device=device)
    out = t.to(dst).cpu()
    want_src = values.astype(np.float32 if src == "bfloat16" else src)
    if dst == "bfloat16":
        np.testing.assert_allclose(out.float().numpy(), want_src.astype(np.float32), rtol=2 ** -8)
    else:
        np.testing.assert_array_equal(out.numpy(), want_src.astype(dst))


def test_float16_rounding_matches_numpy():
    r = np.random.default_rng()
    vals = np.concatenate([r.standard_normal(1000) * 10.0 ** r.integers(-8, 5, 1000), [65504, 65520, 1e-8, -6e-8, 0.0]])
    got = em.tensor(vals.astype(np.float32)).half().numpy()
    with np.errstate(over="ignore"):  # 65520 rounds to inf, as it must
        want = vals.astype(np.float32).astype(np.float16)
    np.testing.assert_array_equal(got, want)


def test_bfloat16_rounds_to_nearest_even():
    x = np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -9], dtype=np.float32)
    assert em.tensor(x).bfloat16().float().tolist() == [1.0, 1.015625, 1.0]


def test_item_tolist_len_iter():
    t = em.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert t[1, 0].item() == 3.0 and isinstance(em.tensor(3).item(), int)
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert len(t) == 2 and [r.tolist() for r in t] == [[1.5, 2.0], [3.0, 4.0]]
    assert float(em.tensor([2.5])) == 2.5 and bool(em.tensor([1]))
    with pytest.raises(ValueError, match="item"):
        t.item()


def test_properties():
    t = em.zeros(2, 3, 4)
    assert t.ndim == 3 and t.dim() == 3 and t.numel() == 24 and t.size() == (2, 3, 4) and t.size(1) == 3
    assert t.stride() == (12, 4, 1) and t.element_size() == 4 and t.is_contiguous()
    assert t.device == "cpu" and t.device == em.device("cpu")


def test_repr_shows_values_and_flags():
    assert "requires_grad=True" in repr(em.ones(2, requires_grad=True))
    assert "bfloat16" in repr(em.ones(2, dtype="bfloat16"))
    assert repr(em.tensor([1.0, 2.5])).startswith("tensor([1. , 2.5]")


def test_to_is_a_no_op_when_nothing_changes():
    t = em.ones(3)
    assert t.to("cpu") is t and t.to(em.float32) is t and t.float() is t


def test_set_num_threads_round_trip():
    n = em.get_num_threads()
    em.set_num_threads(1)
    try:
        assert em.get_num_threads() == 1
        assert math.isclose(em.arange(10000).float().sum().item(), 49995000.0)
    finally:
        em.set_num_threads(n)


def test_inplace_ops():
    t = em.zeros(3)
    t += 2
    t.mul_(em.tensor([1.0, 2.0, 3.0]))
    assert t.tolist() == [2.0, 4.0, 6.0]
    t.zero_()
    assert t.tolist() == [0.0, 0.0, 0.0]


def test_cpu_blocks_aligned_reused_and_independent():
    """cpu/memory.cpp: 64-byte aligned data at every size (2 MiB-aligned blocks from 2 MiB on, with
    a 64-byte header), freed blocks handed out again, and no two live arrays sharing memory."""
    sizes = [0, 1, 15, 16, 1023, 1024, 1025, 32768, 32769, (2 << 20) // 4 - 16, (3 << 20) // 4 + 1]
    live = []
    for n in sizes:
        t = em.full((n,), float(n), dtype="float32")
        assert t.data_ptr() % 64 == 0, n
        live.append(t)
    for n, t in zip(sizes, live):  # every array still holds its own value
        assert n == 0 or np.all(t.numpy() == np.float32(n)), n
    ptr = live[-1].data_ptr()
    del live, t
    again = em.empty(sizes[-1])  # the block just freed comes back from the cache
    assert again.data_ptr() == ptr
