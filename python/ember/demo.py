"""`python -m ember demo`: fits a two-layer tanh network to y = sin(3x) on 256 points of [-2, 2] with
autograd, the parameters updated by Adam written out in a few tensor ops, printing the loss as it
falls (about a second on one CPU core). The Keras-style training loop on a real data set replaces
this once nn/ and optim/ land."""
from __future__ import annotations

import math
import time

import numpy as np

import ember as em


def sine_data(points=256):
    """(x, y) of shape (points, 1): a grid on [-2, 2] and sin(3x), computed in float64 by NumPy."""
    x = np.linspace(-2.0, 2.0, points).reshape(-1, 1)
    return em.tensor(x, dtype=em.float32), em.tensor(np.sin(3.0 * x), dtype=em.float32)


def init_params(hidden):
    """w1 (hidden, 1), b1 (hidden,), w2 (1, hidden), b2 (1,): nn.Linear's (out, in) layout."""
    params = [em.randn(hidden, 1), em.zeros(hidden), em.randn(1, hidden) * (1 / math.sqrt(hidden)), em.zeros(1)]
    return [p.requires_grad_() for p in params]


def forward(params, x):
    w1, b1, w2, b2 = params
    return em.linear(em.linear(x, w1, b1).tanh(), w2, b2)


def adam_step(params, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam update of every parameter in place, from its .grad; m and v are the moment lists."""
    with em.no_grad():
        for i, p in enumerate(params):
            m[i] = m[i] * beta1 + p.grad * (1 - beta1)
            v[i] = v[i] * beta2 + p.grad * p.grad * (1 - beta2)
            m_hat, v_hat = m[i] / (1 - beta1 ** step), v[i] / (1 - beta2 ** step)
            p -= lr * m_hat / (v_hat.sqrt() + eps)
            p.grad = None


def run(epochs=1500, hidden=64, lr=0.02, seed=0):
    """Trains full-batch for `epochs` steps; returns the final mean squared error."""
    em.manual_seed(seed)
    x, y = sine_data()
    params = init_params(hidden)
    m, v = [em.zeros_like(p) for p in params], [em.zeros_like(p) for p in params]
    print(f"fitting sin(3x) with a 1-{hidden}-1 tanh network, Adam lr={lr}, {epochs} full-batch steps")
    start = time.perf_counter()
    for step in range(1, epochs + 1):
        loss = ((forward(params, x) - y) ** 2).mean()
        loss.backward()
        adam_step(params, m, v, step, lr)
        if step == 1 or step % max(1, epochs // 10) == 0:
            print(f"  step {step:5d}  loss {loss.item():.5f}")
    print(f"final loss {loss.item():.5f} in {time.perf_counter() - start:.2f} s")
    return loss.item()
