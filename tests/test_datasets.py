"""The shipped digits: the real UCI data, intact."""
import os

import numpy as np

import ember as em

# Fingerprints of scikit-learn's sklearn/datasets/data/digits.csv.gz (1797 rows: 64 pixels, then the
# label), computed once from that file with NumPy: np.loadtxt(gzip.open(path, "rt"), delimiter=",")
# gives the table t; FIRST_ROW is t[0, :64], PIXEL_SUM is int(t[:, :64].sum()) and CLASS_COUNTS is
# np.bincount(t[:, 64].astype(int)).
FIRST_ROW = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
             0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
PIXEL_SUM = 561718
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_load_digits_shapes_dtypes_and_values():
    x, y = em.datasets.load_digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 16 and np.all(x == np.round(x))
    counts = np.bincount(y, minlength=10)
    assert counts.tolist() == CLASS_COUNTS and counts.sum() == 1797 and 174 <= counts.min() <= counts.max() <= 183


def test_load_digits_matches_the_source_file():
    x, y = em.datasets.load_digits()
    assert x[0].reshape(64).tolist() == FIRST_ROW and y[0] == 0
    assert int(x.astype(np.int64).sum()) == PIXEL_SUM
    assert y[:10].tolist() == list(range(10))


def test_load_digits_flatten_and_fresh_copies():
    a, _ = em.datasets.load_digits(flatten=True)
    b, _ = em.datasets.load_digits()
    assert a.shape == (1797, 64) and np.array_equal(a, b.reshape(1797, 64))
    a[0, 0] = 99
    assert em.datasets.load_digits()[0][0, 0, 0] == 0


def test_digits_ship_with_their_attribution():
    """The wheel copies every file under python/ember, so the licence travels next to the data."""
    folder = os.path.join(os.path.dirname(em.datasets.__file__), "data")
    with open(os.path.join(folder, "DIGITS_LICENSE.txt"), encoding="utf-8") as f:
        text = f.read()
    assert "Alpaydin" in text and "Kaynak" in text and "CC BY 4.0" in text and "archive.ics.uci.edu" in text
