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
    ((1, 3, 7, 9), (3, 1, 2, 3), 1, "same", (2, 1), 3),   # depthwise (direct kernels), even kernel height
    ((2, 5, 6, 7), (5, 1, 3, 3), (1, 2), (1, 0), 1, 5),    # depthwise, uneven stride/padding
    ((1, 2, 5, 5), (4, 1, 3, 3), 1, 1, 1, 2),             # channel multiplier 2: im2col + GEMM
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


def np_pool(x, k, s, p, mode, count_include_pad=True):
    """max/avg pooling by its definition (square windows, floor mode), float64."""
    N, C, H, W = x.shape
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    ones = np.pad(np.ones((H, W)), p)
    oh, ow = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    out = np.zeros((N, C, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * s:i * s + k, j * s:j * s + k]
            if mode == "max":
                out[:, :, i, j] = win.max((2, 3))
            else:
                out[:, :, i, j] = win.sum((2, 3)) / (k * k if count_include_pad else ones[i * s:i * s + k, j * s:j * s + k].sum())
    return out


def np_max_pool_grad(x, cot, k, s, p):
    """Each output's cotangent goes to its window's first maximum (an exact reference: finite
    differences misjudge windows whose two largest values are closer than the step)."""
    N, C, H, W = x.shape
    g = np.zeros_like(x)
    for i in range(cot.shape[2]):
        for j in range(cot.shape[3]):
            r0, c0 = i * s - p, j * s - p
            rows = [r for r in range(r0, r0 + k) if 0 <= r < H]
            cols = [c for c in range(c0, c0 + k) if 0 <= c < W]
            win = x[:, :, rows][:, :, :, cols].reshape(N, C, -1)
            at = win.argmax(-1)
            for n in range(N):
                for ch in range(C):
                    g[n, ch, rows[at[n, ch] // len(cols)], cols[at[n, ch] % len(cols)]] += cot[n, ch, i, j]
    return g


@pytest.mark.parametrize("shape,k,s,p", [((1, 1, 1, 1), 1, 1, 0), ((2, 3, 9, 7), 3, 2, 1), ((1, 2, 8, 8), 2, 2, 0),
                                         ((2, 1, 5, 11), 3, 1, 1)])
def test_pooling_matches_numpy(device, shape, k, s, p):
    check_op(lambda x: F.max_pool2d(x, k, s, p), lambda x: np_pool(x, k, s, p, "max"), [shape], device, ulps=1,
             np_grad=lambda i, cot, x: np_max_pool_grad(x, cot, k, s, p))
    check_op(lambda x: F.avg_pool2d(x, k, s, p), lambda x: np_pool(x, k, s, p, "avg"), [shape], device, reduce_n=k * k)
    check_op(lambda x: nn.AvgPool2d(k, s, p, count_include_pad=False)(x),
             lambda x: np_pool(x, k, s, p, "avg", False), [shape], device, reduce_n=k * k)


def test_adaptive_avg_pool_and_pytorch_rules():
    torch = pytest.importorskip("torch")
    r, _ = rng()
    x = r.standard_normal((2, 3, 10, 7))
    for f_em, f_t in [(lambda t: nn.AdaptiveAvgPool2d((3, 4))(t), lambda t: torch.nn.AdaptiveAvgPool2d((3, 4))(t)),
                      (lambda t: nn.MaxPool2d((2, 3), (2, 1), 1, dilation=(2, 1), ceil_mode=True)(t),
                       lambda t: torch.nn.MaxPool2d((2, 3), (2, 1), 1, dilation=(2, 1), ceil_mode=True)(t)),
                      (lambda t: nn.AvgPool2d(3, 2, 1, ceil_mode=True)(t),
                       lambda t: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True)(t))]:
        ex, tx = em.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        eo, to = f_em(ex), f_t(tx)
        g = r.standard_normal(to.shape)
        (eo * em.tensor(g)).sum().backward()
        (to * torch.tensor(g)).sum().backward()
        assert_close(eo.detach().numpy(), to.detach().numpy(), 1e-12)
        assert_close(ex.grad.numpy(), tx.grad.numpy(), 1e-12)
    gradcheck_op(lambda t: F.adaptive_avg_pool2d(t, (2, 3)), [(1, 2, 5, 7)])


def test_pool_bad_input():
    with pytest.raises(ValueError, match="does not fit"):
        F.max_pool2d(em.zeros(1, 1, 2, 2), 5)
    with pytest.raises(ValueError, match="at most half the kernel"):
        F.max_pool2d(em.zeros(1, 1, 6, 6), 2, padding=2)
    with pytest.raises(ValueError, match=r"expects x \(N, C, H, W\)"):
        F.avg_pool2d(em.zeros(3, 4, 4), 2)


def np_batch_norm(x, gamma, beta, eps=1e-5):
    dims = (0,) + tuple(range(2, x.ndim))
    view = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(dims), x.var(dims)
    return (x - mean.reshape(view)) / np.sqrt(var.reshape(view) + eps) * gamma.reshape(view) + beta.reshape(view)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (7, 3), (5, 3, 4), (2, 1, 1, 3)])
def test_batch_norm_training_matches_numpy(device, shape):
    check_op(lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True),
             lambda x, g, b: np_batch_norm(x, g, b), [shape, (shape[1],), (shape[1],)], device,
             reduce_n=int(np.prod(shape)) // shape[1], ulps=32)


def test_batch_norm_layers_follow_pytorch():
    torch = pytest.importorskip("torch")
    r, _ = rng()
    for shape, t_cls, e_cls in [((4, 3, 5, 6), torch.nn.BatchNorm2d, nn.BatchNorm2d),
                                ((7, 3), torch.nn.BatchNorm1d, nn.BatchNorm1d)]:
        tm, emm = t_cls(3, momentum=0.3).double(), e_cls(3, momentum=0.3).double()
        assert set(emm.state_dict()) == set(tm.state_dict())
        for _ in range(3):  # running statistics after several training steps
            x = r.standard_normal(shape) * 2 + 1
            tm(torch.tensor(x)), emm(em.tensor(x))
        for k, v in tm.state_dict().items():
            assert_close(emm.state_dict()[k].detach().double().numpy(), v.double().numpy(), 1e-12, msg=k)
        tm.eval(), emm.eval()
        x = r.standard_normal(shape)
        assert_close(emm(em.tensor(x)).detach().numpy(), tm(torch.tensor(x)).detach().numpy(), 1e-12)


def test_batch_norm_bad_input():
    with pytest.raises(ValueError, match="4-d input"):
        nn.BatchNorm2d(3)(em.zeros(2, 3))
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm1d(3)(em.zeros(1, 3))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        F.batch_norm(em.zeros(2, 3), None, None, em.ones(4), None, training=True)


def test_batch_norm_eval_mode_gradients(device):
    """With running statistics the normalisation is affine in x: dx = dy * weight / sqrt(var + eps)."""
    r, _ = rng()
    rm, rv = r.standard_normal(3), r.uniform(0.5, 2.0, 3)
    mean_t, var_t = em.tensor(rm, device=device), em.tensor(rv, device=device)

    def ref(x, g, b):
        view = (1, 3, 1, 1)
        return (x - rm.reshape(view)) / np.sqrt(rv.reshape(view) + 1e-5) * g.reshape(view) + b.reshape(view)

    check_op(lambda x, g, b: F.batch_norm(x, mean_t.to(x.dtype), var_t.to(x.dtype), g, b, training=False), ref,
             [(2, 3, 4, 5), (3,), (3,)], device, reduce_n=40)
