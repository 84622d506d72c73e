"""Bad input gets a clear error before anything changes, and odd-but-valid arrays are accepted unchanged."""

import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import csae
from csae import NotFittedError, SparseAutoencoder

NAMES = ("encoder_weights", "encoder_bias", "decoder_weights", "decoder_bias")


def unit_data(m=20, n=4, seed=0):
    return np.random.default_rng(seed).random((m, n))


def fitted(backend, **kwargs):
    kwargs = {"n_hidden": 3, "max_epochs": 2, "random_state": 0, "solver": "sgd", **kwargs}
    return SparseAutoencoder(backend=backend, **kwargs).fit(unit_data())


def state(model):
    return ([np.array(getattr(model, n + "_")) for n in NAMES], model.loss_curve_)


def assert_same_state(a, b):
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)
    assert a[1] == b[1]


# --------------------------------------------------------------------------
# Data arrays
# --------------------------------------------------------------------------

def _sparse():
    sparse = pytest.importorskip("scipy.sparse")
    return sparse.csr_matrix(unit_data())


BAD_X = [
    ("none", lambda: None, TypeError, "got None"),
    ("string", lambda: "abc", TypeError, "array-like of numbers"),
    ("strings", lambda: [["a", "b"], ["c", "d"]], TypeError, "real numbers"),
    ("bytes", lambda: np.array([[b"a"]]), TypeError, "real numbers"),
    ("dict objects", lambda: np.array([[{"a": 1}, 2.0]], dtype=object), TypeError,
     "real numbers"),
    ("string objects", lambda: np.array([["1.5", 2.0]], dtype=object), TypeError,
     "real numbers"),
    ("complex", lambda: unit_data() + 1j, ValueError, "Complex data not supported"),
    ("0-d", lambda: np.float64(0.5), ValueError, "2-D array"),
    ("1-d", lambda: unit_data()[0], ValueError, "2-D array.*reshape"),
    ("3-d", lambda: unit_data().reshape(2, 10, 4), ValueError, "2-D array"),
    ("no rows", lambda: np.empty((0, 4)), ValueError, "0 sample"),
    ("no columns", lambda: np.empty((5, 0)), ValueError, "0 feature"),
    ("nan", lambda: np.where(np.eye(20, 4) > 0, np.nan, 0.5), ValueError, "NaN or inf"),
    ("inf", lambda: np.where(np.eye(20, 4) > 0, np.inf, 0.5), ValueError, "NaN or inf"),
    ("ragged", lambda: [[0.1, 0.2], [0.3]], ValueError, "could not be read"),
    ("sparse", _sparse, TypeError, "sparse input is not supported"),
    ("too big for float32", lambda: np.full((3, 4), 1e300), ValueError, "float32"),
]


@pytest.mark.parametrize("case", BAD_X, ids=[c[0] for c in BAD_X])
def test_bad_data_is_refused_by_every_method_before_anything_changes(backend, case):
    _, make, error, match = case
    model = fitted(backend, dtype="float32", decoder="linear")
    before = state(model)
    for method in ("fit", "partial_fit", "transform", "reconstruct", "loss",
                   "loss_and_gradients", "score", "fit_transform"):
        with pytest.raises(error, match=match):
            getattr(model, method)(make())
    if case[0] != "too big for float32":  # check_gradients works in float64
        with pytest.raises(error, match=match):
            csae.check_gradients(model, make())
    assert_same_state(before, state(model))


def test_wrong_feature_count_is_refused(backend):
    model = fitted(backend)
    before = state(model)
    X = unit_data(5, 6)
    for method in ("partial_fit", "transform", "reconstruct", "loss", "score"):
        with pytest.raises(ValueError, match="X has 6 features, but SparseAutoencoder "
                                             "is expecting 4 features"):
            getattr(model, method)(X)
    with pytest.raises(ValueError, match="H has 2 hidden units.* expecting 3"):
        model.inverse_transform(np.zeros((5, 2)))
    assert_same_state(before, state(model))


