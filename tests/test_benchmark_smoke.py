"""CI's smoke run of the benchmark (issue 3): `benchmarks/run.py --quick`
must run end to end and print its comparison table.  Speed itself is judged
from full runs recorded in BENCHMARKS.md, never by a timed assertion here."""

import json
import pathlib
import subprocess
import sys

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
