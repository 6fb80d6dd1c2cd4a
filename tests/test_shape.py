"""Views, copies and indexing: values against NumPy, gradients, and that views never copy."""
import re

import numpy as np
import pytest

import ember as em
from helpers.check import check_op, gradcheck_op, rng


def _t(a, device, grad=False):
    return em.tensor(a, dtype="float32", device=device, requires_grad=grad)


VIEWS = [
    ("reshape", lambda x: x.reshape(6, -1), lambda x: x.reshape(6, -1), (3, 4, 5)),
    ("view", lambda x: x.view(12, 5), lambda x: x.reshape(12, 5), (3, 4, 5)),
    ("flatten", lambda x: x.flatten(1), lambda x: x.reshape(3, -1), (3, 4, 5)),
    ("transpose", lambda x: x.transpose(0, 2), lambda x: x.transpose(2, 1, 0), (3, 4, 5)),
    ("permute", lambda x: x.permute(1, 2, 0), lambda x: x.transpose(1, 2, 0), (3, 4, 5)),
    ("T", lambda x: x.T, lambda x: x.T, (3, 7)),
    ("unsqueeze", lambda x: x.unsqueeze(1), lambda x: x[:, None], (3, 7)),
    ("squeeze", lambda x: x.squeeze(1), lambda x: x[:, 0], (3, 1, 7)),
    ("squeeze_all", lambda x: x.squeeze(), lambda x: x.squeeze(), (1, 3, 1, 7)),
    ("expand", lambda x: x.expand(4, 3, 5), lambda x: np.broadcast_to(x, (4, 3, 5)), (3, 1)),
    ("slice", lambda x: x[1:, ::2], lambda x: x[1:, ::2], (5, 7)),
    ("int_index", lambda x: x[2], lambda x: x[2], (5, 7)),
    ("neg_index", lambda x: x[:, -1], lambda x: x[:, -1], (5, 7)),
    ("ellipsis_none", lambda x: x[..., None, 1:3], lambda x: x[..., None, 1:3], (2, 3, 5)),
    ("step_slice", lambda x: x[::3, 1::4], lambda x: x[::3, 1::4], (10, 13)),
]


@pytest.mark.parametrize("name,fn,ref,shape", VIEWS, ids=[v[0] for v in VIEWS])
def test_view_ops(name, fn, ref, shape, device):
    check_op(fn, ref, [shape], device)


@pytest.mark.parametrize("name,fn,ref,shape", VIEWS, ids=[v[0] for v in VIEWS])
def test_view_ops_share_storage(name, fn, ref, shape, device):
    x = em.randn(*shape, device=device)
    assert fn(x)._a.same_storage(x._a)


def test_view_rejects_incompatible_strides():
    x = em.randn(4, 6).t()
    with pytest.raises(ValueError, match="view"):
        x.view(24)
    assert x.reshape(24).is_contiguous()


def test_view_of_non_contiguous_when_compatible():
    x = em.randn(4, 6, 8)[:, 1:5]  # dims 0 and the (4, 8) tail stay mergeable per chunk
    v = x.view(4, 4, 2, 4)
    np.testing.assert_array_equal(v.numpy(), x.numpy().reshape(4, 4, 2, 4))
    assert v._a.same_storage(x._a)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim, device):
    check_op(lambda a, b, c: em.cat([a, b, c], dim), lambda a, b, c: np.concatenate([a, b, c], axis=dim),
             [(2, 3), (2, 3), (2, 3)], device)


def test_cat_uneven(device):
    check_op(lambda a, b: em.cat([a, b], 1), lambda a, b: np.concatenate([a, b], 1), [(3, 1), (3, 5)], device)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim, device):
    check_op(lambda a, b: em.stack([a, b], dim), lambda a, b: np.stack([a, b], axis=dim), [(3, 4), (3, 4)], device)


def test_split_and_chunk(device):
    check_op(lambda x: em.cat([p * (i + 1) for i, p in enumerate(x.split(3, 1))], 1),
             lambda x: np.concatenate([p * (i + 1) for i, p in enumerate(np.split(x, [3, 6], 1))], 1), [(2, 7)], device)
    assert [c.shape for c in em.zeros(10).chunk(3)] == [(4,), (4,), (2,)]


