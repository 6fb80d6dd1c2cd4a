"""Files: safetensors round trips of every dtype, interop with safetensors' own loaders and PyTorch,
corrupt and truncated files, atomic writes, and checkpoints with nested optimizer-like state."""
import json
import os

import numpy as np
import pytest
import safetensors
from safetensors.numpy import load_file as np_load_file

import ember as em


def sample_state():
    r = np.random.default_rng(0)
    return {
        "f32": em.tensor(r.standard_normal((7, 3, 5)), dtype="float32"),
        "f64": em.tensor(r.standard_normal(4), dtype="float64"),
        "f16": em.tensor(r.standard_normal((2, 3)), dtype="float16"),
        "bf16": em.tensor(r.standard_normal((3, 2)) * 100, dtype="bfloat16"),
        "i64": em.tensor(r.integers(-5, 5, 6)),
        "i32": em.tensor(r.integers(-5, 5, 6), dtype="int32"),
        "bool": em.tensor(r.uniform(size=5) > 0.5),
        "scalar": em.tensor(3.5),
        "empty": em.zeros(0),
        "transposed": em.tensor(r.standard_normal((4, 6)), dtype="float32").t(),
        "numpy": r.standard_normal((2, 2)).astype(np.float32),
    }


def as_f64(t):
    return t.detach().double().numpy() if isinstance(t, em.Tensor) else np.asarray(t, np.float64)


def test_round_trip_every_dtype(tmp_path):
    state = sample_state()
    path = tmp_path / "w.safetensors"
    em.save(state, path)
    back = em.load(path)
    assert set(back) == set(state)
    for k, v in state.items():
        want_dtype = "float32" if k == "numpy" else v.dtype.name
        assert back[k].dtype.name == want_dtype and tuple(back[k].shape) == tuple(np.shape(v)), k
        assert np.array_equal(as_f64(back[k]), as_f64(v)), k


def test_files_are_plain_safetensors_with_format_metadata(tmp_path):
    path = tmp_path / "w.safetensors"
    em.save({"a": em.ones(2, 3), "b": em.arange(4)}, path, metadata={"note": "hi"})
    with safetensors.safe_open(path, framework="numpy") as f:
        assert f.metadata() == {"format": "ember", "note": "hi"}
    arrays = np_load_file(path)
    assert np.array_equal(arrays["a"], np.ones((2, 3), np.float32)) and arrays["b"].tolist() == [0, 1, 2, 3]


def test_pytorch_reads_ours_and_we_read_pytorchs(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file
    ours = tmp_path / "ours.safetensors"
    state = sample_state()
    em.save(state, ours)
    loaded = load_file(ours)
    assert loaded["bf16"].dtype == torch.bfloat16
    for k, v in state.items():
        assert np.array_equal(loaded[k].double().numpy(), as_f64(v)), k
    theirs = tmp_path / "theirs.safetensors"
    save_file({"w": torch.arange(6.0).reshape(2, 3).to(torch.bfloat16), "i": torch.tensor([1, 2])}, theirs)
    back = em.load(theirs)
    assert back["w"].dtype == em.bfloat16 and back["w"].float().numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    assert back["i"].tolist() == [1, 2]


def test_corrupt_and_truncated_files_raise(tmp_path):
    path = tmp_path / "w.safetensors"
    em.save({"a": em.ones(100)}, path)
    data = path.read_bytes()
    cases = {"truncated": data[:-10], "tiny": data[:5], "huge header": (10 ** 12).to_bytes(8, "little") + data[8:],
             "garbled header": data[:8] + b"{" * 20 + data[28:]}
    for name, blob in cases.items():
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(blob)
        with pytest.raises(ValueError, match="corrupt or truncated"):
            em.load(bad)
    with pytest.raises(FileNotFoundError):
        em.load(tmp_path / "missing.safetensors")


def test_bad_values_raise_and_leave_the_old_file(tmp_path):
    path = tmp_path / "w.safetensors"
    em.save({"a": em.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="'b'.*list"):
        em.save({"a": em.zeros(2), "b": [1, 2]}, path)
    with pytest.raises(TypeError, match="strings"):
        em.save({1: em.zeros(2)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]   # no temporary file left behind


class Holder:
    """An object with tensors in its state (a model stand-in)."""

    def __init__(self, seed):
        r = np.random.default_rng(seed)
        self.w = em.tensor(r.standard_normal((3, 2)), dtype="float32")

    def state_dict(self):
        return {"w": self.w}

    def load_state_dict(self, d):
        self.w = d["w"]


class OptimLike:
    """Nested state with int keys, tuples and tensors, as an optimizer's state_dict."""

    def __init__(self):
        self.sd = {"state": {0: {"step": 3, "exp_avg": em.ones(2)}, 1: {"step": 3, "exp_avg": em.zeros(4)}},
                   "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "params": [0, 1]}]}

    def state_dict(self):
        return self.sd

    def load_state_dict(self, d):
        self.sd = d


def test_checkpoint_round_trip_restores_structure_and_rng(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    model, opt = Holder(1), OptimLike()
    loader = em.data.DataLoader(em.data.TensorDataset(np.zeros(10)), batch_size=3, shuffle=True, seed=4)
    next(iter(loader))
    em.manual_seed(21)
    em.randn(5)
    em.save_checkpoint(path, model=model, optimizer=opt, loader=loader, epoch=3, note="x", arr=np.arange(3))
    after_save = em.randn(4).numpy()
    model2, opt2 = Holder(2), OptimLike()
    opt2.sd = None
    loader2 = em.data.DataLoader(em.data.TensorDataset(np.zeros(10)), batch_size=3)
    em.manual_seed(0)
    extra = em.load_checkpoint(path, model=model2, optimizer=opt2, loader=loader2)
    assert np.array_equal(em.randn(4).numpy(), after_save)
    assert extra["epoch"] == 3 and extra["note"] == "x" and extra["arr"].tolist() == [0, 1, 2]
    assert np.array_equal(model2.w.numpy(), model.w.numpy())
    assert set(opt2.sd["state"]) == {0, 1} and opt2.sd["state"][1]["exp_avg"].shape == (4,)
    assert opt2.sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert loader2.state_dict() == {"seed": 4, "epoch": 0, "position": 1}
    with safetensors.safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "ember" and json.loads(meta["ember.checkpoint"])["schema"] == 1


def test_checkpoint_errors(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    em.save_checkpoint(path, model=Holder(0))
    with pytest.raises(KeyError, match="no state for 'optimizer'"):
        em.load_checkpoint(path, optimizer=OptimLike())
    plain = tmp_path / "plain.safetensors"
    em.save({"w": em.ones(1)}, plain)
    with pytest.raises(ValueError, match="not an ember checkpoint"):
        em.load_checkpoint(plain, model=Holder(0))
    before = path.read_bytes()
    with pytest.raises(TypeError, match="cannot store a object"):
        em.save_checkpoint(path, model=Holder(0), bad=object())
    assert path.read_bytes() == before
