"""Interop: NumPy (from_numpy, __array__) and DLPack (capsules, NumPy and PyTorch both ways).
Every path that claims zero copy is checked by writing through one side and reading the other."""
import ctypes
import gc
import weakref

import numpy as np
import pytest

import ember as em
from helpers.check import rng

NP_DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.bool_]
SHAPES = [(1,), (7,), (13, 17), (2, 33, 5), (2049,)]

api = ctypes.pythonapi
api.PyCapsule_IsValid.restype, api.PyCapsule_IsValid.argtypes = ctypes.c_int, [ctypes.py_object, ctypes.c_char_p]
api.PyCapsule_GetName.restype, api.PyCapsule_GetName.argtypes = ctypes.c_char_p, [ctypes.py_object]


def capsule_name(cap):
    return api.PyCapsule_GetName(cap).decode()


def random_array(shape, dtype):
    r, _ = rng()
    a = r.standard_normal(shape) * 10
    return (a > 0) if dtype is np.bool_ else a.astype(dtype)


def independent_copy(t):
    """t's values through ember's own copy kernel, so the comparison does not reuse the shared memory."""
    return t.clone().numpy().copy()


def bump(a):
    """Changes every element of a in place (a flip for bool)."""
    if a.dtype == np.bool_:
        np.logical_not(a, out=a)
    else:
        a += 1


# ---- from_numpy ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", NP_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_from_numpy_shares_memory(shape, dtype):
    a = random_array(shape, dtype)
    t = em.from_numpy(a)
    assert t.data_ptr() == a.ctypes.data and t.shape == a.shape
    bump(a)
    np.testing.assert_array_equal(independent_copy(t), a)


def test_from_numpy_writes_through_tensor():
    a = random_array((31,), np.float32)
    t = em.from_numpy(a)
    t[3:9] = 0.5
    assert np.all(a[3:9] == 0.5)


@pytest.mark.parametrize("view", [
    lambda a: a.T,
    lambda a: a[::2, 1::3],
    lambda a: a[::-1],
    lambda a: a[:, ::-3],
    lambda a: a[::-2, ::-1].T,
], ids=["transpose", "step", "reversed", "neg-step", "neg-both-T"])
def test_from_numpy_strided_views(view):
    base = random_array((17, 33), np.float32)
    a = view(base)
    t = em.from_numpy(a)
    assert t.stride() == tuple(s // a.itemsize for s in a.strides)
    np.testing.assert_array_equal(independent_copy(t), a)
    a += 1  # the view writes into base; the tensor must see it
    np.testing.assert_array_equal(independent_copy(t), a)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int16, np.complex64, np.longdouble,
                                   np.dtype(">f4"), object, "U3"])
def test_from_numpy_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match=r"\[from_numpy\] unsupported NumPy dtype"):
        em.from_numpy(np.zeros(3, dtype=dtype))


def test_from_numpy_needs_an_array():
    with pytest.raises(TypeError, match=r"\[from_numpy\] expected a numpy.ndarray, got list"):
        em.from_numpy([1.0, 2.0])


# ---- __array__ -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_asarray_is_zero_copy(dtype):
    base = random_array((13, 7), np.dtype(dtype).type)
    t = em.tensor(base)
    a = np.asarray(t)
    assert a.dtype == base.dtype and a.ctypes.data == t.data_ptr()
    bump(a)
    np.testing.assert_array_equal(independent_copy(t), a)


def test_asarray_shares_memory_with_from_numpy_source():
    base = random_array((5, 33), np.float32)
    assert np.shares_memory(np.asarray(em.from_numpy(base).t()), base)


def test_asarray_keeps_strides_of_a_view():
    t = em.randn(7, 13).t()
    a = np.asarray(t)
    assert a.strides == (4, 52)
    np.testing.assert_array_equal(a, independent_copy(t))


@pytest.mark.parametrize("kwargs", [{"copy": True}, {"dtype": np.float32, "copy": True}],
                         ids=["copy", "same-dtype-copy"])
