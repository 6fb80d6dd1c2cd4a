"""python -m ember info | bench [family ...] [--json PATH] [--repeat N] [--threads N] [--device cpu|cuda]
[--quick] [--sweep [--only TEXT]] | demo"""
from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

import ember as em


def _build():
    if em.cuda.is_compiled():
        return f"CPU + CUDA (architectures {em._C.cuda_architectures() or 'default'})"
    return "CPU only (built without CUDA)"


def info():
    from ember.bench.harness import cpu_count, cpu_model, last_level_cache_bytes
    print(f"ember    {em.__version__}")
    print(f"build    {_build()}")
    print(f"SIMD     {em._C.simd_level()} (EMBER_SIMD=avx2|portable caps it)")
    print(f"threads  {em.get_num_threads()} OpenMP threads")
    print(f"CPU      {cpu_model()}, {cpu_count()} cores, {last_level_cache_bytes() >> 20} MiB last-level cache")
    print(f"GPUs     {em.cuda.device_count()}")
    print(f"NumPy    {np.__version__}")
    print(f"Python   {platform.python_version()} ({sys.executable})")


def _families(names):
    from ember.bench import SUITES
    unknown = [f for f in names if f not in SUITES]
    if unknown:
        sys.exit(f"unknown benchmark family {', '.join(unknown)}; known: {', '.join(SUITES)}")
    return names or list(SUITES)


def _bench_one(family, args, json_path):
    """Runs one suite, prints its table, saves it (unless --quick without --json); False if a check failed."""
    from ember.bench import harness, load
    suite = load(family)
    print(f"\n== {family} on {args.device}: {em.get_num_threads()} threads, SIMD {em._C.simd_level()}, "
          f"{args.repeat} repeats ==", flush=True)
    if args.sweep:  # the shape sweep of the suite (gemm): printed with its worst and median ratios
        if not hasattr(suite, "sweep"):
            sys.exit(f"--sweep: the {family} suite has no shape sweep")
        results = suite.sweep(repeat=args.repeat, only=args.only)
        family = f"{family}-sweep"
    else:
        results = suite.run(device=args.device, quick=args.quick, repeat=args.repeat)
    harness.print_table(results, time_unit=getattr(suite, "TIME_UNIT", "ms"))
    for line in (suite.sweep_summary(results) if args.sweep else []):
        print(line)
    if args.quick and not json_path:
        print("(--quick: results not saved)")
    else:
        path = harness.save(results, family, json_path, args.device, quick=args.quick, repeat=args.repeat)
        print(f"saved {os.path.relpath(path)}")
        if hasattr(suite, "plot"):
            png = suite.plot(results, os.path.splitext(path)[0] + ".png")
            if png:
                print(f"plot  {os.path.relpath(png)}")
    failed = [r for r in results if not r.valid]
    for r in failed:
        print(f"VALIDATION FAILED: {family} {r.case} {r.shape}: {r.note}", file=sys.stderr)
    return not failed


def bench(args):
    if args.threads:
        em.set_num_threads(args.threads)
    from ember.bench.harness import SuiteUnavailable
    families = _families(args.families)
    if args.json and len(families) > 1:
        sys.exit("--json names one file: give one family with it")
    ok = []
    for family in families:
        try:
            ok.append(_bench_one(family, args, args.json))
        except SuiteUnavailable as e:  # every suite: skip this one and go on; a named one: fail
            if args.families:
                sys.exit(str(e))
            print(f"skipped {family}: {e}", flush=True)
    if not all(ok):
        sys.exit(1)


def _parser():
    p = argparse.ArgumentParser(prog="python -m ember", description="ember: info, benchmarks, demo")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="version, build, SIMD level, threads, CPU, GPUs")
    b = sub.add_parser("bench", help="kernel benchmarks next to the installed peers (validated first)")
    b.add_argument("families", nargs="*", help="suites to run (default: all)")
    b.add_argument("--json", help="save to this file instead of bench/results/<machine>/<family>.json")
    b.add_argument("--repeat", type=int, default=20, help="timed samples per case (median and min reported)")
    b.add_argument("--threads", type=int, default=0, help="CPU threads for ember and PyTorch (default: all)")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--quick", action="store_true", help="small sizes, seconds in all; not saved without --json")
    b.add_argument("--sweep", action="store_true", help="gemm: the shape sweep (odd, tall-skinny, small K, batched, "
                   "transposed, strided), ember/NumPy/PyTorch interleaved, with the worst and median ratios")
    b.add_argument("--only", help="with --sweep: only the cases whose name contains this")
    d = sub.add_parser("demo", help="train a CNN on the shipped handwritten digits; save weights and curves")
    d.add_argument("--epochs", type=int, default=30, help="at most this many (early stopping ends sooner)")
    d.add_argument("--out", default="ember-demo", help="folder for the weights and the PNG (default ./ember-demo)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.cmd == "info":
        info()
    elif args.cmd == "bench":
        bench(args)
    else:
        from ember.demo import run
        run(epochs=args.epochs, seed=args.seed, out_dir=args.out, verbose=0 if args.quiet else 1)


if __name__ == "__main__":
    main()
