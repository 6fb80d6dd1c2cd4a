"""Data-parallel training on this machine: the time of one training step (forward, cross-entropy,
backward with DDP's bucketed all-reduce, SGD step) of the digits CNN and of a small GPT, for one
process (1 and 2 threads) and for 2 processes of 1 thread under `mpiexec -n 2`, each case at one
global batch; the scaling efficiency (samples/s of N processes / (N x samples/s of 1 process, 1
thread)); and ember's all_reduce next to mpi4py's own Allreduce on the same NumPy buffers, in bus
GB/s (NCCL-tests' convention: bytes x 2(N-1)/N / time, what each link carries in a ring).

The suite starts the runs itself (`python -m ember.bench.distributed --worker ...` under mpiexec)
and validates before it reports: after the timed steps every rank's weights must be bitwise equal,
the GPT's first 2-process step must give the 1-process weights (to float32 summation-order
differences; the CNN's batch norm sees per-rank batch statistics, so only equality across ranks is
checked there), and each all-reduce must return the exact sum of small integers."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from .harness import Result, SuiteUnavailable

NAN = float("nan")
CONFIGS = [("1 proc x 1 thread", 1, 1), ("1 proc x 2 threads", 1, 2), ("2 procs x 1 thread", 2, 1)]
SIZES = [4 << 10, 64 << 10, 1 << 20, 16 << 20]  # all-reduce buffer bytes


# ---- the worker: runs inside every rank ---------------------------------------------------------

def _model_and_batch(case, global_batch):
    import ember as em
    em.manual_seed(0)
    if case == "cnn":
        x, y = em.datasets.load_digits()
        model = em.models.DigitsCNN(dropout=0.0)
        return model, (x / 16.0).astype(np.float32)[:global_batch], y[:global_batch]
    from ember.models.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128))
    tokens = np.random.default_rng(0).integers(0, 65, (global_batch, 65))
    return model, tokens[:, :-1], tokens[:, 1:]


def _step_fn(model, forward, x, y):
    import ember as em
    import ember.nn.functional as F
    opt = em.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xb, yb = em.tensor(np.ascontiguousarray(x)), em.tensor(np.ascontiguousarray(y))

    def step():
        out = forward(xb)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def _weights(model):
    return {k: v.detach().numpy().copy() for k, v in model.named_parameters()}


def worker_steps(case, global_batch, steps, repeat, out):
    import ember as em
    import ember.distributed as dist
    dist.init()
    rank, world = dist.rank(), dist.world_size()
    tag = f"{case}-w{world}-t{em.get_num_threads()}"
    model, x, y = _model_and_batch(case, global_batch)
    share = np.array_split(np.arange(global_batch), world)[rank]
    forward = dist.DistributedDataParallel(model) if world > 1 else model
    step = _step_fn(model, forward, x[share], y[share])
    step()  # the validation step: compared with the 1-process one by the parent
    if rank == 0:
        np.savez(os.path.join(out, f"{tag}-first.npz"), **_weights(model))
    for _ in range(2):
        step()
    samples = []
    for _ in range(repeat):
        dist.barrier()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        dist.barrier()
        samples.append((time.perf_counter() - t) * 1e3 / steps)
    gathered = dist.all_gather_object(_weights(model))
    same = all(np.array_equal(g[k], gathered[0][k]) for g in gathered for k in gathered[0])
    if rank == 0:
        with open(os.path.join(out, f"{tag}.json"), "w") as f:
            json.dump({"ms": statistics.median(samples), "ms_min": min(samples), "ranks_equal": same}, f)


def worker_allreduce(sizes, repeat, out):
    import ember as em
    import ember.distributed as dist
    from mpi4py import MPI
    dist.init()
    rank, world, comm = dist.rank(), dist.world_size(), MPI.COMM_WORLD
    rows = []
    for nbytes in sizes:
        t = em.tensor(np.full(nbytes // 4, rank + 1, dtype=np.float32))
        dist.all_reduce(t)
        view = t.numpy()
        valid = bool(np.all(view == world * (world + 1) / 2))
        view[:] = 0  # timed on zeros: the sums stay 0, whatever the repeat count
        ours = _time_collective(lambda: dist.all_reduce(t), dist.barrier, repeat)
        theirs = _time_collective(lambda: comm.Allreduce(MPI.IN_PLACE, view, MPI.SUM), dist.barrier, repeat)
        rows.append({"bytes": nbytes, "ms": ours[0], "ms_min": ours[1], "peer_ms": theirs[0], "valid": valid})
    if rank == 0:
        with open(os.path.join(out, "allreduce.json"), "w") as f:
            json.dump(rows, f)


def _time_collective(fn, barrier, repeat, calls=20):
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeat):
        barrier()
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t) * 1e3 / calls)
    return statistics.median(samples), min(samples)


# ---- the suite: starts the workers, validates, reports ------------------------------------------

def _launch(n, threads, args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = ["mpiexec", "-n", str(n), sys.executable, "-m", "ember.bench.distributed", "--threads", str(threads), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"[bench distributed] {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def _first_steps_agree(out, case):
    """The 2-process first step against the 1-process one (atol 1e-5 x max|w|, float32 reorderings)."""
    one, two = (np.load(os.path.join(out, f"{case}-w{n}-t1-first.npz")) for n in (1, 2))
    return all(np.allclose(two[k], one[k], rtol=0, atol=1e-5 * max(np.abs(one[k]).max(), 1e-30)) for k in one.files)


def step_cases(case, label, global_batch, steps, repeat, out):
    rows = {}
    for name, world, threads in CONFIGS:
        _launch(world, threads, ["--worker", "steps", "--case", case, "--batch", str(global_batch),
                                 "--steps", str(steps), "--repeat", str(repeat), "--out", out])
        with open(os.path.join(out, f"{case}-w{world}-t{threads}.json")) as f:
            rows[name] = json.load(f)
    base, two_threads = rows["1 proc x 1 thread"], rows["1 proc x 2 threads"]
    agree = case == "cnn" or _first_steps_agree(out, case)
    results = []
    for name, world, threads in CONFIGS:
        r = rows[name]
        rate = global_batch / r["ms"] * 1e3
        efficiency = base["ms"] / (world * r["ms"]) if world > 1 else NAN
        peer = {} if world == 1 else {"peer": "1 proc x 2 threads", "peer_ms": two_threads["ms"],
                                      "peer_rate": global_batch / two_threads["ms"] * 1e3}
        valid = r["ranks_equal"] and (world == 1 or agree)
        note = f"scaling efficiency {efficiency:.2f} vs 1 proc x 1 thread" if world > 1 else ""
        if not valid:
            note = "ranks' weights differ" if not r["ranks_equal"] else "2-process step differs from the 1-process one"
        results.append(Result("distributed", f"{label} step", f"{name}, batch {global_batch}", "float32", "cpu",
                              r["ms"], rate, "samples/s", ms_min=r["ms_min"], valid=valid, note=note,
                              extra={"processes": world, "threads": threads, "efficiency": efficiency}, **peer))
    return results


def allreduce_cases(sizes, repeat, out):
    _launch(2, 1, ["--worker", "allreduce", "--sizes", ",".join(map(str, sizes)), "--repeat", str(repeat),
                   "--out", out])
    with open(os.path.join(out, "allreduce.json")) as f:
        rows = json.load(f)
    bus = 2 * (2 - 1) / 2  # the ring factor 2(N-1)/N for N = 2

    def gbs(nbytes, ms):
        return bus * nbytes / ms / 1e6

    return [Result("distributed", "all_reduce sum (bus GB/s)", f"{r['bytes'] >> 10} KiB, 2 procs", "float32", "cpu",
                   r["ms"], gbs(r["bytes"], r["ms"]), "GB/s", "mpi4py Allreduce", r["peer_ms"],
                   gbs(r["bytes"], r["peer_ms"]), ms_min=r["ms_min"], valid=r["valid"],
                   note="" if r["valid"] else "wrong sum") for r in rows]


def run(device="cpu", quick=False, repeat=20):
    if str(device) != "cpu":
        raise SuiteUnavailable("[bench distributed] measures the MPI (CPU) path; the NCCL path is tested with -m cuda")
    if shutil.which("mpiexec") is None or importlib.util.find_spec("mpi4py") is None:
        raise SuiteUnavailable("[bench distributed] needs mpiexec and mpi4py: pip install 'ember[dist]'")
    repeat = max(3, repeat // 4)  # each sample is several whole steps
    with tempfile.TemporaryDirectory() as out:
        results = step_cases("cnn", "digits cnn", 128 if quick else 256, 5, repeat, out)
        results += step_cases("gpt", "gpt 2x128, T 64", 8 if quick else 16, 3, repeat, out)
        results += allreduce_cases(SIZES[:2] if quick else SIZES, repeat, out)
    return results


# ---- the tables of docs/distributed.md, from a saved results file --------------------------------

MARKERS = ("<!-- distributed_results -->", "<!-- /distributed_results -->")


def markdown(saved):
    """The step and all-reduce tables of a saved results file (its parsed JSON)."""
    results = saved["results"]
    steps = [r for r in results if r["unit"] == "samples/s"]
    lines = [f"{saved['cpu']}, {saved['cpus']} cores, {saved['date']}, load average {saved['loadavg'][0]:.1f} "
             "when saved.", "",
             "| case | " + " | ".join(name for name, _, _ in CONFIGS) + " | efficiency |",
             "|---|" + "---|" * (len(CONFIGS) + 1)]
    for case in dict.fromkeys(r["case"] for r in steps):
        rows = {r["shape"].split(",")[0]: r for r in steps if r["case"] == case}
        batch = next(iter(rows.values()))["shape"].split(", ")[1]
        cells = [f"{rows[n]['ms']:.1f} ms ({rows[n]['rate']:.0f} samples/s)" for n, _, _ in CONFIGS]
        eff = rows[CONFIGS[-1][0]]["extra"]["efficiency"]
        lines.append(f"| {case.removesuffix(' step')}, {batch} | " + " | ".join(cells) + f" | {eff:.2f} |")
    lines += ["", "| all-reduce (sum, float32, 2 procs) | ember `all_reduce` | mpi4py `Allreduce` | ember / mpi4py |",
              "|---|---|---|---|"]
    for r in (r for r in results if r["unit"] == "GB/s"):
        lines.append(f"| {r['shape'].split(',')[0]} | {r['rate']:.1f} GB/s ({r['ms'] * 1e3:.0f} us) | "
                     f"{r['peer_rate']:.1f} GB/s | {r['rate'] / r['peer_rate']:.2f} |")
    return "\n".join(lines)


def rewrite_docs(results_path, doc_path):
    """Replaces the text between MARKERS in doc_path with the tables of results_path."""
    from .harness import write_atomic
    with open(results_path) as f:
        tables = markdown(json.load(f))
    with open(doc_path) as f:
        text = f.read()
    head, rest = text.split(MARKERS[0])
    _, tail = rest.split(MARKERS[1])
    write_atomic(doc_path, f"{head}{MARKERS[0]}\n{tables}\n{MARKERS[1]}{tail}")


def main(argv=None):
    p = argparse.ArgumentParser(description="the distributed benchmark's workers (started by the suite), and "
                                            "--docs RESULTS.json DOC.md to rewrite the doc's tables")
    p.add_argument("--docs", nargs=2, metavar=("RESULTS", "DOC"))
    p.add_argument("--worker", choices=["steps", "allreduce"])
    p.add_argument("--case", choices=["cnn", "gpt"])
    p.add_argument("--batch", type=int)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--sizes", default="")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out")
    a = p.parse_args(argv)
    if a.docs:
        return rewrite_docs(*a.docs)
    import ember as em
    em.set_num_threads(a.threads)
    if a.worker == "steps":
        worker_steps(a.case, a.batch, a.steps, a.repeat, a.out)
    else:
        worker_allreduce([int(s) for s in a.sizes.split(",")], a.repeat, a.out)


if __name__ == "__main__":
    main()
