"""ember.distributed: the autograd hooks DDP rides on, DistributedSampler, and real multi-process runs
under `mpiexec -n 2` and `-n 4` (this file is also the worker they start:
`python tests/test_distributed.py SCENARIO OUTDIR`).

Equality with one process: N ranks with global batch B end with the weights of one process with
batch B to within float32 summation-order differences, atol = 2e-5 * max|w| after 8 SGD steps (the
reductions over the batch run in another order: per-sample gradients summed per rank, then across
ranks, instead of in one pass). With 2 ranks that see the same batch the result is bitwise that of
one process (g/2 + g/2 == g exactly). All ranks always hold bitwise identical weights."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import ember as em
import ember.nn as nn
import ember.nn.functional as F
from ember.autograd import queue_callback, register_post_accumulate_grad_hook
from ember.data import DataLoader, TensorDataset
from ember.distributed import DistributedSampler

HERE = os.path.abspath(__file__)
STEPS_BATCH = 12  # the global batch of the DDP runs: 48 samples, 4 steps an epoch, 2 epochs


# ---- the models and data every run shares ----------------------------------------------------

def net():
    """Conv + MLP, small enough for milliseconds a step, with several buckets at a 1 KB cap."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 11), nn.ReLU(),
                         nn.Linear(11, 5))


def images(n=48, seed=3):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, 1, 6, 6)).astype(np.float32), r.integers(0, 5, n).astype(np.int64)


def blobs(n, seed):
    r = np.random.default_rng(seed)
    centers = r.standard_normal((3, 5)) * 3
    y = r.integers(0, 3, n)
    return (centers[y] + r.standard_normal((n, 5))).astype(np.float32), y


