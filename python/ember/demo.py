"""`python -m ember demo`: fits a two-layer tanh network to sin(3x) on [-2, 2] with autograd and
Adam written out in a few tensor ops, printing the loss as it falls. (The Keras-style training
loop on a real data set replaces this when nn/ and optim/ land.)"""
from __future__ import annotations

import math
import time

import ember as em


def run(epochs=1500, hidden=64, lr=0.02, seed=0):
    em.manual_seed(seed)
    x = em.linspace(-2, 2, 256).reshape(-1, 1)
    y = (x * 3).detach().numpy()
    y = em.tensor([[math.sin(v)] for v in y.ravel()])
    params = [em.randn(hidden, 1) * 1.0, em.zeros(hidden), em.randn(1, hidden) * (1 / math.sqrt(hidden)), em.zeros(1)]
    for p in params:
        p.requires_grad_()
    m = [em.zeros_like(p) for p in params]
    v = [em.zeros_like(p) for p in params]
    t0 = time.perf_counter()
    print(f"fitting sin(3x) with a 1-{hidden}-1 tanh network, Adam lr={lr}, {epochs} full-batch steps")
    for step in range(1, epochs + 1):
        w1, b1, w2, b2 = params
        pred = em.linear(em.linear(x, w1, b1).tanh(), w2, b2)
        loss = ((pred - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with em.no_grad():
            for i, p in enumerate(params):  # Adam (beta1 0.9, beta2 0.999)
                m[i] = m[i] * 0.9 + p.grad * 0.1
                v[i] = v[i] * 0.999 + p.grad * p.grad * 0.001
                mh, vh = m[i] / (1 - 0.9 ** step), v[i] / (1 - 0.999 ** step)
                p -= lr * mh / (vh.sqrt() + 1e-8)
        if step == 1 or step % max(1, epochs // 10) == 0:
            print(f"  step {step:4d}  loss {loss.item():.5f}")
    print(f"final loss {loss.item():.5f} in {time.perf_counter() - t0:.2f} s")
    return loss.item()
