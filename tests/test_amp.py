"""Mixed precision: autocast's casting policy (GEMM-heavy ops in 16 bits, losses in float32,
float32 master weights), bfloat16 numerics of the CPU path against a float64 reference of the
rounded inputs, training under autocast, and GradScaler's dynamic scaling (skipped steps on
inf/NaN, backoff, growth, state_dict)."""
import numpy as np
import pytest

import ember as em
import ember.nn as nn
from helpers.check import assert_close, rng


def bf16(a):
    """float64 -> the nearest bfloat16, as float64 (round to nearest even on the top 16 bits)."""
    return em.tensor(a, dtype="float32").to("bfloat16").to("float64").numpy()


def test_autocast_policy_and_master_weights():
    m = nn.Linear(8, 4)
    x = em.randn(5, 8)
    with em.autocast("cpu"):
        y = m(x)
        loss = nn.functional.cross_entropy(y, em.tensor([0, 1, 2, 3, 0]))
        assert y.dtype == em.bfloat16 and loss.dtype == em.float32
        assert (x @ m.weight.t()).dtype == em.bfloat16
        with em.autocast("cpu", enabled=False):
            assert m(x).dtype == em.float32
    assert m(x).dtype == em.float32  # only inside the block
    loss.backward()
    assert m.weight.dtype == em.float32 and m.weight.grad.dtype == em.float32


def test_cpu_bfloat16_gemm_numerics():
    r, seed = rng()
    x, w, b = r.standard_normal((33, 70)), r.standard_normal((17, 70)), r.standard_normal(17)
    with em.autocast("cpu", dtype="bfloat16"):
        y = em.linear(em.tensor(x, dtype="float32"), em.tensor(w, dtype="float32"), em.tensor(b, dtype="float32"))
    want = bf16(bf16(x) @ bf16(w).T + bf16(b))  # float32 accumulation of rounded inputs, result rounded
    assert_close(y.to("float64").numpy(), want, 2 ** -7, msg=f"seed {seed}")


def test_training_under_autocast_learns():
    em.manual_seed(0)
    x, y = em.datasets.load_digits()
    x, y = em.tensor(x[:600].reshape(600, 64) / np.float32(16)), em.tensor(y[:600])
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = em.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        with em.autocast("cpu"):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with em.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9, acc


def test_decorator_and_bad_arguments():
    @em.autocast("cpu")
    def f(a, b):
        return a @ b

    assert f(em.ones(2, 3), em.ones(3, 2)).dtype == em.bfloat16
    with pytest.raises(ValueError, match="device_type"):
        em.autocast("tpu")
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        em.autocast("cpu", dtype="float32")


def _params_with_grads(values):
    ps = [nn.Parameter(em.zeros(len(v))) for v in values]
    for p, v in zip(ps, values):
        p.grad = em.tensor(v, dtype="float32")
    return ps


def test_grad_scaler_unscales_and_steps():
    scaler = em.amp.GradScaler(init_scale=1024.0, growth_interval=2)
    (p,) = _params_with_grads([[1024.0, -2048.0]])
    opt = em.optim.SGD([p], lr=1.0)
    assert scaler.scale(em.tensor(2.0)).item() == 2048.0
    scaler.step(opt)
    assert p.detach().numpy().tolist() == [-1.0, 2.0]  # grads divided by the scale, then the SGD step
    scaler.update()
    assert scaler.get_scale() == 1024.0
    p.grad = em.tensor([1024.0, 0.0])
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2048.0  # two clean steps: grown


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_grad_scaler_skips_non_finite_steps_and_backs_off(bad):
    scaler = em.amp.GradScaler(init_scale=256.0)
    (p,) = _params_with_grads([[1.0, bad]])
    opt = em.optim.SGD([p], lr=1.0)
    scaler.step(opt)
    assert p.detach().numpy().tolist() == [0.0, 0.0]  # skipped
    scaler.update()
    assert scaler.get_scale() == 128.0
    state = scaler.state_dict()
    other = em.amp.GradScaler()
    other.load_state_dict(state)
    assert other.get_scale() == 128.0


def test_grad_scaler_unscale_once_per_step():
    scaler = em.amp.GradScaler()
    (p,) = _params_with_grads([[1.0]])
    opt = em.optim.SGD([p], lr=0.1)
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already called"):
        scaler.unscale_(opt)
    scaler.step(opt)  # does not unscale again
    scaler.update()
    scaler.unscale_(opt)  # allowed again after update()
