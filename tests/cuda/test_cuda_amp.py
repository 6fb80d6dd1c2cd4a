"""Mixed precision on CUDA: autocast's float16/bfloat16 GEMMs against float64 references of the
rounded inputs, and a float16 training loop with GradScaler that learns. Skipped without a GPU."""
import numpy as np
import pytest

import ember as em
import ember.nn as nn
from helpers.check import assert_close, rng

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("dtype,tol", [("float16", 2 ** -10), ("bfloat16", 2 ** -7)])
def test_autocast_linear(dtype, tol):
    r, seed = rng()
    x, w = r.standard_normal((129, 70)), r.standard_normal((33, 70))
    rounded = [em.tensor(a, dtype=dtype).to("float64").numpy() for a in (x, w)]
    with em.autocast("cuda", dtype=dtype):
        y = em.linear(em.tensor(x, device="cuda"), em.tensor(w, device="cuda"))
    assert str(y.dtype) == f"ember.{dtype}"
    assert_close(y.to("float64").cpu().numpy(), rounded[0] @ rounded[1].T, tol * 8, msg=f"seed {seed}")


def test_float16_training_with_grad_scaler():
    em.manual_seed(0)
    x, y = em.datasets.load_digits()
    x = em.tensor(x[:600].reshape(600, 64) / np.float32(16), device="cuda")
    y = em.tensor(y[:600], device="cuda")
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to("cuda")
    opt = em.optim.Adam(model.parameters(), lr=1e-2)
    scaler = em.amp.GradScaler()
    for _ in range(60):
        with em.autocast("cuda", dtype="float16"):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    with em.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9, acc
