"""ember inside PyTorch (ember.interop.torch): whole training steps of torch models patched onto
ember against the same models unpatched, and the per-call cost of the bridge.

Training steps (forward, cross-entropy, backward, optimizer step, zero_grad), in one run: a
2-layer transformer encoder, a small CNN and an LSTM, each as torch modules with torch.optim.Adam
(the peer, `torch`) and as a deep copy patched with ember.interop.torch.patch and stepped by
ember.interop.torch.Adam. Before timing, one forward/backward of both must give the same loss and
gradients (float32 rounding). ratio > 1: the patched model trains faster.

Bridge overhead: each op through torch (torch.ops.ember.*: DLPack in and out, the dispatcher, the
argument checks) next to the same kernel called on ember arrays directly (`_C direct`), at sizes
where the kernel takes microseconds; the difference is what the bridge adds per call (target:
under 5 us on the CPU). torch's own op is timed as well.

Rates are thousands of calls per second (a training step counts as one call): these are latencies,
so there is no roofline."""
from __future__ import annotations

import copy
import math
import statistics
import time

import numpy as np

from .. import _C
from .harness import Result, SuiteUnavailable, measure, torch_peer

UNIT = "kcall/s"
WORK = 1e6  # rate = WORK / ms / 1e6 = calls per ms = thousands of calls per second


# ---- training steps -------------------------------------------------------------------------------

def _transformer(torch, vocab=512, d=128, heads=4, ff=512, layers=2):
    layer = torch.nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True, activation="gelu")
    return torch.nn.Sequential(torch.nn.Embedding(vocab, d),
                               torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False),
                               torch.nn.LayerNorm(d), torch.nn.Linear(d, vocab))


