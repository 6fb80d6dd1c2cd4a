"""Shared benchmark machinery: timing, validation, peers, rooflines, one result record per case, the
table printout and the JSON files under bench/results/<machine>/<family>.json (written atomically).

A suite builds its cases and hands each to `run_case`, which checks ember's output (and each peer's)
against a float64 reference first, skips the timing of anything that fails, then times ember and
every peer in the same process with the same thread count and fills one `Result`."""
from __future__ import annotations

import glob
import json
import math
import os
import platform
import re
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import ember as em

NAN = float("nan")
EPS32 = 2.0 ** -24  # float32 unit roundoff: the scale of every tolerance below


class SuiteUnavailable(RuntimeError):
    """A suite cannot run here (a missing peer or tool, a device it does not measure): `python -m
    ember bench` run over every suite reports it as skipped and goes on; named alone, it fails."""


@dataclass
class Result:
    family: str
    case: str
    shape: str
    dtype: str
    device: str
    ms: float               # median over the repeats
    rate: float             # GB/s or GFLOP/s, per `unit`
    unit: str
    peer: str = ""          # the fastest peer that passed its check
    peer_ms: float = NAN
    peer_rate: float = NAN
    roofline: float = NAN   # the machine's ceiling in `unit` (NaN: not applicable, e.g. in cache)
    valid: bool = True
    extra: dict = field(default_factory=dict)
    ms_min: float = NAN     # fastest repeat
    peers: dict = field(default_factory=dict)  # every peer timed: name -> rate
    note: str = ""          # why a check failed
    in_cache: bool = False  # the working set fits in the last-level cache: no memory roofline

    def __post_init__(self):
        if not self.peers and self.peer:
            self.peers = {self.peer: self.peer_rate}

    @property
    def ratio(self):  # ember speed / best peer speed (> 1: ember is faster)
        return self.peer_ms / self.ms if self.peer_ms == self.peer_ms and self.ms > 0 else NAN

    @property
    def pct_roofline(self):
        return 100.0 * self.rate / self.roofline if self.roofline == self.roofline else NAN


# ---- timing ---------------------------------------------------------------------------------------

@dataclass
class Timing:
    median_ms: float
    min_ms: float


def sync(device):
    if str(device).startswith("cuda"):
        em.cuda.synchronize()


def _calls_per_sample(fn, device, target_ms=1.0):
    """How many back-to-back calls make one sample last >= target_ms, so that a 10 us kernel is not
    measured at the resolution of the timer."""
    t = time.perf_counter()
    fn()
    sync(device)
    once = (time.perf_counter() - t) * 1e3
    return max(1, min(1000, int(target_ms / max(once, 1e-4))))


_FLUSH = []


