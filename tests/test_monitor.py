"""The training monitor (csae.solvers._monitor): the stopping rule counts
patience exactly, the best state is what a diverged run falls back to, the
blow-up limit is a strict bound, Ctrl-C keeps the last completed epoch, and
every run records why it stopped (``stop_reason_``).

The minibatch loop is driven here by a scripted backend, so that each rule is
tested on the losses it sees, without the engine's numbers."""

import math
import pickle
import warnings

import numpy as np
import pytest

from csae import SparseAutoencoder
from csae._backends import Backend
from csae._errors import NonFiniteError
from csae._estimator import train
from csae._state import ModelState
from csae._validation import validate_hyperparameters
from csae._warnings import TrainingInterruptedWarning
from csae.solvers import SOLVERS, STOP_REASONS, Monitor
from csae.solvers._monitor import BLOWUP_FACTOR, BlowUp, StoppingRule, _shown_epochs

N, H = 3, 2


def hyper(**changes):
    raw = SparseAutoencoder(n_hidden=H, **changes).get_params()
    return validate_hyperparameters(raw)


class Scripted:
    """A backend whose epochs report the given losses (adding 1 to every
    weight, so each epoch's state can be told apart); an item that is an
    exception (or its class) is raised instead."""

    n_threads = 1

    def __init__(self, losses):
        self.losses = list(losses)
        self.epochs = 0
        # What the end-of-fit checks and progress lines read.
        real = Backend("python", 1)
        self.encode, self.decode = real.encode, real.decode

    def sgd_epoch(self, params, velocity, X, rng_state, **keywords):
        item = self.losses[self.epochs]
        self.epochs += 1
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item
        for p in params:
            p += 1
        return item, rng_state + 1


def start_state():
    params = (np.zeros((H, N)), np.zeros(H), np.zeros((N, H)), np.zeros(N))
    return ModelState(params=params, rng_state=7)


def run(losses, n_epochs=None, reference=1.0, stopping=True, **changes):
    hp = hyper(**changes)
    start = start_state()
    backend = Scripted(losses)
    X = np.zeros((4, N))
    n_epochs = len(losses) if n_epochs is None else n_epochs
    solver = SOLVERS[hp.solver](hp, start)
    monitor = Monitor(backend, X, hp, solver.unit, n_epochs, stopping=stopping,
                      reference=reference)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning, health checks
        return solver.run(backend, X, start, n_epochs, monitor, 1), backend


def epoch_of(state):
    """Which completed epoch ``state`` is (the scripted backend adds 1 per epoch)."""
    return int(state.params[1][0])


# --------------------------------------------------------------------------
# The stopping rule
# --------------------------------------------------------------------------

@pytest.mark.parametrize("patience", [1, 2, 5])
def test_patience_is_counted_exactly(patience):
    # The first epoch improves on inf; every later one fails to improve by
    # more than tol, so the rule stops after exactly `patience` of them.
    losses = [5.0] + [4.5] * 20
    outcome, backend = run(losses, solver="sgd", tol=1.0, n_iter_no_change=patience)
    assert backend.epochs == 1 + patience
    assert outcome.status == "stopped" and outcome.reason == "no_improvement"
    assert len(outcome.state.loss_curve) == 1 + patience


def test_an_improvement_by_more_than_tol_resets_the_count():
    # tol is a fraction of the best so far: 5, 4.5 (no: needs < 3.5), 3
    # (yes: needs < 3.15), 2.5 (no: needs < 2.1), 2.4 (no) -> stop at epoch 5.
    outcome, backend = run([5.0, 4.5, 3.0, 2.5, 2.4, 2.3, 2.2], solver="sgd", tol=0.3,
                           n_iter_no_change=2)
    assert backend.epochs == 5 and outcome.reason == "no_improvement"