def _cnn(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


class _LastStep:
    """An LSTM whose last output feeds a linear head (a torch module, built on demand)."""

    @staticmethod
    def make(torch, inputs=64, hidden=256):
        class Head(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(inputs, hidden)
                self.head = torch.nn.Linear(hidden, 10)

            def forward(self, x):
                return self.head(self.lstm(x)[0][-1])

        return Head()


def _step_fn(torch, model, opt):
    def loss_of(x, y):
        logits = model(x)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def step(x, y):
        loss = loss_of(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return loss_of, step


def _agree(torch, ref, mine, loss_of_ref, loss_of_mine, x, y):
    """One forward/backward of each from the same weights: same loss, same gradients (float32)."""
    a, b = loss_of_ref(x, y), loss_of_mine(x, y)
    a.backward()
    b.backward()
    worst = 0.0
    for p, q in zip(ref.parameters(), mine.parameters()):
        scale = max(float(p.grad.abs().max()), 1e-30)
        worst = max(worst, float((p.grad - q.grad).abs().max()) / scale)
    ref.zero_grad(set_to_none=True)
    mine.zero_grad(set_to_none=True)
    a, b = float(a.detach()), float(b.detach())
    loss_ok = abs(a - b) <= 1e-4 * max(1.0, abs(a))
    return loss_ok and worst < 1e-3, f"loss {a:.6f} vs {b:.6f}, worst relative gradient gap {worst:.2e}"


def step_case(torch, name, shape, make, x, y, repeat):
    import ember.interop.torch as et

    torch.manual_seed(0)
    ref = make()
    mine = copy.deepcopy(ref)
    report = et.patch(mine)
    t_loss, t_step = _step_fn(torch, ref, torch.optim.Adam(ref.parameters(), lr=1e-3))
    e_loss, e_step = _step_fn(torch, mine, et.Adam(mine.parameters(), lr=1e-3))
    valid, detail = _agree(torch, ref, mine, t_loss, e_loss, x, y)
    peer, ms = _interleaved(lambda: t_step(x, y), lambda: e_step(x, y), repeat)
    note = f"torch / patched, median of the {repeat} pairs: {statistics.median(p / m for p, m in zip(peer, ms)):.2f}"
    if not valid:
        note = f"patched and unpatched disagree: {detail}"
    peer_ms, med = statistics.median(peer), statistics.median(ms)
    return Result("torch", name, shape + f" ({len(report.patched)} modules on ember)", "float32", "cpu", med,
                  WORK / med / 1e6, UNIT, "torch", peer_ms, WORK / peer_ms / 1e6, valid=valid, note=note,
                  ms_min=min(ms), in_cache=True)


def _interleaved(a, b, pairs, warmup=3):
    """ms of each call of a and of b, timed in alternation: on a shared machine the load changes
    within seconds, and back-to-back pairs see the same load where two separate runs do not."""
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for _ in range(pairs):
        for fn, out in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1e3)
    return ta, tb


def step_cases(torch, quick, repeat):
    g = torch.Generator().manual_seed(0)
    T = 16 if quick else 64
    tokens = torch.randint(0, 512, (16, T), generator=g)
    images, labels = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    seq = torch.randn(10 if quick else 50, 32, 64, generator=g)
    return [
        step_case(torch, "transformer step", f"d128 h4 ff512 L2 T{T} B16", lambda: _transformer(torch), tokens,
                  tokens.flip(1), repeat),
        step_case(torch, "cnn step", "conv16-conv32-fc 28x28 B64", lambda: _cnn(torch), images, labels, repeat),
        step_case(torch, "lstm step", f"I64 H256 T{seq.shape[0]} B32", lambda: _LastStep.make(torch), seq,
                  labels[:32], repeat),
    ]


# ---- bridge overhead --------------------------------------------------------------------------------

def _bridge_ops(torch, grad=False):
    """(name, shape, bridged call, the registered op, the same kernel on ember arrays, torch's op) at
    microsecond sizes; grad: inputs that require grad."""
    import ember.interop.torch as et
    from ember.interop.torch import ops as eo

    F = torch.nn.functional
    r = torch.Generator().manual_seed(0)
    t = lambda *s: torch.randn(*s, generator=r).requires_grad_(grad)  # noqa: E731
    E = et.to_ember
    a, b, x, w, bias = t(8, 8), t(8, 8), t(8, 16), t(16, 16), t(16)
    v, q = t(64), t(1, 1, 8, 8)
    img, k = t(1, 1, 8, 8), t(1, 1, 3, 3)
    seq, h0, c0, w_ih, w_hh = t(2, 1, 4), t(1, 4), t(1, 4), t(16, 4), t(16, 4)
    Aa, Ba, Xa, Wt, Bb, Va, Qa = E(a), E(b), E(x), E(w).transpose(0, 1), E(bias), E(v), E(q)
    Ia, Ka, geom = E(img), E(k), _C.Conv2dGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    Sa, Ha, Ca, WIt, WH = E(seq).reshape([2, 4]), E(h0), E(c0), E(w_ih).transpose(0, 1), E(w_hh)
    args = _C.AttentionArgs(1 / math.sqrt(8), False, 0.0, 0, 0)
    none = _C.Activation.none

    def lstm_direct():
        xg = _C.matmul(Sa, WIt)
        return _C.rnn_sequence_forward(_C.RnnKind.lstm, xg.reshape([2, 1, 16]), WH, None, Ha, Ca, None, False).y

    mm, lin, ge, ln = eo.matmul_op, eo.linear_op, eo.gelu_op, eo.layer_norm_op
    return [
        ("matmul", "8x8 @ 8x8", lambda: et.matmul(a, b), lambda: mm(a, b), lambda: _C.matmul(Aa, Ba), lambda: a @ b),
        ("linear", "8x16 -> 16 + bias", lambda: et.linear(x, w, bias), lambda: lin(x, w, bias, "none"),
         lambda: _C.matmul(Xa, Wt, Bb, none), lambda: F.linear(x, w, bias)),
        ("gelu", "64", lambda: et.gelu(v), lambda: ge(v, "none"), lambda: _C.unary(_C.UnaryOp.gelu, Va, 0.0, 0.0),
         lambda: F.gelu(v)),
        ("layer_norm", "8x16", lambda: et.layer_norm(x, 16), lambda: ln(x, [16], None, None, 1e-5)[0],
         lambda: _C.layer_norm(Xa, None, None, 1e-5), lambda: F.layer_norm(x, [16])),
        ("sdpa", "1x1x8x8", lambda: et.scaled_dot_product_attention(q, q, q),
         lambda: eo.attention_op(q, q, q, None, 0.0, False, None)[0], lambda: _C.attention(Qa, Qa, Qa, None, args),
         lambda: F.scaled_dot_product_attention(q, q, q)),
        ("conv2d", "1x1x8x8 * 3x3", lambda: et.conv2d(img, k),
         lambda: eo.conv2d_op(img, k, None, [1, 1], [0] * 4, [1, 1], 1),
         lambda: _C.conv2d(Ia, Ka, None, geom), lambda: F.conv2d(img, k)),
        ("lstm", "T2 B1 I4 H4", lambda: et.lstm_layer(seq, h0, c0, w_ih, w_hh)[0],
         lambda: eo.lstm_op(seq, h0, c0, w_ih, w_hh, None, None, False)[0], lstm_direct,
         lambda: torch._VF.lstm(seq, (h0[None], c0[None]), [w_ih, w_hh], False, 1, 0.0, False, False, False)[0]),
    ]


def _bridge_valid(torch, name, fn_torch, fns):
    """Each bridged call's output next to torch's (the lstm op's: the outputs only, not h_n/c_n)."""
    want = fn_torch()
    tol = 1e-5 * (1.0 + float(want.abs().max()))
    outs = [f() for f in fns]
    if name == "lstm":
        outs[1] = outs[1][:-2]
    return all(bool(torch.allclose(o.double(), want.double(), atol=tol, rtol=1e-4)) for o in outs)


def bridge_cases(torch, repeat):
    """Per op: the public function under no_grad (inference calls the kernel directly), the
    registered op through torch's dispatcher, the kernel alone on ember arrays and torch's op; then
    the public function and torch's op recording autograd (inputs that require grad, forward only)."""
    with torch.no_grad():
        inference = [_bridge_inference(torch, case, repeat) for case in _bridge_ops(torch)]
    out = []
    for r, (name, shape, public, _, _, peer) in zip(inference, _bridge_ops(torch, grad=True)):
        train_us, torch_train_us = (measure(f, "cpu", repeat).median_ms * 1e3 for f in (public, peer))
        r.extra.update(train_forward_us=train_us, torch_train_forward_us=torch_train_us)
        r.note += f"; recording autograd: {train_us:.2f} us per forward call (torch's op: {torch_train_us:.2f} us)"
        out.append(r)
    return out


def _bridge_inference(torch, case, repeat):
    name, shape, public, registered, direct, peer = case
    valid = _bridge_valid(torch, name, peer, [public, registered])
    ms = measure(public, "cpu", repeat)
    op_ms = measure(registered, "cpu", repeat).median_ms
    direct_ms = measure(direct, "cpu", repeat).median_ms
    torch_ms = measure(peer, "cpu", repeat).median_ms
    overhead, op_overhead = (ms.median_ms - direct_ms) * 1e3, (op_ms - direct_ms) * 1e3
    rates = {"_C direct": WORK / direct_ms / 1e6, "torch": WORK / torch_ms / 1e6}
    note = (f"bridge +{overhead:.2f} us per call (through torch's dispatcher: +{op_overhead:.2f} us; kernel alone "
            f"{direct_ms * 1e3:.2f} us)") + ("" if valid else "; output differs from torch's")
    return Result("torch", f"bridge {name}", shape, "float32", "cpu", ms.median_ms, WORK / ms.median_ms / 1e6, UNIT,
                  "torch", torch_ms, rates["torch"], valid=valid, ms_min=ms.min_ms, peers=rates, in_cache=True,
                  note=note, extra={"bridge_overhead_us": overhead, "dispatch_overhead_us": op_overhead,
                                    "direct_us": direct_ms * 1e3})


def run(device="cpu", quick=False, repeat=20):
    torch = torch_peer(device)
    if torch is None:
        raise SuiteUnavailable("the torch suite needs PyTorch: pip install 'ember[torch]'")
    if str(device) != "cpu":
        raise SuiteUnavailable("the torch suite runs on the CPU (the CUDA bridge is covered by the cuda tests)")
    return step_cases(torch, quick, repeat) + bridge_cases(torch, repeat)
