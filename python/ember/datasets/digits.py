"""The handwritten digits (UCI optical recognition of handwritten digits; the 1797-image set that
scikit-learn ships), stored in the package: no download. Attribution and licence (CC BY 4.0):
data/DIGITS_LICENSE.txt."""
from __future__ import annotations

import os

import numpy as np

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "digits.npz")


def load_digits(flatten: bool = False):
    """(x, y): x float32 (1797, 8, 8) with values 0..16 ((1797, 64) with flatten=True), y int64
    (1797,) with the digit 0..9. Fresh arrays on each call."""
    with np.load(_PATH, allow_pickle=False) as f:  # plain arrays only: loading can never run code
        x = f["images"].astype(np.float32)
        y = f["labels"].astype(np.int64)
    return (x.reshape(len(x), 64) if flatten else x), y