def test_improvement_must_exceed_tol_strictly():
    # 2.0 * 0.25 is exactly 0.5: 1.5 is exactly tol better, not an improvement.
    rule = StoppingRule(hyper(tol=0.25, n_iter_no_change=1), early_stopping=False)
    assert not rule.update(2.0)
    assert rule.update(1.5)
    rule = StoppingRule(hyper(tol=0.25, n_iter_no_change=1), early_stopping=False)
    assert not rule.update(2.0)
    assert not rule.update(np.nextafter(1.5, 0.0))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_the_rule_is_relative_to_the_objective(scale):
    # The same curve at any scale stops at the same epoch: improvements of
    # 2% then 0.5% per epoch against tol=1%.
    curve = [10.0, 9.8, 9.6, 9.55, 9.5, 9.45, 9.4, 9.3]
    outcome, backend = run([v * scale for v in curve], solver="sgd", tol=0.01,
                           n_iter_no_change=3)
    assert backend.epochs == 6 and outcome.reason == "no_improvement"


def test_tol_zero_switches_the_rule_off_without_early_stopping():
    outcome, backend = run([5.0] * 12, solver="sgd", tol=0, n_iter_no_change=1)
    assert backend.epochs == 12
    assert outcome.status == "done" and outcome.reason == "max_epochs"


def test_partial_fit_applies_no_rule():
    outcome, backend = run([5.0] * 4, stopping=False, solver="sgd", tol=10.0,
                           n_iter_no_change=1)
    assert backend.epochs == 4 and outcome.reason == "max_epochs"


# --------------------------------------------------------------------------
# Best state and divergence
# --------------------------------------------------------------------------

def test_divergence_falls_back_to_the_best_epoch():
    # Epoch 2 has the lowest objective; epoch 4 blows up.
    outcome, _ = run([3.0, 1.0, 2.0, 2e4, 1.0], reference=1.0, solver="sgd", tol=0)
    assert outcome.status == "diverged" and outcome.reason == "diverged"
    assert outcome.epoch == 4
    assert epoch_of(outcome.state) == 2
    assert outcome.state.loss_curve == (3.0, 1.0)
    # On a tie the earlier epoch stays the best.
    outcome, _ = run([3.0, 1.0, 1.0, 2e4], reference=1.0, solver="sgd", tol=0)
    assert epoch_of(outcome.state) == 2


def test_the_blow_up_limit_is_a_strict_bound():
    at_limit = BLOWUP_FACTOR * 2.0
    outcome, _ = run([at_limit, 1.0], reference=2.0, solver="sgd", tol=0)
    assert outcome.status == "done"
    outcome, _ = run([math.nextafter(at_limit, math.inf)], reference=2.0, solver="sgd",
                     tol=0)
    assert outcome.status == "diverged" and outcome.state is None


def test_non_finite_epoch_is_divergence_without_a_reference():
    # The engine reports a NaN or inf objective or gradient as NonFiniteError.
    outcome, _ = run([2.0, NonFiniteError("overflow")], reference=0.0, solver="adam", tol=0)
    assert outcome.status == "diverged" and epoch_of(outcome.state) == 1


def test_check_names_the_overflowed_weights():
    monitor = Monitor(Scripted([]), np.zeros((2, N)), hyper(), "epoch", 1, reference=1.0)
    with pytest.raises(BlowUp):
        monitor.check(1e5, start_state().params)
    bad = (np.array([np.inf]),)
    with pytest.raises(Exception, match="overflowed"):
        monitor.check(1.0, bad)


# --------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------

def test_ctrl_c_keeps_the_last_completed_epoch():
    with pytest.warns(TrainingInterruptedWarning, match="during epoch 3.*after epoch 2"):
        outcome, _ = run_warning([4.0, 3.0, KeyboardInterrupt, 1.0], solver="adam", tol=0)
    assert outcome.status == "interrupted" and outcome.reason == "interrupted"
    assert epoch_of(outcome.state) == 2
    # Adam's step count went with the state: two epochs of one batch each.
    assert outcome.state.adam_t == 2


def run_warning(losses, **changes):
    hp = hyper(**changes)
    start = start_state()
    backend = Scripted(losses)
    X = np.zeros((4, N))
    solver = SOLVERS[hp.solver](hp, start)
    monitor = Monitor(backend, X, hp, solver.unit, len(losses), reference=1.0)
    return solver.run(backend, X, start, len(losses), monitor, 1), backend


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------

def test_verbose_one_shows_the_first_and_last_epochs():
    shown = _shown_epochs(100)
    assert {1, 100} <= shown and 8 <= len(shown) <= 13


