"""Training is reproducible and does not leak.

- The demo CNN (em.models.DigitsCNN: conv, batch norm, dropout, Adam) trained twice from one seed
  gives the same bytes, at 1 and at 2 threads, and the same bytes across thread counts.
- Resuming from a checkpoint mid-epoch (a manual loop) and at an epoch boundary (model.fit with
  initial_epoch after em.callbacks.ModelCheckpoint) gives the bytes of an uninterrupted run.
- A long training loop keeps a flat resident set size."""
import gc
import os

import numpy as np
import pytest

import ember as em
import ember.nn as nn
import ember.nn.functional as F


def _digits(n=256):
    x, y = em.datasets.load_digits()
    return (x[:n] / np.float32(16.0)).astype(np.float32), y[:n]


def _weights(model):
    return {k: v.detach().numpy().tobytes() for k, v in model.state_dict().items()}


def _fit_demo_cnn(threads, seed=3, epochs=2):
    """The demo's recipe (smaller): DigitsCNN, Adam, label-smoothed cross-entropy, shuffled batches."""
    previous = em.get_num_threads()
    em.set_num_threads(threads)
    try:
        em.manual_seed(seed)
        x, y = _digits()
        model = em.models.DigitsCNN(channels=(8, 16), hidden=32)
        model.compile(optimizer=em.optim.Adam(lr=2e-3), loss=nn.CrossEntropyLoss(label_smoothing=0.05))
        model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, seed=seed)
        return _weights(model)
    finally:
        em.set_num_threads(previous)


def test_demo_cnn_training_is_bitwise_reproducible_at_any_thread_count():
    one, one_again = _fit_demo_cnn(1), _fit_demo_cnn(1)
    two, two_again = _fit_demo_cnn(2), _fit_demo_cnn(2)
    assert one == one_again, "two runs at 1 thread differ"
    assert two == two_again, "two runs at 2 threads differ"
    assert one == two, f"1 and 2 threads differ in {[k for k in one if one[k] != two[k]]}"


# ---- resuming --------------------------------------------------------------------------------

def _cnn_run(seed):
    """A fresh CNN, its Adam and a shuffling loader over the digits (8 batches per epoch)."""
    em.manual_seed(seed)
    x, y = _digits()
    model = em.models.DigitsCNN(channels=(8, 16), hidden=32)
    opt = em.optim.Adam(model.parameters(), lr=2e-3)
    loader = em.data.DataLoader(em.data.TensorDataset(x, y), batch_size=32, shuffle=True, seed=7)
    return model, opt, loader


def _steps(model, opt, loader, n):
    batches = (b for _ in range(10 ** 6) for b in loader)
    for _ in range(n):
        xb, yb = next(batches)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
        opt.zero_grad()


def test_resume_mid_epoch_gives_the_bytes_of_an_uninterrupted_run(tmp_path):
    total, first = 20, 11          # 8 batches per epoch: the checkpoint falls in the middle of epoch 2
    model, opt, loader = _cnn_run(seed=1)
    _steps(model, opt, loader, total)
    straight = _weights(model)

    model, opt, loader = _cnn_run(seed=1)
    _steps(model, opt, loader, first)
    path = tmp_path / "mid.safetensors"
    em.save_checkpoint(path, model=model, optimizer=opt, loader=loader)
    del model, opt, loader

    model, opt, loader = _cnn_run(seed=12345)     # other weights, other RNG state
    em.load_checkpoint(path, model=model, optimizer=opt, loader=loader)
    _steps(model, opt, loader, total - first)
    assert _weights(model) == straight


def test_fit_resumed_at_an_epoch_boundary_gives_the_same_bytes(tmp_path):
    """ModelCheckpoint(save_weights_only=False) after each epoch; a new process-like start loads
    the epoch-2 file and fits epochs 3..4 with initial_epoch=2."""
    x, y = _digits()

    def compiled(seed):
        em.manual_seed(seed)
        model = em.models.DigitsCNN(channels=(8, 16), hidden=32)
        model.compile(optimizer=em.optim.Adam(lr=2e-3), loss="cross_entropy")
        return model

    model = compiled(0)
    path = str(tmp_path / "epoch{epoch}.safetensors")
    model.fit(x, y, epochs=4, batch_size=32, verbose=0, seed=5,
              callbacks=[em.callbacks.ModelCheckpoint(path, monitor="loss", save_weights_only=False)])
    straight = _weights(model)

    model = compiled(99)
    model(em.tensor(x[:1]))        # builds nothing lazily here, but mirrors a user's warm-up call
    extra = em.load_checkpoint(path.format(epoch=2), model=model, optimizer=model._compiled.optimizer)
    model.fit(x, y, epochs=4, batch_size=32, verbose=0, seed=5, initial_epoch=extra["epoch"])
    assert _weights(model) == straight