def test_cat_promotes_dtypes(device):
    out = em.cat([em.tensor([1], device=device), em.tensor([0.5], device=device)])
    assert out.dtype == em.float32 and out.tolist() == [1.0, 0.5]


# ---- advanced indexing ---------------------------------------------------------------------

ADVANCED = [
    ("int_list", lambda x: x[[0, 2, 2]], lambda x: x[[0, 2, 2]], (4, 5)),
    ("int_neg", lambda x: x[:, [-1, 0]], lambda x: x[:, [-1, 0]], (4, 5)),
    ("int_2d", lambda x: x[np.array([[1, 0], [3, 3]])], lambda x: x[np.array([[1, 0], [3, 3]])], (4, 5)),
    ("pair", lambda x: x[[0, 3], [4, 1]], lambda x: x[[0, 3], [4, 1]], (4, 5)),
    ("pair_bcast", lambda x: x[np.array([[0], [2]]), np.array([1, 2, 4])],
     lambda x: x[np.array([[0], [2]]), np.array([1, 2, 4])], (4, 5)),
    ("separated", lambda x: x[[0, 1], :, [2, 0]], lambda x: x[[0, 1], :, [2, 0]], (3, 4, 5)),
    ("with_slice", lambda x: x[1:, [0, 0, 3]], lambda x: x[1:, [0, 0, 3]], (4, 5)),
]


@pytest.mark.parametrize("name,fn,ref,shape", ADVANCED, ids=[a[0] for a in ADVANCED])
def test_advanced_indexing(name, fn, ref, shape, device):
    check_op(fn, ref, [shape], device)


def test_tensor_index(device):
    idx = em.tensor([3, 0, 3], device=device)
    check_op(lambda x: x[idx], lambda x: x[[3, 0, 3]], [(5, 2)], device)


@pytest.mark.parametrize("mask_shape", [(4, 5), (4,)], ids=str)
def test_bool_mask(mask_shape, device):
    r, _ = rng()
    mask = r.random(mask_shape) > 0.4
    m = em.tensor(mask, device=device)
    check_op(lambda x: x[m], lambda x: x[mask], [(4, 5)], device)


MASK_2D = np.array([[True, False, True, True], [False, True, True, False], [True, True, False, False]])  # 7 True
MASK_45 = np.arange(20).reshape(4, 5) % 3 == 0
MIXED_MASK_KEYS = [True, False, (0, True), (slice(None), True, 1), (True, True), (True, False), (Ellipsis, False),
                   (None, True, 0), (True, [0, 1]), ([1, 0], True), (MASK_2D, [0, 1, 3, 2, 1, 0, 4]), (MASK_2D, 1),
                   (MASK_2D, slice(1, 3)), (True, MASK_2D), (MASK_2D, True), (1, MASK_45), (slice(None), MASK_45)]


@pytest.mark.parametrize("key", MIXED_MASK_KEYS, ids=str)
def test_python_bools_and_masks_beside_other_keys(key, device):
    """A Python bool is a 0-d mask (a new dim of size 1 or 0, as NumPy and PyTorch read it), not the
    integer 1 or 0; an n-d mask followed by more array indices: NumPy's result and gradient."""
    a = np.arange(60.0).reshape(3, 4, 5)
    ekey = tuple(em.tensor(k, device=device) if isinstance(k, np.ndarray) else k for k in key) \
        if isinstance(key, tuple) else key
    x = em.tensor(a, requires_grad=True, device=device)
    y = x[ekey]
    np.testing.assert_array_equal(y.detach().cpu().numpy(), a[key])
    (y * 2).sum().backward()
    want = np.zeros_like(a)
    np.add.at(want, key, 2)
    np.testing.assert_array_equal(x.grad.cpu().numpy(), want)


def test_bool_mask_from_comparison(device):
    x = em.tensor([[1.0, -2.0], [3.0, -4.0]], device=device)
    assert x[x > 0].tolist() == [1.0, 3.0]
    assert x[x > 10].shape == (0,)


