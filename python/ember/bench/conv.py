"""Convolution: GFLOP/s of forward and of forward + backward (input and weight gradients) for
ResNet-style layers, a 1x1, a depthwise 3x3 and a 5x5 LeNet layer, next to PyTorch CPU (oneDNN) on
the same weights and input in one run. Each case is checked first against PyTorch's result."""
from __future__ import annotations

import numpy as np

import ember as em
import ember.nn.functional as F

from .harness import Result, fp32_peak_gflops, measure, torch_peer

# name, N, C_in, C_out, H (= W), kernel, stride, padding, groups
CASES = [("resnet 3x3 64", 32, 64, 64, 56, 3, 1, 1, 1), ("resnet 3x3 128", 32, 128, 128, 28, 3, 1, 1, 1),
         ("1x1 256->64", 32, 256, 64, 28, 1, 1, 0, 1), ("depthwise 3x3", 32, 128, 128, 28, 3, 1, 1, 128),
         ("lenet 5x5", 64, 6, 16, 14, 5, 1, 0, 1)]


def _flops(n, c, o, h, k, s, p, g):
    ho = (h + 2 * p - k) // s + 1
    return 2.0 * n * o * ho * ho * (c // g) * k * k


def case(name, n, c, o, h, k, s, p, g, device, repeat, torch, backward):
    r = np.random.default_rng(0)
    x = r.standard_normal((n, c, h, h)).astype(np.float32)
    w = (r.standard_normal((o, c // g, k, k)) / np.sqrt(c // g * k * k)).astype(np.float32)
    ex, ew = em.tensor(x, device=device, requires_grad=backward), em.tensor(w, device=device, requires_grad=backward)
    flops = _flops(n, c, o, h, k, s, p, g) * (3 if backward else 1)

    def ember_run():
        y = F.conv2d(ex, ew, None, s, p, 1, g)
        if backward:
            y.sum().backward()
        return y

    valid, note, peer, peer_ms = True, "", "", float("nan")
    if torch is not None:
        tx = torch.tensor(x, device=device, requires_grad=backward)
        tw = torch.tensor(w, device=device, requires_grad=backward)

        def torch_run():
            y = torch.nn.functional.conv2d(tx, tw, None, s, p, 1, g)
            if backward:
                y.sum().backward()
            return y

        e, t = ember_run().detach().cpu().numpy(), torch_run().detach().cpu().numpy()
        valid = bool(np.allclose(e, t, atol=1e-4 * max(1.0, np.abs(t).max())))
        if not valid:
            note = f"ember and torch disagree (max diff {np.abs(e - t).max():.2e})"
        peer, peer_ms = "torch", measure(torch_run, device, repeat).median_ms
    ms = measure(ember_run, device, repeat)
    shape = f"N{n} {c}->{o} {h}x{h} k{k}" + (f" g{g}" if g > 1 else "")
    return Result("conv", f"{name} {'fwd+bwd' if backward else 'fwd'}", shape, "float32", str(device), ms.median_ms,
                  flops / ms.median_ms / 1e6, "GFLOP/s", peer, peer_ms, flops / peer_ms / 1e6 if peer else float("nan"),
                  float("nan") if str(device).startswith("cuda") else fp32_peak_gflops(), valid, note=note,
                  ms_min=ms.min_ms)


def run(device="cpu", quick=False, repeat=5):
    torch = torch_peer(device)
    results = []
    for name, n, c, o, h, k, s, p, g in CASES:
        n = 4 if quick else n
        for backward in (False, True):
            results.append(case(name, n, c, o, h, k, s, p, g, device, repeat, torch, backward))
    return results
