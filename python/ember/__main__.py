"""python -m ember info | bench [family ...] [--device cpu|cuda] [--quick] [--json PATH] | demo"""
from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

import ember as em


def info():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    print(f"ember {em.__version__}")
    print(f"  build      : CPU{' + CUDA (' + em._C.cuda_architectures() + ')' if em._C.cuda_compiled() else ' only (built without CUDA)'}")
    print(f"  SIMD level : {em._C.simd_level()}")
    print(f"  threads    : {em.get_num_threads()} (of {os.cpu_count()} CPUs; {cpu})")
    print(f"  GPUs seen  : {em.cuda.device_count()}")
    print(f"  Python {platform.python_version()}, NumPy {np.__version__}")


def bench(args):
    from ember.bench import SUITES
    from ember.bench.harness import print_table, save
    if args.threads:
        em.set_num_threads(args.threads)
    families = args.families or list(SUITES)
    for fam in families:
        if fam not in SUITES:
            sys.exit(f"unknown benchmark family {fam!r}; known: {', '.join(SUITES)}")
    for fam in families:
        print(f"\n== {fam} on {args.device}, {em.get_num_threads()} threads, SIMD {em._C.simd_level()} ==")
        results = SUITES[fam](device=args.device, quick=args.quick)
        print_table(results)
        path = save(results, fam, args.json if len(families) == 1 else None, args.device)
        print(f"saved {path}")
        if fam == "gemm":
            from ember.bench.gemm import plot
            png = plot(results, os.path.splitext(path)[0] + ".png")
            if png:
                print(f"plot  {png}")
        if any(not r.valid for r in results):
            sys.exit(f"{fam}: validation FAILED for some cases (marked NO)")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m ember")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="version, build, SIMD level, threads, GPUs")
    b = sub.add_parser("bench", help="kernel benchmarks next to the best installed peer")
    b.add_argument("families", nargs="*")
    b.add_argument("--device", default="cpu")
    b.add_argument("--quick", action="store_true", help="small sizes (seconds, for tests)")
    b.add_argument("--threads", type=int, default=0)
    b.add_argument("--json", default=None, help="where to save the results (one family)")
    d = sub.add_parser("demo", help="fit a small model with autograd")
    d.add_argument("--epochs", type=int, default=1500)
    args = p.parse_args(argv)
    if args.cmd == "info":
        info()
    elif args.cmd == "bench":
        bench(args)
    else:
        from ember.demo import run
        run(epochs=args.epochs)


if __name__ == "__main__":
    main()
