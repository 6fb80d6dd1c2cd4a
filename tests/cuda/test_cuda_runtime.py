"""GPU-only features: memory accounting, out of memory, synchronize, moves between devices, device
mixing, DLPack with PyTorch's CUDA tensors. All marked cuda: skipped without a GPU. (The same seed
giving the same numbers on CPU and CUDA is checked in tests/test_random.py.)"""
import gc

import numpy as np
import pytest

import ember as em

pytestmark = pytest.mark.cuda

DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"]


def random_tensor(shape, dtype="float32"):
    x = em.randn(*shape) * 10
    return (x > 0) if dtype == "bool" else x.to(dtype)


def test_memory_allocated_tracks_a_tensor():
    n = (1 << 20) + 1
    gc.collect()
    before = em.cuda.memory_allocated()
    x = em.zeros(n, device="cuda")
    assert em.cuda.memory_allocated() >= before + 4 * n
    del x
    assert em.cuda.memory_allocated() == before


def test_out_of_memory_is_a_memory_error_with_the_size():
    nbytes = 2 ** 45  # 32 TiB
    with pytest.raises(MemoryError, match=rf"out of memory allocating {nbytes} bytes on cuda:0"):
        em.empty(nbytes // 4, device="cuda")


def test_process_keeps_working_after_out_of_memory():
    with pytest.raises(MemoryError):
        em.empty(2 ** 43, device="cuda")
    y = em.arange(1001, device="cuda") * 2
    assert y.sum().item() == 1000 * 1001


@pytest.mark.parametrize("device", [None, 0, "cuda:0"])
def test_synchronize_makes_queued_results_visible(device):
    x = em.randn((1 << 22) + 3, device="cuda")
    y = x * 2  # queued on the stream; exact in floating point
    assert em.cuda.synchronize(device) is None
    assert np.array_equal(y.cpu().numpy(), 2 * x.cpu().numpy())


@pytest.mark.parametrize("shape", [(1,), (2049,), (3, 17)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_is_exact(dtype, shape):
    x = random_tensor(shape, dtype)
    y = x.cuda()
    assert y.device == "cuda:0" and y.dtype == dtype and y.shape == x.shape
    assert np.array_equal(y.cpu().numpy(), x.numpy())


def test_round_trip_of_a_view_is_exact():
    x = em.randn(7, 33)[1:, ::3].t()
    assert np.array_equal(x.cuda().cpu().numpy(), x.numpy())


@pytest.mark.parametrize("order", ["cpu+cuda", "cuda+cpu"])
def test_mixing_devices_in_add(order):
    a, b = em.randn(3), em.randn(3, device="cuda")
    a, b = (a, b) if order == "cpu+cuda" else (b, a)
    with pytest.raises(ValueError, match=r"\[add\].*(cpu and cuda:0|cuda:0 and cpu)"):
        a + b


def test_index_errors_are_exceptions_not_device_faults():
    x = em.ones(5, device="cuda")
    with pytest.raises(IndexError, match=r"\[index\] index 7 is out of bounds"):
        x[em.tensor([7], device="cuda")]
    assert x.sum().item() == 5.0  # the context is still healthy


# ---- DLPack with PyTorch's CUDA tensors ----------------------------------------------------------

TORCH_DTYPES = ["float32", "int64", "bool", "bfloat16"]


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    return torch


@pytest.mark.parametrize("transpose", [False, True], ids=["contiguous", "transposed"])
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_ember_from_torch_cuda_shares_memory(torch, dtype, transpose):
    t = (torch.randn(7, 33, device="cuda") * 10).to(getattr(torch, dtype))
    t = t.t() if transpose else t
    x = em.from_dlpack(t)
    assert x.device == "cuda:0" and x.data_ptr() == t.data_ptr() and x.stride() == t.stride()
    t.logical_not_() if dtype == "bool" else t.add_(1)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(x.to(em.float64).cpu().numpy(), t.double().cpu().numpy())


@pytest.mark.parametrize("transpose", [False, True], ids=["contiguous", "transposed"])
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_torch_from_ember_cuda_shares_memory(torch, dtype, transpose):
    x = random_tensor((7, 33), dtype).cuda()
    x = x.t() if transpose else x
    t = torch.from_dlpack(x)
    assert t.is_cuda and t.data_ptr() == x.data_ptr() and t.stride() == x.stride()
    t.logical_not_() if dtype == "bool" else t.add_(1)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(x.to(em.float64).cpu().numpy(), t.double().cpu().numpy())
