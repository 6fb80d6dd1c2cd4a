"""gradcheck: compares autograd's gradients with central finite differences, in float64."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .graph import no_grad


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True) -> bool:
    """fn(*inputs) -> Tensor. Inputs that require grad should be float64 for a meaningful check.
    Each input element is perturbed by +-eps; the numerical Jacobian-vector product with a random
    output cotangent is compared with the analytical one."""
    inputs = tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("[gradcheck] no input requires grad")
    out = fn(*inputs)
    rng = np.random.default_rng(0)
    cot = rng.standard_normal(out.shape) if out.ndim else np.array(rng.standard_normal())
    scale = float(np.sum(np.abs(out.detach().cpu().double().numpy() * cot)))
    cot_t = Tensor(cot, dtype=out.dtype, device=out.device)
    for i in diff:
        inputs[i].grad = None
    (out * cot_t).sum().backward()
    ok = True
    for i in diff:
        x = inputs[i]
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.detach().cpu().double().numpy()
        base = x.detach().cpu().double().numpy().copy()
        numeric = np.zeros_like(base)
        flat, nflat = base.reshape(-1), numeric.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            vals = []
            for delta in (eps, -eps):
                flat[j] = orig + delta
                xi = Tensor(base, dtype=x.dtype, device=x.device)
                args = list(inputs)
                args[i] = xi
                with no_grad():
                    vals.append(float((fn(*args).detach().cpu().double().numpy() * cot).sum()))
            flat[j] = orig
            nflat[j] = (vals[0] - vals[1]) / (2 * eps)
        # A central difference of sum(out * cot) carries rounding error ~ u * sum|out * cot| / eps
        # (u = 2^-53): added to atol, so large outputs (exp(10) ~ 2e4) do not fail small gradients.
        fd_noise = 2.0 ** -53 * scale / eps
        if not np.allclose(analytic, numeric, atol=atol + 4 * fd_noise, rtol=rtol):
            ok = False
            if raise_exception:
                err = np.max(np.abs(analytic - numeric))
                raise AssertionError(f"[gradcheck] input {i}: analytical and numerical gradients differ "
                                     f"(max abs diff {err:.3g})\nanalytical={analytic}\nnumerical={numeric}")
    return ok
