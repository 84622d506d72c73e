"""Fit is a transaction.

A fit or partial_fit that fails (MemoryError, a value the backend refuses,
Ctrl-C or divergence before an epoch completes) leaves the model the user had
bit-identical: weights, momentum velocities, random-number state, loss curve
and learned input range.  "Bit-identical" is checked on what ``save``
writes, which is all of that state.
"""

import math
import warnings

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder, TrainingDivergedWarning, TrainingInterruptedWarning
from csae._errors import NonFiniteError
from conftest import failing_epoch


def unit_data(m=40, n=6, seed=0):
    return np.random.default_rng(seed).random((m, n))


def saved_state(model, tmp_path, name="state.npz"):
    """Everything the model has trained (what save writes), as a dict of
    arrays, for exact comparison.  Not ``stop_reason``: it says why the last
    call stopped, and is set even when that call kept the old model."""
    path = tmp_path / name
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key].copy() for key in data.files
                if key not in ("hyperparameters", "stop_reason")}


def assert_identical(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert a[key].dtype == b[key].dtype, key


def fitted(backend, **params):
    settings = dict(solver="sgd", n_hidden=4, momentum=0.5, max_epochs=3, scale_inputs=True,
                    backend=backend, random_state=0)
    settings.update(params)
    return SparseAutoencoder(**settings).fit(unit_data())


# --------------------------------------------------------------------------
# Failures during training leave the old model
# --------------------------------------------------------------------------

@pytest.mark.parametrize("on_call", [1, 2])
def test_memory_error_mid_fit_keeps_the_old_model_bit_identical(backend, monkeypatch,
                                                                 tmp_path, on_call):
    model = fitted(backend)
    before = saved_state(model, tmp_path)
    failing_epoch(monkeypatch, backend, MemoryError("simulated"), on_call)
    with pytest.raises(MemoryError):
        model.set_params(random_state=7, max_epochs=5).fit(unit_data(seed=3))
    assert_identical(before, saved_state(model.set_params(random_state=0, max_epochs=3),
                                         tmp_path))


def test_memory_error_in_partial_fit_keeps_the_old_model(backend, monkeypatch, tmp_path):
    model = fitted(backend)
    before = saved_state(model, tmp_path)
    failing_epoch(monkeypatch, backend, MemoryError("simulated"), 1)
    with pytest.raises(MemoryError):
        model.partial_fit(unit_data())
    assert_identical(before, saved_state(model, tmp_path))


def test_an_error_found_late_by_the_backend_keeps_the_old_model(backend, monkeypatch,
                                                                tmp_path):
    model = fitted(backend)
    before = saved_state(model, tmp_path)
    failing_epoch(monkeypatch, backend, ValueError("refused late"), 1)
    with pytest.raises(ValueError, match="refused late"):
        model.fit(unit_data(seed=3))
    assert_identical(before, saved_state(model, tmp_path))


def test_memory_error_on_an_unfitted_model_leaves_it_unfitted(backend, monkeypatch):
    model = SparseAutoencoder(solver="sgd", n_hidden=3, backend=backend, random_state=0)
    failing_epoch(monkeypatch, backend, MemoryError("simulated"), 1)
    with pytest.raises(MemoryError):
        model.fit(unit_data())
    with pytest.raises(csae.NotFittedError):
        model.transform(unit_data())


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_ctrl_c_before_the_first_epoch_completes_keeps_the_old_model(
        backend, monkeypatch, tmp_path, method):
    model = fitted(backend)
    before = saved_state(model, tmp_path)
    failing_epoch(monkeypatch, backend, KeyboardInterrupt(), 1)
    with pytest.warns(TrainingInterruptedWarning, match="as it was before"):
        assert getattr(model, method)(unit_data()) is model
    assert_identical(before, saved_state(model, tmp_path))
    assert model.stop_reason_ == "interrupted"
    assert csae.load(tmp_path / "state.npz").stop_reason_ == "interrupted"


def test_ctrl_c_after_an_epoch_keeps_the_completed_epochs(backend, monkeypatch, tmp_path):
    reference = fitted(backend, max_epochs=2)
    model = fitted(backend, max_epochs=1)
    failing_epoch(monkeypatch, backend, KeyboardInterrupt(), 3)
    with pytest.warns(TrainingInterruptedWarning, match="epoch 3"):
        model.set_params(max_epochs=10).fit(unit_data())
    # The state after epoch 2, exactly (weights, velocities, rng, curve).
    assert_identical(saved_state(reference, tmp_path, "a.npz"),
                     saved_state(model.set_params(max_epochs=2), tmp_path, "b.npz"))


def test_divergence_keeps_the_old_model(backend, tmp_path):
    model = fitted(backend, decoder="linear", scale_inputs=False)
    before = saved_state(model, tmp_path)
    X = np.random.default_rng(19).normal(0, 100, size=(40, 6))
    with pytest.warns(TrainingDivergedWarning, match="as it was before"):
        model.set_params(learning_rate=1e3, random_state=5, max_epochs=50,
                         batch_size=10).fit(X)
    assert_identical(before, saved_state(model.set_params(learning_rate=0.1,
                                                          random_state=0), tmp_path))


@pytest.mark.parametrize("name, value", [
    ("batch_size", 2**64), ("batch_size", 2**63), ("n_threads", 2**64),
    ("n_threads", 2**31), ("max_epochs", 2**64),
])
def test_huge_counts_are_refused_by_name_before_anything_changes(backend, tmp_path,
                                                                 name, value):
    model = fitted(backend)
    before = saved_state(model, tmp_path)
    for method in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match=name):
            getattr(model.set_params(**{name: value}), method)(unit_data())
        model.set_params(**{name: fitted(backend).get_params()[name]})
    assert_identical(before, saved_state(model, tmp_path))


