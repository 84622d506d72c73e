"""Full-batch L-BFGS over a backend's objective and gradients: the driver
``lbfgs`` and the solver ``LBFGS`` that trains a model with it.

The optimizer is the engine's (``csae_lbfgs`` in src_c/lbfgs.c: SciPy's
L-BFGS-B algorithm without bounds, every reduction in a fixed order), driven
from here by reverse communication: it asks for an evaluation at a point,
this module makes one backend call (for the C engine: threaded, with the GIL
released), and it reports each new iterate.  So the optimizer's arithmetic
is the same on every CPU, and with the engine's objective (bit-identical
across kernel paths and thread counts) so is the whole fit.

The optimizer sees one float64 vector; the model's four arrays are views
into it (float64 models) or float32 copies of it (float32 models: every
objective and gradient is computed in float32, so the reported objective
carries float32 rounding).  The optimizer's arithmetic, its products and
sums and the line search, is float64 for both; for float32 models it stores
its pairs (s, y) and its direction in float32, as torch.optim.LBFGS does: on
large models moving those vectors is most of an iteration's work outside
the evaluations, and float32 halves the bytes.
"""

import math
import time
from typing import NamedTuple, Tuple

import numpy as np

from csae import _engine
from csae._errors import NonFiniteError
from csae._state import EMPTY_STATE, ORIGIN_TRAINED, frozen_tuple
from csae.solvers._monitor import Outcome, kept_message, objective_settings, why_diverged
from csae.solvers._registry import SOLVER_CLASSES, Solver

__all__ = ["LBFGS", "LbfgsResult", "lbfgs"]

# SciPy's L-BFGS-B default relative-reduction tolerance (factr = 1e7).
FTOL = 1e7 * np.finfo(np.float64).eps


class LbfgsResult(NamedTuple):
    params: Tuple[np.ndarray, ...]   # the last iterate (the best point), in the model dtype
    loss_curve: Tuple[float, ...]    # objective after each iteration
    n_iter: int                      # iterations completed
    n_fun: int                       # objective evaluations
    converged: bool                  # stopped by the optimizer's own tests
    interrupted: bool                # stopped by Ctrl-C
    stopped: bool                    # stopped by on_iteration (early stopping)
    message: str                     # why the optimizer stopped
    reason: str                      # the same, as a stop_reason_ (see STOP_REASONS)


# Why a run ended, by csae_lbfgs_task: as a sentence and as a stop_reason_.
_REASONS = {
    _engine.LBFGS_CONVERGED: "converged",
    _engine.LBFGS_MAX_ITER: "max_epochs",
    _engine.LBFGS_MAX_EVAL: "max_fun",
    _engine.LBFGS_LINE_SEARCH_FAILED: "line_search",
    _engine.LBFGS_NONFINITE: "diverged",
}
_MESSAGES = {
    _engine.LBFGS_CONVERGED: "converged: relative reduction of the objective <= ftol",
    _engine.LBFGS_MAX_ITER: "iteration limit reached",
    _engine.LBFGS_MAX_EVAL: "evaluation limit reached",
    _engine.LBFGS_LINE_SEARCH_FAILED: "no step lowers the objective (line search failed)",
    _engine.LBFGS_NONFINITE: "the objective or its gradient at the start is not finite",
}


class _Packing:
    """The four parameter arrays as slices of one float64 vector."""

    def __init__(self, params):
        self.dtype = params[0].dtype
        self.shapes = [p.shape for p in params]
        ends = np.cumsum([p.size for p in params])
        self.slices = [slice(end - p.size, end) for end, p in zip(ends, params)]
        self.size = int(ends[-1])

    def pack(self, arrays, out=None):
        out = np.empty(self.size) if out is None else out
        for s, a in zip(self.slices, arrays):
            out[s] = a.ravel()
        return out

    def unpack(self, theta):
        # Slices of a contiguous vector are contiguous: float64 models get
        # views, float32 models one rounding of each value.
        return tuple(theta[s].reshape(shape).astype(self.dtype, copy=False)
                     for s, shape in zip(self.slices, self.shapes))


