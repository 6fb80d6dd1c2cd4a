"""Data: TensorDataset, the seeded and resumable DataLoader, and preprocessing against the formulas
written out in NumPy."""
import numpy as np
import pytest

import ember as em
from ember.data import DataLoader, TensorDataset
from ember.preprocessing import MinMaxScaler, StandardScaler, one_hot, train_test_split
from helpers.check import assert_close, rng


def dataset(n=23):
    x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    return TensorDataset(x, np.arange(n))


def test_tensor_dataset_shapes_and_dtypes():
    ds = dataset()
    assert len(ds) == 23 and ds.arrays[0].dtype == np.float32 and ds.arrays[1].dtype == np.int64
    x, y = ds[4]
    assert y == 4 and list(x) == [12, 13, 14]
    assert len(TensorDataset(em.zeros(5, 2), np.zeros(5, np.uint8))) == 5
    with pytest.raises(ValueError, match=r"first dimension.*\(3, 2\).*\(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))


@pytest.mark.parametrize("batch,drop", [(1, False), (5, False), (5, True), (23, False), (30, True)])
def test_loader_covers_every_sample_once(batch, drop):
    loader = DataLoader(dataset(), batch_size=batch, shuffle=True, drop_last=drop, seed=1)
    seen = []
    for xb, yb in loader:
        assert isinstance(xb, em.Tensor) and xb.dtype == em.float32 and yb.dtype == em.int64
        assert xb.shape[0] == yb.shape[0] <= batch and (not drop or xb.shape[0] == batch)
        assert np.array_equal(xb.numpy()[:, 0], 3 * yb.numpy())   # rows stay paired
        seen += list(yb.numpy())
    assert len(seen) == len(loader) * batch if drop else sorted(seen) == list(range(23))
    assert len(loader) == (23 // batch if drop else -(-23 // batch))


def test_loader_is_seeded_and_reshuffles_each_epoch():
    def epochs(seed, n=3):
        loader = DataLoader(dataset(), batch_size=4, shuffle=True, seed=seed)
        return [np.concatenate([y.numpy() for _, y in loader]) for _ in range(n)]

    a, b = epochs(7), epochs(7)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], epochs(8)[0])
    plain = DataLoader(dataset(), batch_size=4)
    assert list(np.concatenate([y.numpy() for _, y in plain])) == list(range(23))


def test_loader_resumes_mid_epoch():
    full = DataLoader(dataset(), batch_size=4, shuffle=True, seed=3)
    straight = [y.numpy() for _ in range(2) for _, y in full]
    first = DataLoader(dataset(), batch_size=4, shuffle=True, seed=3)
    it = iter(first)
    got = [next(it)[1].numpy() for _ in range(4)]
    state = first.state_dict()
    assert state == {"seed": 3, "epoch": 0, "position": 4}
    resumed = DataLoader(dataset(), batch_size=4, shuffle=True, seed=99)
    resumed.load_state_dict(state)
    got += [y.numpy() for _, y in resumed] + [y.numpy() for _, y in resumed]
    assert len(got) == len(straight) and all(np.array_equal(u, v) for u, v in zip(got, straight))


def test_loader_errors():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(dataset(), batch_size=0)


def test_standard_scaler_matches_numpy():
    r, _ = rng()
    x = r.normal(3, 2, (40, 5))
    x[:, 2] = 7.0  # constant feature: scale 1, maps to 0
    s = StandardScaler().fit(x)
    std = x.std(0)
    want = (x - x.mean(0)) / np.where(std == 0, 1, std)
    got = s.transform(x)
    assert got.dtype == np.float64
    assert_close(got, want, 1e-12)
    assert_close(s.inverse_transform(got), x, 1e-12)
    t = s.transform(em.tensor(x, dtype="float32"))
    assert isinstance(t, em.Tensor) and t.dtype == em.float32
    assert_close(t.numpy(), want, 1e-5)


def test_min_max_scaler_matches_numpy():
    r, _ = rng()
    x = r.uniform(-4, 9, (31, 3)).astype(np.float32)
    s = MinMaxScaler((-1, 1))
    got = s.fit_transform(x)
    x64 = x.astype(np.float64)
    want = (x64 - x64.min(0)) / (x64.max(0) - x64.min(0)) * 2 - 1
    assert got.dtype == np.float32
    assert_close(got, want, 1e-6)
    assert_close(s.inverse_transform(got), x, 1e-6)


def test_scaler_errors():
    with pytest.raises(RuntimeError, match="fit"):
        StandardScaler().transform(np.zeros((2, 2)))
    s = StandardScaler().fit(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"4 features.*\(3, 5\)"):
        s.transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="increasing"):
        MinMaxScaler((1, 0))


def test_one_hot():
    out = one_hot(np.array([2, 0, 1, 2]))
    assert out.dtype == np.float32 and np.array_equal(out, np.eye(3, dtype=np.float32)[[2, 0, 1, 2]])
    assert one_hot(np.array([1]), num_classes=4).shape == (1, 4)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        one_hot(np.array([0, 3]), num_classes=3)
    with pytest.raises(TypeError, match="integers"):
        one_hot(np.array([0.5]))


def test_train_test_split_sizes_coverage_and_seed():
    x, y = np.arange(100).reshape(50, 2), np.arange(50)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, seed=0)
    assert len(x_te) == 10 and len(x_tr) == 40
    assert sorted(np.concatenate([y_tr, y_te])) == list(range(50))
    assert np.array_equal(x_tr[:, 0], 2 * y_tr)
    again = train_test_split(x, y, test_size=0.2, seed=0)
    assert np.array_equal(again[3], y_te)
    assert len(train_test_split(y, test_size=7)[1]) == 7
    assert len(train_test_split(y, train_size=0.9)[1]) == 5
    with pytest.raises(ValueError, match="empty"):
        train_test_split(y, test_size=50)
    with pytest.raises(ValueError, match="length"):
        train_test_split(x, y[:3])


def test_train_test_split_stratifies():
    y = np.repeat([0, 1, 2], [60, 30, 10])
    _, te = train_test_split(y, test_size=0.2, stratify=y, seed=1)
    assert np.bincount(te).tolist() == [12, 6, 2]
    t = train_test_split(em.tensor(y), test_size=0.3, stratify=y, seed=2)
    assert isinstance(t[0], em.Tensor) and np.bincount(t[1].numpy()).tolist() == [18, 9, 3]
