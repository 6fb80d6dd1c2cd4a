"""Checkpoints resume bitwise: N straight training steps equal k steps, a checkpoint, fresh objects
loaded from it, and N - k more steps (model, Adam moments and step, the data loader's position, the
RNG stream that drives dropout), and ModelCheckpoint keeps the last good file when the loss goes NaN."""
import numpy as np

import ember as em
import ember.nn as nn
import ember.nn.functional as F


def make_run(seed):
    """A model with dropout, its Adam, and a shuffling loader over a fixed data set."""
    em.manual_seed(seed)
    r = np.random.default_rng(0)
    x = r.standard_normal((50, 6)).astype(np.float32)
    y = r.integers(0, 3, 50)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 3))
    opt = em.optim.Adam(model.parameters(), lr=0.01)
    loader = em.data.DataLoader(em.data.TensorDataset(x, y), batch_size=8, shuffle=True, seed=11)
    return model, opt, loader


def endless(loader):
    while True:
        yield from loader


def train(model, opt, batches, steps):
    for _ in range(steps):
        xb, yb = next(batches)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
        opt.zero_grad()


def weights(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_resume_is_bitwise_identical(tmp_path):
    total, first = 17, 9   # 7 batches per epoch: the checkpoint falls mid-epoch, the run crosses epochs
    model, opt, loader = make_run(seed=5)
    train(model, opt, endless(loader), total)
    straight = weights(model)

    model, opt, loader = make_run(seed=5)
    train(model, opt, endless(loader), first)
    path = tmp_path / "ckpt.safetensors"
    em.save_checkpoint(path, model=model, optimizer=opt, loader=loader, epoch=first // 7)

    model2, opt2, loader2 = make_run(seed=99)   # fresh objects, different init and RNG state
    extra = em.load_checkpoint(path, model=model2, optimizer=opt2, loader=loader2)
    assert extra["epoch"] == 1
    train(model2, opt2, endless(loader2), total - first)
    resumed = weights(model2)
    for k in straight:
        assert np.array_equal(straight[k], resumed[k]), k


def test_model_checkpoint_keeps_the_last_good_file(tmp_path):
    r = np.random.default_rng(1)
    x = r.standard_normal((64, 4)).astype(np.float32)
    y = x.sum(1, keepdims=True).astype(np.float32)
    path = tmp_path / "best.safetensors"
    model = nn.Sequential(nn.Dense(1, input_shape=(4,)))
    model.compile(optimizer=em.optim.SGD(lr=0.01), loss="mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[em.callbacks.ModelCheckpoint(path, monitor="loss")])
    saved = path.read_bytes()
    good = {k: v.numpy() for k, v in em.load(path).items()}
    y_bad = y.copy()
    y_bad[20] = np.nan
    h = model.fit(x, y_bad, epochs=2, batch_size=16, shuffle=False, verbose=0,
                  callbacks=[em.callbacks.ModelCheckpoint(path, monitor="loss")])
    assert "nan" in h.stop_reason
    assert path.read_bytes() == saved   # the checkpoint of the last good epoch is untouched
    assert set(good) == {"0.weight", "0.bias"} and all(np.all(np.isfinite(v)) for v in good.values())


def test_model_checkpoint_creates_its_folders(tmp_path):
    """A filepath in folders that do not exist yet (one per epoch, even) is created, as in Keras."""
    x = np.ones((8, 4), np.float32)
    model = nn.Sequential(nn.Dense(1, input_shape=(4,)))
    model.compile(optimizer="sgd", loss="mse")
    pattern = str(tmp_path / "runs" / "e{epoch}" / "weights.safetensors")
    model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[em.callbacks.ModelCheckpoint(pattern, monitor="loss")])
    for epoch in (1, 2):
        assert set(em.load(pattern.format(epoch=epoch))) == {"0.weight", "0.bias"}

