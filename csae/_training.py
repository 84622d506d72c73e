"""The training drivers behind ``SparseAutoencoder.fit`` and ``partial_fit``.

``run_epochs`` runs minibatch epochs (solver "sgd" or "adam", through
``backend.sgd_epoch``) and ``run_lbfgs`` full-batch L-BFGS (through
``csae._solvers.lbfgs``).  Both work on copies of a starting ``ModelState``
and return a new one (or None: the caller keeps the old model).  A
``Transaction`` wraps each call of either, the same way for every solver,
so that fit stays a transaction: it refuses to start from a non-finite
objective and decides, after the call, what a diverged call leaves (its best
state only if that beats the model before the call) and that no state which
is not finite everywhere is ever published.  Around the optimizer the
drivers own:

- the stopping rules: ``tol`` and ``n_iter_no_change`` on the training
  objective, or with early stopping on the objective of a held-out
  validation set, whose best weights are restored at the end
  (scikit-learn's MLP conventions);
- detecting divergence (a non-finite objective, or one grown to more than
  ``BLOWUP_FACTOR`` times the objective this call started from);
- Ctrl-C: the state after the last completed epoch is kept;
- the end-of-fit checks: ``ConvergenceWarning``, ``DeadUnitsWarning``,
  ``LearnedNothingWarning`` (see ``csae._warnings``);
- progress: ``verbose`` lines, a tqdm bar, and a hook for the command line.

``stacklevel`` arguments count from the driver function: 1 is the driver,
so the estimator passes the depth of its user's line.
"""

import math
import sys
import time
import warnings
from typing import Any, NamedTuple, Optional

import numpy as np

from csae._blockwise import changed_message
from csae._errors import NonFiniteError
from csae._solvers import lbfgs
from csae._state import EMPTY_STATE, ORIGIN_TRAINED, frozen, frozen_tuple
from csae._warnings import (
    DEAD_FRACTION,
    UNIT_MARGIN,
    DeadUnitsWarning,
    LearnedNothingWarning,
    TrainingDivergedWarning,
    TrainingInterruptedWarning,
    convergence_warning,
)

__all__ = ["run_epochs", "run_lbfgs", "validation_split", "objective_settings",
           "Transaction", "BLOWUP_FACTOR", "CHECK_ROWS"]

# Training stops as diverged when an epoch's objective exceeds this many
# times the objective at the start of the call, on the call's own data (a
# later partial_fit chunk on a larger scale is judged against itself).  With
# the sigmoid decoder
# the reconstruction term is at most n_features per row and the others
# start small, so growth by orders of magnitude can only come from weights
# growing without bound (the weight-decay term, or a saturated KL term),
# i.e. steps too large for the curvature; a workable step never comes near
# it (epoch objectives stay around or below the start).
BLOWUP_FACTOR = 1e4
# Rows of X on which that starting objective is measured (as one batch) at
# every call.  Few, since partial_fit pays for it at each chunk (on 4096 x 64
# rows, 25 units, the objective of 4096 rows cost 40% of the epoch); a mean
# over 256 rows is within a few percent of the whole, far inside the factor.
REFERENCE_ROWS = 256
# Rows on which the end-of-fit checks look at the units and the
# reconstruction, and on which a diverged call's best state is compared with
# the model before it: a bounded cost, paid once per fit.
CHECK_ROWS = 4096
# verbose=1 prints the first and last epoch and about this many in between.
VERBOSE_LINES = 10


class Outcome(NamedTuple):
    state: Any               # the ModelState to publish, or None: keep the old one
    status: str              # "done", "stopped", "diverged" or "interrupted"
    message: Optional[str]   # "stopped": what stopped it; "diverged": why
    epoch: Optional[int] = None  # "diverged": the epoch (1-based, as n_iter_) that did


def objective_settings(hp):
    """The objective's hyperparameters, as the backends take them."""
    return dict(rho=hp.sparsity_target, beta=hp.sparsity_weight, lam=hp.weight_decay,
                decoder=hp.decoder)


def _objective_at(backend, params, X, hp, rows):
    """The objective at ``params`` (converted to the model dtype) on the
    first ``rows`` rows of X as one batch; inf when it overflows."""
    params = tuple(p if p.dtype == hp.dtype else p.astype(hp.dtype) for p in params)
    try:
        with np.errstate(all="ignore"):
            value = float(backend.objective(params, X[:rows], **objective_settings(hp)))
    except NonFiniteError:
        return math.inf
    return value if not math.isnan(value) else math.inf