def test_data_outside_the_unit_interval_with_the_sigmoid_decoder(backend):
    model = fitted(backend)
    before = state(model)
    X = unit_data() * 3 - 1
    message = r"outside \[0, 1\].*Rescale.*scale_inputs=True.*decoder='linear'"
    for method in ("fit", "partial_fit", "loss"):
        with pytest.raises(ValueError, match=message):
            getattr(model, method)(X)
    assert_same_state(before, state(model))
    # The three ways out the message names all work.
    model.transform(X)  # encoding any data is fine
    SparseAutoencoder(solver="sgd", n_hidden=2, max_epochs=1, scale_inputs=True,
                      backend=backend).fit(X)
    SparseAutoencoder(solver="sgd", n_hidden=2, max_epochs=1, decoder="linear",
                      backend=backend).fit(X)
    # rounding in the user's own rescaling is tolerated
    SparseAutoencoder(solver="sgd", n_hidden=2, max_epochs=1, backend=backend).fit(
        np.clip(unit_data(), 0, 1) + 1e-12)


# --------------------------------------------------------------------------
# Hyperparameters
# --------------------------------------------------------------------------

BAD_PARAMS = [
    ("n_hidden", 0), ("n_hidden", -3), ("n_hidden", 2.0), ("n_hidden", True),
    ("n_hidden", None), ("n_hidden", "10"),
    ("sparsity_target", 0.0), ("sparsity_target", 1.0), ("sparsity_target", -0.1),
    ("sparsity_target", 1.5), ("sparsity_target", np.nan), ("sparsity_target", "a"),
    ("sparsity_weight", -1.0), ("sparsity_weight", np.inf), ("sparsity_weight", None),
    ("weight_decay", -1e-3), ("weight_decay", np.nan),
    ("learning_rate", 0.0), ("learning_rate", -1.0), ("learning_rate", np.inf),
    ("momentum", 1.0), ("momentum", -0.1), ("momentum", "0.5"),
    ("batch_size", 0), ("batch_size", 2.5), ("batch_size", "10"), ("batch_size", True),
    ("max_epochs", 0), ("max_epochs", 1.5),
    ("shuffle", "yes"), ("shuffle", 1), ("scale_inputs", 1), ("scale_inputs", None),
    ("decoder", "relu"), ("decoder", None), ("backend", "cuda"), ("backend", None),
    ("dtype", "int32"), ("dtype", "float16"), ("dtype", None), ("dtype", "banana"),
    ("dtype", np.int64), ("dtype", complex),
    ("random_state", -1), ("random_state", 2 ** 64), ("random_state", "seed"),
    ("random_state", 1.5),
    ("n_threads", 0), ("n_threads", -1), ("n_threads", 1.5), ("verbose", -1),
]


@pytest.mark.parametrize("name,value", BAD_PARAMS,
                         ids=[f"{n}={v!r}" for n, v in BAD_PARAMS])
def test_bad_hyperparameter_is_named_before_anything_changes(backend, name, value):
    model = fitted(backend)
    before = state(model)
    model.set_params(**{name: value})  # storing never fails (sklearn convention)
    X = unit_data()
    for call in (model.fit, model.partial_fit, model.transform, model.loss):
        with pytest.raises(ValueError, match=name):
            call(X)
    assert_same_state(before, state(model))
    with pytest.raises(ValueError, match=name):
        SparseAutoencoder(**{"backend": backend, name: value}).fit(X)


def test_huge_hidden_layer_is_a_value_error(backend):
    X = unit_data(5, 3)
    for n_hidden in (10 ** 15, 2 ** 62):
        with pytest.raises(ValueError, match="n_hidden"):
            SparseAutoencoder(solver="sgd", n_hidden=n_hidden, backend=backend).fit(X)


