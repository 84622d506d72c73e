"""The training monitor: what every solver's run is watched by.

A solver computes (an epoch, an L-BFGS iteration); the ``Monitor`` decides
around it, the same way for every solver:

- the stopping rule: ``tol`` and ``n_iter_no_change`` on the training
  objective, or with early stopping on the objective of a held-out
  validation set (scikit-learn's MLP conventions);
- the best state so far (the lowest objective, or validation objective),
  which a diverged call or early stopping falls back to;
- divergence: a non-finite objective or weights, or an objective grown to
  more than ``BLOWUP_FACTOR`` times the one the call started from;
- Ctrl-C (and SIGTERM, which the command line raises as Ctrl-C): the
  warning that says what the model kept;
- progress: ``verbose`` lines, a tqdm bar, and a hook for the command line;
- the end-of-fit warnings: ``ConvergenceWarning``, ``DeadUnitsWarning``,
  ``LearnedNothingWarning`` (see ``csae._warnings``);
- ``reason``: why the run stopped, one of ``STOP_REASONS`` (the fitted
  attribute ``stop_reason_``).

``stacklevel`` arguments count from the function that takes them (1 is
that function); each caller adds the frames between, so that a warning
points at the user's line.
"""

import math
import sys
import time
import warnings
from typing import Any, NamedTuple, Optional

import numpy as np

from csae._errors import NonFiniteError
from csae._warnings import (
    DEAD_FRACTION,
    UNIT_MARGIN,
    DeadUnitsWarning,
    LearnedNothingWarning,
    TrainingInterruptedWarning,
    convergence_warning,
)

__all__ = ["Monitor", "Outcome", "Progress", "StoppingRule", "STOP_REASONS", "BLOWUP_FACTOR",
           "CHECK_ROWS", "check_health", "objective_settings"]

# Why a training call stopped: the values of ``stop_reason_``.  The L-BFGS
# ones are the engine's csae_lbfgs status codes, by the hyperparameter that
# sets each budget (LBFGS_MAX_ITER is max_epochs, LBFGS_MAX_EVAL max_fun).
STOP_REASONS = {
    "converged": "L-BFGS: the relative reduction of the objective fell below its "
                 "tolerance (SciPy's ftol)",
    "max_epochs": "the call ran all the epochs (L-BFGS iterations) it was given: "
                  "max_epochs, or the one epoch of partial_fit",
    "max_fun": "L-BFGS: max_fun evaluations of the objective were used",
    "line_search": "L-BFGS: no step along the search direction lowered the objective",
    "no_improvement": "the objective (the validation objective with early stopping) did "
                      "not improve by more than tol (relative) for n_iter_no_change epochs",
    "interrupted": "Ctrl-C (or SIGTERM in the command line) stopped training",
    "diverged": "the objective or the weights became non-finite or blew up (a "
                "TrainingDivergedWarning says what the model kept)",
}

# Training stops as diverged when an epoch's objective exceeds this many
# times the objective at the start of the call, on the call's own data (a
# later partial_fit chunk on a larger scale is judged against itself).  With
# the sigmoid decoder the reconstruction term is at most n_features per row
# and the others start small, so growth by orders of magnitude can only come
# from weights growing without bound (the weight-decay term, or a saturated
# KL term), i.e. steps too large for the curvature; a workable step never
# comes near it (epoch objectives stay around or below the start).
BLOWUP_FACTOR = 1e4
# Rows on which the end-of-fit checks look at the units and the
# reconstruction, and on which a diverged call's best state is compared with
# the model before it: a bounded cost, paid once per fit.
CHECK_ROWS = 4096
# verbose=1 prints the first and last epoch and about this many in between.
VERBOSE_LINES = 10


def objective_settings(hp):
    """The objective's hyperparameters, as the backends take them."""
    return dict(rho=hp.sparsity_target, beta=hp.sparsity_weight, lam=hp.weight_decay,
                decoder=hp.decoder)


def kept_message(done, unit="epoch"):
    """What a stopped training call left, for its warning."""
    if done is None:
        return "the model was left as it was before this call"
    return (f"the model keeps the state after {unit} {len(done.loss_curve)} "
            f"(n_iter_ = {len(done.loss_curve)})")


class BlowUp(Exception):
    """An epoch objective far above the starting one (see BLOWUP_FACTOR)."""