# ---- memory ----------------------------------------------------------------------------------

def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _rss_growth(steps, warmup=200):
    """Resident-set growth (MB) over `steps` training steps after a warm-up; also the samples."""
    em.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    opt = em.optim.Adam(model.parameters(), lr=1e-3)
    r = np.random.default_rng(0)
    x = em.tensor(r.standard_normal((32, 64)).astype(np.float32))
    y = em.tensor(r.integers(0, 10, 32))
    samples = []
    for step in range(warmup + steps):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        loss.item()
        if step >= warmup and (step - warmup) % max(steps // 10, 1) == 0:
            gc.collect()
            samples.append(_rss_mb())
    gc.collect()
    samples.append(_rss_mb())
    return samples[-1] - samples[0], samples


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc")
def test_training_loop_rss_is_flat():
    growth, samples = _rss_growth(1500)
    assert growth < 8, f"RSS grew {growth:.1f} MB over 1500 steps: {[round(s, 1) for s in samples]}"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc")
def test_training_loop_rss_is_flat_over_10000_steps():
    growth, samples = _rss_growth(10_000)
    assert growth < 8, f"RSS grew {growth:.1f} MB over 10000 steps: {[round(s, 1) for s in samples]}"


# ---- detect_anomaly --------------------------------------------------------------------------

def test_detect_anomaly_names_the_first_op_that_made_nan_in_forward():
    x = em.tensor([1.0, -1.0, 4.0], requires_grad=True)
    with em.autograd.detect_anomaly():
        y = x * 2                       # fine
        blame = r"\[detect_anomaly\] the forward of sqrt produced NaN .*\(shape \(3,\)\)"
        with pytest.raises(RuntimeError, match=blame):
            em.sqrt(y - 1)              # sqrt(-3): the first NaN, blamed on sqrt and not on what follows
        with pytest.raises(RuntimeError, match="forward of log produced Inf"):
            em.log(y * 0)               # log(0) = -inf
    assert not em.autograd.is_anomaly_enabled()
    assert np.isnan(em.sqrt(x).detach().numpy()[1])     # off again: no check, NaN flows as usual


def test_detect_anomaly_names_data_that_already_holds_nan():
    w = em.tensor([[1.0, 2.0]], requires_grad=True)
    data = em.tensor([[np.nan], [1.0]])
    with em.autograd.detect_anomaly(), pytest.raises(RuntimeError, match="input 1 of matmul already holds NaN"):
        w @ data


def test_detect_anomaly_names_the_op_whose_backward_made_nan():
    """sqrt(x) at x = 0 is finite forward (0) but its gradient 1 / (2 sqrt(x)) is infinite."""
    x = em.tensor([0.0, 1.0], requires_grad=True)
    with em.autograd.detect_anomaly():
        loss = (em.sqrt(x) * 3).sum()
        with pytest.raises(RuntimeError, match=r"the backward of sqrt returned Inf in the gradient of its input 0"):
            loss.backward()


def test_detect_anomaly_is_quiet_on_a_healthy_model_and_a_decorator():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    @em.autograd.detect_anomaly()
    def step():
        F.cross_entropy(model(em.randn(5, 4)), em.tensor([0, 1, 2, 0, 1])).backward()

    step()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("make", [lambda: em.ones(2 ** 40, 2 ** 30), lambda: em.zeros(2 ** 33, 2 ** 33),
                                  lambda: em.randn(2 ** 40), lambda: em.full((2 ** 31, 2 ** 31), 1.0),
                                  lambda: em.empty(2 ** 62)], ids=["ones", "zeros", "randn", "full", "empty"])
def test_impossible_allocations_raise_memory_error_naming_op_and_size(make):
    before = _rss_mb()
    with pytest.raises(MemoryError, match=r"\[(ones|zeros|randn|full|empty)\] shape \(.*\) of float32 needs \d+ bytes"):
        make()
    assert _rss_mb() - before < 64


def test_an_impossible_result_of_a_computation_raises_memory_error():
    """A broadcast or product whose result cannot exist (64 TiB): MemoryError with the byte count."""
    a, b = em.ones(2 ** 20, 1), em.ones(1, 2 ** 24)
    for op in (lambda: a + b, lambda: a @ b):
        with pytest.raises(MemoryError, match="70368744177664 bytes"):
            op()
