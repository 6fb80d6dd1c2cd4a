"""Sentence-level movie review sentiment, shipped in the package (no download): the 10,605 Rotten
Tomatoes review snippets of Pang & Lee (2004), each with the mean of 20 human sentiment ratings on
a -4..+4 scale, from the data set of the VADER paper (Hutto & Gilbert, ICWSM 2014) as the MIT-licensed
vaderSentiment 3.3.2 source distribution ships it. Source, licence and how the file was made:
data/MOVIE_SNIPPETS_LICENSE.txt."""
from __future__ import annotations

import lzma
import os

import numpy as np

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "movie_review_snippets.tsv.xz")


def load_movie_review_snippets(margin: float = 0.5, with_scores: bool = False):
    """(texts, labels): the snippets whose mean rating is at least `margin` away from neutral,
    labelled 1 (positive, rating >= margin) or 0 (negative, rating <= -margin); margin=0 keeps
    every snippet with a non-zero rating. with_scores=True also returns the float32 ratings."""
    if margin < 0:
        raise ValueError(f"[load_movie_review_snippets] margin must be >= 0, got {margin}")
    with lzma.open(_PATH, "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["score", "text"]:
            raise ValueError(f"[load_movie_review_snippets] {_PATH} has an unexpected header {header}")
        rows = [line.rstrip("\n").split("\t", 1) for line in f]
    scores = np.array([float(s) for s, _ in rows], dtype=np.float32)
    keep = (np.abs(scores) >= margin) & (scores != 0)
    texts = [t for (_, t), k in zip(rows, keep) if k]
    labels = (scores[keep] > 0).astype(np.int64)
    return (texts, labels, scores[keep]) if with_scores else (texts, labels)
