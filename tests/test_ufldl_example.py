"""examples/ufldl_sparse_autoencoder.py: UFLDL's exercise on scikit-learn's
sample photographs.

A short run (a few seconds) checks that the example works end to end and
that its numbers make sense; the full 400-iteration run, which takes
5 to 10 seconds of CPU time, is marked slow but runs by default (and in CI):
it checks the outcome docs/ufldl.md reports.  Noise filters give an
orientation concentration of about 0.15 and no filter localised and
oriented (tests/test_filters.py), so the thresholds here say "not noise"
and "edge detectors" with margin.
"""

import importlib.util
import pathlib

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")
pytest.importorskip("matplotlib")

ROOT = pathlib.Path(__file__).resolve().parent.parent
RHO = 0.01


def _example():
    path = ROOT / "examples" / "ufldl_sparse_autoencoder.py"
    spec = importlib.util.spec_from_file_location("ufldl_sparse_autoencoder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_patches_follow_the_recipe():
    X = _example().ufldl_patches(n_patches=500, random_state=0)
    assert X.shape == (500, 64)
    assert X.min() >= 0.1 and X.max() <= 0.9
    # Each patch's mean was removed before the affine map to [0.1, 0.9],
    # so every patch has the same mean, 0.5, unless truncation bit.
    assert np.median(np.abs(X.mean(axis=1) - 0.5)) < 1e-3


def test_a_short_run_gives_a_picture_and_sensible_numbers(tmp_path, capsys):
    example = _example()
    out = tmp_path / "filters.png"
    results = example.main(["--iterations", "60", "--patches", "2000", "--output", str(out)])
    printed = capsys.readouterr().out
    assert _is_png(out)
    for words in ("60 L-BFGS iterations", "final objective", "against rho = 0.01",
                  "localised and oriented"):
        assert words in printed

    model = results["model"]
    assert model.n_iter_ == 60                      # tol=0: every iteration runs
    assert np.isfinite(results["objective"])
    assert results["objective"] < model.loss_curve_[0]
    assert abs(results["mean_activation"].mean() - RHO) < 0.25 * RHO
    # Already far from noise (median 0.15) after 60 iterations.
    assert np.median(results["orientation"]) > 0.4
    assert 0.0 <= results["share"] <= 1.0


@pytest.mark.slow
def test_the_full_exercise_learns_localised_oriented_edges(tmp_path):
    results = _example().run(output=tmp_path / "filters.png", verbose=False)
    assert _is_png(tmp_path / "filters.png")
    assert results["model"].n_iter_ == 400
    # The sparsity penalty holds the mean activation near rho.
    assert abs(results["mean_activation"].mean() - RHO) < 0.15 * RHO
    # Edge detectors: nearly all oriented, and at least 40% localised and
    # oriented (seeds 0, 1 and 2 give 60%, 44% and 52%; without whitening
    # 28%, and without the 3x3 downsampling 24%).
    assert np.mean(results["orientation"] > 0.5) >= 0.8
    assert results["share"] >= 0.4
