"""Optimizers against their update formulas written out in float64 NumPy (several steps, several
tensors of awkward sizes), state_dict round trips, lr schedules, clipping and bad input."""
import math

import numpy as np
import pytest

import ember as em
import ember.nn as nn
from ember.optim import SGD, Adam, AdamW, RMSprop
from ember.optim.lr_scheduler import CosineAnnealingLR, LinearWarmup, StepLR
from helpers.check import assert_close, rng

SHAPES = [(1,), (7,), (13, 5), (16385,)]   # 16385: crosses the kernels' 16K-element slices


class NumpyAdam:
    def __init__(self, lr, b1, b2, eps, wd, decoupled):
        self.__dict__.update(lr=lr, b1=b1, b2=b2, eps=eps, wd=wd, decoupled=decoupled, t=0, m=None, v=None)

    def step(self, p, g):
        self.t += 1
        if self.m is None:
            self.m, self.v = np.zeros_like(p), np.zeros_like(p)
        if self.decoupled:
            p = p * (1 - self.lr * self.wd)
        else:
            g = g + self.wd * p
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        mhat = self.m / (1 - self.b1 ** self.t)
        vhat = self.v / (1 - self.b2 ** self.t)
        return p - self.lr * mhat / (np.sqrt(vhat) + self.eps)


class NumpySGD:
    def __init__(self, lr, momentum, dampening, wd, nesterov):
        self.__dict__.update(lr=lr, mu=momentum, damp=dampening, wd=wd, nesterov=nesterov, buf=None)

    def step(self, p, g):
        g = g + self.wd * p
        if self.mu:
            self.buf = g.copy() if self.buf is None else self.mu * self.buf + (1 - self.damp) * g
            g = g + self.mu * self.buf if self.nesterov else self.buf
        return p - self.lr * g


class NumpyRMSprop:
    def __init__(self, lr, alpha, eps, wd, momentum, centered):
        self.__dict__.update(lr=lr, alpha=alpha, eps=eps, wd=wd, mu=momentum, centered=centered, sq=None, buf=None,
                             avg=None)

    def step(self, p, g):
        g = g + self.wd * p
        if self.sq is None:
            self.sq, self.buf, self.avg = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        self.sq = self.alpha * self.sq + (1 - self.alpha) * g * g
        var = self.sq
        if self.centered:
            self.avg = self.alpha * self.avg + (1 - self.alpha) * g
            var = self.sq - self.avg ** 2
        step = g / (np.sqrt(var) + self.eps)
        if self.mu:
            self.buf = self.mu * self.buf + step
            step = self.buf
        return p - self.lr * step


CASES = [
    (lambda ps: SGD(ps, lr=0.1), lambda: NumpySGD(0.1, 0, 0, 0, False)),
    (lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01), lambda: NumpySGD(0.05, 0.9, 0, 0.01, False)),
    (lambda ps: SGD(ps, lr=0.05, momentum=0.8, dampening=0.3), lambda: NumpySGD(0.05, 0.8, 0.3, 0, False)),
    (lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True), lambda: NumpySGD(0.05, 0.9, 0, 0, True)),
    (lambda ps: Adam(ps, lr=0.01), lambda: NumpyAdam(0.01, 0.9, 0.999, 1e-8, 0, False)),
    (lambda ps: Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     lambda: NumpyAdam(0.02, 0.8, 0.99, 1e-6, 0.1, False)),
    (lambda ps: AdamW(ps, lr=0.01, weight_decay=0.05), lambda: NumpyAdam(0.01, 0.9, 0.999, 1e-8, 0.05, True)),
    (lambda ps: RMSprop(ps, lr=0.01), lambda: NumpyRMSprop(0.01, 0.99, 1e-8, 0, 0, False)),
    (lambda ps: RMSprop(ps, lr=0.01, alpha=0.9, weight_decay=0.01, momentum=0.5, centered=True),
     lambda: NumpyRMSprop(0.01, 0.9, 1e-8, 0.01, 0.5, True)),
    (lambda ps: RMSprop(ps, lr=0.01, momentum=0.7), lambda: NumpyRMSprop(0.01, 0.99, 1e-8, 0, 0.7, False)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make,ref", CASES)
def test_optimizer_matches_numpy_formula(device, dtype, make, ref):
    r, seed = rng()
    p0 = [r.standard_normal(s) for s in SHAPES]
    params = [em.tensor(p, dtype=dtype, device=device, requires_grad=True) for p in p0]
    refs = [ref() for _ in SHAPES]
    want = [em.tensor(p, dtype=dtype).double().numpy() for p in p0]
    opt = make(params)
    for _ in range(4):
        grads = [r.standard_normal(s) for s in SHAPES]
        for p, g in zip(params, grads):
            p.grad = em.tensor(g, dtype=dtype, device=device)
        opt.step()
        grads = [em.tensor(g, dtype=dtype).double().numpy() for g in grads]
        want = [rf.step(w, g) for rf, w, g in zip(refs, want, grads)]
    # float32: each step rounds p, m and v (a few ulps per step, 4 steps).
    tol = 1e-5 if dtype == "float32" else 1e-12
    for p, w in zip(params, want):
        assert_close(p.detach().cpu().double().numpy(), w, tol, msg=f"seed {seed}")


def test_params_without_grad_are_skipped_and_frozen_stay():
    a, b = em.ones(3, requires_grad=True), em.ones(3, requires_grad=True)
    opt = Adam([a, b], lr=0.1)
    a.grad = em.ones(3)
    opt.step()
    assert np.all(a.detach().numpy() < 1) and np.all(b.detach().numpy() == 1)
    assert opt.state_dict()["state"].keys() == {0}


def test_param_groups_have_their_own_lr():
    a, b = em.zeros(2, requires_grad=True), em.zeros(2, requires_grad=True)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = em.ones(2), em.ones(2)
    opt.step()
    assert_close(a.detach().numpy(), [-0.1, -0.1], 1e-7)
    assert_close(b.detach().numpy(), [-1.0, -1.0], 1e-7)


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.01), lambda ps: SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: RMSprop(ps, centered=True, momentum=0.3)])
def test_state_dict_resume_is_bitwise(make):
    r, _ = rng()
    p0 = [r.standard_normal(s) for s in [(5,), (3, 4)]]
    grads = [[r.standard_normal(p.shape) for p in p0] for _ in range(6)]

    def run(opt, params, steps):
        for gs in steps:
            for p, g in zip(params, gs):
                p.grad = em.tensor(g, dtype="float32")
            opt.step()

    straight = [em.tensor(p, dtype="float32", requires_grad=True) for p in p0]
    run(make(straight), straight, grads)
    first = [em.tensor(p, dtype="float32", requires_grad=True) for p in p0]
    opt = make(first)
    run(opt, first, grads[:3])
    state = opt.state_dict()
    resumed = [em.tensor(p.detach().numpy(), requires_grad=True) for p in first]
    opt2 = make(resumed)
    opt2.load_state_dict(state)
    run(opt2, resumed, grads[3:])
    for a, b in zip(straight, resumed):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())


