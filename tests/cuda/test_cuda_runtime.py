"""GPU-only features: memory accounting, out-of-memory, streams/synchronize, device mixing, the same
random numbers as the CPU, DLPack with PyTorch's CUDA tensors. All marked cuda: skipped without a GPU."""
import numpy as np
import pytest

import ember as em

pytestmark = pytest.mark.cuda


def test_memory_allocated_tracks_tensors():
    em.cuda.synchronize()
    before = em.cuda.memory_allocated()
    x = em.zeros(1 << 20, device="cuda")
    assert em.cuda.memory_allocated() >= before + 4 * (1 << 20)
    del x
    assert em.cuda.memory_allocated() == before


def test_out_of_memory_is_a_memory_error_and_recoverable():
    with pytest.raises(MemoryError, match=r"out of memory allocating \d+ bytes on cuda:0"):
        em.empty(1 << 43, device="cuda")  # 32 TiB of float32
    y = em.ones(10, device="cuda") * 2
    assert y.sum().item() == 20.0


def test_round_trip_is_exact():
    x = em.randn(1000, 3)
    assert np.array_equal(x.cuda().cpu().numpy(), x.numpy())


def test_same_seed_same_numbers_on_cpu_and_cuda():
    for draw in (em.rand, em.randn):
        em.manual_seed(1234)
        a = draw(4099).numpy()
        em.manual_seed(1234)
        b = draw(4099, device="cuda").cpu().numpy()
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    em.manual_seed(7)
    c = em.randint(0, 1000, (777,)).numpy()
    em.manual_seed(7)
    assert np.array_equal(em.randint(0, 1000, (777,), device="cuda").cpu().numpy(), c)


def test_mixing_devices_is_an_error():
    with pytest.raises(ValueError, match=r"\[add\].*cpu.*cuda:0|\[add\].*cuda:0.*cpu"):
        em.ones(3) + em.ones(3, device="cuda")


def test_synchronize_and_async_results():
    x = em.randn(1 << 22, device="cuda")
    y = (x * 2).sum()
    em.cuda.synchronize()
    assert abs(y.item() - 2 * x.sum().item()) < 1e-2 * max(1.0, abs(y.item()))


def test_index_errors_are_exceptions_not_device_faults():
    x = em.ones(5, device="cuda")
    with pytest.raises(IndexError, match="out of bounds"):
        x[em.tensor([7], device="cuda")]
    assert x.sum().item() == 5.0  # the context is still healthy


def test_dlpack_with_torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    t = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    e = em.from_dlpack(t)
    assert e.device == "cuda:0" and e.data_ptr() == t.data_ptr()
    t += 1  # writes through torch are visible in ember
    assert e.cpu().numpy()[0, 0] == 1.0
    back = torch.from_dlpack(em.randn(5, 6, device="cuda").t())
    assert back.is_cuda and back.shape == (6, 5)
