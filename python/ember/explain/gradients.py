"""Gradient attributions: how much each input feature moves one output score.

The model runs in eval mode with its parameters frozen (only d/dx is needed, so no weight gradient
is computed and the parameters' .grad stay untouched); samples are independent in eval mode, so the
gradient of the batch's summed scores is each sample's own gradient. The score of a sample is the
output column `target` (a class index; by default the class the model predicts for x), or the
output itself for a model with one output per sample.

Integrated gradients (Sundararajan et al. 2017) integrate the gradient along the straight path from
a baseline to x with Gauss-Legendre quadrature, which is exact for polynomials of degree 2*steps - 1
along the path; completeness_gap says how far the attributions' sum is from f(x) - f(baseline)."""
from __future__ import annotations

import contextlib

import numpy as np

from .. import dtypes
from ..autograd import no_grad
from ..ops.creation import randn, tensor
from ..random import Generator
from ..tensor import Tensor


# ---- running the model ------------------------------------------------------------------------

@contextlib.contextmanager
def frozen_eval(model):
    """model.eval() with every parameter's requires_grad off; both restored afterwards."""
    was_training, params = model.training, [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in params:
            p.requires_grad_(flag)
        model.train(was_training)


def _float_dtype(model, default=dtypes.float32):
    """The model's floating dtype (its first floating parameter's); `default` when it has none."""
    for p in model.parameters():
        if p.dtype in (dtypes.float32, dtypes.float64):
            return p.dtype
    return default


def model_device(model):
    """Where the model's parameters live (inputs are made there); the CPU for a parameterless one."""
    for p in model.parameters():
        return p.device
    return None


def _as_input(model, x, op):
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"[{op}] x must be a numeric array, got dtype {a.dtype}")
    if a.dtype.kind != "f":
        raise TypeError(f"[{op}] attributions need a floating input (got {a.dtype}, shape {a.shape}); for token "
                        f"ids use attention_maps, or attribute to the embeddings")
    if a.ndim == 0 or len(a) == 0:
        raise ValueError(f"[{op}] x must be a batch (N, ...) with N >= 1, got shape {a.shape}")
    given = dtypes.float64 if a.dtype == np.float64 else dtypes.float32
    return a.astype(np.float64 if _float_dtype(model, given) == dtypes.float64 else np.float32)


def _scores(out, targets, op):
    """Each sample's score: out[i, targets[i]] for (N, C) outputs, out[i] for (N,) or (N, 1)."""
    if isinstance(out, dict):
        raise TypeError(f"[{op}] the model returns heads {sorted(out)}; wrap it to return the one to explain")
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        return out.reshape(-1)
    if out.ndim != 2:
        raise ValueError(f"[{op}] expects model outputs (N,) or (N, classes), got shape {out.shape}")
    onehot = np.zeros(tuple(out.shape))
    onehot[np.arange(len(targets)), targets] = 1.0
    return (out * tensor(onehot, dtype=out.dtype, device=out.device)).sum(-1)


def resolve_targets(model, x, target, op="explain"):
    """One class index per sample: `target` broadcast (an int, or one per sample), or the model's
    argmax at x when target is None. Unused (zeros) for one-output models."""
    dev = model_device(model)
    with frozen_eval(model), no_grad():
        out = model(tensor(x[:1], device=dev))
        classes = 1 if out.ndim == 1 else out.shape[-1]
        if target is None:
            if classes == 1:
                return np.zeros(len(x), dtype=np.int64)
            return np.concatenate([np.argmax(model(tensor(x[s:s + 256], device=dev)).cpu().numpy(), -1)
                                   for s in range(0, len(x), 256)]).astype(np.int64)
    t = np.broadcast_to(np.asarray(target, dtype=np.int64), (len(x),)).copy() if np.ndim(target) == 0 \
        else np.asarray(target, dtype=np.int64)
    if t.shape != (len(x),):
        raise ValueError(f"[{op}] target must be an int or one class per sample ({len(x)}), got shape {t.shape}")
    if classes > 1 and (t.min() < 0 or t.max() >= classes):
        raise IndexError(f"[{op}] target classes must be in [0, {classes}), got {t.min()}..{t.max()}")
    return t


def gradients(model, x, targets, batch_size=64, op="gradients"):
    """(d score_i / d x_i for each sample, score_i), as NumPy arrays."""
    grads, values, dev = [], [], model_device(model)
    with frozen_eval(model):
        for s in range(0, len(x), batch_size):
            xb = tensor(x[s:s + batch_size], device=dev, requires_grad=True)
            f = _scores(model(xb), targets[s:s + batch_size], op)
            f.sum().backward()
            grads.append(xb.grad.cpu().numpy())
            values.append(f.detach().cpu().numpy())
    return np.concatenate(grads), np.concatenate(values)


def scores(model, x, targets, batch_size=256, op="scores"):
    """score_i at x_i, without gradients."""
    dev = model_device(model)
    with frozen_eval(model), no_grad():
        return np.concatenate([_scores(model(tensor(x[s:s + batch_size], device=dev)), targets[s:s + batch_size],
                                       op).cpu().numpy() for s in range(0, len(x), batch_size)])


