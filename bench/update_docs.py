"""Rewrites the measured tables in docs/ from bench/results/<machine>/<family>.json.

A table lives between `<!-- bench:FAMILY -->` and `<!-- /bench:FAMILY -->`, FAMILY being the JSON
file's name (elementwise, gemm, elementwise-cuda, ...); every machine with results for that family
gets one table there, newest run first. Results of `--quick` runs are skipped. Files are written
atomically (temp file + os.replace). Needs only the standard library.

    python bench/update_docs.py
"""
from __future__ import annotations

import glob
import json
import os
import re
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_NAMES = {"numpy": "NumPy", "torch": "PyTorch"}


def load_results():
    """{family: [run document, ...]} from every results file of a full (not --quick) run."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "bench", "results", "*", "*.json"))):
        with open(path) as f:
            doc = json.load(f)
        if not doc.get("quick"):
            runs.setdefault(os.path.splitext(os.path.basename(path))[0], []).append(doc)
    for docs in runs.values():
        docs.sort(key=lambda d: d.get("date", ""), reverse=True)
    return runs


def num(v, digits=1):
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def peers_of(result):
    """name -> rate of every peer timed (older files only name the best one)."""
    return result.get("peers") or ({result["peer"]: result["peer_rate"]} if result.get("peer") else {})


def caption(doc):
    """Where and how the table was measured: machine, threads, SIMD, versions, load, ceilings."""
    labels = {"copy_GBps": "copy {:.1f} GB/s", "read_GBps": "read {:.1f} GB/s",
              "fma_core_GFLOPps": "FMA {:.1f} GFLOP/s per core", "gpu_copy_GBps": "GPU copy {:.1f} GB/s"}
    measured = [labels[k].format(v) for k, v in (doc.get("rooflines") or {}).items() if k in labels and v]
    parts = [f"`{doc['machine']}`" + (f" ({doc['cpu']})" if doc.get("cpu") else ""), doc["device"],
             f"{doc['threads']} threads", f"SIMD {doc['simd']}", f"ember {doc['ember']}"]
    parts += [f"{PEER_NAMES[k]} {doc[k]}" for k in ("numpy", "torch") if doc.get(k)]
    text = ", ".join(parts) + f"; measured {doc['date']}"
    if doc.get("loadavg"):
        text += f", 1-min load average {doc['loadavg'][0]:.2f} when saved"
    return text + "." + (f" Measured ceilings: {', '.join(measured)}." if measured else "")


def table(doc):
    """One markdown table: a line per case with the rate of ember and of every peer."""
    results = doc["results"]
    units = {r["unit"] for r in results}
    # One unit: it goes in the headers. Mixed (a suite of GFLOP/s and GB/s cases): in each cell.
    unit = units.pop() if len(units) == 1 else "rate"
    peers = sorted({p for r in results for p in peers_of(r)})
    head = ["case", "shape", "ms", f"ember {unit}"] + [f"{PEER_NAMES.get(p, p)} {unit}" for p in peers] + [
        "ember / best peer", "% of roofline", "check"]
    rows = [caption(doc), "", "| " + " | ".join(head) + " |",
            "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 3) + ["---"]) + "|"]
    for r in results:
        roof = "in cache" if r.get("in_cache") else num(r.get("pct_roofline"))
        tag = f" {r['unit']}" if unit == "rate" else ""
        cells = [r["case"], r["shape"], num(r["ms"], 3), num(r["rate"]) + tag]
        cells += [num(peers_of(r).get(p)) + (tag if p in peers_of(r) else "") for p in peers]
        cells += [num(r.get("ratio"), 2), roof, "ok" if r["valid"] else "FAILED"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def section(docs):
    return "\n\n".join(table(doc) for doc in docs)


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def fill(text, runs):
    """text with the body between each family's markers replaced by that family's tables."""
    for family, docs in runs.items():
        pattern = re.compile(rf"(<!-- bench:{re.escape(family)} -->\n).*?(<!-- /bench:{re.escape(family)} -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + section(docs) + "\n" + m.group(2), text)
    return text


def main():
    runs = load_results()
    for md in sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)):
        with open(md) as f:
            text = f.read()
        new = fill(text, runs)
        if new != text:
            write_atomic(md, new)
            print(f"updated {os.path.relpath(md, ROOT)}")


if __name__ == "__main__":
    main()
