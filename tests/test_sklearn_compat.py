"""scikit-learn compatibility: its own estimator checks, clone, get/set_params,
a Pipeline and a GridSearchCV.  scikit-learn is a test-only dependency."""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from csae import SparseAutoencoder  # noqa: E402

# Representative configurations: the checks feed data on any scale, so the
# sigmoid decoder runs with scale_inputs=True; both backends and dtypes,
# every solver (the second is the default solver, L-BFGS).
CONFIGS = [
    SparseAutoencoder(solver="sgd", n_hidden=3, decoder="linear", scale_inputs=True,
                      max_epochs=5, batch_size=10, learning_rate=0.05),
    SparseAutoencoder(n_hidden=3, decoder="sigmoid", scale_inputs=True, max_epochs=5),
    SparseAutoencoder(solver="sgd", n_hidden=3, decoder="linear", scale_inputs=True,
                      max_epochs=3, backend="python", dtype="float32", momentum=0.5),
    SparseAutoencoder(n_hidden=3, decoder="sigmoid", scale_inputs=True, max_epochs=20,
                      solver="lbfgs"),
    # Adam with the running sparsity estimate (the reference backend, so that
    # the checks run whether or not the C engine has Adam yet), and SGD with
    # early stopping.  (Not warm_start=True: the checks fit one estimator
    # twice and expect the same result, which warm_start rules out, for
    # scikit-learn's own MLP too.)
    SparseAutoencoder(n_hidden=3, decoder="sigmoid", scale_inputs=True, max_epochs=5,
                      solver="adam", learning_rate=0.01, sparsity_estimate="running",
                      backend="python"),
    SparseAutoencoder(solver="sgd", n_hidden=3, decoder="linear", scale_inputs=True,
                      max_epochs=5, batch_size=10, learning_rate=0.05, early_stopping=True,
                      validation_fraction=0.2),
]


def expected_failed_checks(estimator):
    """No check is expected to fail (check_array_api_input skips itself
    unless SCIPY_ARRAY_API is set)."""
    return {}


# SparseAutoencoder deliberately does not inherit sklearn's BaseEstimator
# (scikit-learn is not a runtime dependency); the checks warn about that once
# while being collected, which is not a test failure.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*does not inherit from",
                            category=UserWarning)
    _checks = parametrize_with_checks(CONFIGS, expected_failed_checks=expected_failed_checks)


@_checks
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------
# Parameters, clone, repr
# --------------------------------------------------------------------------

def test_get_params_lists_the_constructor_arguments():
    params = SparseAutoencoder().get_params()
    assert params == {
        "n_hidden": 25, "sparsity_target": 0.01, "sparsity_weight": 6.0,
        "weight_decay": 1e-4, "decoder": "sigmoid", "learning_rate": 0.1,
        "momentum": 0.0, "batch_size": 100, "max_epochs": 1000, "shuffle": True,
        "scale_inputs": False, "dtype": "float64", "backend": "c",
        "random_state": None, "verbose": False, "n_threads": None,
        "solver": "lbfgs", "max_fun": 15000, "tol": 1e-5, "beta_1": 0.9, "beta_2": 0.999,
        "epsilon": 1e-8, "warm_start": False, "early_stopping": False,
        "validation_fraction": 0.1, "n_iter_no_change": 10, "sparsity_estimate": "batch",
        "sparsity_smoothing": 0.1,
    }


def test_set_params_sets_and_rejects_unknown_names():
    model = SparseAutoencoder()
    assert model.set_params(n_hidden=7, decoder="linear") is model
    assert (model.n_hidden, model.decoder) == (7, "linear")
    with pytest.raises(ValueError, match="Invalid parameter 'hidden'"):
        model.set_params(hidden=3)


def test_clone_copies_parameters_not_weights(backend):
    X = np.random.default_rng(0).random((30, 4))
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=2, backend=backend,
                              random_state=0).fit(X)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "encoder_weights_")


def test_repr_shows_only_non_default_parameters():
    assert repr(SparseAutoencoder()) == "SparseAutoencoder()"
    assert (repr(SparseAutoencoder(decoder="linear", n_hidden=8))
            == "SparseAutoencoder(n_hidden=8, decoder='linear')")


