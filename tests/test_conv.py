"""Convolution against a float64 NumPy reference (forward, and both gradients by finite differences
of the reference), over stride, padding, dilation, groups and odd sizes; PyTorch-layout weights;
gradcheck; bad input."""
import numpy as np
import pytest

import ember as em
import ember.nn as nn
import ember.nn.functional as F
from helpers.check import assert_close, check_op, gradcheck_op, rng


def np_conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Direct definition: out[n, o, i, j] = sum_c,ki,kj x_pad[n, c, i*s + ki*d, j*s + kj*d] w[o, c, ki, kj]."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    N, C, H, W = xp.shape
    O, Cg, KH, KW = w.shape
    ho = (H - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    wo = (W - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    out = np.zeros((N, O, ho, wo))
    og = O // groups
    for ki in range(KH):
        for kj in range(KW):
            i0, j0 = ki * dilation[0], kj * dilation[1]
            patch = xp[:, :, i0:i0 + stride[0] * (ho - 1) + 1:stride[0], j0:j0 + stride[1] * (wo - 1) + 1:stride[1]]
            for g in range(groups):
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch[:, g * Cg:(g + 1) * Cg],
                                                         w[g * og:(g + 1) * og, :, ki, kj])
    return out if b is None else out + b.reshape(1, -1, 1, 1)


GRID = [  # x shape, weight shape, stride, padding, dilation, groups
    ((1, 1, 1, 1), (1, 1, 1, 1), 1, 0, 1, 1),
    ((2, 3, 7, 5), (4, 3, 3, 3), 1, 1, 1, 1),
    ((1, 4, 9, 8), (6, 2, 3, 2), (2, 1), (1, 2), (2, 1), 2),
    ((2, 4, 6, 6), (4, 1, 3, 3), 2, 1, 1, 4),       # depthwise
    ((1, 3, 8, 7), (5, 3, 1, 1), 1, 0, 1, 1),        # 1x1
    ((2, 2, 7, 7), (3, 2, 4, 4), 1, "same", 1, 1),   # even kernel, 'same'
    ((1, 2, 11, 13), (2, 2, 5, 5), 3, 2, 2, 1),
]


def pads_of(padding, w_shape, dilation):
    if padding == "same":
        th, tw = dilation[0] * (w_shape[2] - 1), dilation[1] * (w_shape[3] - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    p = padding if isinstance(padding, tuple) else (padding, padding)
    return p[0], p[0], p[1], p[1]


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", GRID)
def test_conv2d_matches_numpy(device, xs, ws, stride, padding, dilation, groups):
    pads = pads_of(padding, ws, pair(dilation))
    check_op(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
             lambda x, w, b: np_conv2d(x, w, b, pair(stride), pads, pair(dilation), groups),
             [xs, ws, (ws[0],)], device, reduce_n=ws[1] * ws[2] * ws[3], fd_limit=400)


def test_conv1d_matches_numpy(device):
    def ref(x, w):
        return np_conv2d(x[:, :, None], w[:, :, None], None, (1, 2), (0, 0, 1, 1), (1, 2), 2)[:, :, 0]
    check_op(lambda x, w: F.conv1d(x, w, None, 2, 1, 2, 2), ref, [(2, 4, 13), (6, 2, 3)], device, reduce_n=6)


def test_conv_gradcheck():
    gradcheck_op(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=2), [(1, 4, 5, 4), (2, 2, 3, 2), (2,)])


def test_layers_take_pytorch_weights():
    torch = pytest.importorskip("torch")
    r, _ = rng()
    for tm, em_m, shape in [(torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.Conv2d(4, 6, 3, stride=2,
                             padding=1, groups=2), (2, 4, 9, 10)),
                            (torch.nn.Conv1d(3, 5, 4, dilation=2, padding=3), nn.Conv1d(3, 5, 4, dilation=2, padding=3),
                             (2, 3, 17))]:
        tm, em_m = tm.double(), em_m.double()
        assert set(em_m.state_dict()) == set(tm.state_dict())
        em_m.load_state_dict({k: em.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
        x = r.standard_normal(shape)
        assert_close(em_m(em.tensor(x)).detach().numpy(), tm(torch.tensor(x)).detach().numpy(), 1e-12)


def test_conv_init_bounds():
    c = nn.Conv2d(8, 16, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert c.weight.shape == (16, 8, 3, 3) and np.abs(c.weight.detach().numpy()).max() <= bound


def test_conv_bad_input():
    x = em.zeros(1, 3, 5, 5)
    with pytest.raises(ValueError, match=r"conv2d.*channel mismatch.*3 channels.*expects 4"):
        F.conv2d(x, em.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"larger than the padded input"):
        F.conv2d(x, em.zeros(2, 3, 7, 7))
    with pytest.raises(ValueError, match=r"groups=2 must divide"):
        F.conv2d(x, em.zeros(2, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match="groups=2 must divide"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="same.*stride 1"):
        F.conv2d(x, em.zeros(2, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match=r"expects x \(N, C, H, W\)"):
        F.conv2d(em.zeros(3, 5, 5), em.zeros(2, 3, 3, 3))