def test_batch_larger_than_the_data_is_full_batch(backend):
    X = unit_data(7, 3)
    a = SparseAutoencoder(solver="sgd", n_hidden=2, max_epochs=2, batch_size=10 ** 18,
                          backend=backend, random_state=0).fit(X)
    b = SparseAutoencoder(solver="sgd", n_hidden=2, max_epochs=2, batch_size=7,
                          backend=backend, random_state=0).fit(X)
    np.testing.assert_array_equal(a.encoder_weights_, b.encoder_weights_)


def test_unknown_backend_and_missing_engine_messages(monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        SparseAutoencoder(backend="gpu").fit(unit_data())
    # An engine that failed to build: the error says what to do instead.
    monkeypatch.setitem(sys.modules, "csae._engine", None)
    with pytest.raises(ImportError, match="backend='python'"):
        SparseAutoencoder(backend="c").fit(unit_data())


# --------------------------------------------------------------------------
# Unfitted models
# --------------------------------------------------------------------------

def test_unfitted_model_raises_not_fitted_error(tmp_path):
    model = SparseAutoencoder()
    X = unit_data()
    assert issubclass(NotFittedError, ValueError)
    assert issubclass(NotFittedError, AttributeError)
    calls = [lambda: model.transform(X), lambda: model.inverse_transform(X),
             lambda: model.reconstruct(X), lambda: model.loss(X),
             lambda: model.loss_and_gradients(X), lambda: model.score(X),
             lambda: model.get_feature_names_out(), lambda: model.save(tmp_path / "m"),
             lambda: csae.check_gradients(model, X), lambda: model.n_features_in_,
             lambda: model.loss_curve_, lambda: model.n_iter_,
             lambda: model.encoder_weights_]
    for call in calls:
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()
    for name in NAMES + ("n_features_in_", "loss_curve_", "n_iter_"):
        assert not hasattr(model, name.rstrip("_") + "_")
    assert not (tmp_path / "m").exists()


def test_scaled_model_from_assigned_weights_needs_a_range():
    rng = np.random.default_rng(0)
    model = SparseAutoencoder(solver="sgd", n_hidden=2, scale_inputs=True)
    for name, shape in zip(NAMES, [(2, 3), (2,), (3, 2), (3,)]):
        setattr(model, name + "_", rng.random(shape))
    with pytest.raises(NotFittedError, match="input range"):
        model.transform(unit_data(4, 3))


# --------------------------------------------------------------------------
# Odd but valid arrays: accepted, converted, never modified
# --------------------------------------------------------------------------

def _odd_arrays(X):
    big_endian = X.astype(">f8")
    read_only = X.copy()
    read_only.flags.writeable = False
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    return {
        "fortran": np.asfortranarray(X),
        "strided": wide[:, ::2],
        "reversed": X[::-1][::-1],
        "read-only": read_only,
        "big-endian": big_endian,
        "list": X.tolist(),
        "object": X.astype(object),
    }


def test_odd_layouts_give_the_same_results_and_stay_untouched(backend, dtype):
    X = unit_data()
    model = fitted(backend, dtype=dtype)
    expected = {"transform": model.transform(X), "reconstruct": model.reconstruct(X),
                "loss": model.loss(X)}
    for label, odd in _odd_arrays(X).items():
        snapshot = np.array(odd, dtype=np.float64)
        flags = getattr(odd, "flags", None)
        writeable = None if flags is None else flags.writeable
        for method, want in expected.items():
            got = getattr(model, method)(odd)
            np.testing.assert_array_equal(got, want, err_msg=f"{label} {method}")
        np.testing.assert_array_equal(np.array(odd, dtype=np.float64), snapshot)
        if writeable is not None:
            assert odd.flags.writeable == writeable


def test_integer_and_boolean_data_are_converted(backend):
    X = (unit_data() > 0.5)
    for data in (X, X.astype(np.int32), X.astype(np.uint8), X.astype(np.int64)):
        model = SparseAutoencoder(solver="sgd", n_hidden=2, max_epochs=1, backend=backend,
                                  random_state=0).fit(data)
        np.testing.assert_array_equal(
            model.transform(data), model.transform(X.astype(np.float64)))


def test_fit_never_writes_to_its_input(backend):
    X = unit_data() * 10 - 3
    X.flags.writeable = False
    copy = X.copy()
    model = SparseAutoencoder(solver="sgd", n_hidden=2, max_epochs=2, scale_inputs=True,
                              backend=backend, random_state=0)
    model.fit(X)
    model.partial_fit(X)
    model.transform(X)
    model.inverse_transform(model.transform(X))
    np.testing.assert_array_equal(X, copy)
    assert not X.flags.writeable


# --------------------------------------------------------------------------
# Fuzz: anything thrown at the API either works or raises ValueError/TypeError
# --------------------------------------------------------------------------

_junk = st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=5), st.complex_numbers(),
    st.lists(st.lists(st.one_of(st.floats(), st.integers(-5, 5), st.text(max_size=2)),
                      max_size=4), max_size=4),
    hnp.arrays(dtype=st.sampled_from([np.float64, np.float32, np.int8, np.uint16, np.bool_,
                                      np.complex64, ">f8", "<U3", "S2", object]),
               shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=_junk, method=st.sampled_from(["fit", "partial_fit", "transform", "reconstruct",
                                           "inverse_transform", "loss", "score",
                                           "loss_and_gradients", "fit_transform"]))
