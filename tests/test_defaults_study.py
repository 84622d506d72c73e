"""benchmarks/defaults_study.py runs and prints its table (a tiny run)."""

import importlib.util
import pathlib
import re

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_a_tiny_study_prints_a_table(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as when run as a script
    path = ROOT / "benchmarks" / "defaults_study.py"
    spec = importlib.util.spec_from_file_location("defaults_study", path)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    with study._one_blas_thread():
        study.main(["--candidates", "default", "--hidden", "4", "--folds", "2",
                    "--patches", "300"])
    out = capsys.readouterr().out
    assert re.search(r"raw pixels .*: 0\.9\d+", out)   # digits, linear model: ~0.96
    rows = [line for line in out.splitlines() if line.startswith("default ")]
    assert len(rows) == 1
    for row in rows:
        accuracy = float(re.search(r"\| (0\.\d+)", row).group(1))
        assert 0.1 < accuracy <= 1.0   # better than chance (10 classes)
    with pytest.raises(SystemExit):
        study.main(["--candidates", "no-such-candidate"])
