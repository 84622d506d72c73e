"""One training call (``fit``, a warm start, ``partial_fit``) as a
transaction, around whichever solver runs it.

``train`` makes the solver ``hp.solver`` names (``csae.solvers.SOLVERS``)
and the ``Monitor`` that watches it, and runs it on copies of a starting
``ModelState``; it returns an ``Outcome`` with a new state (or None: the
caller keeps the old model) and why the run stopped (``reason``, the
fitted ``stop_reason_``).  A ``Transaction`` wraps each call the same way
for every solver, so that fit stays a transaction: it refuses to start
from a non-finite objective and decides, after the call, what a diverged
call leaves (its best state only if that beats the model before the call)
and that no state which is not finite everywhere is ever published.

``stacklevel`` arguments count from the function that takes them: 1 is
that function, so the estimator passes the depth of its user's line.
"""

import math
import warnings

import numpy as np

from csae._blockwise import changed_message
from csae._errors import NonFiniteError
from csae._warnings import TrainingDivergedWarning, TrainingInterruptedWarning
from csae.solvers import SOLVERS
from csae.solvers._monitor import (
    BLOWUP_FACTOR,
    CHECK_ROWS,
    Monitor,
    Outcome,
    kept_message,
    objective_settings,
)

__all__ = ["train", "run_epochs", "run_lbfgs", "validation_split", "objective_settings",
           "Transaction", "BLOWUP_FACTOR", "CHECK_ROWS", "Outcome"]

# Rows of X on which the objective a call starts from is measured (as one
# batch) at every call: the yardstick of the blow-up check (BLOWUP_FACTOR).
# Few, since partial_fit pays for it at each chunk (on 4096 x 64
# rows, 25 units, the objective of 4096 rows cost 40% of the epoch); a mean
# over 256 rows is within a few percent of the whole, far inside the factor.
REFERENCE_ROWS = 256


def train(backend, X, hp, start, n_epochs, *, stacklevel, reference=None, X_val=None,
          stopping=True, hook=None):
    """Run up to ``n_epochs`` epochs (iterations) of ``hp.solver`` on the
    prepared X from the state ``start``, on copies (``start`` and the
    published state are never written).

    ``reference``: the objective this call started from (``Transaction``
    measures it), the yardstick of the blow-up check.
    ``X_val``: the held-out rows for early stopping (None: off).
    ``stopping``: apply the stopping rule and the end-of-fit checks (fit,
    not partial_fit).  Returns an ``Outcome``; on divergence its state is
    the best completed epoch of the call (or None), for ``Transaction`` to
    judge.  An exception other than divergence and Ctrl-C propagates (the
    caller then publishes nothing)."""
    solver = SOLVERS[hp.solver](hp, start)
    monitor = Monitor(backend, X, hp, solver.unit, n_epochs, first=len(start.loss_curve) + 1,
                      X_val=X_val, stopping=stopping, reference=reference, hook=hook)
    return solver.run(backend, X, start, n_epochs, monitor, stacklevel + 1)


def run_epochs(backend, X, hp, start, n_epochs, *, stacklevel, reference, X_val=None,
               stopping=False, hook=None):
    """``train`` for a minibatch solver, as the estimator called it
    before ``train`` (kept for callers of that name)."""
    return train(backend, X, hp, start, n_epochs, stacklevel=stacklevel + 1,
                 reference=reference, X_val=X_val, stopping=stopping, hook=hook)


def run_lbfgs(backend, X, hp, start, *, stacklevel, X_val=None, hook=None):
    """``train`` for "lbfgs", up to ``max_epochs`` iterations (kept for
    callers of that name)."""
    return train(backend, X, hp, start, hp.max_epochs, stacklevel=stacklevel + 1,
                 X_val=X_val, hook=hook)


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
    of X: the objective as ``_objective_at`` gives it, and for a full-batch
    solver (L-BFGS) whether its gradient can be stepped along (its squared
    norm fits in float64: beyond that the optimizer's arithmetic overflows;
    weight_decay=1e300 gives a finite objective and such a gradient).  The
    minibatch solvers find that out in their first step, which overflows,
    so they skip the gradient: partial_fit pays for this at every chunk, and
    the gradient costs as much as an epoch of a small chunk."""
    if not SOLVERS[hp.solver].full_batch:
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



# --------------------------------------------------------------------------
# One training call as a transaction
# --------------------------------------------------------------------------

def _finite_state(state):
    """True when every number of ``state`` is finite: the condition for a
    model file that ``load`` accepts (it refuses NaN and inf anywhere)."""
    values = (solver.state_in(state) for solver in SOLVERS.values())
    groups = (state.params, *(value.arrays() for value in values if value is not None),
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
            solver = SOLVERS[self.hp.solver]
            if solver.full_batch:
                message = (f"{solver.title} interrupted after 0 iterations; "
                           f"{kept_message(None)}.")
            else:
                message = (f"training interrupted during epoch "
                           f"{len(self.start.loss_curve) + 1}; {kept_message(None)} (the "
                           "interrupted epoch is not counted in n_iter_).")
            warnings.warn(TrainingInterruptedWarning(message), stacklevel=stacklevel)
            return Outcome(None, "interrupted", None, reason="interrupted")
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
        return Outcome(None, "diverged", "the starting objective is not finite",
                       reason="diverged")

    def settle(self, outcome, stacklevel):
        """The Outcome to publish after the driver returned ``outcome``."""
        state = outcome.state
        solver = SOLVERS[self.hp.solver]
        if outcome.status == "diverged" or solver.full_batch:
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
            if solver.full_batch:  # no step size to blame
                fix = (f"lower weight_decay={hp.weight_decay:g} or sparsity_weight="
                       f"{hp.sparsity_weight:g}, or rescale X")
            else:
                fix = (f"try a smaller {advice} (now learning_rate={hp.learning_rate:g}, "
                       f"weight_decay={hp.weight_decay:g})")
            unit = solver.unit
            what = what.replace("epoch", unit)
            self._warn(f"training diverged at {unit} {outcome.epoch}{why}. Training "
                       f"stopped and {what}; {fix}.", stacklevel + 1)
            return outcome._replace(state=kept, message=f"training diverged{why}")
        if state is not None and not _finite_state(state):
            self._warn(f"training reached a state that is not finite (objective "
                       f"{state.loss_curve[-1] if state.loss_curve else math.nan:g}); "
                       f"{self._left()}. Lower weight_decay or sparsity_weight, or "
                       "rescale X.", stacklevel + 1)
            return Outcome(None, "diverged", "training reached a state that is not finite",
                           reason="diverged")
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