def _start_at(backend, params, X, hp, rows):
    """``(objective, steppable)`` at ``params`` on the first ``rows`` rows
    of X: the objective as ``_objective_at`` gives it, and for "lbfgs"
    whether its gradient can be stepped along (its squared norm fits in
    float64: beyond that the optimizer's arithmetic overflows;
    weight_decay=1e300 gives a finite objective and such a gradient).  SGD
    and Adam find that out in their first step, which overflows, so they
    skip the gradient: partial_fit pays for this at every chunk, and the
    gradient costs as much as an epoch of a small chunk."""
    if hp.solver != "lbfgs":
        return _objective_at(backend, params, X, hp, rows), True
    params = tuple(p if p.dtype == hp.dtype else p.astype(hp.dtype) for p in params)
    try:
        with np.errstate(all="ignore"):
            value, grads = backend.objective_and_gradients(params, X[:rows],
                                                           **objective_settings(hp))
            value = float(value)
            norm2 = sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads)
    except NonFiniteError:
        return math.inf, False
    return (value if not math.isnan(value) else math.inf), math.isfinite(norm2)


def validation_split(n_samples, fraction, seed):
    """``(train_rows, validation_rows)``: sorted row indices, the validation
    set ``ceil(fraction * n_samples)`` rows drawn with NumPy's generator
    seeded by ``seed`` (scikit-learn's ``train_test_split`` rounding).

    Raises ValueError when either part would be empty."""
    n_val = math.ceil(fraction * n_samples)
    if n_samples - n_val < 1:
        raise ValueError(
            f"early_stopping=True holds out validation_fraction={fraction:g} of the "
            f"{n_samples} sample(s) ({n_val} row(s)), which leaves none to train on; "
            "pass more samples, a smaller validation_fraction, or early_stopping=False")
    order = np.random.default_rng([seed, 0x5A17]).permutation(n_samples)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _kept(done):
    """What a stopped training call left, for its warning."""
    if done is None:
        return "the model was left as it was before this call"
    return (f"the model keeps the state after epoch {len(done.loss_curve)} "
            f"(n_iter_ = {len(done.loss_curve)})")


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------

def _shown_epochs(total):
    """Epochs verbose=1 prints: the first, the last and about VERBOSE_LINES
    evenly spaced in between."""
    step = max(1, round(total / (VERBOSE_LINES + 1)))
    return {1, total} | set(range(step, total, step))


class Progress:
    """What training shows: ``verbose`` lines on stdout (1: the first and
    last epoch and about 10 in between; 2: every epoch), a tqdm bar on
    stderr when verbose is on, tqdm is installed and there is more than one
    epoch, and ``hook(epoch, objective, validation, seconds)`` after each
    epoch (the command line's display)."""

    def __init__(self, verbose, total, unit, hp, *, first=1, hook=None):
        self.verbose, self.total, self.unit, self.hp = verbose, total, unit, hp
        self.first, self.hook = first, hook
        self.began = time.perf_counter()
        self.shown = _shown_epochs(total) if verbose == 1 else None
        self.last_line = None
        self.bar = None
        if verbose and total > 1:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, unit=unit, desc="training", file=sys.stderr,
                                leave=False, dynamic_ncols=True)

    def _print(self, line):
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, file=sys.stdout, flush=True)

    def update(self, k, objective, validation, seconds, activation):
        """Epoch ``k`` (1-based within this call) done; ``activation()``
        computes the mean hidden activation, only when a line needs it."""
        if self.hook is not None:
            self.hook(k, objective, validation, seconds)
        if self.bar is not None:
            self.bar.set_postfix_str(f"objective={objective:.6g}", refresh=False)
            self.bar.update(1)
        if not self.verbose:
            return
        number = self.first + k - 1
        elapsed = time.perf_counter() - self.began
        parts = [f"objective {objective:.6g}"]
        if validation is not None:
            parts.append(f"validation {validation:.6g}")
        target = self.hp.sparsity_target

        def line():
            return (f"{self.unit} {number}: {', '.join(parts)}, mean activation "
                    f"{activation():.4f} (target {target:g}), elapsed {elapsed:.3f} s")
        if self.shown is None or k in self.shown:
            self._print(line())
            self.last_line = None
        else:
            # Printed at the end if this turns out to be the last epoch.
            self.last_line = line

    def close(self, completed=True):
        """End the display; ``completed``: the weights are still those of the
        last epoch reported (not after a divergence), so its line, if not
        printed yet, can be."""
        if self.bar is not None:
            self.bar.close()
        if self.verbose and completed and self.last_line is not None:
            self._print(self.last_line())
        self.last_line = None


