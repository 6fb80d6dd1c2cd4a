"""Small work, where per-call overhead decides the speed: a 1-element and a 32x32 add, 32^3 and 64^3
matmul through the Tensor API, a tiny MLP (784-32-10, batch 1 and 8) forward without a graph and
forward+backward with autograd, and one Keras `fit` step of a 10-feature MLP at batch 32, each next
to NumPy (where it has the op) and PyTorch eager in the same run.

Then the everyday small ops through the Tensor API (arithmetic with a scalar, unary, reductions,
views, indexing, cat, creation, item) on 32x32 (1 element for item), ember against PyTorch eager.

The Python layer's share is shown apart: the same add and matmul straight on `ember._C` arrays
(`_C only` rows), so `Tensor` row - `_C only` row = what tensor.py/ops/ add per op.

Rates are calls per second (kcall/s): these cases live in caches and launch latency, not in FLOPs or
bytes, so there is no roofline. Every case checks its output against float64 NumPy before timing."""
from __future__ import annotations

import numpy as np

import ember as em
import ember.nn as nn
import ember.nn.functional as F
from ember import _C

from .harness import NAN, Result, measure, run_case, torch_peer

TIME_UNIT = "us"  # the table's time columns (harness.print_table)
WORK = 1e6  # run_case's rate is work / ms / 1e6: with 1e6, rate = 1 / ms = thousands of calls per second
UNIT = "kcall/s"


def _tol(ref, k=1):
    """float32 rounding of a result accumulated over k terms: a few ulps times sqrt(k)."""
    return 8 * 2.0 ** -24 * np.sqrt(k) * (np.abs(ref) + np.abs(ref).max() + 1.0)


def _case(name, shape, ember, peers, ref, k=1, repeat=20):
    return run_case("overhead", name, shape, ember=ember, peers=peers, reference=ref, tol=_tol(ref, k),
                    work=WORK, unit=UNIT, repeat=repeat, in_cache=True)


def binary_cases(torch, repeat):
    rng = np.random.default_rng(0)
    out = []
    for shape in [(1,), (32, 32)]:
        a, b = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
        ref = a.astype(np.float64) + b
        ea, eb = em.tensor(a), em.tensor(b)
        peers = {"numpy": lambda: a + b}
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            peers["torch"] = lambda: ta + tb
        label = "x".join(map(str, shape))
        out.append(_case("add", label, lambda: ea + eb, peers, ref, repeat=repeat))
        out.append(_case("add (_C only)", label, lambda: _C.binary(_C.BinaryOp.add, ea._a, eb._a), peers, ref,
                         repeat=repeat))
    return out


def matmul_cases(torch, repeat):
    rng = np.random.default_rng(1)
    out = []
    for n in (32, 64):
        a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        ref = a.astype(np.float64) @ b
        ea, eb = em.tensor(a), em.tensor(b)
        peers = {"numpy": lambda: a @ b}
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            peers["torch"] = lambda: ta @ tb
        out.append(_case("matmul", f"{n}^3", lambda: ea @ eb, peers, ref, k=n, repeat=repeat))
        out.append(_case("matmul (_C only)", f"{n}^3", lambda: _C.matmul(ea._a, eb._a), peers, ref, k=n,
                         repeat=repeat))
    return out


# ---- everyday small ops through the Tensor API ----------------------------------------------------

def _small_ops(em_or_torch, x, y, one):
    """name -> (shape label, the op on this library's tensors); the same expressions for both."""
    lib = em_or_torch
    return {
        "x * 2": ("32x32", lambda: x * 2.0), "x / y": ("32x32", lambda: x / y), "x ** 2": ("32x32", lambda: x ** 2),
        "x - y": ("32x32", lambda: x - y), "relu": ("32x32", lambda: x.relu()), "exp": ("32x32", lambda: x.exp()),
        "sum": ("32x32", lambda: x.sum()), "sum(1)": ("32x32", lambda: x.sum(1)), "mean": ("32x32", lambda: x.mean()),
        "argmax(1)": ("32x32", lambda: x.argmax(1)), "softmax(-1)": ("32x32", lambda: x.softmax(-1)),
        "x[3]": ("32x32", lambda: x[3]), "x[:, 1:5]": ("32x32", lambda: x[:, 1:5]),
        "reshape": ("32x32", lambda: x.reshape(1024)), "t()": ("32x32", lambda: x.t()),
        "cat": ("2x 32x32", lambda: lib.cat([x, y])), "zeros": ("32x32", lambda: lib.zeros(32, 32)),
        "item": ("1", lambda: one.item()),
    }


