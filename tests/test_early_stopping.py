"""Stopping rules and early stopping (scikit-learn's MLP conventions):
tol / n_iter_no_change on the training objective, a seeded validation split
held out once, the validation curve, the best weights restored, L-BFGS per
iteration, and the bad values refused before anything changes."""

import math
import warnings

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder
from csae import reference as ref
from csae.datasets import make_bars

X = make_bars(300, size=6, random_state=0)
SETTINGS = dict(rho=0.1, beta=1.0, lam=1e-3, decoder="sigmoid")


def model(**kw):
    settings = dict(solver="sgd", n_hidden=10, sparsity_target=0.1, sparsity_weight=1.0,
                    weight_decay=1e-3, learning_rate=0.5, batch_size=20, random_state=0)
    settings.update(kw)
    return SparseAutoencoder(**settings)


def params_of(m):
    return (m.encoder_weights_, m.encoder_bias_, m.decoder_weights_, m.decoder_bias_)


def split(m_rows, fraction, seed_of):
    """The rows early stopping holds out, recomputed from the documented rule
    (ceil(fraction * m) rows drawn by NumPy from the fit's seed)."""
    from csae._validation import derive_seed
    n_val = math.ceil(fraction * m_rows)
    order = np.random.default_rng([derive_seed(seed_of), 0x5A17]).permutation(m_rows)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def first_stop(curve, tol, patience):
    """The 1-based epoch at which the rule stops training on ``curve``: an
    improvement must beat the best so far by more than tol times it."""
    best, count = math.inf, 0
    for k, value in enumerate(curve, start=1):
        count = 0 if value < best - (tol * best if k > 1 else 0.0) else count + 1
        best = min(best, value)
        if count >= patience:
            return k
    return None