def test_fuzzed_input_works_or_raises_a_clear_error(backend, data, method):
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=1, decoder="linear",
                              backend=backend, random_state=0)
    model.fit(unit_data(10, 5))
    try:
        with warnings.catch_warnings():
            # huge values may legitimately make training diverge, and a model
            # fitted on junk may rightly be called degenerate
            for category in (csae.TrainingDivergedWarning, csae.DeadUnitsWarning,
                             csae.LearnedNothingWarning):
                warnings.simplefilter("ignore", category)
            result = getattr(model, method)(data)
    except (ValueError, TypeError) as err:
        assert str(err)  # a message, whatever it is
        return
    if isinstance(result, np.ndarray):
        assert np.isfinite(result).all() or method == "inverse_transform"


_param_junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 40), st.floats(), st.text(max_size=8),
    st.sampled_from(["sigmoid", "linear", "c", "python", "float32", "float64"]),
    st.lists(st.integers(0, 3), max_size=2), st.complex_numbers(),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(SparseAutoencoder().get_params())), value=_param_junk)
def test_fuzzed_hyperparameters_work_or_raise_a_clear_error(backend, name, value):
    model = SparseAutoencoder(solver="sgd", n_hidden=2, max_epochs=2, decoder="linear",
                              backend=backend, random_state=0)
    model.fit(unit_data(10, 3))
    before = state(model)
    model.set_params(**{name: value})
    repr(model)  # never fails, whatever the parameters hold
    try:
        with warnings.catch_warnings():
            # odd values may make training diverge or the model degenerate
            for category in (csae.TrainingDivergedWarning, csae.DeadUnitsWarning,
                             csae.LearnedNothingWarning):
                warnings.simplefilter("ignore", category)
            model.fit(unit_data(10, 3))
    except (ValueError, TypeError) as err:
        assert name in str(err)
        assert_same_state(before, state(model))


# --------------------------------------------------------------------------
# Data checks pinned at their edges: the value at the documented limit is
# accepted, the nearest float beyond it refused, in every way data arrives
# --------------------------------------------------------------------------

# The sigmoid decoder takes data in [0, 1] give or take this much rounding
# (the docstring of csae._validation.check_unit_interval).
SLACK = 1e-6
HIGH_OK, HIGH_BAD = 1 + SLACK, float(np.nextafter(1 + SLACK, 2))
LOW_OK, LOW_BAD = -SLACK, float(np.nextafter(-SLACK, -1))


def _with_value(value, m=20, n=4):
    X = unit_data(m, n)
    X[3, 1] = value
    return X


