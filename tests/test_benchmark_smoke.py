"""CI's smoke runs of the benchmarks: `benchmarks/run.py --quick` and short
runs of `lbfgs_fit.py`, `lbfgs_quality.py` and `deep_eval.py` must run end
to end and print their tables.  Speed itself is judged from full runs recorded in BENCHMARKS.md,
never by a timed assertion here."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quick_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
         "--libs", "csae,numpy", "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "train samples/s" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    trained = [r for r in rows if r["metric"] == "train samples/s"]
    assert trained, "no training rows in the report"
    for row in trained:
        # Both libraries really ran (a missing build shows no number).
        assert row["values"].get("csae", 0) > 0 and row["values"].get("numpy", 0) > 0, row


def test_lbfgs_fit_benchmark_runs(tmp_path):
    """benchmarks/lbfgs_fit.py's smoke run: every contender runs its whole
    iteration budget from the same start, in both dtypes, and csae's time is
    split into evaluations and the rest."""
    for module in ("scipy", "threadpoolctl", "torch"):
        pytest.importorskip(module)
    out = tmp_path / "fits.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "lbfgs_fit.py"), "--configs", "S",
         "--iterations", "4", "--repeats", "1", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ratio = faster peer / csae" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    assert sorted(row["dtype"] for row in rows) == ["float32", "float64"]
    for row in rows:
        assert set(row["contenders"]) == {"csae", "scipy", "torch"}, row
        for name, summary in row["contenders"].items():
            assert summary["n_iter"] == 4, (name, summary)
            assert summary["n_eval"] >= 5, (name, summary)
        # One objective, one starting point: the first evaluations agree.
        assert row["first_objective_agree"], row
        csae = row["contenders"]["csae"]
        assert csae["same_start"]
        assert 0 < csae["breakdown"]["evaluations"] < csae["breakdown"]["fit"]
        assert row["ratio"] > 0


def test_deep_eval_benchmark_runs():
    """benchmarks/deep_eval.py's smoke run: one tiny evaluation per
    contender, both dtypes, the table and the ratio column printed."""
    pytest.importorskip("threadpoolctl")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "deep_eval.py"), "--rows", "64",
         "--threads", "1", "--repeats", "1", "--libs", "csae,numpy"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 64 |")]
    # rows, dtype, threads, csae, numpy, ratio: six cells.
    assert len(rows) == 2 and all(line.count("|") == 7 for line in rows), result.stdout


def test_lbfgs_quality_benchmark_runs():
    """benchmarks/lbfgs_quality.py's smoke run: one seed, a few iterations,
    every run's summary line."""
    pytest.importorskip("scipy")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "lbfgs_quality.py"), "--seeds", "1",
         "--iterations", "5"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "float32, 5 iterations, 3 problems" in result.stdout
    for run in ("csae", "scipy", "scipy-ref"):
        assert any(line.startswith(run + " ") and "evaluations" in line
                   for line in result.stdout.splitlines()), result.stdout
