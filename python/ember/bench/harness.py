"""Shared benchmark machinery: timing, rooflines, peers, one result record per case, the table
printout and the JSON files under bench/results/<machine>/<family>.json (written atomically)."""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import ember as em


@dataclass
class Result:
    family: str
    case: str
    shape: str
    dtype: str
    device: str
    ms: float
    rate: float            # GB/s or GFLOP/s, per `unit`
    unit: str
    peer: str = ""
    peer_ms: float = float("nan")
    peer_rate: float = float("nan")
    roofline: float = float("nan")  # the machine's ceiling in `unit`
    valid: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self):  # ember speed / peer speed (> 1: ember is faster)
        return self.peer_ms / self.ms if self.peer_ms == self.peer_ms and self.ms > 0 else float("nan")

    @property
    def pct_roofline(self):
        return 100.0 * self.rate / self.roofline if self.roofline == self.roofline else float("nan")


def sync(device):
    if str(device).startswith("cuda"):
        em.cuda.synchronize()


def time_ms(fn, device="cpu", repeat=20, warmup=3, min_time=0.2):
    """Median wall time of fn() in ms, after warm-up; repeats until min_time seconds have passed."""
    for _ in range(warmup):
        fn()
    sync(device)
    times, start = [], time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start < min_time and len(times) < 10 * repeat):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


_MEMBW = {}


def memory_bandwidth_gbs():
    """The CPU's sustained memory bandwidth (GB/s, bytes read + written) from large NumPy copies:
    the roofline for memory-bound CPU kernels. NumPy's copy is single threaded, so this is measured
    with as many concurrent copies as ember has threads, through ember's own copy kernel too, and
    the best is kept."""
    if "cpu" not in _MEMBW:
        n = 16 << 20  # 64 MiB of float32: far beyond any cache
        a, b = np.ones(n, np.float32), np.empty(n, np.float32)
        ms = time_ms(lambda: np.copyto(b, a), repeat=10)
        x = em.ones(n)
        ms_em = time_ms(lambda: em._C.binary(em._C.BinaryOp.add, x._a, x._a), repeat=10)
        _MEMBW["cpu"] = max(2 * 4 * n / ms / 1e6, 3 * 4 * n / ms_em / 1e6)
    return _MEMBW["cpu"]


_PEAK = {}


def fp32_peak_gflops(threads=None):
    """The CPU's FP32 roofline: the measured FMA rate of one core on the ISA in use (12 independent
    chains, see csrc/cpu/simd/kernels.cpp) times the threads used. On the development machine this
    equals clock x 32 flops/cycle (2 FMA pipes x 8 lanes x 2), e.g. 3.5 GHz x 32 = 113 GFLOP/s."""
    threads = threads or em.get_num_threads()
    if "core" not in _PEAK:
        _PEAK["core"] = em._C.fma_gflops_per_core(0.3)
    return _PEAK["core"] * threads


def torch_peer(device="cpu"):
    """PyTorch, when installed (and with CUDA for a cuda run), using ember's thread count."""
    try:
        import torch
    except ImportError:
        return None
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        return None
    torch.set_num_threads(em.get_num_threads())
    return torch


def machine_name(device="cpu"):
    if str(device).startswith("cuda"):
        torch = torch_peer("cuda")
        name = torch.cuda.get_device_name(0) if torch else "cuda"
    else:
        name = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                m = re.search(r"model name\s*:\s*(.+)", f.read())
                name = m.group(1) if m else name
        except OSError:
            pass
        name = f"{name}-{os.cpu_count()}c"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def print_table(results, file=None):
    head = f"{'case':<26}{'shape':<22}{'dtype':<9}{'ms':>9}{'rate':>10} {'unit':<7}{'peer':<8}{'peer rate':>10}{'ratio':>7}{'%roof':>7}  ok"
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in results:
        print(f"{r.case:<26}{r.shape:<22}{r.dtype:<9}{r.ms:>9.3f}{r.rate:>10.1f} {r.unit:<7}{r.peer:<8}"
              f"{r.peer_rate:>10.1f}{r.ratio:>7.2f}{r.pct_roofline:>7.1f}  {'yes' if r.valid else 'NO'}", file=file)


def save(results, family, path=None, device="cpu"):
    """Writes the results as JSON (temp file + rename, so an interrupted run never leaves half a file)."""
    if path is None:
        root = os.path.join(os.getcwd(), "bench", "results", machine_name(device))
        path = os.path.join(root, f"{family}{'-cuda' if str(device).startswith('cuda') else ''}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    doc = {"family": family, "machine": machine_name(device), "device": str(device),
           "threads": em.get_num_threads(), "simd": em._C.simd_level(), "ember": em.__version__,
           "date": time.strftime("%Y-%m-%d"),
           "results": [dict(asdict(r), ratio=r.ratio, pct_roofline=r.pct_roofline) for r in results]}
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1, default=float)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