@pytest.mark.parametrize("ok, bad", [(HIGH_OK, HIGH_BAD), (LOW_OK, LOW_BAD)],
                         ids=["high", "low"])
def test_unit_interval_is_pinned_at_its_edge(ok, bad):
    model = SparseAutoencoder(n_hidden=2, max_epochs=1, solver="sgd", random_state=0)
    model.fit(_with_value(ok))
    model.partial_fit(_with_value(ok))
    model.loss(_with_value(ok))
    before = state(model)
    for method in ("fit", "partial_fit", "loss"):
        with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
            getattr(model, method)(_with_value(bad))
    assert_same_state(before, state(model))


@pytest.mark.parametrize("ok, bad", [(HIGH_OK, HIGH_BAD), (LOW_OK, LOW_BAD)],
                         ids=["high", "low"])
def test_unit_interval_edge_on_a_memory_mapped_file(ok, bad, tmp_path, monkeypatch):
    from csae import _blockwise
    monkeypatch.setattr(_blockwise, "CHUNK_BYTES", 1024)
    for value, fine in ((ok, True), (bad, False)):
        X = _with_value(value, m=300, n=4)
        X[250, 2] = value  # in a later chunk too
        path = tmp_path / f"x{fine}.npy"
        np.save(path, X)
        mapped = np.load(path, mmap_mode="r")
        assert _blockwise.is_out_of_core(mapped)
        model = SparseAutoencoder(n_hidden=2, max_epochs=1, solver="sgd", random_state=0)
        if fine:
            model.fit(mapped)
        else:
            with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
                model.fit(mapped)


@pytest.mark.parametrize("ok, bad", [(HIGH_OK, HIGH_BAD), (LOW_OK, LOW_BAD)],
                         ids=["high", "low"])
def test_unit_interval_edge_on_a_dask_array(ok, bad):
    da = pytest.importorskip("dask.array")
    for value, fine in ((ok, True), (bad, False)):
        X = da.from_array(_with_value(value, m=40), chunks=(10, 4))
        model = SparseAutoencoder(n_hidden=2, max_epochs=1, solver="sgd", random_state=0)
        if fine:
            model.partial_fit(X)
            model.fit(X)
        else:
            for method in ("fit", "partial_fit"):
                with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
                    getattr(model, method)(X)


@pytest.mark.parametrize("side", ["high", "low"])
def test_learned_range_is_pinned_at_its_edge(side):
    # Feature 1 learned on [0, 2]: later data may reach 2 (1 + SLACK) and
    # -2 SLACK, which scale exactly (a power of two) to the unit interval's
    # edge, and no further.
    X = unit_data()
    X[:, 1] = np.linspace(0, 2, len(X))
    model = SparseAutoencoder(n_hidden=2, solver="sgd", scale_inputs=True, random_state=0)
    model.partial_fit(X)
    ok, bad = (2 * HIGH_OK, 2 * HIGH_BAD) if side == "high" else (2 * LOW_OK, 2 * LOW_BAD)
    Y = X.copy()
    Y[3, 1] = ok
    model.partial_fit(Y)
    before = state(model)
    Y[3, 1] = bad
    with pytest.raises(ValueError, match="outside the input range learned"):
        model.partial_fit(Y)
    assert_same_state(before, state(model))


def test_validation_fraction_leaves_one_row_at_its_edge():
    # 10 rows: 0.9 holds out ceil(9.0) = 9 and trains on one; the next float
    # holds out 10 and leaves none.
    X = unit_data(m=10)
    kwargs = dict(n_hidden=2, max_epochs=1, solver="sgd", early_stopping=True,
                  random_state=0)
    model = SparseAutoencoder(validation_fraction=0.9, **kwargs).fit(X)
    assert len(model.validation_loss_curve_) == 1
    with pytest.raises(ValueError, match="leaves none to train on"):
        SparseAutoencoder(validation_fraction=float(np.nextafter(0.9, 1)), **kwargs).fit(X)