def flush_cpu_caches():
    """Evicts the CPU caches by writing a buffer of 4x the last-level cache (at least 128 MiB)."""
    if not _FLUSH:
        _FLUSH.append(np.empty(max(4 * last_level_cache_bytes(), 128 << 20) // 4, np.float32))
    _FLUSH[0].fill(len(_FLUSH))


# A library timed just before (NumPy's OpenBLAS, PyTorch's thread pool) leaves its worker threads
# spinning for up to ~0.1 s after its last call. On a 2-core machine a parallel call made in that
# window waits for a core: a 128^3 ember GEMM right after NumPy's once took 4 ms instead of 0.03.
# Each measurement starts after this pause, so it times the library, not the contention.
SETTLE_S = 0.25


def measure(fn, device="cpu", repeat=20, warmup=3, cold=False):
    """Median and minimum time of one fn() call in ms: after SETTLE_S of quiet, `warmup` untimed
    calls, then `repeat` samples of perf_counter around a calibrated number of calls (synchronizing
    the GPU around each sample). cold=True times single calls with the CPU caches flushed before
    each, so a working set a little larger than the last-level cache is read from memory every
    time, not partly from cache."""
    time.sleep(SETTLE_S)
    for _ in range(warmup):
        fn()
    sync(device)
    number = 1 if cold else _calls_per_sample(fn, device)
    samples = []
    for _ in range(max(1, repeat)):
        if cold:
            flush_cpu_caches()
        t = time.perf_counter()
        for _ in range(number):
            fn()
        sync(device)
        samples.append((time.perf_counter() - t) * 1e3 / number)
    return Timing(statistics.median(samples), min(samples))


def time_ms(fn, device="cpu", repeat=20, warmup=3):
    """The median of `measure`, for suites that need one number."""
    return measure(fn, device, repeat, warmup).median_ms


# ---- validation -----------------------------------------------------------------------------------

def as_numpy(x):
    """A float64 NumPy copy of an ember Array/Tensor, a PyTorch tensor, a NumPy array or a scalar."""
    if isinstance(x, em._C.Array):
        x = em.Tensor._wrap(x)
    if isinstance(x, em.Tensor):
        return x.cpu().numpy().astype(np.float64)
    if hasattr(x, "detach"):  # torch.Tensor
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def check_close(got, ref, tol):
    """(ok, message): |got - ref| <= tol elementwise; tol is a scalar or an array shaped like ref."""
    got = as_numpy(got)
    if got.shape != np.shape(ref):
        return False, f"shape {got.shape} != reference {np.shape(ref)}"
    err = np.abs(got - ref)
    bound = np.broadcast_to(np.asarray(tol, dtype=np.float64), err.shape)
    if np.all(err <= bound):
        return True, ""
    i = int(np.argmax(err - bound))
    return False, (f"max error {err.max():.3g} above tolerance at flat index {i}: "
                   f"got {got.flat[i]!r}, want {np.ravel(ref)[i]!r}, tol {bound.flat[i]:.3g}")


# ---- the machine ----------------------------------------------------------------------------------

def cpu_model():
    """The CPU's marketing name (/proc/cpuinfo), or what `platform` knows elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            if m:
                return m.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def last_level_cache_bytes():
    """Size of the largest CPU cache (sysfs), 0 when unknown."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        with open(path) as f:
            text = f.read().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes, default=0)


def machine_name(device="cpu"):
    """A slug naming the results folder: CPU model + core count, or the GPU's name."""
    if str(device).startswith("cuda"):
        torch = torch_peer("cuda")
        name = torch.cuda.get_device_name(0) if torch else "cuda-gpu"
    else:
        name = f"{cpu_model()}-{cpu_count()}c"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ---- rooflines ------------------------------------------------------------------------------------

_ROOF = {}


def _concurrent_gbs(copies, nbytes, reps, work, streams):
    """GB/s of `copies` simultaneous work(src, dst) calls on arrays of nbytes, one per Python thread
    (NumPy releases the GIL inside them), counting `streams` x nbytes per call; best of reps rounds."""
    pairs = [(np.ones(nbytes // 4, np.float32), np.ones(nbytes // 4, np.float32)) for _ in range(copies)]
    best = math.inf
    for _ in range(reps):
        start = threading.Barrier(copies + 1)
        threads = [threading.Thread(target=lambda a, b: (start.wait(), work(a, b)), args=p) for p in pairs]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        best = min(best, time.perf_counter() - t0)
    return streams * nbytes * copies / best / 1e9


def _best_of_threads(work, streams, threads):
    """The better of one call and `threads` concurrent calls on 64 MiB arrays (far beyond any cache)."""
    return max(_concurrent_gbs(t, 64 << 20, 10, work, streams) for t in {1, threads})


def memory_bandwidth_gbs(threads=None):
    """The CPU's copy bandwidth, the roofline of memory-bound kernels: np.copyto of 64 MiB float32
    arrays, bytes read + written, measured once per run."""
    threads = threads or em.get_num_threads()
    if ("copy", threads) not in _ROOF:
        _ROOF["copy", threads] = _best_of_threads(lambda a, b: np.copyto(b, a), 2, threads)
    return _ROOF["copy", threads]


def read_bandwidth_gbs(threads=None):
    """The CPU's read-only bandwidth: NumPy's bitwise-or reduction of 64 MiB arrays viewed as uint64
    (the cheapest vectorised read NumPy has; bytes read), measured once per run. Reductions only
    read, and many CPUs read faster than they copy."""
    threads = threads or em.get_num_threads()
    if ("read", threads) not in _ROOF:
        _ROOF["read", threads] = _best_of_threads(lambda a, b: np.bitwise_or.reduce(a.view(np.uint64)), 1, threads)
    return _ROOF["read", threads]


def memory_roofline(read_bytes, write_bytes, device="cpu", torch=None):
    """(GB/s roofline, in_cache) of a bandwidth-bound case that reads and writes these many bytes.

    CPU: reads stream at the measured read bandwidth r and writes at w, where w follows from the
    copy bandwidth c (a copy of n bytes takes n/r + n/w = 2n/c), so the case's ceiling is
    (R + W) / (R/r + W/w): c for a copy, r for a reduction. A working set that fits in the
    last-level cache is not bound by memory: NaN and in_cache=True. GPU: the copy bandwidth."""
    if str(device).startswith("cuda"):
        return device_memory_bandwidth_gbs(torch), False
    if read_bytes + write_bytes <= last_level_cache_bytes():
        return NAN, True
    c, r = memory_bandwidth_gbs(), max(read_bandwidth_gbs(), memory_bandwidth_gbs())
    inv_w = max(2 / c - 1 / r, 1 / r)  # 1/w; w <= r keeps noisy measurements from giving w < 0
    return (read_bytes + write_bytes) / (read_bytes / r + write_bytes * inv_w), False


def measured_rooflines():
    """The ceilings measured so far in this run, for the results file: copy/read GB/s of the CPU,
    fma_core GFLOP/s of one core, gpu_copy GB/s."""
    names = {"copy": "copy_GBps", "read": "read_GBps", "core": "fma_core_GFLOPps", "gpu": "gpu_copy_GBps"}
    return {names[k[0] if isinstance(k, tuple) else k]: v for k, v in _ROOF.items()}


def device_memory_bandwidth_gbs(torch):
    """A GPU's memory roofline: PyTorch's device-to-device copy of 256 MiB (read + written), NaN
    without PyTorch."""
    if torch is None:
        return NAN
    if "gpu" not in _ROOF:
        x = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
        y = torch.empty_like(x)
        ms = measure(lambda: (y.copy_(x), torch.cuda.synchronize()), "cpu", 20).median_ms
        _ROOF["gpu"] = 2 * x.numel() / ms / 1e6
    return _ROOF["gpu"]


def fp32_peak_gflops(threads=None):
    """The CPU's FP32 roofline: the measured FMA rate of one core on the ISA in use (12 independent
    chains, see csrc/cpu/simd/kernels.cpp) times the threads used."""
    threads = threads or em.get_num_threads()
    if "core" not in _ROOF:
        _ROOF["core"] = em._C.fma_gflops_per_core(0.3)
    return _ROOF["core"] * threads


# ---- peers ----------------------------------------------------------------------------------------

def torch_peer(device="cpu"):
    """PyTorch, when installed (and with CUDA for a cuda run), set to ember's thread count."""
    try:
        import torch
    except ImportError:
        return None
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        return None
    torch.set_num_threads(em.get_num_threads())
    return torch


# ---- one case -------------------------------------------------------------------------------------

def run_case(family, case, shape, *, ember, peers, reference, tol, work, unit, device="cpu",
             repeat=20, roofline=NAN, dtype="float32", in_cache=False, cold=False):
    """Validates, then times one case. ember() and each peers[name]() compute the case once and
    return their output; reference is the float64 result and tol the allowed |error| (scalar or
    per element). work is bytes moved (unit GB/s) or flops (GFLOP/s). A failed check is reported in
    `note` and its timing skipped. cold: see `measure`."""
    ok, why = check_close(ember(), reference, tol)
    notes = []
    timing = measure(ember, device, repeat, cold=cold) if ok else Timing(NAN, NAN)
    if not ok:
        notes.append(f"ember check failed: {why}")
    peer_ms = {}
    for name, fn in peers.items():
        peer_ok, peer_why = check_close(fn(), reference, tol)
        if peer_ok:
            peer_ms[name] = measure(fn, device, repeat, cold=cold).median_ms
        else:
            notes.append(f"{name} check failed: {peer_why}")
    best = min(peer_ms, key=peer_ms.get) if peer_ms else ""
    return Result(family, case, shape, dtype, str(device), timing.median_ms, work / timing.median_ms / 1e6, unit,
                  best, peer_ms.get(best, NAN), work / peer_ms[best] / 1e6 if best else NAN, roofline, ok,
                  ms_min=timing.min_ms, peers={k: work / v / 1e6 for k, v in peer_ms.items()}, note="; ".join(notes),
                  in_cache=in_cache)


# ---- output ---------------------------------------------------------------------------------------

def _num(v, width, digits):
    return f"{'-':>{width}}" if v != v else f"{v:>{width}.{digits}f}"


def _roof(r):
    return f"{'cache':>7}" if r.in_cache else _num(r.pct_roofline, 7, 1)


def _peer_width(name):
    return max(10, len(name) + 2)


def print_table(results, file=None, time_unit="ms"):
    """One aligned line per case: shape, ms (median, min), rate, each peer's rate, ember/best peer,
    % of roofline, and whether the check passed."""
    if not results:
        return
    peers = sorted({p for r in results for p in r.peers})
    cw, sw = max(len(r.case) for r in results) + 2, max(len(r.shape) for r in results) + 2
    unit = results[0].unit
    # A suite of microsecond calls (overhead.py) prints us, so that 0.0014 ms reads as 1.400.
    tu, scale = time_unit, {"ms": 1.0, "us": 1e3}[time_unit]
    head = (f"{'case':<{cw}}{'shape':<{sw}}{tu:>9}{'min ' + tu:>9}{unit:>10}"
            + "".join(f"{p:>{_peer_width(p)}}" for p in peers) + f"{'vs best':>9}{'%roof':>7}  check")
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in results:
        line = (f"{r.case:<{cw}}{r.shape:<{sw}}{_num(r.ms * scale, 9, 3)}{_num(r.ms_min * scale, 9, 3)}{_num(r.rate, 10, 1)}"
                + "".join(_num(r.peers.get(p, NAN), _peer_width(p), 1) for p in peers)
                + f"{_num(r.ratio, 9, 2)}{_roof(r)}  {'ok' if r.valid else 'FAILED'}")
        print(line, file=file)
    for r in results:
        if r.note:
            print(f"  {r.case} {r.shape}: {r.note}", file=file)
    if any(r.in_cache for r in results):
        print("  %roof 'cache': the working set fits in the last-level cache (timed warm), so memory bandwidth does "
              "not bound it;\n  larger working sets are timed cold (caches flushed before every call)", file=file)


def _jsonable(v):
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def run_info(device="cpu", **settings):
    """What a results file records about the run besides the results (loadavg, taken when saving,
    shows whether other work shared the machine during the run)."""
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {"machine": machine_name(device), "cpu": cpu_model(), "cpus": cpu_count(), "device": str(device),
            "threads": em.get_num_threads(), "simd": em._C.simd_level(), "ember": em.__version__,
            "numpy": np.__version__, "torch": torch_version, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "loadavg": list(os.getloadavg()),
            "rooflines": measured_rooflines(), **settings}


def default_path(family, device="cpu"):
    suffix = "-cuda" if str(device).startswith("cuda") else ""
    return os.path.join(os.getcwd(), "bench", "results", machine_name(device), f"{family}{suffix}.json")


def write_atomic(path, text):
    """Writes text to path through a temp file in the same folder and a rename, so a reader never sees
    half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def save(results, family, path=None, device="cpu", **settings):
    """Writes {run info, results} as JSON to path (default bench/results/<machine>/<family>.json)."""
    doc = {"family": family, **run_info(device, **settings),
           "results": [dict(asdict(r), ratio=r.ratio, pct_roofline=r.pct_roofline) for r in results]}
    return write_atomic(path or default_path(family, device), json.dumps(_jsonable(doc), indent=1) + "\n")