def test_the_largest_accepted_batch_size_trains_full_batch(backend):
    X = unit_data()
    big = SparseAutoencoder(solver="sgd", n_hidden=3, batch_size=2**63 - 1, max_epochs=2,
                            backend=backend, random_state=0).fit(X)
    full = SparseAutoencoder(solver="sgd", n_hidden=3, batch_size=len(X), max_epochs=2,
                             backend=backend, random_state=0).fit(X)
    np.testing.assert_array_equal(big.encoder_weights_, full.encoder_weights_)


# --------------------------------------------------------------------------
# Part 7: blow-up warning, values that round away, scale_inputs message
# --------------------------------------------------------------------------

def test_a_weight_decay_blow_up_warns_and_keeps_the_old_model(backend, tmp_path):
    """weight_decay=1e6 multiplies W by (1 - 2 lr lambda) = -2e5 per step: the
    objective grows by ~1e10 a step, far past the starting value, without
    becoming inf for many steps.  The first epoch of the fit (a single
    minibatch) completes below the blow-up line (its reported objective is
    the one before its step), the second crosses it.  The weights after the
    first epoch are the best of the call but far worse than the model before
    it (and than the call's own start): the model stays as it was, bit for
    bit, and a fresh model stays unfitted."""
    model = fitted(backend)
    before = saved_state(model, tmp_path)
    with pytest.warns(TrainingDivergedWarning,
                      match="grew.*as it was before this call.*does not beat"):
        model.set_params(weight_decay=1e6, max_epochs=3, batch_size=40).fit(unit_data())
    assert_identical(before, saved_state(model.set_params(weight_decay=1e-4,
                                                          batch_size=100), tmp_path))
    fresh = SparseAutoencoder(solver="sgd", n_hidden=4, weight_decay=1e6, batch_size=40,
                              max_epochs=3, backend=backend, random_state=0)
    with pytest.warns(TrainingDivergedWarning, match="not fitted"):
        fresh.fit(unit_data())
    assert not fresh.__sklearn_is_fitted__()
    # Diverging in the call's first epoch (four minibatches of 10 rows): the
    # old model stays, bit for bit.
    model = fitted(backend)
    before = saved_state(model, tmp_path)
    with pytest.warns(TrainingDivergedWarning, match="epoch 1: the objective grew.*as it "
                                                     "was before"):
        model.set_params(weight_decay=1e6, max_epochs=3, batch_size=10).fit(unit_data())
    assert_identical(before, saved_state(model.set_params(weight_decay=1e-4,
                                                          batch_size=100), tmp_path))
    # Four updates in the epoch: the blow-up shows within partial_fit's one.
    fresh = SparseAutoencoder(solver="sgd", n_hidden=4, weight_decay=1e6, batch_size=10,
                              backend=backend, random_state=0)
    with pytest.warns(TrainingDivergedWarning):
        fresh.partial_fit(unit_data())
    assert not fresh.__sklearn_is_fitted__()


