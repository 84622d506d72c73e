"""scikit-learn's newer conventions: set_output,
feature_names_in_, column-name checks, DataFrames with non-numeric columns."""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder

pd = pytest.importorskip("pandas")


def frame(m=30, columns=("a", "b", "c", "d"), seed=0):
    data = np.random.default_rng(seed).random((m, len(columns)))
    return pd.DataFrame(data, columns=list(columns), index=np.arange(100, 100 + m))


def model(backend="c", **params):
    settings = dict(solver="sgd", n_hidden=3, max_epochs=2, backend=backend, random_state=0)
    settings.update(params)
    return SparseAutoencoder(**settings)


def test_set_output_pandas_gives_named_columns_and_keeps_the_index(backend):
    X = frame()
    m = model(backend).set_output(transform="pandas").fit(X)
    H = m.transform(X)
    assert isinstance(H, pd.DataFrame)
    assert list(H.columns) == ["sparseautoencoder0", "sparseautoencoder1",
                               "sparseautoencoder2"]
    assert list(H.index) == list(X.index)
    # The values are those of the default output, computed independently by
    # the reference backend.
    ref = model("python").fit(X.to_numpy())
    np.testing.assert_allclose(H.to_numpy(), ref.transform(X.to_numpy()), rtol=1e-10)
    H2 = m.fit_transform(X)
    assert isinstance(H2, pd.DataFrame) and list(H2.index) == list(X.index)
    assert isinstance(m.set_output(transform="default").transform(X), np.ndarray)


def test_set_output_none_changes_nothing():
    m = model().set_output(transform="pandas")
    assert m.set_output() is m
    assert isinstance(m.fit(frame()).transform(frame()), pd.DataFrame)


def test_polars_output_when_polars_is_installed():
    pl = pytest.importorskip("polars")
    X = frame()
    H = model().set_output(transform="polars").fit(X).transform(X)
    assert isinstance(H, pl.DataFrame)
    assert H.columns == ["sparseautoencoder0", "sparseautoencoder1", "sparseautoencoder2"]


@pytest.mark.parametrize("value", ["xarray", "Pandas", 1, ["pandas"]])
def test_an_unknown_set_output_value_lists_the_choices(value):
    m = model()
    with pytest.raises(ValueError, match="'default', 'pandas', 'polars'"):
        m.set_output(transform=value)


def test_pipeline_set_output_pandas_with_csae_inside():
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler
    X = frame(40)
    pipe = Pipeline([("scale", MinMaxScaler()), ("sae", model())]).set_output(
        transform="pandas")
    H = pipe.fit_transform(X)
    assert isinstance(H, pd.DataFrame)
    assert list(H.columns) == list(pipe.get_feature_names_out())
    assert list(H.index) == list(X.index)
    assert isinstance(pipe.transform(X), pd.DataFrame)


def test_sklearn_global_transform_output_is_honoured():
    sklearn = pytest.importorskip("sklearn")
    X = frame()
    m = model().fit(X.to_numpy())
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(m.transform(X.to_numpy()), pd.DataFrame)
        assert isinstance(m.transform(X.to_numpy()[:1].copy()), pd.DataFrame)  # fast path too
    assert isinstance(m.transform(X.to_numpy()), np.ndarray)


def test_set_output_without_scikit_learn_loaded(tmp_path):
    """Importing csae and using set_output never imports scikit-learn."""
    script = (
        "import sys, numpy as np, pandas as pd\n"
        "import csae\n"
        "X = pd.DataFrame(np.random.default_rng(0).random((20, 3)), columns=list('xyz'))\n"
        "m = csae.SparseAutoencoder(n_hidden=2, max_epochs=1, random_state=0)\n"
        "H = m.set_output(transform='pandas').fit(X).transform(X)\n"
        "assert type(H).__name__ == 'DataFrame', type(H)\n"
        "assert 'sklearn' not in sys.modules\n"
        "print('OK')\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(csae.__file__)))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.stdout.strip() == "OK", out.stderr


def test_feature_names_in_from_string_columns_only(backend):
    m = model(backend).fit(frame())
    assert m.feature_names_in_.dtype == object
    assert list(m.feature_names_in_) == ["a", "b", "c", "d"]
    assert not hasattr(model(backend).fit(frame().to_numpy()), "feature_names_in_")
    int_columns = pd.DataFrame(frame().to_numpy())  # names 0..3: not strings
    assert not hasattr(model(backend).fit(int_columns), "feature_names_in_")
    with pytest.raises(TypeError, match="string names"):
        model(backend).fit(frame().rename(columns={"a": 7}))
    # partial_fit takes names on its first call.
    assert list(model(backend).partial_fit(frame()).feature_names_in_) == list("abcd")


def test_other_column_names_are_refused_as_in_sklearn(backend):
    m = model(backend).fit(frame())
    for method in ("transform", "reconstruct", "loss", "score", "partial_fit"):
        with pytest.raises(ValueError, match="unseen at fit time:\n- z"):
            getattr(m, method)(frame(columns=("z", "b", "c", "d")))
        with pytest.raises(ValueError, match="same order"):
            getattr(m, method)(frame(columns=("b", "a", "c", "d")))


def test_names_on_one_side_only_warn(backend):
    fitted_with_names = model(backend).fit(frame())
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        fitted_with_names.transform(frame().to_numpy())
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        fitted_with_names.transform(np.ascontiguousarray(frame().to_numpy()[:1]))
    fitted_without = model(backend).fit(frame().to_numpy())
    with pytest.warns(UserWarning, match="X has feature names, but"):
        fitted_without.transform(frame())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted_with_names.transform(frame())


def test_get_feature_names_out_checks_input_features():
    m = model().fit(frame())
    names = ["sparseautoencoder0", "sparseautoencoder1", "sparseautoencoder2"]
    assert list(m.get_feature_names_out()) == names
    assert list(m.get_feature_names_out(["a", "b", "c", "d"])) == names
    with pytest.raises(ValueError, match="feature_names_in_"):
        m.get_feature_names_out(["a", "b", "c", "x"])
    with pytest.raises(ValueError, match="length"):
        model().fit(frame().to_numpy()).get_feature_names_out(["a"])


@pytest.mark.parametrize("column, values", [
    ("when", pd.date_range("2020-01-01", periods=30)),
    ("label", ["x"] * 30),
    ("kind", pd.Categorical(["p", "q"] * 15)),
])
def test_non_numeric_columns_are_refused_by_name(backend, column, values):
    X = frame()
    X[column] = values
    fitted = model(backend).fit(frame())
    before = fitted.encoder_weights_.copy()
    for call in (lambda: model(backend).fit(X), lambda: fitted.fit(X),
                 lambda: fitted.transform(X)):
        with pytest.raises(ValueError, match=f"column '{column}'"):
            call()
    np.testing.assert_array_equal(fitted.encoder_weights_, before)


def test_numeric_columns_of_any_kind_are_accepted():
    X = frame()
    X["n"] = pd.array(np.arange(30) % 2, dtype="Int64")
    X["flag"] = np.arange(30) % 2 == 0
    X["o"] = np.linspace(0, 1, 30).astype(object)
    assert model().fit(X).transform(X).shape == (30, 3)


def test_pickle_keeps_output_setting_and_names():
    m = model().set_output(transform="pandas").fit(frame())
    copy = pickle.loads(pickle.dumps(m))
    assert list(copy.feature_names_in_) == list("abcd")
    assert isinstance(copy.transform(frame()), pd.DataFrame)