def _small_op_reference(name, a, b, one):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    e = np.exp(a64 - a64.max(-1, keepdims=True))
    return {"x * 2": a64 * 2, "x / y": a64 / b64, "x ** 2": a64 ** 2, "x - y": a64 - b64, "relu": np.maximum(a64, 0),
            "exp": np.exp(a64), "sum": a64.sum(), "sum(1)": a64.sum(1), "mean": a64.mean(),
            "argmax(1)": a64.argmax(1), "softmax(-1)": e / e.sum(-1, keepdims=True), "x[3]": a64[3],
            "x[:, 1:5]": a64[:, 1:5], "reshape": a64.reshape(1024), "t()": a64.T, "cat": np.concatenate([a64, b64]),
            "zeros": np.zeros((32, 32)), "item": float(one[0])}[name]


def small_op_cases(torch, repeat):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((32, 32)).astype(np.float32), rng.standard_normal((32, 32)).astype(np.float32) + 3
    one = rng.standard_normal(1).astype(np.float32)
    ember_ops = _small_ops(em, em.tensor(a), em.tensor(b), em.tensor(one))
    torch_ops = _small_ops(torch, torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(one)) if torch else {}
    out = []
    for name, (shape, fn) in ember_ops.items():
        peers = {"torch": torch_ops[name][1]} if torch else {}
        ref = _small_op_reference(name, a, b, one)
        out.append(_case(name, shape, fn, peers, ref, k=1024 if name in ("sum", "mean") else 32, repeat=repeat))
    return out


# ---- the tiny MLP: 784-32-10, ReLU, cross-entropy ----------------------------------------------------

def _mlp_weights(rng, widths=(784, 32, 10)):
    return [(rng.standard_normal((o, i)).astype(np.float32) / np.sqrt(i), 0.1 * rng.standard_normal(o).astype(np.float32))
            for i, o in zip(widths[:-1], widths[1:])]


def _np_forward(weights, x):
    (w1, b1), (w2, b2) = weights
    return np.maximum(x @ w1.T + b1, 0) @ w2.T + b2


def _ember_mlp(weights):
    model = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    model.load_state_dict({"0.weight": em.tensor(weights[0][0]), "0.bias": em.tensor(weights[0][1]),
                           "2.weight": em.tensor(weights[1][0]), "2.bias": em.tensor(weights[1][1])})
    return model


def _torch_mlp(torch, weights):
    model = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    with torch.no_grad():
        for lin, (w, b) in zip((model[0], model[2]), weights):
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
    return model


def _np_mlp_grad(weights, x, y):
    """float64 dL/dW1 of mean cross-entropy: the reference the fwd+bwd cases check."""
    (w1, b1), (w2, b2) = [(w.astype(np.float64), b.astype(np.float64)) for w, b in weights]
    z = x.astype(np.float64) @ w1.T + b1
    h = np.maximum(z, 0)
    logits = h @ w2.T + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    dh = (p / len(y)) @ w2 * (z > 0)
    return dh.T @ x


def mlp_cases(torch, repeat):
    rng = np.random.default_rng(2)
    weights = _mlp_weights(rng)
    e_model = _ember_mlp(weights)
    t_model = _torch_mlp(torch, weights) if torch is not None else None
    out = []
    for batch in (1, 8):
        x = rng.standard_normal((batch, 784)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        ex, ey = em.tensor(x), em.tensor(y)

        def e_forward():
            with em.no_grad():
                return e_model(ex)

        peers = {"numpy": lambda: _np_forward(weights, x)}
        if torch is not None:
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)

            def t_forward():
                with torch.no_grad():
                    return t_model(tx)

            peers["torch"] = t_forward
        ref = _np_forward([(w.astype(np.float64), b) for w, b in weights], x.astype(np.float64))
        out.append(_case("mlp forward", f"784-32-10 b{batch}", e_forward, peers, ref, k=784, repeat=repeat))

        def e_step():
            e_model.zero_grad()
            F.cross_entropy(e_model(ex), ey).backward()
            return e_model[0].weight.grad

        step_peers = {}
        if torch is not None:
            def t_step():
                t_model.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(t_model(tx), ty).backward()
                return t_model[0].weight.grad

            step_peers["torch"] = t_step
        ref = _np_mlp_grad(weights, x, y)
        out.append(_case("mlp fwd+bwd", f"784-32-10 b{batch}", e_step, step_peers, ref, k=784 * batch, repeat=repeat))
    return out