@pytest.mark.parametrize("params", [
    {}, {"decoder": "linear"}, {"momentum": 0.9}, {"learning_rate": 1.0},
    {"sparsity_weight": 30.0, "sparsity_target": 0.01}, {"batch_size": 1},
    {"dtype": "float32", "learning_rate": 0.5}, {"weight_decay": 0.0, "sparsity_weight": 0.0},
])
def test_normal_runs_never_warn(backend, params):
    X = unit_data(200, 16, seed=4)
    settings = dict(solver="sgd", sparsity_target=0.05, sparsity_weight=3.0, n_hidden=8,
                    max_epochs=20, backend=backend, random_state=0)
    settings.update(params)
    # 20 epochs end at max_epochs before the stopping rule is met: the
    # ConvergenceWarning saying so is expected, nothing else.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=csae.ConvergenceWarning)
        model = SparseAutoencoder(**settings).fit(X)
        for _ in range(3):
            model.partial_fit(X)
    # Scaled-up data on the linear decoder, the one unbounded reconstruction.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=csae.ConvergenceWarning)
        SparseAutoencoder(solver="sgd", n_hidden=8, decoder="linear", learning_rate=1e-4,
                          max_epochs=20, backend=backend, random_state=0).fit(X * 50 - 20)


@pytest.mark.parametrize("dtype, value", [
    ("float32", 5e-324), ("float32", 1e-40), ("float32", 1 - 1e-9),
    ("float64", 5e-324),
])
def test_a_sparsity_target_that_rounds_to_0_or_1_is_refused(backend, tmp_path, dtype, value):
    model = fitted(backend)
    before = saved_state(model, tmp_path)
    with pytest.raises(ValueError, match=f"sparsity_target.*{dtype}"):
        model.set_params(sparsity_target=value, dtype=dtype).fit(unit_data())
    model.set_params(sparsity_target=0.05, dtype="float64")
    assert_identical(before, saved_state(model, tmp_path))


@pytest.mark.parametrize("name, value, dtype", [
    ("learning_rate", 1e-50, "float32"), ("learning_rate", 1e39, "float32"),
    ("momentum", 1 - 1e-9, "float32"), ("weight_decay", 1e39, "float32"),
    ("sparsity_weight", 1e39, "float32"),
])
def test_other_values_that_round_away_in_the_dtype_are_refused(name, value, dtype):
    model = SparseAutoencoder(n_hidden=3, dtype=dtype, **{name: value})
    with pytest.raises(ValueError, match=f"{name}.*{dtype}"):
        model.fit(unit_data())


def test_smallest_normal_sparsity_target_is_accepted():
    tiny = float(np.finfo(np.float32).tiny)
    assert math.isfinite(np.float32(tiny))
    SparseAutoencoder(solver="sgd", n_hidden=3, sparsity_target=tiny, dtype="float32",
                      max_epochs=1, random_state=0).fit(unit_data())


def test_scale_inputs_switched_on_after_fitting_says_why(backend):
    model = SparseAutoencoder(solver="sgd", n_hidden=3, max_epochs=1, backend=backend,
                              random_state=0).fit(unit_data())
    model.set_params(scale_inputs=True)
    with pytest.raises(csae.NotFittedError) as info:
        model.transform(unit_data())
    message = str(info.value)
    assert "by hand" not in message
    assert "scale_inputs=False" in message and "fit" in message