def test_verbose_lines_and_outcome(capsys):
    outcome, _ = run([5.0, 4.5, 4.4, 4.3], solver="sgd", tol=1.0, n_iter_no_change=2,
                     verbose=2)
    out = capsys.readouterr().out
    assert "epoch 1: objective 5" in out and "epoch 3: objective 4.4" in out
    assert "stopped after epoch 3" in out and "epoch 4" not in out


# --------------------------------------------------------------------------
# stop_reason_ through the estimator
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).random((60, 8))


def fitted(X, **params):
    params = {"n_hidden": 3, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SparseAutoencoder(random_state=0, **params).fit(X)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_stop_reason_max_epochs(X, solver):
    model = fitted(X, solver=solver, max_epochs=3, tol=0)
    assert model.n_iter_ == 3 and model.stop_reason_ == "max_epochs"


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_stop_reason_no_improvement(X, solver):
    model = fitted(X, solver=solver, max_epochs=50, tol=1e9, n_iter_no_change=4)
    assert model.n_iter_ == 5 and model.stop_reason_ == "no_improvement"


def test_stop_reason_max_fun(X):
    model = fitted(X, solver="lbfgs", max_epochs=100, max_fun=4, tol=0)
    assert model.stop_reason_ == "max_fun"


def test_stop_reason_converged(X):
    model = fitted(X[:, :2], solver="lbfgs", max_epochs=20000, max_fun=100000, tol=0,
                   n_hidden=1, weight_decay=1.0)
    assert model.stop_reason_ == "converged" and model.n_iter_ < 20000


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_stop_reason_diverged_before_the_first_step(X, solver):
    model = fitted(X, solver=solver, weight_decay=1e300, max_epochs=2)
    assert model.stop_reason_ == "diverged" and model.__sklearn_is_fitted__() is False


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_ctrl_c_in_the_progress_hook_of_every_solver(X, solver):
    def hook(k, objective, validation, seconds):
        if k == 2:
            raise KeyboardInterrupt

    model = SparseAutoencoder(n_hidden=3, solver=solver, max_epochs=10, tol=0,
                              random_state=0)
    with pytest.warns(TrainingInterruptedWarning):
        train(model, X, hook=hook)
    # The epoch (iteration) the hook reported had completed: it is kept.
    assert model.stop_reason_ == "interrupted" and model.n_iter_ == 2


def test_stop_reason_diverged_keeps_the_old_model(X):
    model = fitted(X, solver="sgd", max_epochs=2, tol=0)
    before = model.encoder_weights_.copy()
    model.set_params(learning_rate=1e30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    assert model.stop_reason_ == "diverged"
    np.testing.assert_array_equal(model.encoder_weights_, before)


def test_stop_reason_interrupted(X, monkeypatch):
    from csae import _backends
    real = _backends.Backend.sgd_epoch
    calls = []

    def interrupt_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_backends.Backend, "sgd_epoch", interrupt_second)
    model = fitted(X, solver="sgd", max_epochs=5, tol=0)
    assert model.stop_reason_ == "interrupted" and model.n_iter_ == 1


def test_partial_fit_reason_and_unfitted_model(X):
    model = SparseAutoencoder(n_hidden=3, solver="adam", random_state=0)
    with pytest.raises(Exception, match="not fitted"):
        model.stop_reason_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X)
    assert model.stop_reason_ == "max_epochs"


def test_stop_reason_travels_in_pickles_and_files(X, tmp_path):
    import csae
    model = fitted(X, solver="sgd", max_epochs=50, tol=1e9, n_iter_no_change=2)
    assert pickle.loads(pickle.dumps(model)).stop_reason_ == "no_improvement"
    # A pickle from before the attribute: unknown, not an error.
    old = pickle.loads(pickle.dumps(model))
    del old.__dict__["_stop_reason"]
    assert old.stop_reason_ is None
    path = tmp_path / "m.csae"
    model.save(path)
    assert csae.load(path).stop_reason_ == "no_improvement"  # format version 4


def test_every_recorded_reason_is_documented():
    documented = SparseAutoencoder.__doc__
    for reason in STOP_REASONS:
        assert f'"{reason}"' in documented
