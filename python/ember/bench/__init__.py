"""The benchmark harness behind `python -m ember bench`: one module per kernel family, registered in
SUITES below (adding a family = its file + one line here). Each suite module has
`run(device, quick, repeat) -> [harness.Result]` and may have `plot(results, path)`. Every suite
validates ember against a float64 reference before timing it, times ember and the installed peers in
the same run, and reports rates, ratios and the percentage of the roofline (harness.py)."""
from __future__ import annotations

import importlib

SUITES = {
    "elementwise": "ember.bench.elementwise",  # binary/unary ops and reductions, GB/s
    "gemm": "ember.bench.gemm",                # matmul, GFLOP/s
    "conv": "ember.bench.conv",                # conv2d forward and forward+backward, GFLOP/s
    "rnn": "ember.bench.rnn",                  # LSTM/GRU forward + backward, GFLOP/s of the GEMM work
    "attention": "ember.bench.attention",      # SDPA forward and forward+backward, GFLOP/s; BERT sentences/s
    "train": "ember.bench.train",              # MLP training step (ms) and the fused Adam update (GB/s)
    "overhead": "ember.bench.overhead",        # per-call cost of small ops, tiny MLPs and a fit step (kcall/s)
    "distributed": "ember.bench.distributed",  # DDP step time and scaling over mpiexec -n 1/2; all-reduce GB/s
    "torch": "ember.bench.torch",              # torch models patched onto ember: step ratio; bridge us per op
}


def load(family):
    """The suite module of a family (imported on demand, so one suite's peers never slow another)."""
    if family not in SUITES:
        raise KeyError(f"unknown benchmark family {family!r}; known: {', '.join(SUITES)}")
    return importlib.import_module(SUITES[family])
