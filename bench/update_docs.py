"""Rewrites the measured tables in docs/kernels/*.md from bench/results/*/*.json.

A table lives between `<!-- bench:FAMILY -->` and `<!-- /bench:FAMILY -->` (FAMILY as in the JSON
file name, e.g. gemm or elementwise-cuda). Files are written atomically (temp file + rename).

    python bench/update_docs.py
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fmt(v, digits=1):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def table(doc):
    rows = [f"Measured {doc['date']} on `{doc['machine']}` ({doc['device']}, {doc['threads']} threads, "
            f"SIMD {doc['simd']}), ember {doc['ember']}.", "",
            "| case | shape | ms | ember | peer | peer rate | ember/peer | % of roofline | checked |",
            "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for r in doc["results"]:
        rows.append(f"| {r['case']} | {r['shape']} | {fmt(r['ms'], 3)} | {fmt(r['rate'])} {r['unit']} | "
                    f"{r['peer'] or '-'} | {fmt(r['peer_rate'])} | {fmt(r['ratio'], 2)} | {fmt(r['pct_roofline'])} | "
                    f"{'yes' if r['valid'] else 'FAILED'} |")
    return "\n".join(rows)


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    docs = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "bench", "results", "*", "*.json"))):
        with open(path) as f:
            doc = json.load(f)
        docs[os.path.splitext(os.path.basename(path))[0]] = doc
    for md in glob.glob(os.path.join(ROOT, "docs", "kernels", "*.md")):
        text = open(md).read()
        new = text
        for family, doc in docs.items():
            pat = re.compile(rf"(<!-- bench:{re.escape(family)} -->\n).*?(\n<!-- /bench:{re.escape(family)} -->)", re.S)
            new = pat.sub(lambda m: m.group(1) + table(doc) + m.group(2), new)
        if new != text:
            write_atomic(md, new)
            print(f"updated {os.path.relpath(md, ROOT)}")


if __name__ == "__main__":
    main()
