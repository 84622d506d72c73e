"""examples/deep_digits.py: UFLDL's deep-network experiment on the digits.

A short run checks that the example works end to end, that its table has
every row, and that fine-tuning beats the frozen stacked features on the
default 64-30-20-10 network (docs/deep.md reports the full run).
"""

import importlib.util
import pathlib
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _example():
    path = ROOT / "examples" / "deep_digits.py"
    spec = importlib.util.spec_from_file_location("deep_digits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_as_rows_scales_any_images_to_the_unit_interval():
    ex = _example()
    images = np.arange(2 * 3 * 4, dtype=np.int64).reshape(2, 3, 4) * 5 - 7
    X = ex.as_rows(images)
    assert X.shape == (2, 12) and X.min() == 0 and X.max() == 1
    np.testing.assert_allclose(X[0, 1] - X[0, 0], 5 / (5 * 23))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_fine_tuning_beats_frozen_features():
    from sklearn.datasets import load_digits
    ex = _example()
    digits = load_digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ex.run(digits.images, digits.target, seed=0, max_iter=150)
    assert set(result) == {key for key, _ in ex.ROWS}
    assert all(0.1 < v <= 1 for v in result.values())
    assert result["after"] > result["frozen"] + 0.02
    assert result["after"] > result["before"]
    text = ex.table([result])
    assert text.count("\n| ") == len(ex.ROWS) and "Fine-tuning against" in text
