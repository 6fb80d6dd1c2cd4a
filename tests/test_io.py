"""Files: safetensors round trips of every dtype and awkward shape, interop with the safetensors
library and PyTorch both ways, corrupt and truncated files, atomic writes (an error at any point
leaves the old file byte-identical and no temporary file), and checkpoints of nested state."""
import json
import os
import struct

import numpy as np
import pytest
import safetensors
from safetensors.numpy import load_file as np_load_file

import ember as em

DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"]
SHAPES = [(), (0,), (1,), (7, 3, 5), (3, 0, 2), (2049,)]


def values(shape, dtype, seed=0):
    """Random values exactly representable in dtype (float values include -0.0, inf and nan)."""
    r = np.random.default_rng(seed)
    if dtype == "bool":
        return em.tensor(r.uniform(size=shape) > 0.5)
    if dtype.startswith("int"):
        big = np.iinfo(dtype).max
        return em.tensor(r.integers(-big - 1, big, size=shape, endpoint=True, dtype=dtype))
    a = r.standard_normal(shape) * 100
    if a.size >= 3:
        a.flat[:3] = [-0.0, np.inf, np.nan]
    return em.tensor(a, dtype=dtype)


def bits(t):
    """The stored bytes of a tensor or array (bfloat16 as the float32 it widens to), for bitwise checks."""
    if isinstance(t, em.Tensor):
        t = t.detach()
        return t.float().numpy().tobytes() if t.dtype == em.bfloat16 else t.numpy().tobytes()
    return np.ascontiguousarray(t).tobytes()


def assert_same(a, b, key=""):
    assert a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape), key
    assert bits(a) == bits(b), key


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype_and_shape(tmp_path, dtype):
    state = {f"s{i}": values(s, dtype, i) for i, s in enumerate(SHAPES)}
    state["transposed"] = values((4, 6), dtype).transpose(0, 1)
    state["sliced"] = values((5, 8), dtype)[1:4, ::3]
    em.save(state, tmp_path / "w.safetensors")
    back = em.load(tmp_path / "w.safetensors")
    assert set(back) == set(state)
    for k, v in state.items():
        assert_same(back[k], v, k)


def test_numpy_arrays_keep_their_dtype_in_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    arrays = {"f32": np.arange(6, dtype=np.float32).reshape(2, 3).T, "u8": np.arange(250, 256, dtype=np.uint8),
              "i16": np.array([-7, 9], np.int16), "big_endian": np.arange(3, dtype=">f8")}
    em.save(arrays, path)
    theirs = np_load_file(path)
    assert theirs["u8"].dtype == np.uint8 and theirs["i16"].dtype == np.int16
    back = em.load(path)
    assert back["u8"].dtype == em.int64 and back["u8"].tolist() == list(range(250, 256))   # ember widens
    assert back["i16"].tolist() == [-7, 9] and back["big_endian"].tolist() == [0.0, 1.0, 2.0]
    assert np.array_equal(back["f32"].numpy(), arrays["f32"])


def test_files_are_plain_safetensors_with_format_metadata(tmp_path):
    path = tmp_path / "w.safetensors"
    em.save({"a": em.ones(2, 3), "b": em.arange(4)}, path, metadata={"note": "hi", "step": 7})
    with safetensors.safe_open(path, framework="numpy") as f:
        assert f.metadata() == {"format": "ember", "note": "hi", "step": "7"}
    arrays = np_load_file(path)
    assert np.array_equal(arrays["a"], np.ones((2, 3), np.float32)) and arrays["b"].tolist() == [0, 1, 2, 3]


