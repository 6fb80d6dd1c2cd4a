"""Losses against float64 NumPy references, forward and backward, plus gradcheck and bad input."""
import numpy as np
import pytest

import ember as em
import ember.nn as nn
import ember.nn.functional as F
from helpers.check import assert_close, check_op, gradcheck_op, rng


def np_log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def np_cross_entropy(x, t, ignore_index=-100, smoothing=0.0, reduction="mean"):
    lp = np_log_softmax(x)
    c = x.shape[-1]
    keep = t != ignore_index
    picked = lp[np.arange(len(t)), np.where(keep, t, 0)]
    loss = -((1 - smoothing) * picked + smoothing / c * lp.sum(-1))
    loss = np.where(keep, loss, 0.0)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / keep.sum()


@pytest.mark.parametrize("n,c", [(1, 1), (1, 7), (5, 3), (13, 10), (31, 129), (64, 1000)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_numpy(device, n, c, smoothing):
    r, _ = rng()
    t = r.integers(0, c, n)
    target = em.tensor(t, device=device)
    for reduction in ("mean", "sum", "none"):
        check_op(lambda x: F.cross_entropy(x, target, label_smoothing=smoothing, reduction=reduction),
                 lambda x: np_cross_entropy(x, t, smoothing=smoothing, reduction=reduction),
                 [(n, c)], device, low=-6, high=6, reduce_n=c, ulps=16)


def test_cross_entropy_ignore_index_and_smoothing(device):
    r, _ = rng()
    t = r.integers(0, 9, 17)
    t[[0, 5, 11]] = -100
    target = em.tensor(t, device=device)
    check_op(lambda x: F.cross_entropy(x, target, label_smoothing=0.2),
             lambda x: np_cross_entropy(x, t, smoothing=0.2), [(17, 9)], device, reduce_n=9, ulps=16)
    check_op(lambda x: nn.CrossEntropyLoss(ignore_index=3)(x, em.tensor(np.where(t < 0, 3, t), device=device)),
             lambda x: np_cross_entropy(x, np.where(t < 0, 3, t), ignore_index=3), [(17, 9)], device, reduce_n=9,
             ulps=16)


def test_cross_entropy_all_ignored_is_nan_like_pytorch():
    x = em.randn(3, 4, requires_grad=True)
    loss = F.cross_entropy(x, em.tensor([-100, -100, -100]))
    assert np.isnan(loss.item())


def test_cross_entropy_per_position_layout(device):
    """(N, C, d) logits with (N, d) targets: classes on dim 1, as PyTorch."""
    r, _ = rng()
    t = r.integers(0, 5, (3, 7))
    target = em.tensor(t, device=device)

    def ref(x):
        rows = np.moveaxis(x, 1, -1).reshape(-1, 5)
        return np_cross_entropy(rows, t.reshape(-1))

    check_op(lambda x: F.cross_entropy(x, target), ref, [(3, 5, 7)], device, reduce_n=5, ulps=16)


def test_cross_entropy_extreme_logits_stay_finite():
    x = em.tensor([[1000.0, -1000.0, 0.0], [-1e4, -1e4, -1e4]], requires_grad=True)
    loss = F.cross_entropy(x, em.tensor([0, 2]), reduction="none")
    # float32 spacing at 1e4 is ~1e-3: that, not the kernel, bounds the second row's accuracy.
    assert_close(loss.detach().numpy(), [0.0, np.log(3.0)], 1e-6, atol=2e-3)
    loss.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))


def test_cross_entropy_gradcheck():
    t = em.tensor([2, 0, 1, 2])
    gradcheck_op(lambda x: F.cross_entropy(x, t, label_smoothing=0.1), [(4, 3)])


def test_cross_entropy_bad_input():
    x = em.randn(4, 3)
    with pytest.raises(ValueError, match=r"cross_entropy.*out of range.*3 classes"):
        F.cross_entropy(x, em.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"cross_entropy.*shapes"):
        F.cross_entropy(x, em.tensor([0, 1]))
    with pytest.raises(TypeError, match=r"class indices"):
        F.cross_entropy(x, em.tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, em.tensor([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, em.tensor([0, 1, 2, 0]), reduction="avg")


@pytest.mark.parametrize("shape", [(1,), (7,), (13, 5), (4, 3, 2)])
def test_mse_and_l1(device, shape):
    r, _ = rng()
    y = r.uniform(-2, 2, shape)
    target = em.tensor(y, device=device)
    n = int(np.prod(shape))
    check_op(lambda x: F.mse_loss(x, target), lambda x: ((x - y) ** 2).mean(), [shape], device, reduce_n=n)
    check_op(lambda x: nn.MSELoss(reduction="sum")(x, target), lambda x: ((x - y) ** 2).sum(), [shape], device,
             reduce_n=n)
    check_op(lambda x: nn.L1Loss()(x, target), lambda x: np.abs(x - y).mean(), [shape], device, reduce_n=n)


@pytest.mark.parametrize("shape", [(1,), (9,), (6, 4)])
def test_bce_with_logits(device, shape):
    r, _ = rng()
    y = (r.uniform(size=shape) > 0.5).astype(np.float64)
    target = em.tensor(y, device=device)

    def ref(x, pw=1.0):
        p = 1 / (1 + np.exp(-x))
        return -(pw * y * np.log(p) + (1 - y) * np.log(1 - p)).mean()

    check_op(lambda x: nn.BCEWithLogitsLoss()(x, target), ref, [shape], device, low=-8, high=8, ulps=32,
             reduce_n=int(np.prod(shape)))
    check_op(lambda x: F.binary_cross_entropy_with_logits(x, target, pos_weight=2.5), lambda x: ref(x, 2.5),
             [shape], device, low=-8, high=8, ulps=32, reduce_n=int(np.prod(shape)))


def test_bce_with_logits_does_not_overflow():
    x = em.tensor([100.0, -100.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, em.tensor([0.0, 1.0]), reduction="none")
    assert_close(loss.detach().numpy(), [100.0, 100.0], 1e-6)


def test_nll_loss_on_log_softmax():
    r, _ = rng()
    t = r.integers(0, 6, 11)
    check_op(lambda x: F.nll_loss(em.log_softmax(x, -1), em.tensor(t)), lambda x: np_cross_entropy(x, t),
             [(11, 6)], reduce_n=6, ulps=16)


def test_loss_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"mse_loss.*\(3,\).*\(4,\)"):
        F.mse_loss(em.zeros(3), em.zeros(4))