def test_array_copy_true_is_independent(kwargs):
    t = em.randn(257)
    a = t.__array__(**kwargs)
    assert not np.shares_memory(a, np.asarray(t))
    a[:] = 0
    assert np.all(t.numpy() != 0)


@pytest.mark.parametrize("make, dtype", [
    (lambda: em.randn(5).bfloat16(), None),
    (lambda: em.randn(5), np.float64),
    (lambda: em.arange(5), np.int32),
], ids=["bfloat16", "float32->float64", "int64->int32"])
def test_array_copy_false_raises_when_a_copy_is_needed(make, dtype):
    with pytest.raises(ValueError, match=r"\[numpy\] cannot convert .* without a copy"):
        np.asarray(make(), dtype=dtype, copy=False)


def test_array_copy_false_shares_when_possible():
    t = em.randn(3, 5)
    a = np.asarray(t, dtype=np.float32, copy=False)
    assert a.ctypes.data == t.data_ptr()


def test_array_dtype_converts():
    t = em.randn(17)
    a = np.asarray(t, dtype=np.float64)
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, independent_copy(t).astype(np.float64))


# ---- DLPack: capsules ------------------------------------------------------------------------

@pytest.mark.parametrize("max_version, name", [(None, "dltensor"), ((1, 0), "dltensor_versioned"),
                                               ((0, 8), "dltensor")])
def test_dlpack_capsule_kind(max_version, name):
    cap = em.randn(3).__dlpack__(max_version=max_version)
    assert capsule_name(cap) == name and api.PyCapsule_IsValid(cap, name.encode())


@pytest.mark.parametrize("max_version", [None, (1, 0)])
def test_consuming_a_capsule_renames_it(max_version):
    x = em.randn(5, 3)
    cap = x.__dlpack__(max_version=max_version)
    name = capsule_name(cap)
    y = em.from_dlpack(cap)
    assert capsule_name(cap) == "used_" + name and y.data_ptr() == x.data_ptr()


@pytest.mark.parametrize("max_version", [None, (1, 0)])
def test_consuming_a_capsule_twice_raises(max_version):
    cap = em.randn(5).__dlpack__(max_version=max_version)
    em.from_dlpack(cap)
    with pytest.raises(TypeError, match=r"\[from_dlpack\] expected an unused"):
        em.from_dlpack(cap)


def test_dlpack_device_on_cpu():
    assert em.zeros(2).__dlpack_device__() == (1, 0)


@pytest.mark.parametrize("kwargs", [{"copy": True}, {"copy": True, "max_version": (1, 0)},
                                    {"dl_device": (1, 0), "copy": True}])
def test_dlpack_copy_does_not_share(kwargs):
    x = em.randn(61)
    y = em.from_dlpack(x.__dlpack__(**kwargs))
    assert y.data_ptr() != x.data_ptr()
    np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_dlpack_same_device_without_copy_shares():
    x = em.randn(61)
    assert em.from_dlpack(x.__dlpack__(dl_device=(1, 0), copy=False)).data_ptr() == x.data_ptr()


@pytest.mark.parametrize("stream", [0, 1, 2, 12345])
def test_dlpack_stream_must_be_none_on_cpu(stream):
    with pytest.raises(ValueError, match=r"\[__dlpack__\] stream must be None for CPU"):
        em.randn(3).__dlpack__(stream=stream)


def test_dlpack_to_an_unsupported_device_raises():
    with pytest.raises(BufferError, match=r"\[__dlpack__\]"):
        em.randn(3).__dlpack__(dl_device=(2, 0))


# ---- DLPack: lifetimes -----------------------------------------------------------------------

def test_imported_producer_is_released_after_the_tensor():
    base = random_array((7, 5), np.float32)
    alive = weakref.ref(base)
    t = em.from_dlpack(base.T)
    del base
    gc.collect()
    assert alive() is not None, "NumPy's memory was released while ember still uses it"
    view = t[1:]  # a view keeps the storage (and so the producer) alive too
    del t
    gc.collect()
    assert alive() is not None
    del view
    gc.collect()
    assert alive() is None, "the producer's deleter never ran"


