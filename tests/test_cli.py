"""`python -m ember info | bench | demo` as a user runs them (subprocesses), and the bench harness's
promises: a case is validated before it is timed, a failed check is reported and not timed, results
are saved as JSON, and bench/update_docs.py fills the tables between the markers."""
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ember.bench import harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ember_cli(*args, timeout=60):
    out = subprocess.run([sys.executable, "-m", "ember", *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"python -m ember {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_info_names_the_build():
    text = ember_cli("info")
    for field in ("ember", "build", "SIMD", "threads", "CPU", "GPUs", "NumPy", "Python"):
        assert any(line.startswith(field) for line in text.splitlines()), f"no {field!r} line in:\n{text}"


def test_quick_elementwise_bench_validates_and_saves(tmp_path):
    path = tmp_path / "elementwise.json"
    text = ember_cli("bench", "elementwise", "--repeat", "1", "--quick", "--json", str(path))
    lines = text.splitlines()
    head = next(line for line in lines if line.startswith("case"))
    for column in ("shape", "ms", "min ms", "GB/s", "numpy", "vs best", "%roof", "check"):
        assert column in head, f"no {column!r} column in {head!r}"
    rows = lines[lines.index(head) + 2:]
    cases = [row for row in rows if row.endswith((" ok", " FAILED"))]
    assert len(cases) >= 10 and all(row.endswith(" ok") for row in cases), text
    doc = json.loads(path.read_text())
    assert doc["family"] == "elementwise" and doc["quick"] is True
    for r in doc["results"]:
        assert r["valid"] and r["ms"] > 0 and r["rate"] > 0 and r["peers"].get("numpy", 0) > 0, r


@pytest.mark.slow
def test_overhead_bench_validates_every_case_and_prints_microseconds():
    text = ember_cli("bench", "overhead", "--repeat", "1", "--quick")
    head = next(line for line in text.splitlines() if line.startswith("case"))
    assert " us " in head and "kcall/s" in head, head
    cases = [row for row in text.splitlines() if row.endswith((" ok", " FAILED"))]
    assert len(cases) == 13 and all(row.endswith(" ok") for row in cases), text


def test_failed_check_is_reported_and_not_timed():
    ref = np.arange(4.0)
    r = harness.run_case("t", "wrong", "4", ember=lambda: ref + 1, peers={"numpy": lambda: ref.copy()},
                         reference=ref, tol=0.0, work=32, unit="GB/s", repeat=1)
    assert not r.valid and math.isnan(r.ms) and "ember check failed" in r.note
    assert r.peer == "numpy" and r.peer_rate > 0


def test_update_docs_fills_the_markers(tmp_path):
    spec = importlib.util.spec_from_file_location("update_docs", os.path.join(ROOT, "bench", "update_docs.py"))
    update_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(update_docs)
    r = harness.Result("elementwise", "add", "1024", "float32", "cpu", 0.5, 10.0, "GB/s", "numpy", 1.0, 5.0, 20.0,
                       True, peers={"numpy": 5.0, "torch": 8.0})
    doc = {"machine": "m", "cpu": "c", "device": "cpu", "threads": 2, "simd": "avx2", "ember": "0", "date": "d",
           "results": [dict(vars(r), ratio=r.ratio, pct_roofline=r.pct_roofline)]}
    text = "a\n<!-- bench:elementwise -->\nold\n<!-- /bench:elementwise -->\nb\n"
    new = update_docs.fill(text, {"elementwise": [doc]})
    assert "old" not in new and new.startswith("a\n<!-- bench:elementwise -->\n") and new.endswith("-->\nb\n")
    assert "| add | 1024 | 0.500 | 10.0 | 5.0 | 8.0 | 2.00 | 50.0 | ok |" in new


def test_demo_trains_the_digits_to_97_percent_and_saves(tmp_path):
    """The README's first command: the digits CNN reaches >= 98% test accuracy, and the weights it
    saves load back (into the same architecture) and give the same predictions."""
    import re

    import ember as em
    from ember.demo import build_model, load_split

    out = tmp_path / "demo"
    text = ember_cli("demo", "--out", str(out), "--quiet", timeout=300)
    acc = float(re.search(r"test accuracy ([\d.]+)%", text).group(1))
    assert acc >= 98.0, text
    assert (out / "training_curves.png").exists() or "pip install matplotlib" in text
    model = build_model()
    model(em.zeros(1, 8, 8))  # builds the lazy layers
    model.load_state_dict(em.load(out / "digits_cnn.safetensors"))
    _, x_test, _, y_test = load_split(seed=0)
    model.eval()
    pred = model.predict(x_test).argmax(1)
    assert abs(100 * (pred == y_test).mean() - acc) < 0.01


def test_a_suite_that_cannot_run_here_is_skipped_over_all_and_fails_named(monkeypatch, capsys):
    """Without mpiexec the distributed suite cannot run: `bench` over every suite says so and goes on
    (it used to stop there); `bench distributed` named alone exits with the reason."""
    import ember.__main__ as cli
    import ember.bench
    monkeypatch.setattr(ember.bench, "SUITES", {"distributed": "ember.bench.distributed"})
    monkeypatch.setenv("PATH", "")
    parser = cli._parser()
    cli.bench(parser.parse_args(["bench", "--quick"]))
    assert "skipped distributed: [bench distributed] needs mpiexec and mpi4py" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="needs mpiexec"):
        cli.bench(parser.parse_args(["bench", "--quick", "distributed"]))
