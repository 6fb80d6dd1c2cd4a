"""Packs the UCI optical-digits subset that scikit-learn ships (sklearn/datasets/data/digits.csv.gz:
1797 rows of 64 pixel values 0..16, then the label) into python/ember/datasets/data/digits.npz as
uint8 arrays, compressed. Run once; the result is committed.

    python tools/make_digits_npz.py path/to/digits.csv.gz
"""
import gzip
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(src):
    with gzip.open(src, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    if table.shape != (1797, 65) or table.min() < 0 or table[:, :64].max() > 16:
        sys.exit(f"unexpected table: shape {table.shape}, range {table.min()}..{table.max()}")
    images = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    labels = table[:, 64].astype(np.uint8)
    out = os.path.join(ROOT, "python", "ember", "datasets", "data", "digits.npz")
    np.savez_compressed(out, images=images, labels=labels)
    print(f"wrote {out}: {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