@pytest.mark.parametrize("max_version", [None, (1, 0)])
def test_exported_storage_is_released_by_the_consumer(max_version):
    base = random_array((33,), np.float32)
    alive = weakref.ref(base)
    t = em.from_numpy(base)  # ember's storage now owns a reference to base
    consumer = em.from_dlpack(t.__dlpack__(max_version=max_version))
    del base, t
    gc.collect()
    assert alive() is not None
    del consumer
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("max_version", [None, (1, 0)])
def test_unconsumed_capsule_releases_its_tensor(max_version):
    base = random_array((33,), np.float32)
    alive = weakref.ref(base)
    cap = em.from_numpy(base).__dlpack__(max_version=max_version)
    del base
    gc.collect()
    assert alive() is not None
    del cap
    gc.collect()
    assert alive() is None


# ---- DLPack with NumPy -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_numpy_from_dlpack_shares_memory(dtype):
    t = em.tensor(random_array((13, 5), dtype)).t()
    a = np.from_dlpack(t)
    assert a.ctypes.data == t.data_ptr() and a.shape == t.shape
    bump(a)
    np.testing.assert_array_equal(independent_copy(t), a)


@pytest.mark.parametrize("dtype", NP_DTYPES)
@pytest.mark.parametrize("view", [lambda a: a, lambda a: a.T, lambda a: a[::-2, 1:]],
                         ids=["contiguous", "transpose", "neg-step"])
def test_ember_from_dlpack_numpy_shares_memory(dtype, view):
    a = view(random_array((17, 5), dtype))
    t = em.from_dlpack(a)
    assert t.data_ptr() == a.ctypes.data and t.shape == a.shape
    bump(a)
    np.testing.assert_array_equal(independent_copy(t), a)


def test_from_dlpack_rejects_unsupported_numpy_dtype():
    with pytest.raises(TypeError, match=r"\[from_dlpack\] unsupported DLPack dtype"):
        em.from_dlpack(np.zeros(3, dtype=np.uint8))


# ---- DLPack with PyTorch ---------------------------------------------------------------------

TORCH_DTYPES = ["float32", "int64", "bool", "bfloat16", "float16", "float64", "int32"]


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def ember_random(dtype, shape):
    x = em.randn(*shape) * 10
    return (x > 0) if dtype == "bool" else x.to(dtype)


def as_float64(t):
    """Values of an ember tensor as float64 through ember's own copy (bfloat16 included)."""
    return t.to(em.float64).numpy()


@pytest.mark.parametrize("transpose", [False, True], ids=["contiguous", "transposed"])
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_torch_from_ember_shares_memory(torch, dtype, transpose):
    x = ember_random(dtype, (7, 33))
    x = x.t() if transpose else x
    t = torch.from_dlpack(x)
    assert t.data_ptr() == x.data_ptr() and tuple(t.shape) == x.shape and t.stride() == x.stride()
    assert t.dtype == getattr(torch, dtype)
    t.logical_not_() if dtype == "bool" else t.add_(1)
    np.testing.assert_array_equal(as_float64(x), t.double().numpy())


@pytest.mark.parametrize("transpose", [False, True], ids=["contiguous", "transposed"])
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_ember_from_torch_shares_memory(torch, dtype, transpose):
    t = (torch.randn(7, 33) * 10).to(getattr(torch, dtype))
    t = t.t() if transpose else t
    x = em.from_dlpack(t)
    assert x.data_ptr() == t.data_ptr() and x.shape == tuple(t.shape) and x.stride() == t.stride()
    assert x.dtype == dtype
    t.logical_not_() if dtype == "bool" else t.add_(1)
    np.testing.assert_array_equal(as_float64(x), t.double().numpy())