def train(model, loader, forward=None, epochs=2):
    opt = em.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    forward = forward or model
    for _ in range(epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(forward(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def reference_weights(seed=100):
    em.manual_seed(seed)
    model = net()
    x, y = images()
    return train(model, DataLoader(TensorDataset(x, y), batch_size=STEPS_BATCH, shuffle=True, seed=5))


def fit_run(distributed, out=None, rank=0):
    """The Keras loop on 65 samples with global batch 32: the last batch has one sample, so with
    two ranks one of them has nothing to do in that step."""
    em.manual_seed(7 + rank)  # differing starts: DDP's broadcast must make them equal
    x, y = blobs(65, 1)
    xv, yv = blobs(20, 2)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    model.compile(optimizer=em.optim.SGD(lr=0.1, momentum=0.9), loss="cross_entropy", metrics=["accuracy"])
    callbacks = [] if out is None else [em.callbacks.ModelCheckpoint(os.path.join(out, f"ckpt-rank{rank}.safetensors"),
                                                                     monitor="val_loss")]
    history = model.fit(x, y, epochs=3, batch_size=32, validation_data=(xv, yv), seed=11, verbose=2 if out else 0,
                        callbacks=callbacks, distributed=distributed)
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}, history.history


# ---- the autograd hooks (no MPI needed) --------------------------------------------------------

def test_post_accumulate_hook_sees_the_final_grad_once_per_backward():
    w = em.tensor(np.arange(3, dtype=np.float32), requires_grad=True)
    seen = []
    handle = register_post_accumulate_grad_hook(w, lambda t: seen.append(t.grad.numpy().copy()))
    ((w * w).sum() + (w * 3).sum()).backward()  # two paths into w: the hook runs after both are added
    np.testing.assert_allclose(seen[0], 2 * np.arange(3) + 3)
    (w * 2).sum().backward()  # accumulates: the hook sees the sum
    assert len(seen) == 2
    np.testing.assert_allclose(seen[1], 2 * np.arange(3) + 5)
    handle.remove()
    (w * 2).sum().backward()
    assert len(seen) == 2


def test_end_of_backward_callback_runs_after_every_hook():
    a = em.tensor([1.0, 2.0], requires_grad=True)
    b = em.tensor([3.0], requires_grad=True)
    events = []

    def hook(t):
        events.append(t.shape)
        if len(events) == 1:
            queue_callback(lambda: events.append("end"))

    for t in (a, b):
        register_post_accumulate_grad_hook(t, hook)
    ((a * 2).sum() * b.sum()).backward()
    assert events[-1] == "end" and len(events) == 3


def test_callback_queue_is_cleared_when_backward_fails():
    w = em.tensor([1.0], requires_grad=True)
    calls = []

    def failing(t):
        queue_callback(lambda: calls.append("stale"))
        raise RuntimeError("hook failed")

    handle = register_post_accumulate_grad_hook(w, failing)
    with pytest.raises(RuntimeError, match="hook failed"):
        (w * 2).sum().backward()
    handle.remove()
    (w * 2).sum().backward()
    assert calls == []


def test_hook_needs_a_leaf_that_requires_grad():
    w = em.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="register_post_accumulate_grad_hook.*leaf"):
        register_post_accumulate_grad_hook(w * 2, lambda t: None)
    with pytest.raises(ValueError, match="register_post_accumulate_grad_hook"):
        register_post_accumulate_grad_hook(em.tensor([1.0]), lambda t: None)


def test_bucket_packers_agree_and_zero_missing_grads():
    """The host packer (CPU) and the ops packer (what CUDA runs) give the same scaled flat buffer."""
    from ember.distributed.ddp import _Bucket, pack_on_host, pack_with_ops
    r = np.random.default_rng(0)
    params = [nn.Parameter(em.tensor(r.standard_normal(s).astype(np.float32))) for s in [(3, 5), (7,), (1,), (2, 2)]]
    bucket = _Bucket(params)
    grads = [r.standard_normal(p.shape).astype(np.float32) for p in params]
    bucket.grads = [em.tensor(grads[0]).T.contiguous().T, em.tensor(grads[1]), None, em.tensor(grads[3])]
    want = np.concatenate([g.reshape(-1) * 0.25 if k != 2 else np.zeros(1) for k, g in enumerate(grads)])
    for pack in (pack_on_host, pack_with_ops):
        np.testing.assert_allclose(pack(bucket, 0.25).numpy(), want, rtol=1e-7, err_msg=pack.__name__)
    assert bucket.offsets == [0, 15, 22, 23, 27]


# ---- DistributedSampler (explicit ranks, no MPI needed) ---------------------------------------

@pytest.mark.parametrize("n,world,drop_last", [(48, 4, False), (13, 4, False), (13, 4, True), (1, 3, False),
                                              (7, 1, False)])
def test_sampler_shards_cover_the_order_evenly(n, world, drop_last):
    ds = TensorDataset(np.arange(n, dtype=np.float32))
    shards = [DistributedSampler(ds, world, r, shuffle=True, seed=9, drop_last=drop_last).indices(2)
              for r in range(world)]
    assert len({len(s) for s in shards}) == 1
    order = np.random.default_rng((9, 2)).permutation(n)
    got = np.stack(shards, axis=1).reshape(-1)  # interleave back: position i*world + r
    want = order[:len(got)] if drop_last else np.resize(order, len(got))
    np.testing.assert_array_equal(got, want)


def test_sampler_batches_of_all_ranks_make_the_single_process_batch():
    ds = TensorDataset(np.arange(48, dtype=np.float32))
    single = [b[0].numpy() for b in DataLoader(ds, batch_size=12, shuffle=True, seed=5)]
    per_rank = [[b[0].numpy() for b in DataLoader(ds, batch_size=3, sampler=DistributedSampler(ds, 4, r, seed=5))]
                for r in range(4)]
    for k, batch in enumerate(single):
        np.testing.assert_array_equal(np.sort(np.concatenate([p[k] for p in per_rank])), np.sort(batch))


def test_sampler_bad_arguments():
    ds = TensorDataset(np.arange(4, dtype=np.float32))
    with pytest.raises(ValueError, match="DistributedSampler.*rank 2 out of range"):
        DistributedSampler(ds, 2, 2)
    with pytest.raises(ValueError, match="DistributedSampler.*seed"):
        DistributedSampler(ds, 2, 0, seed=-1)
    with pytest.raises(ValueError, match="DataLoader.*sampler"):
        DataLoader(ds, batch_size=2, shuffle=True, sampler=DistributedSampler(ds, 2, 0))


def test_collectives_need_init():
    import ember.distributed as dist
    assert not dist.is_initialized()  # nothing in this process joins a group: the runs are subprocesses
    for call in (dist.rank, dist.world_size, dist.barrier, lambda: dist.all_reduce(em.ones(2))):
        with pytest.raises(RuntimeError, match=r"init\(\)"):
            call()


# ---- multi-process runs ------------------------------------------------------------------------

def _mpi_available():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return shutil.which("mpiexec") is not None


needs_mpi = pytest.mark.skipif(not _mpi_available(), reason="needs mpi4py and mpiexec (pip install 'ember[dist]')")


def launch(n, scenario, out, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.monotonic()
    proc = subprocess.run(["mpiexec", "-n", str(n), sys.executable, HERE, scenario, str(out)], capture_output=True,
                          stdin=subprocess.DEVNULL, text=True, timeout=timeout, env=env)
    return proc, time.monotonic() - start


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


@needs_mpi
@pytest.mark.parametrize("n", [2, 4])
def test_collectives(n, tmp_path):
    assert ok(launch(n, "collectives", tmp_path)[0]).count("collectives ok") == n


def _assert_close_weights(got, want):
    assert got.keys() == want.keys()
    for k in want:
        scale = np.abs(want[k]).max()
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=2e-5 * scale, err_msg=k)


@needs_mpi
@pytest.mark.parametrize("n", [2, 4])
def test_ddp_matches_one_process_with_the_global_batch(n, tmp_path):
    ok(launch(n, "ddp", tmp_path)[0])
    got = dict(np.load(tmp_path / "weights.npz"))
    _assert_close_weights(got, reference_weights())


@needs_mpi
def test_ddp_with_replicated_batches_is_bitwise_one_process(tmp_path):
    ok(launch(2, "replicated", tmp_path)[0])
    got, want = dict(np.load(tmp_path / "weights.npz")), reference_weights()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@needs_mpi
@pytest.mark.parametrize("n", [2, 4])
def test_fit_distributed_matches_one_process(n, tmp_path):
    text = ok(launch(n, "fit", tmp_path)[0])
    got = dict(np.load(tmp_path / "weights.npz"))
    history = json.loads((tmp_path / "history.json").read_text())
    want, want_history = fit_run(distributed=False)
    _assert_close_weights(got, want)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(history[key], want_history[key], rtol=1e-4, err_msg=key)
    np.testing.assert_allclose(history["accuracy"], want_history["accuracy"], atol=1.5 / 65)
    assert text.count("Epoch 1/3") == 1  # only rank 0 reports
    assert sorted(os.listdir(tmp_path)) == ["ckpt-rank0.safetensors", "history.json", "weights.npz"]


@needs_mpi
def test_no_sync_accumulates_and_a_stray_backward_is_refused(tmp_path):
    assert ok(launch(2, "no_sync", tmp_path)[0]).count("no_sync ok") == 2


@needs_mpi
def test_model_mismatch_is_a_clear_error_on_every_rank(tmp_path):
    text = ok(launch(2, "mismatch", tmp_path)[0])
    assert text.count("mismatch ok") == 2, text
    assert "differs between ranks 0 and 1" in text and "(16, 5)" in text and "(17, 5)" in text


@needs_mpi
def test_fit_with_other_data_on_a_rank_is_a_clear_error(tmp_path):
    text = ok(launch(2, "fit_mismatch", tmp_path)[0])
    assert text.count("fit mismatch ok") == 2 and "rank 1 passed other data" in text, text


@needs_mpi
def test_a_rank_that_skips_a_collective_times_out(tmp_path):
    proc, seconds = launch(2, "timeout", tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and seconds < 30, text
    assert "DistributedTimeoutError" in text and "waited 1 s" in text and "aborting every rank" in text


@needs_mpi
def test_a_rank_that_never_joins_times_out_in_init(tmp_path):
    proc, seconds = launch(2, "late", tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and seconds < 15, text
    assert "Timeout" in text and "in _start_mpi" in text and "rank 1 never joined" not in text, text


@needs_mpi
@pytest.mark.parametrize("how", ["raise", "exit"])
def test_a_rank_that_dies_ends_the_run(how, tmp_path):
    proc, seconds = launch(2, how, tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and seconds < 30, text
    if how == "raise":
        assert "rank 1 fails on purpose" in text and "aborting every rank" in text


@needs_mpi
@pytest.mark.slow
def test_distributed_digits_example_learns(tmp_path):
    example = os.path.join(os.path.dirname(os.path.dirname(HERE)), "examples", "distributed_digits.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(["mpiexec", "-n", "2", sys.executable, example, str(tmp_path)], capture_output=True,
                          stdin=subprocess.DEVNULL, text=True, timeout=300, env=env)
    ok(proc)
    text = proc.stdout
    assert "2 processes trained" in text and float(text.split("test accuracy")[1]) > 0.95, text
    assert os.listdir(tmp_path) == ["best.safetensors"]


@needs_mpi
@pytest.mark.skipif(em.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_nccl_backend_without_a_gpu_is_a_clear_error(tmp_path):
    assert ok(launch(1, "nccl_on_cpu", tmp_path)[0]).count("nccl refused ok") == 1


@needs_mpi
@pytest.mark.cuda
def test_nccl_collectives_and_ddp(tmp_path):
    pytest.importorskip("nvidia.nccl", reason="needs the nvidia-nccl-cu12 wheel")
    n = min(em.cuda.device_count(), 2)  # NCCL takes one GPU per rank
    ok(launch(n, "nccl", tmp_path)[0])
    _assert_close_weights(dict(np.load(tmp_path / "weights.npz")), reference_weights())


# ---- the worker: one scenario per mpiexec run ---------------------------------------------------

def _same_on_every_rank(dist, weights):
    gathered = dist.all_gather_object(weights)
    for other in gathered[1:]:
        for k in weights:
            assert np.array_equal(other[k], gathered[0][k]), k


def scenario_collectives(dist, out):
    r, w = dist.rank(), dist.world_size()
    t = em.tensor(np.arange(7, dtype=np.float32) * (r + 1))
    dist.all_reduce(t)
    np.testing.assert_array_equal(t.numpy(), np.arange(7) * (w * (w + 1) / 2))
    for op, want in (("max", w - 1), ("min", 0), ("mean", (w - 1) / 2)):
        t = em.tensor([float(r)], dtype=em.float64)
        dist.all_reduce(t, op)
        assert t.item() == want, (op, t.item())
    t = em.tensor([r, r + 10], dtype=em.int64)
    work = dist.all_reduce(t, dist.ReduceOp.SUM, async_op=True)
    assert work.wait().is_completed() and t.tolist() == [w * (w - 1) // 2, w * (w - 1) // 2 + 10 * w]
    t = em.full((3, 2), float(r))
    dist.broadcast(t, src=w - 1)
    assert t.numpy().tolist() == [[w - 1.0] * 2] * 3
    g = dist.all_gather(em.tensor([[r, -r]], dtype=em.int32))
    assert g.shape == (w, 1, 2) and g.numpy()[:, 0, 0].tolist() == list(range(w))
    assert dist.all_gather_object({"rank": r}) == [{"rank": i} for i in range(w)]
    assert dist.broadcast_object("from rank 0" if r == 0 else None) == "from rank 0"
    for bad, kind, message in ((em.zeros(3, 4).T, ValueError, "contiguous"),
                               (em.zeros(2, dtype=em.float16), TypeError, "float16"), ([1.0], TypeError, "Tensor")):
        try:
            dist.all_reduce(bad)
        except kind as e:
            assert "[all_reduce]" in str(e) and message in str(e), e
        else:
            raise AssertionError(f"all_reduce accepted {bad!r}")
    dist.barrier()
    print(f"collectives ok {r}")


def scenario_ddp(dist, out, replicated=False):
    r, w = dist.rank(), dist.world_size()
    em.manual_seed(100 + r)  # each rank starts elsewhere; DDP broadcasts rank 0's (seed 100) weights
    model = net()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=1e-3)
    assert len(ddp._buckets) >= 3
    pending_at_launch, launch = [], ddp._launch

    def recording_launch(bucket):  # how many gradients backward still owed when a bucket left
        pending_at_launch.append(sum(len(b.params) - b.ready for b in ddp._buckets))
        launch(bucket)

    ddp._launch = recording_launch
    x, y = images()
    ds = TensorDataset(x, y)
    if replicated:  # every rank the whole global batch
        loader = DataLoader(ds, batch_size=STEPS_BATCH, shuffle=True, seed=5)
    else:
        loader = DataLoader(ds, batch_size=STEPS_BATCH // w, sampler=DistributedSampler(ds, seed=5))
    weights = train(model, loader, forward=ddp)
    assert pending_at_launch[0] > 0, pending_at_launch  # the first bucket left while backward went on
    _same_on_every_rank(dist, weights)
    if r == 0:
        np.savez(os.path.join(out, "weights.npz"), **weights)


def scenario_fit(dist, out):
    weights, history = fit_run(distributed=True, out=out, rank=dist.rank())
    _same_on_every_rank(dist, weights)
    if dist.rank() == 0:
        np.savez(os.path.join(out, "weights.npz"), **weights)
        with open(os.path.join(out, "history.json"), "w") as f:
            json.dump(history, f)


def scenario_no_sync(dist, out):
    """Two micro-batches, the first inside no_sync(): the grads are the ranks' mean of the local sums."""
    r = dist.rank()
    em.manual_seed(0)
    model = net()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=1e-3)
    x, y = images(8, seed=10 + r)
    with ddp.no_sync():
        F.cross_entropy(ddp(em.tensor(x[:4])), em.tensor(y[:4])).backward()
    F.cross_entropy(ddp(em.tensor(x[4:])), em.tensor(y[4:])).backward()
    twin = net()  # the same weights, trained alone: the local sums
    twin.load_state_dict(model.state_dict())
    F.cross_entropy(twin(em.tensor(x[:4])), em.tensor(y[:4])).backward()
    F.cross_entropy(twin(em.tensor(x[4:])), em.tensor(y[4:])).backward()
    local = [p.grad.numpy().astype(np.float64) for p in twin.parameters()]
    mean = [np.mean(g, axis=0) for g in zip(*dist.all_gather_object(local))]
    for p, want in zip(model.parameters(), mean):
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    try:
        F.cross_entropy(model(em.tensor(x[:4])), em.tensor(y[:4])).backward()  # the bare module, after the sync
    except dist.DistributedError as e:
        assert "second backward" in str(e), e
        print(f"no_sync ok {r}")


def scenario_mismatch(dist, out):
    width = 16 if dist.rank() == 0 else 17
    try:
        dist.DistributedDataParallel(nn.Sequential(nn.Linear(5, width), nn.ReLU(), nn.Linear(width, 3)))
    except dist.DistributedError as e:
        print(f"mismatch ok {dist.rank()}: {e}")


def scenario_fit_mismatch(dist, out):
    x, y = blobs(40, seed=dist.rank())  # each rank its own data: fit must refuse before training
    model = nn.Sequential(nn.Linear(5, 3))
    model.compile(optimizer="sgd", loss="cross_entropy")
    try:
        model.fit(x, y, batch_size=8, verbose=0, distributed=True)
    except dist.DistributedError as e:
        print(f"fit mismatch ok {dist.rank()}: {e}")


def scenario_timeout(dist, out):
    if dist.rank() == 1:
        time.sleep(20)  # never joins; rank 0's timeout must end the run long before this
    dist.all_reduce(em.ones(3))


def scenario_raise(dist, out):
    if dist.rank() == 1:
        raise RuntimeError("rank 1 fails on purpose")
    dist.all_reduce(em.ones(3))


def scenario_exit(dist, out):
    if dist.rank() == 1:
        os._exit(3)
    dist.all_reduce(em.ones(3))


def scenario_nccl_on_cpu(dist, out):
    try:
        dist.init(backend="nccl")
    except RuntimeError as e:
        assert "needs a CUDA GPU" in str(e) and not dist.is_initialized(), e
        print("nccl refused ok")


def scenario_nccl(dist, out):
    r, w = dist.rank(), dist.world_size()
    device = dist.device()
    t = em.tensor(np.arange(5, dtype=np.float32) * (r + 1), device=device)
    dist.all_reduce(t)
    np.testing.assert_array_equal(t.cpu().numpy(), np.arange(5) * (w * (w + 1) / 2))
    assert dist.all_gather(em.full((2,), float(r), device=device)).cpu().numpy()[:, 0].tolist() == list(range(w))
    em.manual_seed(100 + r)
    model = net().to(device)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=1e-3)
    x, y = images()
    ds = TensorDataset(x, y)
    loader = DataLoader(ds, batch_size=STEPS_BATCH // w, sampler=DistributedSampler(ds, seed=5), device=device)
    weights = train(model, loader, forward=ddp)
    if r == 0:
        np.savez(os.path.join(out, "weights.npz"), **weights)


if __name__ == "__main__":
    import ember.distributed as dist
    name, out = sys.argv[1], sys.argv[2]
    if name == "late" and os.environ.get("PMI_RANK") == "1":
        time.sleep(20)  # never starts MPI: rank 0's init must give up and end the run long before this
        print("rank 1 never joined")
        sys.exit(0)
    if name != "nccl_on_cpu":
        dist.init(backend="nccl" if name == "nccl" else "mpi", timeout=1.0 if name in ("timeout", "late") else 60.0)
    {"collectives": scenario_collectives, "ddp": scenario_ddp, "fit": scenario_fit, "mismatch": scenario_mismatch,
     "replicated": lambda d, o: scenario_ddp(d, o, replicated=True), "timeout": scenario_timeout,
     "raise": scenario_raise, "exit": scenario_exit, "nccl": scenario_nccl,
     "nccl_on_cpu": scenario_nccl_on_cpu, "no_sync": scenario_no_sync, "late": scenario_timeout,
     "fit_mismatch": scenario_fit_mismatch}[name](dist, out)