def why_diverged(err):
    """What a divergence was, for its warning: ``(why, advice)``."""
    if isinstance(err, BlowUp):
        return (f": the objective grew from {err.args[1]:.4g} at the start of "
                f"this call to {err.args[0]:.4g} (more than {BLOWUP_FACTOR:g} times)",
                "learning_rate or weight_decay")
    batch = "" if getattr(err, "batch", None) is None else f", minibatch {err.batch}"
    return f"{batch}: the objective or its gradient became NaN or inf", "learning_rate"


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

    def print(self, line):
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, file=sys.stdout, flush=True)

    def update(self, k, objective, validation, seconds, activation):
        """Epoch ``k`` (1-based within this call) done; ``activation()``
        computes the mean hidden activation, only when a line needs it
        (None: a model without one, whose lines leave it out)."""
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

        def line():
            shown = parts if activation is None else parts + [
                f"mean activation {activation():.4f} (target {self.hp.sparsity_target:g})"]
            return f"{self.unit} {number}: {', '.join(shown)}, elapsed {elapsed:.3f} s"
        if self.shown is None or k in self.shown:
            self.print(line())
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
            self.bar = None
        if self.verbose and completed and self.last_line is not None:
            self.print(self.last_line())
        self.last_line = None


# --------------------------------------------------------------------------
# The stopping rule
# --------------------------------------------------------------------------

class StoppingRule:
    """scikit-learn's MLP rule with a relative tolerance: count the epochs
    whose objective (the validation objective with early stopping, else the
    training objective) did not improve on the best so far by more than
    ``tol`` times that best; stop when ``n_iter_no_change`` follow each
    other.  Without early stopping ``tol=0`` switches the rule off.

    Relative, as SciPy's ``ftol``, because the objective's scale follows
    the data's: an absolute 1e-4 stopped whitened patches (objective ~0.8)
    while their filters were still forming and never stopped 28 x 28 images
    (objective ~10).  Multiplying every objective by c changes nothing."""

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
        # Before the first value, any finite value improves (inf * tol is
        # not a margin).
        margin = self.tol * abs(self.best) if math.isfinite(self.best) else 0.0
        self.count = 0 if value < self.best - margin else self.count + 1
        self.best = min(self.best, value)
        return self.count >= self.patience

    def _what(self):
        return "validation objective" if self.early_stopping else "training objective"

    def message(self, unit):
        return (f"the {self._what()} did not improve by more than tol={self.tol:g} of its "
                f"best for n_iter_no_change={self.patience} {unit}s")

    def unmet(self, max_epochs, unit, name="max_epochs"):
        """The ConvergenceWarning's message (``name``: the estimator's name
        for the budget)."""
        off = ("" if self.early_stopping else
               f", or set tol=0 to train exactly {name} {unit}s without this warning")
        return (f"fit stopped at {name}={max_epochs} while the {self._what()} was still "
                f"improving: it never went n_iter_no_change={self.patience} {unit}s without "
                f"improving by more than tol={self.tol:g} of its best. Raise {name} to train "
                f"until it does{off}.")


# --------------------------------------------------------------------------
# The monitor
# --------------------------------------------------------------------------

