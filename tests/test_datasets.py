"""The shipped digits: the real UCI data, intact."""
import numpy as np

import ember as em


def test_load_digits_shapes_dtypes_and_values():
    x, y = em.datasets.load_digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 16 and np.all(x == np.round(x))
    counts = np.bincount(y)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # Fingerprints of scikit-learn's digits.csv.gz (computed from that file with NumPy): the first
    # image's rows, and the sum of every pixel.
    assert x[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0] and x[0, 7].tolist() == [0, 0, 6, 13, 10, 0, 0, 0]
    assert int(x.astype(np.int64).sum()) == 561718
    assert y[:10].tolist() == list(range(10))


def test_load_digits_flatten_and_fresh_copies():
    a, _ = em.datasets.load_digits(flatten=True)
    b, _ = em.datasets.load_digits()
    assert a.shape == (1797, 64) and np.array_equal(a, b.reshape(1797, 64))
    a[0, 0] = 99
    assert em.datasets.load_digits()[0][0, 0, 0] == 0