# --------------------------------------------------------------------------
# Stopping rules
# --------------------------------------------------------------------------

class StoppingRule:
    """scikit-learn's MLP rule: count the epochs whose objective (the
    validation objective with early stopping, else the training objective)
    did not improve on the best so far by more than ``tol``; stop when
    ``n_iter_no_change`` follow each other.  Without early stopping ``tol=0``
    switches the rule off."""

    def __init__(self, hp, early_stopping, active=True):
        self.tol, self.patience = hp.tol, hp.n_iter_no_change
        self.early_stopping = early_stopping
        self.active = active and (early_stopping or hp.tol > 0)
        self.best = math.inf
        self.count = 0

    def update(self, value):
        """Record the epoch's value; True when training should stop."""
        if not self.active:
            return False
        self.count = 0 if value < self.best - self.tol else self.count + 1
        self.best = min(self.best, value)
        return self.count >= self.patience

    def _what(self):
        return "validation objective" if self.early_stopping else "training objective"

    def message(self, unit):
        return (f"the {self._what()} did not improve by more than tol={self.tol:g} for "
                f"n_iter_no_change={self.patience} {unit}s")

    def unmet(self, max_epochs, unit):
        """The ConvergenceWarning's message."""
        off = ("" if self.early_stopping else
               f", or set tol=0 to train exactly max_epochs {unit}s without this warning")
        return (f"fit stopped at max_epochs={max_epochs} while the {self._what()} was still "
                f"improving: it never went n_iter_no_change={self.patience} {unit}s without "
                f"improving by more than tol={self.tol:g}. Raise max_epochs to train until "
                f"it does{off}.")


# --------------------------------------------------------------------------
# Minibatch epochs (sgd, adam)
# --------------------------------------------------------------------------

def _copies(arrays, dtype):
    return tuple(np.array(a, dtype=dtype, order="C") for a in arrays)


def _snapshot(arrays):
    return None if arrays is None else tuple(frozen(np.array(a)) for a in arrays)


