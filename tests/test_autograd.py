"""The autograd engine: accumulation, shared subgraphs, broadcasting, grad modes, gradcheck."""
import numpy as np
import pytest

import ember as em
from helpers.check import assert_close, rng


def test_gradients_accumulate_across_backward_calls():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [3.0 + 2.0, 3.0 + 4.0]


def test_diamond_graph_sums_both_paths():
    x = em.tensor([0.5, -1.5], requires_grad=True)
    y = x.exp()
    z = (y * y + y).sum()  # dz/dx = (2y + 1) y
    z.backward()
    yn = np.exp(np.array([0.5, -1.5], dtype=np.float32).astype(np.float64))
    assert_close(x.grad.numpy(), (2 * yn + 1) * yn, 1e-6)


def test_same_tensor_used_twice_in_one_op():
    x = em.tensor([3.0], requires_grad=True)
    (x * x).backward()
    assert x.grad.tolist() == [6.0]


def test_broadcast_gradient_is_reduced_to_input_shape():
    r, _ = rng()
    a = em.tensor(r.standard_normal((4, 1, 3)), dtype="float32", requires_grad=True)
    b = em.tensor(r.standard_normal((5, 1)), dtype="float32", requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (4, 1, 3) and b.grad.shape == (5, 1)
    assert_close(a.grad.numpy(), np.broadcast_to(b.detach().numpy().sum(), (4, 1, 3)), 1e-5)
    assert_close(b.grad.numpy(), np.full((5, 1), a.detach().numpy().sum() * 1.0), 1e-5)


def test_backward_with_explicit_grad():
    x = em.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * 2).backward(em.tensor([1.0, 0.0, -1.0]))
    assert x.grad.tolist() == [2.0, 0.0, -2.0]


def test_no_grad_and_detach():
    x = em.tensor([1.0], requires_grad=True)
    with em.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    z = x.detach() * 2
    assert not z.requires_grad
    assert x.detach()._a.same_storage(x._a)

    @em.no_grad()
    def f(t):
        return t * 3
    assert not f(x).requires_grad and em.is_grad_enabled()


def test_requires_grad_propagates_and_leaf_flags():
    a = em.tensor([1.0], requires_grad=True)
    b = em.tensor([2.0])
    c = a + b
    assert c.requires_grad and not c.is_leaf and a.is_leaf
    assert not (b * 2).requires_grad
    b.requires_grad_()
    assert b.requires_grad


def test_non_leaf_grad_is_not_kept_unless_retained():
    x = em.tensor([2.0], requires_grad=True)
    y = x * x
    y.retain_grad()
    z = y * 3
    z.backward()
    assert y.grad.tolist() == [3.0] and x.grad.tolist() == [12.0]


def test_grad_dtype_matches_input_across_casts():
    x = em.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    (x.float() * 2).sum().backward()
    assert x.grad.dtype == em.float64 and x.grad.tolist() == [2.0, 2.0]


def test_int_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating"):
        em.tensor([1, 2], requires_grad=True)


def test_gradcheck_catches_a_wrong_gradient():
    x = em.tensor([0.3, -0.7], dtype="float64", requires_grad=True)
    assert em.autograd.gradcheck(lambda t: (t * t).sum(), [x])

    def wrong(t):  # forward t^2 with the gradient of t^3 spliced in
        from ember.ops._util import make
        return make(t._a, (t,), lambda g: (g * 3 * t.detach() * t.detach(),), "wrong") * 1.0

    with pytest.raises(AssertionError, match="gradcheck"):
        em.autograd.gradcheck(wrong, [x])


def test_deep_chain_does_not_hit_recursion_limit():
    x = em.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    y.backward()
    assert x.grad.tolist() == [1.0]


def test_views_backprop_into_base():
    x = em.zeros(3, 4, requires_grad=True)
    y = x[1:].transpose(0, 1).reshape(-1)
    (y * em.arange(8).float()).sum().backward()
    want = np.zeros((3, 4))
    want[1:] = np.arange(8).reshape(4, 2).T
    np.testing.assert_array_equal(x.grad.numpy(), want)