def test_index_select_and_gather(device):
    idx = em.tensor([2, 0, 2, 1], device=device)
    check_op(lambda x: x.index_select(1, idx), lambda x: x[:, [2, 0, 2, 1]], [(3, 3)], device)
    g = np.array([[0, 2], [1, 1], [2, 0]])
    gi = em.tensor(g, device=device)
    check_op(lambda x: x.gather(1, gi), lambda x: np.take_along_axis(x, g, 1), [(3, 3)], device)


def test_index_gradcheck():
    gradcheck_op(lambda x: x[[0, 2, 2], 1:], [(3, 4)])
    gradcheck_op(lambda x: x.gather(0, em.tensor([[1, 0, 1]])), [(2, 3)])


# ---- setitem -------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [1, (slice(None), 2), (slice(1, None, 2), slice(None, 3)), (Ellipsis, 0)], ids=str)
def test_setitem_basic(key, device):
    r, _ = rng()
    a = r.standard_normal((4, 5)).astype(np.float32)
    x = em.tensor(a, device=device)
    a[key] = 7.5
    x[key] = 7.5
    np.testing.assert_array_equal(x.cpu().numpy(), a)


def test_setitem_mask_and_array(device):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = em.tensor(a, device=device)
    x[x > 6] = 0.0
    a[a > 6] = 0.0
    x[[0, 2], [1, 3]] = em.tensor([-1.0, -2.0], device=device)
    a[[0, 2], [1, 3]] = [-1.0, -2.0]
    np.testing.assert_array_equal(x.cpu().numpy(), a)


def test_setitem_writes_through_views(device):
    x = em.zeros(3, 4, device=device)
    row = x[1]
    row[2:] = 1.0
    assert x.cpu().numpy()[1].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_setitem_refuses_tensors_requiring_grad():
    x = em.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="setitem"):
        x[0] = 1.0


BASIC_KEYS = [2, -1, (1, 2), (slice(None), 1), (Ellipsis, 2), (None, 1), (1, None, slice(1, 4)),
              (slice(-100, 100, 2),), (slice(None, None, 3), Ellipsis, None), (0, 0, 0), (slice(5, 1),),
              (Ellipsis,), (), (None,), (slice(2 ** 70),), (slice(-2 ** 70, 2),), np.int64(1),
              (np.int64(2), slice(1, 3)), (Ellipsis, None, slice(1, None, 2))]


@pytest.mark.parametrize("key", BASIC_KEYS, ids=str)
def test_basic_index_keys_match_numpy(key, device):
    """Keys of ints, slices, None and Ellipsis (Array.basic_index in one core call, or the Python
    plan for NumPy integers): NumPy's views, and the gradient lands where the view reads."""
    a = np.arange(60.0).reshape(3, 4, 5)
    x = em.tensor(a, requires_grad=True, device=device)
    y = x[key]
    np.testing.assert_array_equal(y.detach().cpu().numpy(), a[key])
    (y * 2).sum().backward()
    want = np.zeros_like(a)
    want[key] += 2
    np.testing.assert_array_equal(x.grad.cpu().numpy(), want)


@pytest.mark.parametrize("key,exc,message", [
    ((1, 2, 3, 4), IndexError, "too many indices for a tensor of shape (3, 4, 5)"),
    ((Ellipsis, Ellipsis), IndexError, "single ellipsis"),
    ((5,), IndexError, "index 5 is out of bounds for dimension 0 with size 3"),
    ((0, -5), IndexError, "index -5 is out of bounds for dimension 1 with size 4"),
    ((slice(None, None, 0),), ValueError, "slice step must be positive, got 0"),
    ((slice(None, None, -1),), ValueError, "slice step must be positive, got -1"),
    ((slice(1.5),), TypeError, "slice indices must be integers"),
    ((2 ** 70,), IndexError, "out of bounds"),
], ids=str)
def test_basic_index_errors(key, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        em.zeros(3, 4, 5)[key]