# --------------------------------------------------------------------------
# One divergence rule for every solver and every kind of call
# --------------------------------------------------------------------------

NORMAL = np.random.default_rng(19).normal(0, 1, size=(200, 6))


def linear_model(backend, **params):
    settings = dict(solver="sgd", n_hidden=4, decoder="linear", learning_rate=0.01,
                    batch_size=20, max_epochs=30, tol=0, backend=backend, random_state=0)
    settings.update(params)
    return SparseAutoencoder(**settings).fit(NORMAL)


def test_a_diverging_warm_start_keeps_the_better_model(backend, tmp_path):
    """The finding: a good model warm-started with too large a step completes
    an epoch or two far worse than it was, then blows up.  The best epoch of
    that call (objective in the hundreds) does not beat the model before it
    (about 6.5): the model stays as it was, bit for bit."""
    model = linear_model(backend)
    before = saved_state(model, tmp_path)
    loss_before = model.loss(NORMAL)
    with pytest.warns(TrainingDivergedWarning,
                      match=r"epoch 3\d.*as it was before this call, since the best epoch "
                            r"of this call \(objective .*\) does not beat"):
        model.set_params(warm_start=True, learning_rate=1.1, max_epochs=20).fit(NORMAL)
    assert_identical(before, saved_state(model.set_params(warm_start=False,
                                                          learning_rate=0.01,
                                                          max_epochs=30), tmp_path))
    assert model.loss(NORMAL) == loss_before


def diverging_at(monkeypatch, backend, on_call):
    """From call ``on_call`` on (1-based, counting from now), the backend's
    sgd_epoch raises NonFiniteError, as an update that overflowed."""
    failing_epoch(monkeypatch, backend, NonFiniteError("simulated"), on_call)


@pytest.mark.parametrize("solver, step", [("sgd", 1.0), ("adam", 10.0)])
def test_a_warm_start_that_got_worse_then_diverged_keeps_the_model(backend, monkeypatch,
                                                                   tmp_path, solver, step):
    # One completed epoch with a step far too large (worse than before), then
    # a divergence: the model before the call is kept, for either solver.
    model = linear_model(backend, solver=solver)
    before = saved_state(model, tmp_path)
    diverging_at(monkeypatch, backend, 2)
    with pytest.warns(TrainingDivergedWarning, match="as it was before.*does not beat"):
        model.set_params(warm_start=True, learning_rate=step, max_epochs=5).fit(NORMAL)
    model.set_params(warm_start=False, learning_rate=0.01, max_epochs=30)
    assert_identical(before, saved_state(model, tmp_path))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_warm_start_that_improved_then_diverged_keeps_its_best_epoch(
        backend, monkeypatch, tmp_path, solver):
    # Three improving epochs, then a divergence: the state after the third
    # beats the model before the call, so it is kept (the same state as a
    # warm start of exactly three epochs).
    three_more = linear_model(backend, solver=solver)
    three_more.set_params(warm_start=True, max_epochs=3).fit(NORMAL)
    model = linear_model(backend, solver=solver)
    loss_before = model.loss(NORMAL)
    diverging_at(monkeypatch, backend, 4)
    with pytest.warns(TrainingDivergedWarning,
                      match="keeps the state after epoch 33.*lowest objective"):
        model.set_params(warm_start=True, max_epochs=10).fit(NORMAL)
    assert model.n_iter_ == 33
    assert model.loss(NORMAL) < loss_before
    assert_identical(saved_state(three_more, tmp_path, "a.npz"),
                     saved_state(model.set_params(max_epochs=3), tmp_path, "b.npz"))


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("how", ["weight_decay", "data", "first_step"])
def test_a_non_finite_start_is_a_divergence_for_every_solver(backend, tmp_path, solver,
                                                             how):
    """weight_decay=1e308, or linear-decoder data near 1e154 (whose squared
    error overflows): the objective at the starting weights is not finite.
    weight_decay=1e300: finite there (about 1e301), but its gradient's
    squared norm overflows, so no optimizer can step along it (SciPy's
    L-BFGS-B reported loss_curve_ == [inf], the engine's L-BFGS stays where
    it started; SGD and Adam overflow in their first step).  Nothing trains; a fresh
    model stays unfitted and a fitted one stays bit for bit, with a
    TrainingDivergedWarning and no other warning."""
    if how == "weight_decay":
        params, X = dict(weight_decay=1e308), unit_data(200, 8)
    elif how == "first_step":
        params, X = dict(weight_decay=1e300), unit_data(200, 8)
    else:
        params, X = dict(decoder="linear"), unit_data(200, 8) * 1e154
    settings = dict(solver=solver, n_hidden=4, backend=backend, random_state=0,
                    max_epochs=20)
    fresh = SparseAutoencoder(**settings, **params)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert fresh.fit(X) is fresh
    assert [w.category for w in record] == [TrainingDivergedWarning], record
    if how != "first_step" or solver == "lbfgs":  # SGD and Adam overflow in step 1
        assert "starting weights" in str(record[0].message)
    assert not fresh.__sklearn_is_fitted__()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SparseAutoencoder(**settings, decoder=params.get("decoder", "sigmoid"))
        model.fit(unit_data(200, 8))
    before = saved_state(model, tmp_path)
    calls = [lambda: model.set_params(warm_start=True, **params).fit(X),
             lambda: model.set_params(warm_start=False, **params).fit(X)]
    if solver != "lbfgs":
        calls.append(lambda: model.set_params(warm_start=False, **params).partial_fit(X))
    for call in calls:
        with pytest.warns(TrainingDivergedWarning, match="as it was before"):
            call()
        model.set_params(warm_start=False, weight_decay=1e-4)
        assert_identical(before, saved_state(model, tmp_path))


