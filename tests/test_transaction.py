"""Fit is a transaction (issue 13, parts 2 and 7).

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


def unit_data(m=40, n=6, seed=0):
    return np.random.default_rng(seed).random((m, n))


def backend_module(backend):
    return csae.reference if backend == "python" else pytest.importorskip("csae._engine")


def saved_state(model, tmp_path, name="state.npz"):
    """Everything the model has trained (what save writes), as a dict of
    arrays, for exact comparison."""
    path = tmp_path / name
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key].copy() for key in data.files if key != "hyperparameters"}


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


def failing_epoch(monkeypatch, backend, error, on_call):
    """Make the backend's sgd_epoch raise ``error`` on call number
    ``on_call`` (1-based), counting from now."""
    module = backend_module(backend)
    true_epoch = module.sgd_epoch
    calls = []

    def epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == on_call:
            raise error
        return true_epoch(*args, **kwargs)

    monkeypatch.setattr(module, "sgd_epoch", epoch)


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
        model.partial_fit(unit_data(seed=3))
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
        assert getattr(model, method)(unit_data(seed=3)) is model
    assert_identical(before, saved_state(model, tmp_path))


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

def test_a_weight_decay_blow_up_warns_and_keeps_the_best_epoch(backend, tmp_path):
    """weight_decay=1e6 multiplies W by (1 - 2 lr lambda) = -2e5 per step: the
    objective grows by ~1e10 a step, far past the starting value, without
    becoming inf for many steps.  The first epoch of the fit (a single
    minibatch) completes below the blow-up line, the second crosses it: the
    model keeps the state after the first, the best epoch of the call."""
    model = fitted(backend)
    one_epoch = fitted(backend, weight_decay=1e6, max_epochs=1, batch_size=40)
    with pytest.warns(TrainingDivergedWarning,
                      match="grew.*keeps the state after epoch 1.*lowest objective"):
        model.set_params(weight_decay=1e6, max_epochs=3, batch_size=40).fit(unit_data())
    assert model.n_iter_ == 1
    assert_identical(saved_state(one_epoch, tmp_path, "a.npz"),
                     saved_state(model, tmp_path, "b.npz"))
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