# --------------------------------------------------------------------------
# Without early stopping: tol on the training objective
# --------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_tol_stops_when_the_training_objective_stalls(backend, solver):
    m = model(solver=solver, learning_rate=0.5 if solver == "sgd" else 0.01, tol=1e-2,
              n_iter_no_change=3, max_epochs=500, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error", csae.ConvergenceWarning)
        m.fit(X)
    assert m.n_iter_ < 500
    assert first_stop(m.loss_curve_, 1e-2, 3) == m.n_iter_
    assert m.validation_loss_curve_ is None and m.best_epoch_ is None
    assert m.best_validation_loss_ is None


def test_tol_zero_trains_exactly_max_epochs_without_a_warning(backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error", csae.ConvergenceWarning)
        m = model(tol=0, max_epochs=7, backend=backend).fit(X)
    assert m.n_iter_ == 7


def test_max_epochs_before_the_rule_warns(backend):
    with pytest.warns(csae.ConvergenceWarning, match="max_epochs=2"):
        model(max_epochs=2, backend=backend).fit(X)


# --------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_early_stopping_restores_the_best_validation_epoch(backend, solver):
    kw = dict(solver=solver, early_stopping=True, validation_fraction=0.2, tol=1e-4,
              n_iter_no_change=4, max_epochs=300, backend=backend, random_state=3)
    if solver == "adam":
        kw["learning_rate"] = 0.01
    m = model(**kw).fit(X)
    val = m.validation_loss_curve_
    assert len(val) == len(m.loss_curve_) == m.n_iter_ < 300
    assert m.best_epoch_ == int(np.argmin(val)) + 1
    assert m.best_validation_loss_ == min(val)
    # The model's weights are those of the best epoch: their objective on
    # the validation rows, computed from scratch, is the recorded best.
    _, val_rows = split(len(X), 0.2, 3)
    loss = ref.objective(params_of(m), X[val_rows], **SETTINGS)
    np.testing.assert_allclose(loss, m.best_validation_loss_, rtol=1e-10)
    # Stopped by the documented rule, at the first epoch that ends a run of
    # n_iter_no_change epochs none of which beat the best before it by more
    # than tol.
    assert first_stop(val, 1e-4, 4) == m.n_iter_


def test_early_stopping_equals_training_on_the_training_rows(backend):
    """The split is held out once: the epochs run equal fitting the training
    rows alone (same seed: same initial weights and shuffles)."""
    es = model(early_stopping=True, validation_fraction=0.25, n_iter_no_change=1000,
               max_epochs=12, backend=backend, random_state=5).fit(X)
    train_rows, val_rows = split(len(X), 0.25, 5)
    plain = model(max_epochs=12, tol=0, backend=backend, random_state=5).fit(X[train_rows])
    np.testing.assert_allclose(es.loss_curve_, plain.loss_curve_, rtol=1e-12)
    # The validation curve is the objective of those rows after each epoch.
    k = es.best_epoch_
    partial = model(max_epochs=k, tol=0, backend=backend, random_state=5).fit(X[train_rows])
    np.testing.assert_array_equal(partial.encoder_weights_, es.encoder_weights_)
    assert es.validation_loss_curve_[k - 1] == pytest.approx(
        ref.objective(params_of(partial), X[val_rows], **SETTINGS), rel=1e-10)


def test_same_seed_same_split_and_weights(backend):
    a = model(early_stopping=True, max_epochs=20, backend=backend).fit(X)
    b = model(early_stopping=True, max_epochs=20, backend=backend).fit(X)
    np.testing.assert_array_equal(a.validation_loss_curve_, b.validation_loss_curve_)
    np.testing.assert_array_equal(a.encoder_weights_, b.encoder_weights_)


def test_verbose_shows_the_validation_objective_and_the_outcome(capsys):
    m = model(early_stopping=True, n_iter_no_change=3, max_epochs=300, verbose=2,
              backend="python").fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == m.n_iter_ + 1
    for line, v in zip(lines, m.validation_loss_curve_):
        assert f"validation {v:.6g}" in line
    assert lines[-1].startswith(f"stopped after epoch {m.n_iter_}")
    assert f"at epoch {m.best_epoch_}" in lines[-1]


def test_too_few_samples_for_the_split_is_a_clear_error():
    m = model(max_epochs=2).fit(X)
    before = m.encoder_weights_.copy()
    with pytest.raises(ValueError, match="leaves none to train on.*validation_fraction"):
        m.set_params(early_stopping=True).fit(X[:1])
    with pytest.raises(ValueError, match="leaves none to train on"):
        m.set_params(early_stopping=True, validation_fraction=0.9).fit(X[:5])
    np.testing.assert_array_equal(m.encoder_weights_, before)
    # Two rows are enough for a 1 + 1 split.
    m.set_params(validation_fraction=0.5, max_epochs=1).fit(X[:2])
    assert len(m.validation_loss_curve_) == 1


@pytest.mark.parametrize("name, value", [
    ("validation_fraction", 0.0), ("validation_fraction", 1.0), ("validation_fraction", -1),
    ("n_iter_no_change", 0), ("n_iter_no_change", 1.5), ("tol", -1e-3),
    ("early_stopping", "yes"), ("warm_start", 1),
])
def test_bad_stopping_settings_are_refused_before_anything_changes(name, value):
    m = model(max_epochs=2).fit(X)
    before = m.encoder_weights_.copy()
    with pytest.raises(ValueError, match=name):
        m.set_params(**{name: value}).fit(X)
    np.testing.assert_array_equal(m.encoder_weights_, before)


def test_partial_fit_ignores_early_stopping():
    m = model(early_stopping=True)
    for _ in range(3):
        m.partial_fit(X)
    assert m.n_iter_ == 3 and m.validation_loss_curve_ is None


# --------------------------------------------------------------------------
# L-BFGS: per iteration
# --------------------------------------------------------------------------

def test_lbfgs_early_stopping_per_iteration(backend):
    pytest.importorskip("scipy")
    m = model(solver="lbfgs", early_stopping=True, validation_fraction=0.3, tol=1e-3,
              n_iter_no_change=5, max_epochs=1000, backend=backend, random_state=2).fit(X)
    val = m.validation_loss_curve_
    assert len(val) == m.n_iter_ < 1000
    assert m.best_epoch_ == int(np.argmin(val)) + 1
    _, val_rows = split(len(X), 0.3, 2)
    np.testing.assert_allclose(ref.objective(params_of(m), X[val_rows], **SETTINGS),
                               m.best_validation_loss_, rtol=1e-10)
    # Stopped by the rule (StopIteration in SciPy's callback), not a budget.
    assert first_stop(val, 1e-3, 5) == m.n_iter_


def test_lbfgs_budget_warns_unless_tol_is_zero():
    pytest.importorskip("scipy")
    with pytest.warns(csae.ConvergenceWarning, match="L-BFGS stopped before converging"):
        model(solver="lbfgs", max_epochs=3).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", csae.ConvergenceWarning)
        model(solver="lbfgs", max_epochs=3, tol=0).fit(X)
