"""Recurrent layers: forward + backward time of LSTM and GRU (input 64, hidden 256, 50 steps, batch
32; and a 2-layer bidirectional case) next to PyTorch CPU on the same weights and input, in one
run. Each case is first checked: same outputs and same input gradient as PyTorch (float32 rounding).
Rate: GFLOP/s of the GEMM work (2 flops per multiply-add; forward 1x, backward 2x)."""
from __future__ import annotations

import numpy as np

import ember as em

from .harness import Result, measure, torch_peer

CASES = [("lstm", "LSTM", 1, False), ("gru", "GRU", 1, False), ("lstm 2-layer bidir", "LSTM", 2, True),
         ("gru 2-layer bidir", "GRU", 2, True)]
GATES = {"LSTM": 4, "GRU": 3}


def gemm_flops(mode, I, H, T, B, layers, bi):
    d, g = (2 if bi else 1), GATES[mode]
    macs = 0
    for layer in range(layers):
        width = I if layer == 0 else H * d
        macs += d * T * B * g * H * (width + H)
    return 3 * 2.0 * macs  # forward + two backward GEMMs per forward GEMM


def _pair(torch, mode, I, H, layers, bi, device):
    tm = getattr(torch.nn, mode)(I, H, num_layers=layers, bidirectional=bi).to(device)
    em_m = getattr(em.nn, mode)(I, H, num_layers=layers, bidirectional=bi, device=device)
    em_m.load_state_dict({k: em.tensor(v.detach().cpu().numpy()) for k, v in tm.state_dict().items()})
    return tm, em_m


def case(name, mode, layers, bi, device, repeat, torch, I=64, H=256, T=50, B=32):
    r = np.random.default_rng(0)
    x = r.standard_normal((T, B, I)).astype(np.float32)
    g = r.standard_normal((T, B, H * (2 if bi else 1))).astype(np.float32)
    ex, eg = em.tensor(x, device=device, requires_grad=True), em.tensor(g, device=device)
    flops = gemm_flops(mode, I, H, T, B, layers, bi)
    shape = f"I{I} H{H} T{T} B{B}" + (f" L{layers} bidir" if bi else "")
    if torch is None:
        em_m = getattr(em.nn, mode)(I, H, num_layers=layers, bidirectional=bi, device=device)
        tm = None
    else:
        tm, em_m = _pair(torch, mode, I, H, layers, bi, device)

    def ember_step():
        ex.grad = None
        out, _ = em_m(ex)
        (out * eg).sum().backward()
        return out

    valid, note, peer, peer_ms = True, "", "", float("nan")
    if tm is not None:
        tx = torch.tensor(x, device=device, requires_grad=True)
        tg = torch.tensor(g, device=device)

        def torch_step():
            tx.grad = None
            out, _ = tm(tx)
            (out * tg).sum().backward()
            return out

        e_out, t_out = ember_step().detach().cpu().numpy(), torch_step().detach().cpu().numpy()
        e_dx, t_dx = ex.grad.cpu().numpy(), tx.grad.cpu().numpy()
        valid = np.allclose(e_out, t_out, atol=1e-5) and np.allclose(e_dx, t_dx, atol=1e-4 * max(1, np.abs(t_dx).max()))
        if not valid:
            note = f"ember and torch disagree (max out diff {np.abs(e_out - t_out).max():.2e})"
        peer, peer_ms = "torch", measure(torch_step, device, repeat).median_ms
    ms = measure(ember_step, device, repeat)
    return Result("rnn", name, shape, "float32", str(device), ms.median_ms, flops / ms.median_ms / 1e6, "GFLOP/s",
                  peer, peer_ms, flops / peer_ms / 1e6 if peer else float("nan"), valid=valid, note=note,
                  ms_min=ms.min_ms)


def run(device="cpu", quick=False, repeat=10):
    torch = torch_peer(device)
    cases = CASES[:2] if quick else CASES
    return [case(name, mode, layers, bi, device, repeat, torch, T=10 if quick else 50)
            for name, mode, layers, bi in cases]