def _prepare(model, x, target, op):
    x = _as_input(model, x, op)
    return x, resolve_targets(model, x, target, op)


# ---- the attributions -------------------------------------------------------------------------

def saliency(model, x, target=None, absolute=True, batch_size=64) -> np.ndarray:
    """Simonyan et al.'s saliency: |d score / d x| (the signed gradient with absolute=False)."""
    x, t = _prepare(model, x, target, "saliency")
    g, _ = gradients(model, x, t, batch_size, "saliency")
    return np.abs(g) if absolute else g


def gradient_x_input(model, x, target=None, batch_size=64) -> np.ndarray:
    """x * d score / d x (for a linear model: each feature's term w_i x_i of the score)."""
    x, t = _prepare(model, x, target, "gradient_x_input")
    g, _ = gradients(model, x, t, batch_size, "gradient_x_input")
    return x * g


def _baseline_for(x, baseline, op):
    b = np.zeros_like(x) if baseline is None else np.asarray(baseline, dtype=x.dtype)
    try:
        return np.broadcast_to(b, x.shape)
    except ValueError:
        raise ValueError(f"[{op}] baseline of shape {b.shape} does not broadcast to x {x.shape}") from None


def integrated_gradients(model, x, target=None, baseline=None, steps=32, batch_size=64, return_gap=False,
                         check=None):
    """(x - baseline) * the mean gradient on the path baseline -> x (Gauss-Legendre, `steps`
    nodes). baseline defaults to zeros. return_gap=True also returns completeness_gap's per-sample
    gaps; check=rtol raises if any gap exceeds rtol * max(1, |f(x) - f(baseline)|)."""
    op = "integrated_gradients"
    if int(steps) < 1:
        raise ValueError(f"[{op}] steps must be >= 1, got {steps}")
    x, t = _prepare(model, x, target, op)
    b = _baseline_for(x, baseline, op)
    nodes, weights = np.polynomial.legendre.leggauss(int(steps))
    alphas, weights = (nodes + 1) / 2, weights / 2          # from [-1, 1] to [0, 1]
    mean_grad = np.zeros_like(x, dtype=np.float64)
    for a, w in zip(alphas, weights):
        g, _ = gradients(model, (b + a * (x - b)).astype(x.dtype), t, batch_size, op)
        mean_grad += w * g
    attr = ((x - b) * mean_grad).astype(x.dtype)
    if not return_gap and check is None:
        return attr
    gap, change = _gap(model, x, b, t, attr, op)
    if check is not None:
        bad = np.abs(gap) > float(check) * np.maximum(1.0, np.abs(change))
        if bad.any():
            i = int(np.argmax(np.abs(gap)))
            raise ValueError(f"[{op}] completeness fails for {int(bad.sum())} of {len(x)} samples: sample {i}'s "
                             f"attributions miss f(x) - f(baseline) by {gap[i]:.3g}; use more steps than {steps}")
    return (attr, gap) if return_gap else attr


def _gap(model, x, b, t, attr, op):
    """(sum of attributions - (f(x) - f(b)), f(x) - f(b)) per sample."""
    change = scores(model, x, t, op=op) - scores(model, np.ascontiguousarray(b), t, op=op)
    return attr.reshape(len(x), -1).sum(1) - change, change


def completeness_gap(model, x, attributions, target=None, baseline=None) -> np.ndarray:
    """Per sample: sum(attributions) - (f(x) - f(baseline)); near zero for integrated gradients."""
    x, t = _prepare(model, x, target, "completeness_gap")
    attributions = np.asarray(attributions)
    if attributions.shape != x.shape:
        raise ValueError(f"[completeness_gap] attributions {attributions.shape} must match x {x.shape}")
    return _gap(model, x, _baseline_for(x, baseline, "completeness_gap"), t, attributions, "completeness_gap")[0]


def smoothgrad(model, x, target=None, samples=25, noise=0.15, seed=0, absolute=False, batch_size=64):
    """Smilkov et al.'s SmoothGrad: the gradient averaged over `samples` copies of x with Gaussian
    noise of std noise * (max(x_i) - min(x_i)) per sample, drawn from ember's Philox stream
    (seeded by `seed`; None draws from the global generator)."""
    op = "smoothgrad"
    if int(samples) < 1 or noise < 0:
        raise ValueError(f"[{op}] needs samples >= 1 and noise >= 0, got samples={samples}, noise={noise}")
    x, t = _prepare(model, x, target, op)
    flat = x.reshape(len(x), -1)
    sigma = (noise * (flat.max(1) - flat.min(1))).reshape((len(x),) + (1,) * (x.ndim - 1))
    gen = Generator().manual_seed(seed) if seed is not None else None
    total = np.zeros_like(x, dtype=np.float64)
    for _ in range(int(samples)):
        eps = randn(*x.shape, generator=gen, dtype=dtypes.float64).numpy()
        g, _ = gradients(model, (x + sigma * eps).astype(x.dtype), t, batch_size, op)
        total += np.abs(g) if absolute else g
    return (total / int(samples)).astype(x.dtype)
