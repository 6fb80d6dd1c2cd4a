"""Data: TensorDataset, the seeded and resumable DataLoader, and preprocessing against the formulas
written out in float64 NumPy."""
import json

import numpy as np
import pytest

import ember as em
from ember.data import DataLoader, Dataset, TensorDataset
from ember.preprocessing import MinMaxScaler, StandardScaler, one_hot, train_test_split
from helpers.check import assert_close, rng

F32 = 2.0 ** -24  # float32 unit roundoff: the scalers compute in float64 and round once to float32


def dataset(n=23):
    """Row i of x is [3i, 3i+1, 3i+2] and its label is i, so a batch shows which rows it holds."""
    x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    return TensorDataset(x, np.arange(n))


def labels_of(loader):
    return [y.numpy() for _, y in loader]


class Squares(Dataset):
    """A generic map-style data set (not a TensorDataset): served sample by sample."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return np.array([i, i * i], np.float64), np.int32(i)


def test_tensor_dataset_shapes_and_dtypes():
    ds = dataset()
    assert len(ds) == 23 and ds.arrays[0].dtype == np.float32 and ds.arrays[1].dtype == np.int64
    x, y = ds[4]
    assert y == 4 and list(x) == [12, 13, 14]
    mixed = TensorDataset(em.zeros(5, 2), np.zeros(5, np.uint8), np.zeros(5, np.int32))
    assert len(mixed) == 5 and [a.dtype for a in mixed.arrays] == [np.float32, np.int64, np.int64]
    with pytest.raises(ValueError, match=r"first dimension.*\(3, 2\).*\(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"first dimension.*\(\)"):
        TensorDataset(np.zeros(3), np.float64(1.0))
    with pytest.raises(TypeError, match="numeric"):
        TensorDataset(np.array(["a", "b"]))


@pytest.mark.parametrize("batch,drop", [(1, False), (5, False), (5, True), (23, False), (30, True), (30, False)])
def test_loader_covers_every_sample_once(batch, drop):
    loader = DataLoader(dataset(), batch_size=batch, shuffle=True, drop_last=drop, seed=1)
    sizes, seen = [], []
    for xb, yb in loader:
        assert isinstance(xb, em.Tensor) and xb.dtype == em.float32 and yb.dtype == em.int64
        assert np.array_equal(xb.numpy()[:, 0], 3 * yb.numpy())   # rows stay paired
        sizes.append(xb.shape[0])
        seen += yb.numpy().tolist()
    full, rest = divmod(23, batch)
    want_sizes = [batch] * full + ([] if drop or rest == 0 else [rest])
    assert sizes == want_sizes and len(loader) == len(want_sizes)
    assert len(set(seen)) == len(seen) and set(seen) <= set(range(23))
    assert len(seen) == (full * batch if drop else 23)


def test_generic_dataset_is_batched_and_cast():
    xb, yb = next(iter(DataLoader(Squares(), batch_size=4)))
    assert xb.dtype == em.float32 and yb.dtype == em.int64
    assert xb.numpy().tolist() == [[0, 0], [1, 1], [2, 4], [3, 9]] and yb.numpy().tolist() == [0, 1, 2, 3]
    shuffled = DataLoader(Squares(), batch_size=3, shuffle=True, seed=2)
    assert sorted(np.concatenate(labels_of(shuffled)).tolist()) == list(range(10))


def test_loader_is_seeded_and_reshuffles_each_epoch():
    def epochs(seed, n=3):
        loader = DataLoader(dataset(), batch_size=4, shuffle=True, seed=seed)
        return [np.concatenate(labels_of(loader)) for _ in range(n)]

    a, b = epochs(7), epochs(7)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert all(sorted(e.tolist()) == list(range(23)) for e in a)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    assert not np.array_equal(a[0], epochs(8)[0])
    plain = DataLoader(dataset(), batch_size=4)
    assert np.concatenate(labels_of(plain)).tolist() == list(range(23))


def test_epoch_order_depends_only_on_seed_and_epoch():
    loader = DataLoader(dataset(), batch_size=4, shuffle=True, seed=5)
    for _ in range(3):
        list(loader)
    assert loader.state_dict() == {"seed": 5, "epoch": 3, "position": 0}
    fresh = DataLoader(dataset(), batch_size=4, shuffle=True, seed=5)
    fresh.load_state_dict({"seed": 5, "epoch": 3, "position": 0})
    assert np.array_equal(np.concatenate(labels_of(fresh)), np.concatenate(labels_of(loader)))


def test_unseeded_loader_follows_manual_seed():
    def first_epoch():
        em.manual_seed(42)
        return np.concatenate(labels_of(DataLoader(dataset(), batch_size=5, shuffle=True)))

    assert np.array_equal(first_epoch(), first_epoch())


@pytest.mark.parametrize("stop", [1, 4, 6])   # 6 batches per epoch: stop=6 is the epoch's last batch
def test_loader_resumes_mid_epoch(stop):
    full = DataLoader(dataset(), batch_size=4, shuffle=True, seed=3)
    straight = [y for _ in range(3) for y in labels_of(full)]
    first = DataLoader(dataset(), batch_size=4, shuffle=True, seed=3)
    it = iter(first)
    got = [next(it)[1].numpy() for _ in range(stop)]
    state = json.loads(json.dumps(first.state_dict()))   # what a checkpoint stores
    assert state == {"seed": 3, "epoch": 0, "position": stop}
    resumed = DataLoader(dataset(), batch_size=4, shuffle=True, seed=99)
    resumed.load_state_dict(state)
    got += labels_of(resumed) + labels_of(resumed) + labels_of(resumed)
    assert len(got) == len(straight) and all(np.array_equal(u, v) for u, v in zip(got, straight))


def test_stopped_iteration_continues_where_it_left_off():
    loader = DataLoader(dataset(), batch_size=4, shuffle=True, seed=6)
    straight = labels_of(DataLoader(dataset(), batch_size=4, shuffle=True, seed=6))
    for _ in loader:
        break
    assert all(np.array_equal(u, v) for u, v in zip(labels_of(loader), straight[1:]))


def test_loader_errors():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(dataset(), batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(dataset(), shuffle=True, seed=-1)
    loader = DataLoader(dataset(), batch_size=4)
    with pytest.raises(ValueError, match="position 7"):
        loader.load_state_dict({"seed": 0, "epoch": 0, "position": 7})


def test_standard_scaler_matches_numpy():
    r, seed = rng()
    x = r.normal(3, 2, (40, 5))
    x[:, 2] = 7.0  # constant feature: scale 1, maps to 0
    s = StandardScaler().fit(x)
    std = x.std(0)
    want = (x - x.mean(0)) / np.where(std == 0, 1, std)
    assert_close(s.mean_, x.mean(0), 1e-14, msg=f"seed {seed}")
    assert_close(s.scale_, np.where(std == 0, 1, std), 1e-14, msg=f"seed {seed}")
    got = s.transform(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert_close(got, want, 2 * F32, msg=f"seed {seed}")
    assert_close(s.inverse_transform(got), x, 4 * F32, msg=f"seed {seed}")
    t = s.transform(em.tensor(x, dtype="float32"))
    assert isinstance(t, em.Tensor) and t.dtype == em.float32
    assert_close(t.numpy(), want, 8 * F32, msg=f"seed {seed}")


def test_standard_scaler_near_constant_and_integer_features():
    x = np.stack([np.full(1000, 0.1), np.arange(1000)], axis=1)   # mean(0.1, ...) is off by an ulp
    s = StandardScaler().fit(x)
    assert s.scale_[0] == 1.0
    got = s.transform(x)
    assert np.all(np.abs(got[:, 0]) < 1e-12)   # not the ±1 that dividing by a 1e-17 std gives
    assert_close(got[:, 1], (np.arange(1000) - 499.5) / np.arange(1000).std(), 2 * F32)
    ints = StandardScaler().fit_transform(np.arange(12).reshape(4, 3))
    assert ints.dtype == np.float32


def test_min_max_scaler_matches_numpy():
    r, seed = rng()
    x = r.uniform(-4, 9, (31, 3)).astype(np.float32)
    x[:, 1] = 2.5   # constant feature: maps to the low end
    s = MinMaxScaler((-1, 1))
    got = s.fit_transform(x)
    x64 = x.astype(np.float64)
    span = np.where(np.ptp(x64, 0) == 0, 1, np.ptp(x64, 0))
    want = (x64 - x64.min(0)) / span * 2 - 1
    assert got.dtype == np.float32
    assert_close(got, want, 2 * F32, msg=f"seed {seed}")
    assert np.all(got[:, 1] == -1)
    assert_close(x64 * s.scale_ + s.min_, want, 1e-14, msg=f"seed {seed}")   # scikit-learn's meaning
    assert_close(s.inverse_transform(got), x, 4 * F32, msg=f"seed {seed}")


def test_scalers_flatten_trailing_dims_and_keep_tensors():
    r, _ = rng()
    x = r.uniform(0, 16, (20, 4, 4))
    got = MinMaxScaler().fit_transform(em.tensor(x))
    assert isinstance(got, em.Tensor) and got.shape == (20, 4, 4)
    flat = x.reshape(20, 16)
    assert_close(got.numpy().reshape(20, 16), (flat - flat.min(0)) / np.ptp(flat, 0), 2 * F32)


def test_scaler_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        StandardScaler().transform(np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="not fitted"):
        MinMaxScaler().inverse_transform(np.zeros((2, 2)))
    s = StandardScaler().fit(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"4 features.*\(3, 5\)"):
        s.transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least one sample"):
        StandardScaler().fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="increasing"):
        MinMaxScaler((1, 0))


def test_one_hot():
    out = one_hot(np.array([2, 0, 1, 2]))
    assert out.dtype == np.float32 and np.array_equal(out, np.eye(3, dtype=np.float32)[[2, 0, 1, 2]])
    assert one_hot(np.array([1]), num_classes=4).shape == (1, 4)
    assert one_hot(np.zeros(0, np.int64), num_classes=3).shape == (0, 3)
    t = one_hot(em.tensor([1, 0]), num_classes=2)
    assert isinstance(t, em.Tensor) and t.numpy().tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        one_hot(np.array([0, 3]), num_classes=3)
    with pytest.raises(ValueError, match=r"-1\.\.1"):
        one_hot(np.array([-1, 1]))
    with pytest.raises(ValueError, match="num_classes"):
        one_hot(np.zeros(0, np.int64))
    with pytest.raises(TypeError, match="integers"):
        one_hot(np.array([0.5]))


def test_train_test_split_sizes_coverage_and_seed():
    x, y = np.arange(100).reshape(50, 2), np.arange(50)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, seed=0)
    assert len(x_te) == 10 and len(x_tr) == 40
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(50))   # disjoint and covering
    assert np.array_equal(x_tr[:, 0], 2 * y_tr) and np.array_equal(x_te[:, 0], 2 * y_te)
    again = train_test_split(x, y, test_size=0.2, seed=0)
    assert np.array_equal(again[3], y_te) and not np.array_equal(train_test_split(y, test_size=0.2, seed=1)[1], y_te)
    assert len(train_test_split(y)[1]) == 13                      # default 0.25, rounded up as scikit-learn
    assert len(train_test_split(y, test_size=7)[1]) == 7
    assert len(train_test_split(y, test_size=np.int64(7))[1]) == 7
    assert len(train_test_split(y, train_size=0.9)[1]) == 5
    tr, te = train_test_split(y, train_size=20, test_size=10, seed=0)
    assert len(tr) == 20 and len(te) == 10 and not set(tr) & set(te)
    tr, te = train_test_split(y, test_size=0.2, shuffle=False)
    assert tr.tolist() == list(range(40)) and te.tolist() == list(range(40, 50))


def test_train_test_split_errors():
    y = np.arange(50)
    for kw in ({"test_size": 50}, {"test_size": 0}, {"test_size": 1.5}, {"train_size": 40, "test_size": 11}):
        with pytest.raises(ValueError, match="test_size"):
            train_test_split(y, **kw)
    with pytest.raises(ValueError, match="length"):
        train_test_split(y.reshape(25, 2), y)
    with pytest.raises(ValueError, match="stratify has 3 labels"):
        train_test_split(y, stratify=y[:3])
    with pytest.raises(ValueError, match="shuffle"):
        train_test_split(y, stratify=y, shuffle=False)


def test_train_test_split_stratifies():
    y = np.repeat([0, 1, 2], [60, 30, 10])
    tr, te = train_test_split(y, test_size=0.2, stratify=y, seed=1)
    assert np.bincount(te).tolist() == [12, 6, 2] and np.bincount(tr).tolist() == [48, 24, 8]
    t = train_test_split(em.tensor(y), test_size=0.3, stratify=y, seed=2)
    assert isinstance(t[0], em.Tensor) and t[0].dtype == em.int64
    assert np.bincount(t[1].numpy()).tolist() == [18, 9, 3] and np.bincount(t[0].numpy()).tolist() == [42, 21, 7]
    tr, te = train_test_split(y, train_size=50, test_size=20, stratify=y, seed=3)
    assert np.bincount(tr).tolist() == [30, 15, 5] and np.bincount(te).tolist() == [12, 6, 2]


def test_train_test_split_stratifies_on_label_rows():
    y2 = np.stack([np.repeat([0, 1], 50), np.tile(np.repeat([0, 1], 25), 2)], axis=1)   # 4 classes of 25
    _, te = train_test_split(y2, test_size=0.2, stratify=y2, seed=4)
    assert np.unique(te, axis=0, return_counts=True)[1].tolist() == [5, 5, 5, 5]


def test_train_test_split_without_seed_follows_manual_seed():
    def split():
        em.manual_seed(9)
        return train_test_split(np.arange(30))[1]

    assert np.array_equal(split(), split())