def lbfgs(objective_and_gradients, params, *, max_iter, max_fun, tol, on_iteration=None,
          ftol=FTOL, n_threads=1):
    """Minimise ``objective_and_gradients(params) -> (L, grads)`` from
    ``params`` with L-BFGS.  If it has a method ``evaluate_flat(theta,
    grad) -> L`` (``Backend.objective_evaluator``), that is called instead,
    on the optimizer's float64 vector (W, b, Wd, bd raveled in that order).

    ``max_iter`` bounds the iterations, ``max_fun`` the evaluations
    (checked after each iteration, as SciPy does); ``tol`` is the gradient
    test (stop when every gradient component is at most tol in absolute
    value) and ``ftol`` the relative-reduction test, both as in SciPy's
    L-BFGS-B.  An evaluation whose objective or gradient is not finite
    makes the line search step back; iterates only ever lower the
    objective, so the result is the last iterate.  Ctrl-C
    (KeyboardInterrupt) stops the search and returns that iterate with
    ``interrupted=True``.

    ``on_iteration(k, loss, params)``, if given, is called after iteration
    ``k`` (1-based) with the point it reached (arrays valid during the call
    only); returning True ends the search there (``stopped=True``).
    ``n_threads`` share the optimizer's own vector work (the results do not
    depend on it).
    """
    packing = _Packing(params)
    x = packing.pack(params)
    g = np.zeros(packing.size)
    last = x.copy()   # the latest iterate (x also holds trial points)
    curve = []
    flat = getattr(objective_and_gradients, "evaluate_flat", None)

    def evaluate():
        try:
            if flat is not None:
                return flat(x, g)
            loss, grads = objective_and_gradients(packing.unpack(x))
        except NonFiniteError:
            return np.inf
        packing.pack(grads, out=g)
        return loss

    optimizer = _engine.Lbfgs(packing.size, max_iter=max_iter, max_eval=max_fun, ftol=ftol,
                              gtol=tol, n_threads=n_threads,
                              float32_storage=packing.dtype == np.float32)
    f, task = 0.0, _engine.LBFGS_EVALUATE
    stopped = interrupted = False
    try:
        while True:
            task, f = optimizer.step(x, f, g)
            if task == _engine.LBFGS_EVALUATE:
                f = float(evaluate())
            elif task == _engine.LBFGS_ITERATE:
                np.copyto(last, x)
                curve.append(f)
                if on_iteration is not None and on_iteration(len(curve), f,
                                                             packing.unpack(x)):
                    stopped = True
                    break
            else:
                break
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        message, reason = "interrupted", "interrupted"
    elif stopped:
        message, reason = "stopped by the caller", "no_improvement"
    else:
        message, reason = _MESSAGES[task], _REASONS[task]
    params = tuple(np.array(p, dtype=packing.dtype) for p in packing.unpack(last))
    converged = task == _engine.LBFGS_CONVERGED and not (stopped or interrupted)
    return LbfgsResult(params, tuple(curve), len(curve), optimizer.evaluations, converged,
                       interrupted, stopped, message, reason)