def run_epochs(backend, X, hp, start, n_epochs, *, stacklevel, reference, X_val=None,
               stopping=False, hook=None):
    """Run up to ``n_epochs`` epochs of ``hp.solver`` ("sgd" or "adam") on
    the prepared X from the state ``start``, on copies (``start`` and the
    published state are never written).

    ``reference``: the objective this call started from (``Transaction``
    measures it), the yardstick of the blow-up check.
    ``X_val``: the held-out rows for early stopping (None: off).
    ``stopping``: apply the stopping rules and the end-of-fit checks (fit,
    not partial_fit).  Returns an ``Outcome``; on divergence its state is
    the best completed epoch of the call (or None), for ``Transaction`` to
    judge.  An exception other than divergence and Ctrl-C propagates (the
    caller then publishes nothing).
    """
    dtype = hp.dtype
    params = _copies(start.params, dtype)
    h = params[0].shape[0]
    settings = objective_settings(hp)
    epoch_args = dict(settings, learning_rate=hp.learning_rate, momentum=hp.momentum,
                      # Any batch_size above the row count means full batch; passing
                      # at most the row count keeps huge values off the C integers.
                      batch_size=min(hp.batch_size, max(1, X.shape[0])), shuffle=hp.shuffle)
    n_batches = -(-X.shape[0] // epoch_args["batch_size"])
    velocity = None
    adam_m = adam_v = None
    adam_t = int(start.adam_t)
    if hp.solver == "adam":
        adam_m = (_copies(start.adam_m, dtype) if start.adam_m is not None
                  else tuple(np.zeros_like(p) for p in params))
        adam_v = (_copies(start.adam_v, dtype) if start.adam_v is not None
                  else tuple(np.zeros_like(p) for p in params))
        if start.adam_m is None:
            adam_t = 0
        # Only passed when used, so that a backend (or a test's stand-in)
        # that predates Adam still runs plain SGD.
        epoch_args.update(solver="adam", beta_1=hp.beta_1, beta_2=hp.beta_2,
                          epsilon=hp.epsilon, adam_m=adam_m, adam_v=adam_v)
    elif hp.momentum > 0:
        velocity = (_copies(start.velocity, dtype) if start.velocity is not None
                    else tuple(np.zeros_like(p) for p in params))
    rho_running = None
    running_batches = int(start.running_batches)
    if hp.sparsity_estimate == "running":
        if start.rho_running is not None and start.rho_running.shape == (h,):
            rho_running = np.array(start.rho_running, dtype=dtype)
        else:
            rho_running, running_batches = np.zeros(h, dtype=dtype), 0
        epoch_args.update(sparsity_smoothing=hp.sparsity_smoothing, rho_running=rho_running)

    curve = list(start.loss_curve)
    first_epoch = len(curve) + 1
    val_curve = [] if X_val is not None else None
    rng_state = start.rng_state
    # A zero start (nothing to reconstruct, no penalty) cannot be multiplied
    # into a limit: then only a non-finite objective stops training.
    limit = BLOWUP_FACTOR * reference if reference > 0 else math.inf
    unit = "epoch"
    rule = StoppingRule(hp, X_val is not None, active=stopping)
    progress = Progress(hp.verbose, n_epochs, unit, hp, first=first_epoch, hook=hook)
    done = None      # the state after the last epoch completed in this call
    best = None      # the completed epoch's state with the lowest objective
    best_value = math.inf
    status, message = "done", None
    try:
        try:
            for k in range(1, n_epochs + 1):
                began = time.perf_counter()
                if hp.solver == "adam":
                    epoch_args["adam_t"] = adam_t
                if rho_running is not None:
                    epoch_args["running_batches"] = running_batches
                loss, rng_state = backend.sgd_epoch(params, velocity, X,
                                                    rng_state=rng_state, **epoch_args)
                seconds = time.perf_counter() - began
                loss = float(loss)
                if loss > limit:
                    raise _BlowUp(loss, reference)
                if not all(np.isfinite(p).all() for p in params):
                    raise NonFiniteError("an update overflowed the weights")
                validation = None
                if X_val is not None:
                    validation = float(backend.objective(params, X_val, **settings))
                    if not math.isfinite(validation):
                        raise NonFiniteError("the validation objective is not finite")
                    val_curve.append(validation)
                adam_t += n_batches if hp.solver == "adam" else 0
                running_batches += n_batches if rho_running is not None else 0
                curve.append(loss)
                # The arrays of a published state are never written again.
                done = start._replace(
                    params=_snapshot(params),
                    # SGD keeps its velocities (none without momentum); Adam
                    # leaves them as they were, for a later switch back.
                    velocity=(_snapshot(velocity) if hp.solver == "sgd" else start.velocity),
                    adam_m=_snapshot(adam_m) if adam_m is not None else start.adam_m,
                    adam_v=_snapshot(adam_v) if adam_v is not None else start.adam_v,
                    adam_t=adam_t if adam_m is not None else start.adam_t,
                    rho_running=(frozen(np.array(rho_running)) if rho_running is not None
                                 else start.rho_running),
                    running_batches=running_batches, rng_state=int(rng_state),
                    loss_curve=tuple(curve), reference_objective=None,
                    pending=EMPTY_STATE.pending, origin=ORIGIN_TRAINED,
                    validation_loss_curve=None, best_validation_loss=None, best_epoch=None)
                value = validation if validation is not None else loss
                if value < best_value:
                    best, best_value = done, value
                stop = rule.update(value)
                progress.update(k, loss, validation, seconds,
                                lambda: _mean_activation(backend, params, X))
                if stop:
                    status, message = "stopped", rule.message(unit)
                    break
        except (NonFiniteError, _BlowUp) as err:
            progress.close(completed=False)
            return Outcome(best, "diverged", _why_diverged(err), len(curve) + 1)
        except KeyboardInterrupt:
            progress.close(completed=False)
            warnings.warn(TrainingInterruptedWarning(
                f"training interrupted during epoch {len(curve) + 1}; "
                f"{_kept(done)} (the interrupted epoch is not counted in "
                "n_iter_)."), stacklevel=stacklevel)
            return Outcome(done, "interrupted", None)
    finally:
        progress.close()

    final = done
    if X_val is not None and best is not None:
        # scikit-learn's early stopping: the weights (and the optimizer state
        # that goes with them) of the best validation epoch, the curves whole.
        final = best._replace(loss_curve=done.loss_curve, rng_state=done.rng_state,
                              validation_loss_curve=tuple(val_curve),
                              best_validation_loss=best_value,
                              best_epoch=len(best.loss_curve))
    if stopping and final is not None:
        if hp.verbose:
            _print_outcome(status, message, final, unit)
        cut_short = status == "done" and rule.active
        if cut_short:
            warnings.warn(convergence_warning()(rule.unmet(hp.max_epochs, unit)),
                          stacklevel=stacklevel)
        check_health(backend, final.params, X, hp, stacklevel + 1,
                     reconstruction=not cut_short)
    return Outcome(final, status, message)


class _BlowUp(Exception):
    """An epoch objective far above the starting one (see BLOWUP_FACTOR)."""


def _mean_activation(backend, params, X):
    return float(np.mean(backend.encode(params[0], params[1], X)))


def _print_outcome(status, message, state, unit):
    if status == "stopped":
        line = f"stopped after {unit} {len(state.loss_curve)}: {message}"
    else:
        line = f"reached max_epochs ({len(state.loss_curve)} {unit}s in all)"
    if state.best_epoch is not None:
        line += (f"; best validation objective {state.best_validation_loss:.6g} at "
                 f"{unit} {state.best_epoch}, whose weights the model keeps")
    print(line, file=sys.stdout, flush=True)


def _why_diverged(err):
    """What a divergence was, for its warning: ``(why, advice)``."""
    if isinstance(err, _BlowUp):
        return (f": the objective grew from {err.args[1]:.4g} at the start of "
                f"this call to {err.args[0]:.4g} (more than {BLOWUP_FACTOR:g} times)",
                "learning_rate or weight_decay")
    batch = "" if getattr(err, "batch", None) is None else f", minibatch {err.batch}"
    return f"{batch}: the objective or its gradient became NaN or inf", "learning_rate"


# --------------------------------------------------------------------------
# One training call as a transaction
# --------------------------------------------------------------------------

def _finite_state(state):
    """True when every number of ``state`` is finite: the condition for a
    model file that ``load`` accepts (it refuses NaN and inf anywhere)."""
    groups = (state.params, state.velocity, state.adam_m, state.adam_v,
              (state.rho_running, state.data_min, state.data_scale))
    arrays = [a for group in groups if group is not None for a in group if a is not None]
    return (all(np.isfinite(a).all() for a in arrays)
            and all(math.isfinite(v) for v in state.loss_curve))


class Transaction:
    """The rule every training call (``fit``, a warm start, ``partial_fit``;
    every solver) follows, around the driver that runs it:

    1. ``begin``: the objective (and for L-BFGS the gradient) at the
       starting weights on (the first REFERENCE_ROWS rows of) the call's
       data.  If the objective is not finite, or the gradient too large to
       step along, the call is a divergence before any step: nothing runs, the model
       stays as it was (a fresh model unfitted).  Otherwise the objective
       is the blow-up yardstick of ``run_epochs``.
    2. ``settle``: a call that diverged keeps its best state only if that
       state's objective on (the first CHECK_ROWS rows of) the call's data
       is below both the objective the call started from and the objective
       of the model before the call (when that model has weights for this
       data's features); otherwise the model stays bit-identical to before
       the call.  A state that is
       not finite everywhere is never published (it would save to a file
       that ``load`` refuses).  The ``TrainingDivergedWarning`` is raised
       here, once the outcome is known, and says what the model kept.
    """

    def __init__(self, backend, X, hp, before, start):
        self.backend, self.X, self.hp = backend, X, hp
        self.before, self.start = before, start
        self.reference = None

    def begin(self, stacklevel):
        """The starting objective (kept in ``reference``); returns None to
        go on, or the Outcome of a call refused because it is not finite."""
        try:
            self.reference, steppable = _start_at(self.backend, self.start.params, self.X,
                                                  self.hp, REFERENCE_ROWS)
        except KeyboardInterrupt:  # as in the first epoch (iteration): nothing kept
            if self.hp.solver == "lbfgs":
                message = f"L-BFGS interrupted after 0 iterations; {_kept(None)}."
            else:
                message = (f"training interrupted during epoch "
                           f"{len(self.start.loss_curve) + 1}; {_kept(None)} (the "
                           "interrupted epoch is not counted in n_iter_).")
            warnings.warn(TrainingInterruptedWarning(message), stacklevel=stacklevel)
            return Outcome(None, "interrupted", None)
        if math.isfinite(self.reference) and steppable:
            return None
        hp = self.hp
        gradient = ("" if steppable else " and its gradient too large to take a step along "
                    "(its squared norm overflows float64)")
        self._warn(f"training diverged before its first step: the objective at the "
                   f"starting weights is {self.reference:g}{gradient} on this data "
                   f"(weight_decay="
                   f"{hp.weight_decay:g}, sparsity_weight={hp.sparsity_weight:g}, "
                   f"decoder={hp.decoder!r}). Nothing was trained and "
                   f"{self._left()}; lower weight_decay or sparsity_weight, or rescale X "
                   "(with decoder='linear', values beyond about 1e150 overflow the squared "
                   "error).", stacklevel + 1)
        return Outcome(None, "diverged", "the starting objective is not finite")

    def settle(self, outcome, stacklevel):
        """The Outcome to publish after the driver returned ``outcome``."""
        state = outcome.state
        if outcome.status == "diverged" or self.hp.solver == "lbfgs":
            # NaN met in training may be data that changed since validation
            # (an array another thread writes to, a small memory-mapped file
            # another process writes to); L-BFGS backs off from it silently.
            self._check_unchanged()
        if outcome.status == "diverged":
            why, advice = outcome.message
            kept, note = self._judge(state)
            if kept is not None:
                what = (f"the model keeps the state after epoch {len(kept.loss_curve)} "
                        f"(n_iter_ = {len(kept.loss_curve)}), the completed epoch of this "
                        "call with the lowest objective, which beats the model before it")
            else:
                what = self._left() + note
            hp = self.hp
            if hp.solver == "lbfgs":  # no step size to blame
                fix = (f"lower weight_decay={hp.weight_decay:g} or sparsity_weight="
                       f"{hp.sparsity_weight:g}, or rescale X")
            else:
                fix = (f"try a smaller {advice} (now learning_rate={hp.learning_rate:g}, "
                       f"weight_decay={hp.weight_decay:g})")
            unit = "iteration" if hp.solver == "lbfgs" else "epoch"
            what = what.replace("epoch", unit)
            self._warn(f"training diverged at {unit} {outcome.epoch}{why}. Training "
                       f"stopped and {what}; {fix}.", stacklevel + 1)
            return outcome._replace(state=kept, message=f"training diverged{why}")
        if state is not None and not _finite_state(state):
            self._warn(f"training reached a state that is not finite (objective "
                       f"{state.loss_curve[-1] if state.loss_curve else math.nan:g}); "
                       f"{self._left()}. Lower weight_decay or sparsity_weight, or "
                       "rescale X.", stacklevel + 1)
            return Outcome(None, "diverged", "training reached a state that is not finite")
        return outcome

    def _judge(self, best):
        """``(state to keep or None, a note on why)`` for a diverged call
        whose best completed epoch is ``best``."""
        if best is None:
            return None, ""
        if not _finite_state(best):
            return None, ""

        def at(params):
            return _objective_at(self.backend, params, self.X, self.hp, CHECK_ROWS)

        value = at(best.params)
        bar, against = at(self.start.params), "the objective this call started from"
        old = self.before.params
        if old is not None and old[0].shape[1] == self.X.shape[1] and old is not \
                self.start.params:
            before = at(old)
            if before <= bar:
                bar, against = before, "the objective of the model before this call"
        if value < bar:
            return best, ""
        return None, (f", since the best epoch of this call (objective {value:.4g} on "
                      f"this data) does not beat {against} ({bar:.4g})")

    def _check_unchanged(self):
        """Raise ValueError if the prepared X (when it is an array: block
        data checks each block as it reads it) holds NaN or inf now."""
        X = self.X
        if not isinstance(X, np.ndarray) or X.dtype.kind != "f" or np.isfinite(X).all():
            return
        row = int(np.argmax(~np.isfinite(X).all(axis=1)))
        raise ValueError(changed_message(row, "X changed while csae trained on it (another "
                                              "thread or process wrote to it)"))

    def _left(self):
        if self.before.params is None:
            return "the model was left as it was before this call (not fitted)"
        return "the model was left as it was before this call"

    @staticmethod
    def _warn(message, stacklevel):
        warnings.warn(TrainingDivergedWarning(message), stacklevel=stacklevel)


# --------------------------------------------------------------------------
# End-of-fit checks
# --------------------------------------------------------------------------

def check_health(backend, params, X, hp, stacklevel, reconstruction=True):
    """DeadUnitsWarning and LearnedNothingWarning for the trained ``params``
    on (the first CHECK_ROWS rows of) the training data X.

    ``reconstruction=False`` skips the second: a fit cut short by
    ``max_epochs`` has had its ConvergenceWarning, whose advice (train
    longer) is the first fix for a model that has learned nothing yet, and
    a few epochs on data without structure are meant to learn little."""
    Xs = X[:CHECK_ROWS]
    params = tuple(p if p.dtype == hp.dtype else p.astype(hp.dtype) for p in params)
    try:
        with np.errstate(all="ignore"):
            A = np.asarray(backend.encode(params[0], params[1], Xs), dtype=np.float64)
            Y = np.asarray(backend.decode(params[2], params[3], A.astype(hp.dtype),
                                          hp.decoder), dtype=np.float64)
    except NonFiniteError:  # nothing to say about a model that overflows here
        return
    rho = hp.sparsity_target
    mean = A.mean(axis=0)
    dead = int(np.sum(mean < rho / UNIT_MARGIN))
    saturated = int(np.sum(mean > 1 - (1 - rho) / UNIT_MARGIN))
    h = mean.size
    if dead + saturated > DEAD_FRACTION * h:
        warnings.warn(DeadUnitsWarning(
            f"{dead} of the {h} hidden units are dead (mean activation below "
            f"sparsity_target/{UNIT_MARGIN:g} = {rho / UNIT_MARGIN:.3g}) and {saturated} "
            f"saturated (above {1 - (1 - rho) / UNIT_MARGIN:.4g}): they carry no "
            f"information. sparsity_weight={hp.sparsity_weight:g} may be too large for "
            f"learning_rate={hp.learning_rate:g}, or the learning rate too high; lower "
            "one of them."), stacklevel=stacklevel)
    X64 = np.asarray(Xs, dtype=np.float64)
    baseline = float(np.mean((X64 - X64.mean(axis=0)) ** 2))
    error = float(np.mean((Y - X64) ** 2))
    if reconstruction and baseline > 0 and not error < baseline:
        warnings.warn(LearnedNothingWarning(
            f"the model learned nothing: its mean squared reconstruction error on the "
            f"training data ({error:.4g}) is no better than predicting every sample by "
            f"the mean sample ({baseline:.4g}). Train longer (max_epochs), raise "
            "learning_rate or use solver='adam' or 'lbfgs', or lower sparsity_weight="
            f"{hp.sparsity_weight:g} / weight_decay={hp.weight_decay:g}."),
            stacklevel=stacklevel)


# --------------------------------------------------------------------------
# L-BFGS
# --------------------------------------------------------------------------

def run_lbfgs(backend, X, hp, start, *, stacklevel, X_val=None, hook=None):
    """Full-batch L-BFGS from the state ``start`` on the prepared X, with
    early stopping on ``X_val`` (per iteration) when given.  Returns an
    ``Outcome`` whose state holds the best point reached (the best
    validation point with early stopping), or None when no iteration
    completed before Ctrl-C.  L-BFGS only accepts steps that lower the
    objective, so from a finite start (``Transaction.begin`` checks it) it
    cannot diverge; an evaluation that overflows is a step refused.  A run
    whose loss curve is not finite all the same is returned as "diverged",
    for ``Transaction.settle`` to refuse."""
    settings = objective_settings(hp)
    began = time.perf_counter()
    unit = "iteration"
    # One stopping rule for every solver: the objective (the validation
    # objective with early stopping) stalls for n_iter_no_change
    # iterations.  A gradient tolerance is not used: it compares raw gradient
    # components with tol, which depends on the data's scale (on whitened
    # image patches gtol=1e-4 ended L-BFGS after 22 of 400 iterations).
    rule = StoppingRule(hp, X_val is not None)
    progress = Progress(hp.verbose, hp.max_epochs, unit, hp, first=len(start.loss_curve) + 1,
                        hook=hook)
    val_curve = []
    best = {"value": math.inf, "params": None, "iteration": None}
    last = {"time": began}

    def on_iteration(k, loss, params):
        now = time.perf_counter()
        seconds, last["time"] = now - last["time"], now
        validation = None
        if X_val is not None:
            try:
                validation = float(backend.objective(params, X_val, **settings))
            except NonFiniteError:
                validation = math.inf
            val_curve.append(validation)
            if validation < best["value"]:
                best.update(value=validation, params=tuple(np.array(p) for p in params),
                            iteration=k)
        progress.update(k, loss, validation, seconds,
                        lambda: _mean_activation(backend, params, X))
        return rule.update(validation if X_val is not None else loss)

    try:
        # The engine's evaluator keeps one workspace for the whole fit.
        evaluator = backend.objective_evaluator(X, hp.n_hidden, **settings)
        result = lbfgs(evaluator, start.params, max_iter=hp.max_epochs, max_fun=hp.max_fun,
                       tol=0.0, on_iteration=on_iteration, n_threads=backend.n_threads)
    finally:
        # The summary line below reports the end; the arrays of the last
        # iteration are the optimizer's and may have moved on.
        progress.close(completed=False)
    if result.interrupted:
        kept = (f"the model keeps the best point of the {result.n_iter} iterations "
                "completed" if result.n_iter else _kept(None))
        warnings.warn(TrainingInterruptedWarning(
            f"L-BFGS interrupted after {result.n_iter} iterations; {kept}."),
            stacklevel=stacklevel)
        if result.n_iter == 0:
            return Outcome(None, "interrupted", None)
    params = result.params
    extra = dict(validation_loss_curve=None, best_validation_loss=None, best_epoch=None)
    if X_val is not None and best["params"] is not None:
        params = best["params"]
        extra = dict(validation_loss_curve=tuple(val_curve),
                     best_validation_loss=best["value"],
                     best_epoch=len(start.loss_curve) + best["iteration"])
    state = start._replace(
        params=frozen_tuple(params), velocity=None, adam_m=None, adam_v=None, adam_t=0,
        rho_running=None, running_batches=0,
        loss_curve=tuple(start.loss_curve) + tuple(result.loss_curve),
        pending=EMPTY_STATE.pending, origin=ORIGIN_TRAINED, **extra)
    if result.interrupted:
        return Outcome(state, "interrupted", None)
    if not all(math.isfinite(v) for v in result.loss_curve):
        # An iteration reached no finite point: Transaction.settle refuses
        # this state, so the end-of-fit advice below would be about nothing.
        return Outcome(state, "diverged", _why_diverged(NonFiniteError("")),
                       len(state.loss_curve))
    status = "stopped" if result.stopped else "done"
    message = rule.message(unit) if result.stopped else result.message
    if hp.verbose:
        final = result.loss_curve[-1] if result.loss_curve else float("nan")
        print(f"L-BFGS: {result.n_iter} iterations, {result.n_fun} evaluations, "
              f"objective {final:.6g}, {time.perf_counter() - began:.3f} s ({message})",
              file=sys.stdout, flush=True)
        if state.best_epoch is not None:
            print(f"best validation objective {state.best_validation_loss:.6g} at "
                  f"iteration {state.best_epoch}, whose weights the model keeps",
                  file=sys.stdout, flush=True)
    cut_short = not result.converged and not result.stopped and (hp.tol > 0
                                                                  or X_val is not None)
    if cut_short:
        warnings.warn(convergence_warning()(
            f"L-BFGS stopped before converging ({message}) after {result.n_iter} "
            f"iterations and {result.n_fun} evaluations (max_epochs={hp.max_epochs}, "
            f"max_fun={hp.max_fun}, tol={hp.tol:g}). Raise max_epochs or max_fun to "
            "train longer, or set tol=0 to run exactly that budget without this "
            "warning."), stacklevel=stacklevel)
    check_health(backend, state.params, X, hp, stacklevel + 1,
                 reconstruction=not cut_short)
    return Outcome(state, status, message)
