"""Minibatch SGD and Adam on a flat parameter vector: the deep classifier's
fine-tuning (``SparseAutoencoderClassifier(solver="adam")``), and any model
whose objective an engine evaluator gives over ranges of rows.

The pieces are the single autoencoder's: the update is the engine's
(``csae_flat_step_*``: the arithmetic of its minibatch step, in the model
dtype), each epoch's row order the engine's permutation of the same
SplitMix64 state, and around every epoch the ``Monitor`` decides (the
stopping rule with ``tol`` and ``n_iter_no_change``, early stopping on a
validation objective and its best epoch, divergence, Ctrl-C, progress, the
``ConvergenceWarning`` at ``max_epochs``), as for ``SparseAutoencoder``'s
"sgd" and "adam".  A model supplies an evaluator with ``data`` (its rows,
which a shuffled epoch overwrites in its order: make it on copies) and
``evaluate_rows(theta, grad, start, stop)`` (objective and gradient of a
minibatch, every penalty included), and optionally a validation objective.
"""

import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from csae import _engine
from csae._errors import NonFiniteError
from csae.solvers._monitor import BlowUp, Monitor, why_diverged

__all__ = ["FlatSettings", "FlatMonitor", "FlatResult", "kept", "run"]


@dataclass(frozen=True)
class FlatSettings:
    """What a flat run reads, validated by the caller with the names,
    meanings and ranges of ``csae._params`` (``max_epochs``: the most
    epochs; ``verbose``: as ``Progress`` takes it)."""

    solver: str
    learning_rate: float
    momentum: float
    beta_1: float
    beta_2: float
    epsilon: float
    batch_size: int
    shuffle: bool
    max_epochs: int
    tol: float
    n_iter_no_change: int
    verbose: int
    budget_name: str = "max_epochs"   # the estimator's name for max_epochs, in messages


class FlatMonitor(Monitor):
    """The ``Monitor`` of a flat run: params are ``(theta,)``; ``X_val`` is
    the validation objective, a function of theta (None: no early
    stopping), whose value at ``start`` (the weights before the run) an
    epoch must beat to be kept; a model without hidden activations to
    report or autoencoder health checks has neither."""

    def __init__(self, X, hp, start, *, validation=None, reference=None, unit="epoch"):
        super().__init__(None, X, hp, unit, hp.max_epochs, X_val=validation,
                         reference=reference)
        self.start_value = None if validation is None else float(validation(start))

    def objective(self, params):
        return float(self.X_val(params[0]))

    def activation(self, params):
        return None

    def check_model(self, params, unconverged, stacklevel):
        pass


class FlatResult(NamedTuple):
    """What a flat run leaves."""

    theta: Optional[np.ndarray]      # the weights to keep (None: none, keep the start)
    loss_curve: Tuple[float, ...]    # every epoch run (the objective averaged over its batches)
    validation_curve: Any            # with early stopping: one value per epoch
    best_epoch: Optional[int]        # with early stopping: the epoch kept (0: the start)
    status: str                      # "done", "stopped", "diverged" or "interrupted"
    reason: str                      # one of STOP_REASONS
    message: Any                     # "diverged": (why, advice); else None


def _epoch(evaluator, step, theta, grad, bounds):
    """One pass over the minibatches ``bounds``: the objective of each
    before its step, averaged weighted by rows."""
    total, rows = 0.0, 0
    for b, (lo, hi) in enumerate(bounds):
        loss = evaluator.evaluate_rows(theta, grad, lo, hi)
        if not math.isfinite(loss):
            raise NonFiniteError("the minibatch objective is not finite", batch=b)
        try:
            step.step(theta, grad)
        except NonFiniteError as err:
            raise NonFiniteError(str(err), batch=b) from None
        total += loss * (hi - lo)
        rows += hi - lo
    return total / rows


def run(evaluator, theta0, X, y, hp, monitor, rng_state, n_threads, stacklevel):
    """Up to ``hp.max_epochs`` epochs from ``theta0`` (never written) on the
    rows ``X`` with labels (or targets) ``y``, which ``evaluator.data``
    holds copies of.  Returns a ``FlatResult``; on Ctrl-C the best epoch so
    far under early stopping, else the last completed one."""
    theta = np.array(theta0, order="C")
    grad = np.empty_like(theta)
    step = _engine.FlatStep(theta.size, theta.dtype, solver=hp.solver,
                            learning_rate=hp.learning_rate, momentum=hp.momentum,
                            beta_1=hp.beta_1, beta_2=hp.beta_2, epsilon=hp.epsilon,
                            n_threads=n_threads)
    Xe, ye = evaluator.data
    m = Xe.shape[0]
    batch = min(hp.batch_size, m)
    bounds = [(lo, min(lo + batch, m)) for lo in range(0, m, batch)]
    curve, done, status = [], None, "done"
    try:
        for k in range(1, hp.max_epochs + 1):
            began = time.perf_counter()
            if hp.shuffle:
                order, rng_state = _engine.permutation(m, rng_state)
                np.take(X, order, axis=0, out=Xe)
                np.take(y, order, out=ye)
            loss = _epoch(evaluator, step, theta, grad, bounds)
            monitor.check(loss, (theta,))
            validation = monitor.validate((theta,), strict=True)
            curve.append(loss)
            done = theta.copy()
            if monitor.epoch(k, loss, validation, time.perf_counter() - began, (theta,),
                             keep=lambda: done):
                status = "stopped"
                break
    except (NonFiniteError, BlowUp) as err:
        monitor.diverged()
        return FlatResult(None, tuple(curve), monitor.val_curve, None, "diverged",
                          monitor.reason, why_diverged(err))
    except KeyboardInterrupt:
        result = _result(monitor, done, curve, "interrupted")
        monitor.interrupted(f"training interrupted during epoch {len(curve) + 1}; "
                            f"{kept(result, monitor.unit)}", stacklevel + 1)
        return result._replace(reason=monitor.reason)
    finally:
        monitor.progress.close()
    if monitor.reason is None:
        monitor.reason = "max_epochs"
    if status == "done" and monitor.rule.active:
        monitor.finish((theta,), monitor.rule.unmet(hp.max_epochs, monitor.unit,
                                                    hp.budget_name),
                       stacklevel + 1)
    return _result(monitor, done, curve, status)


def kept(result, unit="epoch"):
    """What a run's result keeps, in words."""
    if result.best_epoch is not None:
        return (f"the model keeps the weights of {unit} {result.best_epoch}, the lowest "
                "validation objective so far" if result.best_epoch else
                "no epoch beat the starting weights' validation objective: the model keeps "
                "them")
    if result.theta is None:
        return "the model keeps the starting weights (no epoch completed)"
    return f"the model keeps the weights after {unit} {len(result.loss_curve)}"


def _result(monitor, done, curve, status):
    """The weights a run that ended by its rules (or by Ctrl-C) keeps: with
    early stopping the best validation epoch's (the start's, 0, when no
    epoch beat it), else the last completed epoch's."""
    if monitor.X_val is None:
        return FlatResult(done, tuple(curve), None, None, status, monitor.reason, None)
    if monitor.best is not None and monitor.best_value < monitor.start_value:
        theta, best = monitor.best, monitor.best_k
    else:
        theta, best = None, 0
    return FlatResult(theta, tuple(curve), tuple(monitor.val_curve), best, status,
                      monitor.reason, None)