class Monitor:
    """Watches one solver run on the prepared ``X`` (see the module's
    docstring).

    What is particular to the autoencoder is in three methods, which a run
    of another model (``csae.solvers.flat``) overrides: ``objective`` (the
    validation objective), ``activation`` (for the progress lines) and
    ``check_model`` (the end-of-fit health checks).

    ``total``: the epochs (iterations) this call may run; ``first``: the
    number (as ``n_iter_`` counts) of its first; ``X_val``: the held-out
    rows for early stopping (None: off); ``stopping``: apply the stopping
    rule and the end-of-fit checks (fit, not partial_fit); ``reference``:
    the objective the call started from, the yardstick of the blow-up check
    (None: no such check); ``hook``: the command line's per-epoch display.
    """

    def __init__(self, backend, X, hp, unit, total, *, first=1, X_val=None, stopping=True,
                 reference=None, hook=None):
        self.backend, self.X, self.hp, self.unit = backend, X, hp, unit
        self.X_val = X_val
        self.rule = StoppingRule(hp, X_val is not None, active=stopping)
        self.stopping = stopping
        self.progress = Progress(hp.verbose, total, unit, hp, first=first, hook=hook)
        # A zero start (nothing to reconstruct, no penalty) cannot be
        # multiplied into a limit: then only a non-finite objective stops.
        self.limit = (BLOWUP_FACTOR * reference if reference is not None and reference > 0
                      else math.inf)
        self.reference = reference
        self.val_curve = [] if X_val is not None else None
        self.best, self.best_value, self.best_k = None, math.inf, None
        self.reason = None

    # Per epoch -------------------------------------------------------------

    def check(self, loss, params):
        """Raise ``BlowUp`` or ``NonFiniteError`` when an epoch that reached
        ``loss`` and ``params`` diverged."""
        if loss > self.limit:
            raise BlowUp(loss, self.reference)
        if not all(np.isfinite(p).all() for p in params):
            raise NonFiniteError("an update overflowed the weights")

    def validate(self, params, strict):
        """The validation objective at ``params`` (None without early
        stopping), appended to the validation curve.  ``strict``: a value
        that is not finite is a divergence (minibatch solvers); else it
        counts as inf (L-BFGS steps back from such points itself)."""
        if self.X_val is None:
            return None
        try:
            value = self.objective(params)
        except NonFiniteError:
            if strict:
                raise
            value = math.inf
        if strict and not math.isfinite(value):
            raise NonFiniteError("the validation objective is not finite")
        self.val_curve.append(value)
        return value

    def epoch(self, k, loss, validation, seconds, params, keep=None):
        """Epoch ``k`` (1-based within the call) reached ``loss`` (and
        ``validation``) at ``params``; ``keep()`` makes what to remember if
        it is the best so far (None: track nothing).  True when the
        stopping rule ends training (``reason`` is then "no_improvement")."""
        value = validation if validation is not None else loss
        if keep is not None and value < self.best_value:
            self.best, self.best_value, self.best_k = keep(), value, k
        stop = self.rule.update(value)
        self.progress.update(k, loss, validation, seconds, self.activation(params))
        if stop:
            self.reason = "no_improvement"
        return stop

    # The model's part ------------------------------------------------------

    def objective(self, params):
        """The objective on the validation rows at ``params`` (a float)."""
        return float(self.backend.objective(params, self.X_val, **objective_settings(self.hp)))

    def activation(self, params):
        """A function giving the mean hidden activation at ``params`` (for
        a progress line), or None."""
        return lambda: float(np.mean(self.backend.encode(params[0], params[1], self.X)))

    def check_model(self, params, unconverged, stacklevel):
        """The end-of-fit health checks of the trained ``params``."""
        check_health(self.backend, params, self.X, self.hp, stacklevel + 1,
                     reconstruction=unconverged is None)

    # Ends -----------------------------------------------------------------

    def stop_message(self):
        return self.rule.message(self.unit)

    def diverged(self):
        """The run diverged: end the display (the weights are not those of
        the last line)."""
        self.progress.close(completed=False)
        self.reason = "diverged"

    def interrupted(self, message, stacklevel):
        """Ctrl-C: end the display and warn with ``message`` (what the
        model kept)."""
        self.progress.close(completed=False)
        self.reason = "interrupted"
        warnings.warn(TrainingInterruptedWarning(message), stacklevel=stacklevel)

    def say(self, line):
        if self.hp.verbose:
            print(line, file=sys.stdout, flush=True)

    def finish(self, params, unconverged, stacklevel):
        """The end-of-fit checks on the trained ``params``: a
        ``ConvergenceWarning`` saying ``unconverged`` (None: the run ended
        by its own rules), then the health checks."""
        if unconverged is not None:
            warnings.warn(convergence_warning()(unconverged), stacklevel=stacklevel)
        self.check_model(params, unconverged, stacklevel + 1)


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


class Outcome(NamedTuple):
    """What one training call (a solver's run, judged by
    ``csae._training.Transaction``) leaves."""

    state: Any               # the ModelState to publish, or None: keep the old one
    status: str              # "done", "stopped", "diverged" or "interrupted"
    message: Any             # "stopped": what stopped it; "diverged": (why, advice)
    epoch: Optional[int] = None   # "diverged": the epoch (1-based, as n_iter_) that did
    reason: Optional[str] = None  # one of STOP_REASONS: the fitted stop_reason_