# ---- one Keras fit step ----------------------------------------------------------------------------

FIT_ROWS, FIT_BATCH = 320, 32  # ten steps per epoch: fit's per-epoch setup is shared as it is in real use


def _fit_models(torch):
    """The seed program's model (10 -> 64 -> 32 -> 1, ReLU, MSE, Adam) in ember and in torch, with the same
    initial weights."""
    from ember.nn import Dense, Sequential
    model = Sequential()
    model.add(Dense(64, activation="relu", input_shape=(10,)))
    model.add(Dense(32, activation="relu"))
    model.add(Dense(1))
    model.compile(optimizer=em.optim.Adam(), loss="mse")
    model(em.zeros(1, 10))  # builds the Dense layers whose input size was left to the first call
    t_model = None
    if torch is not None:
        t_model = torch.nn.Sequential(torch.nn.Linear(10, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32),
                                      torch.nn.ReLU(), torch.nn.Linear(32, 1))
        with torch.no_grad():
            for lin, (name, p) in zip([m for m in t_model if isinstance(m, torch.nn.Linear) for _ in (0, 1)],
                                      model.named_parameters()):
                (lin.weight if name.endswith("weight") else lin.bias).copy_(torch.from_numpy(p.detach().numpy()))
    return model, t_model


def _torch_fit(torch, t_model, x, y, shuffle):
    """The loop a PyTorch user writes for one epoch of Keras's fit: shuffle, slice batches, step."""
    opt = torch.optim.Adam(t_model.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def epoch():
        order = torch.randperm(len(tx)) if shuffle else torch.arange(len(tx))
        for i in range(0, len(tx), FIT_BATCH):
            idx = order[i:i + FIT_BATCH]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(t_model(tx[idx]), ty[idx])
            loss.backward()
            opt.step()
        return loss

    return epoch


def fit_case(torch, repeat):
    """ms per step of `model.fit(x, y, epochs=1, batch_size=32, verbose=0)` over ten batches. Checked: one
    unshuffled epoch from the same weights leaves ember's and torch's weights equal to float32 rounding
    (the float64 reference is torch's result when torch is present, else skipped)."""
    rng = np.random.default_rng(3)
    x = rng.random((FIT_ROWS, 10)).astype(np.float32)
    y = rng.random((FIT_ROWS, 1)).astype(np.float32)
    model, t_model = _fit_models(torch)
    steps = FIT_ROWS // FIT_BATCH
    if torch is None:
        ms = measure(lambda: model.fit(x, y, epochs=1, batch_size=FIT_BATCH, verbose=0), repeat=repeat)
        return Result("overhead", "keras fit step", f"10-64-32-1 b{FIT_BATCH}", "float32", "cpu", ms.median_ms / steps,
                      steps / ms.median_ms, UNIT, in_cache=True, ms_min=ms.min_ms / steps)
    model.fit(x, y, epochs=1, batch_size=FIT_BATCH, verbose=0, shuffle=False)
    _torch_fit(torch, t_model, x, y, shuffle=False)()
    got = model[0].weight.detach().numpy()  # Dense keeps torch's (out, in) layout
    want = t_model[0].weight.detach().numpy()
    valid = bool(np.allclose(got, want, rtol=1e-4, atol=1e-5))
    note = "" if valid else f"weights after one epoch differ from torch's by {np.abs(got - want).max():.3g}"
    ms = measure(lambda: model.fit(x, y, epochs=1, batch_size=FIT_BATCH, verbose=0), repeat=repeat)
    t_epoch = _torch_fit(torch, t_model, x, y, shuffle=True)
    peer_ms = measure(t_epoch, repeat=repeat).median_ms / steps
    per_step = ms.median_ms / steps
    return Result("overhead", "keras fit step", f"10-64-32-1 b{FIT_BATCH}", "float32", "cpu", per_step, 1 / per_step, UNIT,
                  "torch", peer_ms, 1 / peer_ms, NAN, valid, ms_min=ms.min_ms / steps, note=note, in_cache=True)


def run(device="cpu", quick=False, repeat=20):
    if str(device).startswith("cuda"):
        raise ValueError("[bench overhead] measures CPU call overhead; run it with --device cpu")
    torch = torch_peer("cpu")
    return (binary_cases(torch, repeat) + matmul_cases(torch, repeat) + small_op_cases(torch, repeat)
            + mlp_cases(torch, repeat) + [fit_case(torch, repeat)])
