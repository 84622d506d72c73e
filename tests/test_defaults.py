"""The defaults learn useful features on real data, with only ``n_hidden``
chosen.

- scikit-learn's digits: ``MinMaxScaler -> SparseAutoencoder(n_hidden=100)
  -> LogisticRegression`` is at least as accurate as the raw pixels through
  the same scaler and classifier, on the same cross-validation folds.
- natural image patches (the UFLDL example's whitened 8x8 patches of
  scikit-learn's sample photographs): the filters are clearly not noise.
  The thresholds are set against random filters scored in the test itself.

Both fits run to the stopping rule (some hundreds of L-BFGS iterations,
a few seconds each); ``benchmarks/defaults_study.py`` prints the full
comparison with other settings.
"""

import importlib.util
import pathlib
import warnings

import numpy as np
import pytest

from csae import SparseAutoencoder
from csae.filters import localisation, orientation_concentration

pytest.importorskip("scipy")
ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_defaults_on_digits_beat_raw_pixels():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X, y = load_digits(return_X_y=True)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)

    def accuracy(*middle):
        pipe = make_pipeline(MinMaxScaler(), *middle, LogisticRegression(max_iter=5000))
        return cross_val_score(pipe, X, y, cv=folds).mean()

    raw = accuracy()
    with warnings.catch_warnings():
        # The defaults stop by their own rule: no ConvergenceWarning, and no
        # warning about dead units or a model that learned nothing.
        warnings.simplefilter("error")
        learned = accuracy(SparseAutoencoder(n_hidden=100, random_state=0))
    assert raw > 0.9
    assert learned >= raw, (learned, raw)


def _ufldl_patches(n_patches):
    pytest.importorskip("sklearn")
    path = ROOT / "examples" / "ufldl_sparse_autoencoder.py"
    spec = importlib.util.spec_from_file_location("ufldl_sparse_autoencoder", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example.ufldl_patches(n_patches, random_state=0)


class _Filters:
    def __init__(self, weights):
        self.encoder_weights_ = weights


@pytest.mark.slow
def test_defaults_on_natural_patches_learn_filters_not_noise():
    X = _ufldl_patches(10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = SparseAutoencoder(n_hidden=25, random_state=0).fit(X)
    noise = _Filters(np.random.default_rng(0).standard_normal((25, 64)))
    noise_orientation = np.median(orientation_concentration(noise))
    orientation = orientation_concentration(model)
    both = np.mean((orientation > 0.5) & (localisation(model) > 0.5))
    # Random filters: median orientation concentration about 0.1, and
    # almost none both oriented and localised.
    assert noise_orientation < 0.25
    assert np.median(orientation) > 2 * noise_orientation + 0.2
    assert both >= 0.3
    # The sparsity target is met on the patches (rho = 0.01).
    assert np.mean(model.transform(X)) < 0.02
