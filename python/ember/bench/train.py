"""Training throughput: the time of one whole training step (forward, cross-entropy, backward, Adam
step, zero_grad) of an MLP, ember next to PyTorch CPU eager on the same weights and batch; and the
fused Adam update alone on 10M parameters in GB/s next to PyTorch's fused Adam (fused=True) on the
same tensors, against the memory roofline.

Before timing, each case checks that ember and PyTorch agree: one step from identical weights must
give the same loss and the same updated weights (to float32 rounding)."""
from __future__ import annotations

import numpy as np

import ember as em
import ember.nn as nn
import ember.nn.functional as F
from ember import _C

from .harness import Result, memory_roofline, measure, torch_peer

ADAM_BYTES_PER_PARAM = 7 * 4  # reads p, g, m, v; writes p, m, v (float32)


def _mlp_layers(widths):
    return [(widths[i], widths[i + 1]) for i in range(len(widths) - 1)]


def _weights(widths, rng):
    return [(rng.standard_normal((o, i)).astype(np.float32) / np.sqrt(i), np.zeros(o, np.float32))
            for i, o in _mlp_layers(widths)]


def _ember_step(weights, device):
    layers = []
    for w, b in weights:
        lin = nn.Linear(w.shape[1], w.shape[0], device=device)
        lin.load_state_dict({"weight": em.tensor(w), "bias": em.tensor(b)})
        layers.append(lin)
    model = nn.Sequential(*layers)
    opt = em.optim.Adam(model.parameters(), lr=1e-3)

    def loss_of(x, y):
        for lin in layers[:-1]:
            x = F.linear(x, lin.weight, lin.bias, activation="relu")  # relu fused into the GEMM
        loss = F.cross_entropy(layers[-1](x), y)
        loss.backward()
        return loss

    def step(x, y):
        loss = loss_of(x, y)
        opt.step()
        opt.zero_grad()
        return loss

    return model, loss_of, step


def _torch_step(torch, weights, device):
    layers = []
    for w, b in weights:
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = torch.nn.CrossEntropyLoss()

    def loss_of(x, y):
        loss = lossf(model(x), y)
        loss.backward()
        return loss

    def step(x, y):
        loss = loss_of(x, y)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return model, loss_of, step


def _agree(e_model, e_loss, t_model, t_loss):
    """Same loss and same first-layer weight gradient (Adam's first step, lr * g / |g|, would turn
    rounding-level differences of tiny gradients into lr-sized ones, so gradients are compared)."""
    e_g = e_model.state_dict(keep_vars=True)["0.weight"].grad.cpu().numpy()
    t_g = t_model[0].weight.grad.detach().cpu().numpy()
    scale = np.abs(t_g).max()
    return abs(e_loss - t_loss) <= 1e-5 * max(1.0, abs(t_loss)) and np.allclose(e_g, t_g, rtol=1e-3, atol=1e-4 * scale)


def mlp_case(name, widths, batch, device, repeat, torch):
    rng = np.random.default_rng(0)
    weights = _weights(widths, rng)
    x = rng.standard_normal((batch, widths[0])).astype(np.float32)
    y = rng.integers(0, widths[-1], batch).astype(np.int64)
    ex, ey = em.tensor(x, device=device), em.tensor(y, device=device)
    e_model, e_loss_of, e_step = _ember_step(weights, device)
    flops = 6.0 * batch * sum(i * o for i, o in _mlp_layers(widths))  # forward 2, backward 4 per MAC
    shape = f"{'-'.join(map(str, widths))} b{batch}"
    note, valid, peer, peer_ms = "", True, "", float("nan")
    if torch is not None:
        t_model, t_loss_of, t_step = _torch_step(torch, weights, device)
        tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        e_loss, t_loss = float(e_loss_of(ex, ey).item()), float(t_loss_of(tx, ty).item())
        valid = _agree(e_model, e_loss, t_model, t_loss)
        if not valid:
            note = f"ember and torch disagree on the loss or the gradient (loss {e_loss} vs {t_loss})"
        peer = "torch"
        peer_ms = measure(lambda: t_step(tx, ty), device, repeat).median_ms
    ms = measure(lambda: e_step(ex, ey), device, repeat)
    return Result("train", name, shape, "float32", str(device), ms.median_ms, flops / ms.median_ms / 1e6, "GFLOP/s",
                  peer, peer_ms, flops / peer_ms / 1e6 if peer else float("nan"), valid=valid, note=note,
                  ms_min=ms.min_ms)


def adam_case(numel, device, repeat, torch):
    """The update alone: ember's fused kernel vs torch.optim.Adam(fused=True) on copies of the same
    param, grad and moments; checked against the update formula in float64 NumPy."""
    rng = np.random.default_rng(1)
    p0, g0 = rng.standard_normal(numel).astype(np.float32), rng.standard_normal(numel).astype(np.float32)
    m0 = (0.1 * rng.standard_normal(numel)).astype(np.float32)
    v0 = np.abs(0.01 * rng.standard_normal(numel)).astype(np.float32)
    lr, b1, b2, eps, step = 1e-3, 0.9, 0.999, 1e-8, 3
    P, G, M, V = (em.tensor(a, device=device) for a in (p0, g0, m0, v0))

    def ember_step(s=step):
        _C.adam_step_([P._a], [G._a], [M._a], [V._a], lr, b1, b2, eps, 0.0, False, s)

    ember_step()
    m = b1 * m0.astype(np.float64) + (1 - b1) * g0
    v = b2 * v0.astype(np.float64) + (1 - b2) * g0.astype(np.float64) ** 2
    ref = p0 - lr / (1 - b1 ** step) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** step) + eps)
    valid = bool(np.allclose(P.cpu().numpy(), ref, rtol=1e-5, atol=1e-6))
    roof, _ = memory_roofline(4 * numel * 4, 3 * numel * 4, device, torch)
    nbytes = ADAM_BYTES_PER_PARAM * numel
    ms = measure(ember_step, device, repeat)
    peer, peer_ms = "", float("nan")
    if torch is not None:
        tp = torch.nn.Parameter(torch.from_numpy(p0.copy()).to(device))
        tp.grad = torch.from_numpy(g0.copy()).to(device)
        kind = {"fused": True}
        try:
            topt = torch.optim.Adam([tp], lr=lr, betas=(b1, b2), eps=eps, **kind)
            topt.step()
        except (RuntimeError, TypeError):
            kind = {"foreach": True}
            topt = torch.optim.Adam([tp], lr=lr, betas=(b1, b2), eps=eps, **kind)
            topt.step()
        peer = "torch " + next(iter(kind))
        peer_ms = measure(topt.step, device, repeat).median_ms
    return Result("train", "adam step", f"{numel / 1e6:g}M params", "float32", str(device), ms.median_ms,
                  nbytes / ms.median_ms / 1e6, "GB/s", peer, peer_ms, nbytes / peer_ms / 1e6 if peer else float("nan"),
                  roof, valid, ms_min=ms.min_ms)


def run(device="cpu", quick=False, repeat=20):
    torch = torch_peer(device)
    results = [mlp_case("mlp step", [784, 256, 256, 10], 128, device, repeat, torch)]
    if not quick:
        results.append(mlp_case("wide mlp step", [784, 1024, 1024, 10], 256, device, repeat, torch))
    results.append(adam_case(1_000_000 if quick else 10_000_000, device, repeat, torch))
    return results
