"""PNG pictures of attributions and attention maps (matplotlib, imported only here). Files are
written to a temporary name and renamed, so a failed plot never leaves a half-written PNG."""
from __future__ import annotations

import os

import numpy as np

from ..io.atomic import replace_atomically


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("[ember.explain] plotting needs matplotlib: pip install matplotlib") from e
    return plt


def _save(fig, plt, path):
    path = os.fspath(path)
    try:
        with replace_atomically(path) as tmp:
            fig.savefig(tmp, format="png", dpi=80)
    finally:
        plt.close(fig)
    return path


def _image(a):
    """(H, W) or (C, H, W) -> something imshow draws: channels are averaged (attributions) or kept
    last (three-channel images)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        return np.moveaxis(a, 0, -1) if a.shape[0] == 3 else a.mean(0)
    if a.ndim != 2:
        raise ValueError(f"[plot_attributions] expects (H, W) or (C, H, W) images, got shape {a.shape}")
    return a


def plot_attributions(images, attributions, path, titles=None, row_names=None, cmap="RdBu_r", signed=True):
    """One column per sample: the image on top, each attribution below it (signed: a symmetric
    scale per panel, red positive and blue negative; signed=False: 0..max, for magnitudes; or one
    flag per row). attributions: one array (N, ...) or a list of them (one row each, named by
    row_names)."""
    plt = _pyplot()
    rows = attributions if isinstance(attributions, (list, tuple)) else [attributions]
    signs = list(signed) if isinstance(signed, (list, tuple)) else [signed] * len(rows)
    if len(signs) != len(rows):
        raise ValueError(f"[plot_attributions] {len(signs)} signed flags for {len(rows)} rows of attributions")
    n = len(images)
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.6 * n, 1.7 * (1 + len(rows))), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(_image(images[j]), cmap="gray_r")
        if titles is not None:
            axes[0, j].set_title(str(titles[j]), fontsize=8)
        for i, rows_i in enumerate(rows, start=1):
            a = _image(rows_i[j])
            lim = max(np.abs(a).max(), 1e-12)
            axes[i, j].imshow(a, cmap=cmap, vmin=-lim if signs[i - 1] else 0.0, vmax=lim)
    for i, name in enumerate(row_names or [], start=1):
        axes[i, 0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_attention(maps, path, tokens=None, titles=None, cols=4):
    """One heatmap per (L, S) map (a list of them, or one (heads, L, S) array), `cols` to a row;
    tokens label the axes of self-attention maps."""
    plt = _pyplot()
    maps = [np.asarray(m, dtype=np.float64) for m in maps]
    if any(m.ndim != 2 for m in maps):
        raise ValueError(f"[plot_attention] expects (L, S) maps, got shapes {[m.shape for m in maps]}")
    n = len(maps)
    ncols, nrows = min(n, cols), -(-n // cols)
    size = 2.6 if tokens is None else max(2.6, 0.22 * len(tokens))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for j, (ax, m) in enumerate(zip(axes.flat, maps)):
        ax.imshow(m, cmap="viridis", vmin=0)
        if titles is not None:
            ax.set_title(str(titles[j]), fontsize=8)
        if tokens is not None and len(tokens) == m.shape[1]:
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
            ax.set_yticks(range(len(tokens)), tokens, fontsize=6) if len(tokens) == m.shape[0] else ax.set_yticks([])
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, plt, path)