def test_lbfgs_from_an_overflowing_objective_learns_nothing_and_saves_nothing(tmp_path):
    """The finding's case: L-BFGS at weight_decay=1e300 used to end with
    loss_curve_ == [inf], a model that saved to a file csae.load refused
    (with SciPy's L-BFGS-B), or with its random initial weights as a fitted
    model (the engine's L-BFGS, which cannot step along that gradient)."""
    model = SparseAutoencoder(n_hidden=4, weight_decay=1e300, random_state=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(unit_data(200, 8))
    assert {w.category for w in record} == {TrainingDivergedWarning}
    assert not model.__sklearn_is_fitted__()
    with pytest.raises(csae.NotFittedError):
        model.save(tmp_path / "m.npz")


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("params", [
    dict(learning_rate=1e3, decoder="linear"), dict(learning_rate=1e5, weight_decay=10.0,
                                                    decoder="linear"),
    dict(weight_decay=1e6), dict(weight_decay=1e300), dict(sparsity_weight=1e300),
    dict(weight_decay=1e150, decoder="linear"),
])
def test_a_fitted_model_always_saves_to_a_file_that_loads(backend, tmp_path, solver, params):
    X = np.random.default_rng(19).normal(0, 100, size=(40, 6))
    if params.get("decoder") != "linear":
        X = unit_data()
    model = SparseAutoencoder(solver=solver, n_hidden=4, batch_size=10, max_epochs=20,
                              backend=backend, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
        if solver != "lbfgs":
            model.partial_fit(X)
    if model.__sklearn_is_fitted__():
        model.save(tmp_path / "m.npz")
        loaded = csae.load(tmp_path / "m.npz")
        np.testing.assert_array_equal(loaded.encoder_weights_, model.encoder_weights_)
        assert loaded.loss_curve_ == model.loss_curve_


def test_partial_fit_judges_blow_up_against_the_same_chunk(backend):
    """A later chunk on a larger scale starts from a larger objective; it
    used to be judged against the first chunk's, so every later call warned
    "diverged" and trained nothing."""
    model = SparseAutoencoder(solver="sgd", n_hidden=4, decoder="linear", learning_rate=1e-3,
                              backend=backend, random_state=0)
    model.partial_fit(unit_data(200, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            model.partial_fit(unit_data(200, 8, seed=1) * 1000)
    assert model.n_iter_ == 4



def test_partial_fit_refuses_a_changed_n_hidden(backend, tmp_path):
    model = SparseAutoencoder(solver="sgd", n_hidden=4, backend=backend, random_state=0)
    model.partial_fit(unit_data())
    before = saved_state(model, tmp_path)
    with pytest.raises(ValueError, match=r"4 hidden units, but n_hidden=8.*Call fit"):
        model.set_params(n_hidden=8).partial_fit(unit_data())
    model.set_params(n_hidden=4)
    assert_identical(before, saved_state(model, tmp_path))
    # fit honours it (a new model of 8 units), which saves and loads.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs learn little
        model.set_params(n_hidden=8, max_epochs=2).fit(unit_data())
    model.save(tmp_path / "m.npz")
    assert csae.load(tmp_path / "m.npz").encoder_weights_.shape == (8, 6)


def test_partial_fit_refuses_data_outside_the_learned_range(backend, tmp_path):
    """With scale_inputs=True the first partial_fit learns the range; a later
    chunk reaching 3 times further used to train the sigmoid decoder on
    targets up to 3.02, silently."""
    X = unit_data(200, 8)
    model = SparseAutoencoder(solver="sgd", n_hidden=4, scale_inputs=True, backend=backend,
                              random_state=0)
    model.partial_fit(X)
    before = saved_state(model, tmp_path)
    lo, hi = X.min(axis=0), X.max(axis=0)
    for bad in (X * 3, X - 1):
        with pytest.raises(ValueError, match=rf"learned.*feature 0 was learned on "
                                             rf"\[{lo[0]:.6g}, {hi[0]:.6g}\]"):
            model.partial_fit(bad)
        with pytest.raises(ValueError, match="learned"):  # a warm start too
            model.set_params(warm_start=True, max_epochs=2).fit(bad)
        model.set_params(warm_start=False)
    assert_identical(before, saved_state(model, tmp_path))
    # The range's own ends are in it; the linear decoder takes anything.
    model.partial_fit(np.vstack([lo, hi]))
    linear = SparseAutoencoder(solver="sgd", n_hidden=4, scale_inputs=True, backend=backend,
                               decoder="linear", random_state=0)
    linear.partial_fit(X)
    linear.partial_fit(X * 3)
    assert linear.n_iter_ == 2
    # loss and score still take held-out data a little outside the range.
    assert np.isfinite(model.score(unit_data(200, 8, seed=5)))


def test_cli_train_that_learns_nothing_exits_1_and_saves_nothing(tmp_path, capsys):
    """`csae train --lambda 1e300` used to exit 0 and write a model that
    `csae info` then refused (exit 2)."""
    from csae.cli import main
    np.save(tmp_path / "x.npy", unit_data(200, 8))
    out = tmp_path / "m.npz"
    status = main(["train", str(tmp_path / "x.npy"), "--hidden", "4", "--lambda", "1e300",
                   "--seed", "0", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status == 1
    assert "diverged" in err and "nothing saved" in err and ".;" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_ctrl_c_while_the_starting_objective_is_measured_keeps_the_model(
        backend, monkeypatch, tmp_path, solver):
    from csae import _backends
    model = fitted(backend, solver=solver)
    before = saved_state(model, tmp_path)

    def interrupted(self, params, X, **hyper):
        raise KeyboardInterrupt

    # (SGD measures the objective, L-BFGS the objective and its gradient.)
    monkeypatch.setattr(_backends.Backend, "objective", interrupted)
    monkeypatch.setattr(_backends.Backend, "objective_and_gradients", interrupted)
    with pytest.warns(TrainingInterruptedWarning, match="as it was before") as record:
        assert model.fit(unit_data()) is model
    assert record[0].filename == __file__
    assert_identical(before, saved_state(model, tmp_path))