class LBFGS(Solver):
    """Full-batch L-BFGS as a solver.  It keeps no state between calls (each
    fit starts a new history), so a state it publishes carries no solver
    state, nor a running sparsity estimate (it computes the exact one)."""

    name = "lbfgs"
    title = "L-BFGS"
    unit = "iteration"
    # Full batch: a line search, no step size; it steps back from non-finite
    # points by itself (Transaction checks its start's gradient, and the
    # data after every call).
    full_batch = True

    def run(self, backend, X, start, n_epochs, monitor, stacklevel):
        """L-BFGS from ``start`` on the prepared X, for at most ``n_epochs``
        iterations, early stopping on the monitor's validation rows (per
        iteration) when it has them.  Returns an ``Outcome`` whose state
        holds the best point reached (the best validation point with early
        stopping), or None when no iteration completed before Ctrl-C.
        L-BFGS only accepts steps that lower the objective, so from a
        finite start (``Transaction.begin`` checks it) it cannot diverge;
        an evaluation that overflows is a step refused.  A run whose loss
        curve is not finite all the same is returned as "diverged", for
        ``Transaction.settle`` to refuse."""
        hp = self.hp
        began = time.perf_counter()
        last = {"time": began}

        def on_iteration(k, loss, params):
            now = time.perf_counter()
            seconds, last["time"] = now - last["time"], now
            validation = monitor.validate(params, strict=False)
            keep = (None if validation is None
                    else lambda: tuple(np.array(p) for p in params))
            return monitor.epoch(k, loss, validation, seconds, params, keep=keep)

        try:
            # The engine's evaluator keeps one workspace for the whole fit.
            evaluator = backend.objective_evaluator(X, hp.n_hidden, **objective_settings(hp))
            # One stopping rule for every solver, the monitor's: a gradient
            # tolerance is not used (tol=0): it compares raw gradient
            # components with tol, which depends on the data's scale (on
            # whitened image patches gtol=1e-4 ended L-BFGS after 22 of 400
            # iterations).
            result = lbfgs(evaluator, start.params, max_iter=n_epochs, max_fun=hp.max_fun,
                           tol=0.0, on_iteration=on_iteration, n_threads=backend.n_threads)
        finally:
            # The summary line below reports the end; the arrays of the last
            # iteration are the optimizer's and may have moved on.
            monitor.progress.close(completed=False)
        monitor.reason = result.reason
        if result.interrupted:
            kept = (f"the model keeps the best point of the {result.n_iter} iterations "
                    "completed" if result.n_iter else kept_message(None))
            monitor.interrupted(f"L-BFGS interrupted after {result.n_iter} iterations; "
                                f"{kept}.", stacklevel + 1)
            if result.n_iter == 0:
                return Outcome(None, "interrupted", None, reason=monitor.reason)
        state = self._state(start, result, monitor)
        if result.interrupted:
            return Outcome(state, "interrupted", None, reason=monitor.reason)
        if not all(math.isfinite(v) for v in result.loss_curve):
            # An iteration reached no finite point: Transaction.settle refuses
            # this state, so the end-of-fit advice would be about nothing.
            monitor.reason = "diverged"
            return Outcome(state, "diverged", why_diverged(NonFiniteError("")),
                           len(state.loss_curve), reason=monitor.reason)
        return self._finish(state, result, monitor, time.perf_counter() - began,
                            stacklevel + 1)

    @staticmethod
    def _state(start, result, monitor):
        """The state to publish: the last iterate, or with early stopping
        the best validation point (the curves whole)."""
        params = result.params
        extra = dict(validation_loss_curve=None, best_validation_loss=None, best_epoch=None)
        if monitor.X_val is not None and monitor.best is not None:
            params = monitor.best
            extra = dict(validation_loss_curve=tuple(monitor.val_curve),
                         best_validation_loss=monitor.best_value,
                         best_epoch=len(start.loss_curve) + monitor.best_k)
        state = start._replace(
            params=frozen_tuple(params),
            loss_curve=tuple(start.loss_curve) + tuple(result.loss_curve),
            pending=EMPTY_STATE.pending, origin=ORIGIN_TRAINED, **extra)
        # No solver's state, nor the running sparsity estimate, survives a
        # fit by L-BFGS: a later partial_fit starts them afresh.
        for solver in SOLVER_CLASSES:
            state = solver.store(state, None)
        return state._replace(rho_running=None, running_batches=0)

    def _finish(self, state, result, monitor, seconds, stacklevel):
        """The verbose summary and the end-of-fit checks of a run that ended
        by its rules."""
        hp = self.hp
        status = "stopped" if result.stopped else "done"
        message = monitor.stop_message() if result.stopped else result.message
        final = result.loss_curve[-1] if result.loss_curve else float("nan")
        monitor.say(f"L-BFGS: {result.n_iter} iterations, {result.n_fun} evaluations, "
                    f"objective {final:.6g}, {seconds:.3f} s ({message})")
        if state.best_epoch is not None:
            monitor.say(f"best validation objective {state.best_validation_loss:.6g} at "
                        f"iteration {state.best_epoch}, whose weights the model keeps")
        cut_short = not result.converged and not result.stopped and (
            hp.tol > 0 or monitor.X_val is not None)
        unconverged = None
        if cut_short:
            unconverged = (
                f"L-BFGS stopped before converging ({message}) after {result.n_iter} "
                f"iterations and {result.n_fun} evaluations (max_epochs={hp.max_epochs}, "
                f"max_fun={hp.max_fun}, tol={hp.tol:g}). Raise max_epochs or max_fun to "
                "train longer, or set tol=0 to run exactly that budget without this "
                "warning.")
        monitor.finish(state.params, unconverged, stacklevel + 1)
        return Outcome(state, status, message, reason=monitor.reason)