def test_load_state_dict_checks_groups_and_shapes():
    a = em.zeros(3, requires_grad=True)
    opt = Adam([a])
    a.grad = em.ones(3)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="param groups"):
        Adam([em.zeros(3, requires_grad=True), em.zeros(2, requires_grad=True)]).load_state_dict(sd)
    with pytest.raises(ValueError, match="shape"):
        Adam([em.zeros(4, requires_grad=True)]).load_state_dict(sd)


def test_optimizer_bad_input():
    with pytest.raises(ValueError, match="lr"):
        SGD([em.zeros(2, requires_grad=True)], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        Adam([em.zeros(2, requires_grad=True)], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="nesterov"):
        SGD([em.zeros(2, requires_grad=True)], nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        Adam([])
    with pytest.raises(RuntimeError, match="no parameters"):
        Adam().step()
    p = em.zeros(3, requires_grad=True)
    p.grad = em.zeros(3, dtype="float64")
    with pytest.raises(TypeError, match=r"adam_step.*float64.*float32"):
        Adam([p]).step()


def test_keras_style_optimizer_is_bound_by_compile():
    model = nn.Sequential(nn.Linear(3, 2))
    opt = Adam(lr=0.5)
    assert not opt.bound
    model.compile(optimizer=opt, loss="mse")
    assert opt.bound and len(opt.param_groups[0]["params"]) == 2


def lrs_over(make_schedule, base_lr, steps):
    """The lr of each of `steps` epochs under a fresh optimizer and schedule."""
    opt = SGD([em.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_schedule(opt)
    got = []
    for _ in range(steps):
        got.append(opt.param_groups[0]["lr"])
        sched.step()
    return got, sched


def test_lr_schedules():
    assert lrs_over(lambda o: StepLR(o, step_size=2, gamma=0.5), 1.0, 5)[0] == [1.0, 1.0, 0.5, 0.5, 0.25]
    got, _ = lrs_over(lambda o: CosineAnnealingLR(o, T_max=4, eta_min=0.0), 2.0, 6)
    assert_close(got, [2.0, 1 + math.cos(math.pi / 4), 1.0, 1 - math.cos(math.pi / 4), 0.0, 0.0], 1e-12, atol=1e-12)
    got, w = lrs_over(lambda o: LinearWarmup(o, warmup_steps=4, total_steps=8), 1.0, 9)
    assert_close(got, [0.0, 0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25, 0.0], 1e-12, atol=1e-12)
    w2 = LinearWarmup(SGD([em.zeros(1, requires_grad=True)], lr=1.0), warmup_steps=4, total_steps=8)
    w2.load_state_dict(w.state_dict())
    assert w2.get_last_lr() == w.get_last_lr()


def test_clip_grad_norm():
    r, _ = rng()
    gs = [r.standard_normal(s) for s in [(4,), (3, 5)]]
    ps = [em.zeros(*g.shape, requires_grad=True) for g in gs]
    for p, g in zip(ps, gs):
        p.grad = em.tensor(g, dtype="float32")
    total = math.sqrt(sum((g.astype(np.float32).astype(np.float64) ** 2).sum() for g in gs))
    norm = nn.utils.clip_grad_norm_(ps, max_norm=1.0)
    assert_close(norm.item(), total, 1e-6)
    clipped = math.sqrt(sum((p.grad.numpy().astype(np.float64) ** 2).sum() for p in ps))
    assert_close(clipped, 1.0, 1e-5)
    ps[0].grad = em.tensor([float("nan")] * 4)
    with pytest.raises(RuntimeError, match="total norm"):
        em.optim.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)


def test_matches_torch_adam_when_installed():
    torch = pytest.importorskip("torch")
    r, _ = rng()
    p0 = r.standard_normal((9, 4)).astype(np.float32)
    ep = em.tensor(p0, requires_grad=True)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    eo, to = AdamW([ep], lr=0.01, weight_decay=0.1), torch.optim.AdamW([tp], lr=0.01, weight_decay=0.1)
    for _ in range(5):
        g = r.standard_normal((9, 4)).astype(np.float32)
        ep.grad, tp.grad = em.tensor(g), torch.from_numpy(g)
        eo.step()
        to.step()
    assert_close(ep.detach().numpy(), tp.detach().numpy(), 1e-5)