def test_score_is_minus_the_loss_and_names_follow_sklearn(backend):
    X = np.random.default_rng(1).random((40, 5))
    model = SparseAutoencoder(solver="sgd", n_hidden=4, max_epochs=2, backend=backend,
                              random_state=0).fit(X)
    assert model.score(X) == -model.loss(X)
    names = model.get_feature_names_out()
    assert list(names) == [f"sparseautoencoder{i}" for i in range(4)]
    assert names.dtype == object


# --------------------------------------------------------------------------
# In scikit-learn's tools
# --------------------------------------------------------------------------

def _two_classes(seed=0, m=120, n=16):
    """Two classes whose samples light up different halves of the features,
    on a scale MinMaxScaler has to fix."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, m)
    X = 0.2 * rng.random((m, n))
    X[y == 0, : n // 2] += 0.8
    X[y == 1, n // 2:] += 0.8
    return 50.0 * X - 7.0, y


def test_pipeline_with_scaler_and_classifier(backend):
    X, y = _two_classes()
    pipe = Pipeline([
        ("scale", MinMaxScaler()),
        # Every training parameter at its default.
        ("sae", SparseAutoencoder(n_hidden=6, backend=backend, random_state=0)),
        ("clf", LogisticRegression()),
    ])
    pipe.fit(X[:80], y[:80])
    # The classes are separable by construction: the hidden code keeps that.
    assert pipe.score(X[80:], y[80:]) >= 0.9
    assert list(pipe[:2].get_feature_names_out()) == [f"sparseautoencoder{i}"
                                                      for i in range(6)]


def test_grid_search_over_hidden_units_and_sparsity_weight(backend):
    X, _ = _two_classes(seed=2, m=90)
    grid = {"n_hidden": [2, 6], "sparsity_weight": [0.1, 3.0]}
    search = GridSearchCV(SparseAutoencoder(solver="sgd", decoder="linear",
                                            scale_inputs=True, max_epochs=10, batch_size=15,
                                            learning_rate=0.05, backend=backend,
                                            random_state=0), grid, cv=3)
    search.fit(X)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["n_hidden"] in (2, 6)
    assert search.best_estimator_.n_hidden == search.best_params_["n_hidden"]


def test_grid_search_inside_a_pipeline(backend):
    X, y = _two_classes(seed=3, m=90)
    pipe = make_pipeline(MinMaxScaler(),
                         SparseAutoencoder(solver="sgd", max_epochs=10, batch_size=15,
                                           learning_rate=0.5, backend=backend, random_state=0),
                         LogisticRegression())
    search = GridSearchCV(pipe, {"sparseautoencoder__n_hidden": [3, 5],
                                 "sparseautoencoder__sparsity_weight": [0.5, 3.0]}, cv=3)
    search.fit(X, y)
    assert search.best_score_ >= 0.9


# scikit-learn defines these checks but parametrize_with_checks does not yield
# them for an estimator outside sklearn: run them here (the polars ones skip
# themselves when polars is not installed).
_OUTPUT_CHECKS = [name for name in (
    "check_set_output_transform", "check_set_output_transform_pandas",
    "check_global_output_transform_pandas", "check_set_output_transform_polars",
    "check_global_set_output_transform_polars", "check_dataframe_column_names_consistency",
    "check_transformer_get_feature_names_out",
    "check_transformer_get_feature_names_out_pandas",
) if hasattr(sklearn.utils.estimator_checks, name)]


@pytest.mark.parametrize("check_name", _OUTPUT_CHECKS)
@pytest.mark.parametrize("estimator", CONFIGS, ids=lambda e: repr(e)[:60])
def test_sklearn_set_output_and_feature_name_checks(estimator, check_name):
    assert len(_OUTPUT_CHECKS) >= 6  # the names did not all move away
    check = getattr(sklearn.utils.estimator_checks, check_name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not inherit from",
                                category=UserWarning)
        # The checks mix DataFrames and arrays on purpose; scikit-learn's own
        # transformers give these two warnings there too.
        warnings.filterwarnings("ignore", message="X (does not have valid|has) feature names",
                                category=UserWarning)
        check(type(estimator).__name__, clone(estimator))