def test_pytorch_reads_ours_and_we_read_pytorchs(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file
    state = {f"{d}{s}": values(s, d) for d in DTYPES for s in [(), (0,), (7, 3, 5)]}
    state["view"] = values((4, 6), "bfloat16").transpose(0, 1)
    em.save(state, tmp_path / "ours.safetensors")
    loaded = load_file(tmp_path / "ours.safetensors")
    for k, v in state.items():
        assert str(loaded[k].dtype) == f"torch.{v.dtype.name}" and tuple(loaded[k].shape) == tuple(v.shape), k
        assert torch_bits(loaded[k]) == bits(v), k

    theirs = {"w": torch.randn(5, 3).to(torch.bfloat16), "h": torch.randn(2, 2).half(), "i": torch.tensor([1, -2]),
              "b": torch.tensor([True, False]), "s": torch.tensor(2.5, dtype=torch.float64)}
    save_file(theirs, tmp_path / "theirs.safetensors")
    back = em.load(tmp_path / "theirs.safetensors")
    for k, t in theirs.items():
        assert back[k].dtype.name == str(t.dtype)[6:] and tuple(back[k].shape) == tuple(t.shape), k
        assert bits(back[k]) == torch_bits(t), k


def torch_bits(t):
    return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy().tobytes()


def test_load_onto_device(tmp_path, device):
    path = tmp_path / "w.safetensors"
    state = {"x": values((3, 4), "float32"), "y": values((5,), "bfloat16")}
    em.save(state, path)
    back = em.load(path, device=device)
    for k, v in state.items():
        assert str(back[k].device).startswith(device)
        assert_same(back[k].cpu(), v, k)


def raw_file(header, data=b""):
    """A safetensors file's bytes written by hand, for files ember and safetensors would never write."""
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + data


def test_corrupt_and_truncated_files_raise_value_error(tmp_path):
    path = tmp_path / "w.safetensors"
    em.save({"a": em.ones(100), "b": em.zeros(3, dtype=em.int64)}, path)
    data = path.read_bytes()
    entry = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    cases = {
        "truncated": data[:-10], "cut in the header": data[:20], "empty": b"", "tiny": data[:5],
        "huge header length": (10 ** 12).to_bytes(8, "little") + data[8:],
        "garbled header": data[:8] + b"{" * 20 + data[28:],
        "offsets beyond the file": raw_file({"a": {**entry, "data_offsets": [0, 64]}}, bytes(16)),
        "shape against bytes": raw_file({"a": {**entry, "shape": [5]}}, bytes(16)),
        "header not an object": raw_file([1, 2]),
    }
    for name, blob in cases.items():
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(blob)
        with pytest.raises(ValueError, match=r"\[load\] .*bad.safetensors: corrupt or truncated safetensors file"):
            em.load(bad)
        with pytest.raises(ValueError, match="corrupt or truncated"):
            em.load_checkpoint(bad)
    with pytest.raises(FileNotFoundError):
        em.load(tmp_path / "missing.safetensors")


def test_dtypes_ember_cannot_hold_are_named(tmp_path):
    path = tmp_path / "f8.safetensors"
    path.write_bytes(raw_file({"q": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0"))
    with pytest.raises(ValueError, match="'q' has dtype F8_E4M3"):
        em.load(path)


def test_bad_values_raise_naming_the_key(tmp_path):
    path = tmp_path / "w.safetensors"
    with pytest.raises(TypeError, match="'b'.*list"):
        em.save({"a": em.zeros(2), "b": [1, 2]}, path)
    with pytest.raises(TypeError, match="'u'.*uint64"):
        em.save({"u": np.arange(3, dtype=np.uint64)}, path)
    with pytest.raises(TypeError, match="strings"):
        em.save({1: em.zeros(2)}, path)
    with pytest.raises(ValueError, match="reserved"):
        em.save({"__metadata__": em.zeros(2)}, path)
    assert os.listdir(tmp_path) == []


def failing_serialize(real):
    """safetensors.serialize_file that writes half a file and then fails, like a full disk."""
    def serialize_file(specs, filename, metadata=None):
        real(specs, filename, metadata=metadata)
        with open(filename, "r+b") as f:
            f.truncate(os.path.getsize(filename) // 2)
        raise OSError(28, "No space left on device")
    return serialize_file


def test_a_failed_write_leaves_the_old_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    em.save({"a": em.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        em.save({"a": em.zeros(2), "b": "text"}, path)                       # fails before writing
    with pytest.raises(TypeError):
        em.save_checkpoint(path, model=Holder(0), bad=object())             # fails while flattening
    monkeypatch.setattr(safetensors, "serialize_file", failing_serialize(safetensors.serialize_file))
    with pytest.raises(OSError, match="No space"):
        em.save({"a": em.zeros(1000)}, path)                                # fails midway through writing
    with pytest.raises(OSError, match="No space"):
        em.save_checkpoint(path, model=Holder(0), epoch=1)
    monkeypatch.undo()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename failed")))
    with pytest.raises(OSError, match="rename failed"):
        em.save({"a": em.zeros(3)}, path)                                   # fails at the rename
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]                         # no temporary file left behind


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_files_get_the_permissions_an_in_place_write_would_give(tmp_path):
    umask = os.umask(0o022)
    try:
        em.save({"a": em.ones(1)}, tmp_path / "new.safetensors")
        assert os.stat(tmp_path / "new.safetensors").st_mode & 0o777 == 0o644
        os.chmod(tmp_path / "new.safetensors", 0o640)
        em.save({"a": em.zeros(1)}, tmp_path / "new.safetensors")
        assert os.stat(tmp_path / "new.safetensors").st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)


class Holder:
    """A model stand-in: tensors in its state_dict."""

    def __init__(self, seed):
        self.sd = {"fc.weight": values((3, 2), "float32", seed), "fc.bias": values((2,), "bfloat16", seed),
                   "count": values((), "int64", seed)}

    def state_dict(self):
        return dict(self.sd)

    def load_state_dict(self, d):
        self.sd = d


class OptimLike:
    """An optimizer stand-in: PyTorch's nested state, int keys, tuples, steps as ints and as tensors."""

    def __init__(self, seed):
        self.sd = {"state": {0: {"step": 3, "exp_avg": values((2,), "float32", seed)},
                             7: {"step": em.tensor(3.0), "exp_avg": values((4,), "float32", seed + 1),
                                 "exp_avg_sq": values((4,), "float32", seed + 2)}},
                   "param_groups": [{"lr": 0.1 / 3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False,
                                     "weight_decay": 0.0, "params": [0, 7], "foreach": None}]}

    def state_dict(self):
        return self.sd

    def load_state_dict(self, d):
        self.sd = d


class LoaderLike:
    """A data loader stand-in: a small JSON-able state."""

    def __init__(self):
        self.sd = {"seed": 4, "epoch": 2, "position": 5, "order": [3, 1, 2]}

    def state_dict(self):
        return self.sd

    def load_state_dict(self, d):
        self.sd = d


def assert_same_tree(a, b, where="root"):
    """Equal nested structures, with the same container types, key types and bitwise-equal tensors."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b) and [type(k) for k in a] == [type(k) for k in b], where
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}.{i}")
    elif isinstance(a, em.Tensor):
        assert_same(a, b, where)
    else:
        assert a == b, where


def test_checkpoint_round_trip_restores_every_object_and_the_rng(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    model, opt, loader = Holder(1), OptimLike(1), LoaderLike()
    plain = {"epoch": 3, "loss": 0.1 + 0.2, "note": "x", "best": None, "history": [1.5, float("inf")],
             "config": {"layers": (64, 32), 2: "two"}, "weights": values((2, 3), "float16"), "big": 2 ** 64 - 1}
    em.manual_seed(2 ** 64 - 1)
    em.randn(5)
    state = em.default_generator.get_state()
    em.save_checkpoint(path, model=model, optimizer=opt, loader=loader, **plain)
    after_save = em.randn(4).numpy()

    model2, opt2, loader2 = Holder(2), OptimLike(5), LoaderLike()
    loader2.sd = None
    em.manual_seed(0)
    extra = em.load_checkpoint(path, model=model2, optimizer=opt2, loader=loader2)
    assert em.default_generator.get_state() == state
    assert np.array_equal(em.randn(4).numpy(), after_save)
    assert_same_tree(model2.sd, model.state_dict())
    assert_same_tree(opt2.sd, opt.state_dict())
    assert_same_tree(loader2.sd, loader.state_dict())
    assert_same_tree(extra, plain)


def test_checkpoint_is_a_safetensors_file_with_dotted_keys(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    em.save_checkpoint(path, model=Holder(0), optimizer=OptimLike(0), epoch=1)
    with safetensors.safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "ember" and json.loads(meta["ember.checkpoint"])["schema"] == 1
    assert set(em.load(path)) == {"model.fc.weight", "model.fc.bias", "model.count", "optimizer.state.0.exp_avg",
                                  "optimizer.state.7.step", "optimizer.state.7.exp_avg", "optimizer.state.7.exp_avg_sq"}


def test_checkpoint_errors(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    em.save_checkpoint(path, model=Holder(0), epoch=2)
    with pytest.raises(KeyError, match="no state for 'optimizer'.*holds state for \\['model'\\]"):
        em.load_checkpoint(path, optimizer=OptimLike(0))
    with pytest.raises(KeyError, match="no state for 'loader'"):
        em.load_checkpoint(path, loader=LoaderLike())
    plain = tmp_path / "plain.safetensors"
    em.save({"w": em.ones(1)}, plain)
    with pytest.raises(ValueError, match="not an ember checkpoint"):
        em.load_checkpoint(plain, model=Holder(0))
    em.save({"w": em.ones(1)}, plain, metadata={"ember.checkpoint": '{"schema": 1, "objects"'})
    with pytest.raises(ValueError, match="corrupt or truncated"):
        em.load_checkpoint(plain)
    with pytest.raises(TypeError, match="cannot store a object"):
        em.save_checkpoint(path, bad=object())
    with pytest.raises(TypeError, match="dict key \\(1, 2\\)"):
        em.save_checkpoint(path, table={(1, 2): 3})
    with pytest.raises(ValueError, match="share the key 'table.1'"):
        em.save_checkpoint(path, table={1: em.ones(1), "1": em.zeros(1)})
