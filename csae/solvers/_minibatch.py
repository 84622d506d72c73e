"""The epoch loop of the minibatch solvers (``csae.solvers.sgd`` and the like).

Each epoch is one engine call, ``backend.sgd_epoch``, which updates the
weights and the solver's state in place; around it the loop keeps working
copies (``start`` and every published state are never written), snapshots
the state after each completed epoch, and leaves every decision (stopping,
best epoch, divergence, Ctrl-C, progress, end-of-fit warnings) to the
``Monitor``.  A subclass is one solver: its state as one frozen value
(``State``), how a ``ModelState`` carries it, and its engine keywords.
"""

import time

import numpy as np

from csae._errors import NonFiniteError
from csae._state import EMPTY_STATE, ORIGIN_TRAINED, frozen
from csae.solvers._registry import Solver
from csae.solvers._monitor import BlowUp, Outcome, kept_message, objective_settings, \
    why_diverged

__all__ = ["MinibatchSolver", "copies", "snapshot", "zeros"]


def copies(arrays, dtype):
    """Writable C-contiguous copies of ``arrays`` in ``dtype``."""
    return tuple(np.array(a, dtype=dtype, order="C") for a in arrays)


def zeros(arrays, dtype):
    """Zeros shaped like ``arrays``, in ``dtype`` (a solver state's start)."""
    return tuple(np.zeros(np.shape(a), dtype=dtype) for a in arrays)


def snapshot(arrays):
    """Frozen copies of ``arrays`` (None stays None): a published state's
    arrays are never written again."""
    return None if arrays is None else tuple(frozen(np.array(a)) for a in arrays)


class RunningSparsity:
    """The running estimate of the mean activations (sparsity_estimate=
    "running"): part of the objective, not of a solver, so every minibatch
    solver carries it the same way.  Working copy of ``start``'s."""

    def __init__(self, hp, start, h):
        self.q, self.batches = None, int(start.running_batches)
        self.smoothing = hp.sparsity_smoothing
        if hp.sparsity_estimate == "running":
            if start.rho_running is not None and start.rho_running.shape == (h,):
                self.q = np.array(start.rho_running, dtype=hp.dtype)
            else:
                self.q, self.batches = np.zeros(h, dtype=hp.dtype), 0

    def keywords(self):
        if self.q is None:
            return {}
        return dict(sparsity_smoothing=self.smoothing, rho_running=self.q,
                    running_batches=self.batches)

    def advance(self, n_batches):
        self.batches += n_batches if self.q is not None else 0

    def store(self, model_state):
        q = frozen(np.array(self.q)) if self.q is not None else model_state.rho_running
        return model_state._replace(rho_running=q, running_batches=self.batches)


class MinibatchSolver(Solver):
    """A solver that trains by epochs of minibatch steps in the engine.

    A subclass sets ``name`` and ``State`` (a frozen dataclass: the
    solver's whole state between calls, or None when it keeps none) and
    defines ``state_in``/``store`` (how a ``ModelState`` carries that
    value), ``file_arrays`` (how a model file does), and for a run
    ``__init__`` (working copies from the value ``start`` carries),
    ``engine_keywords`` (per epoch), ``advance`` (after an epoch of
    ``n_batches`` steps) and ``state`` (the value now)."""

    # name, title, State and the stateless defaults come from Solver.
    full_batch = False  # minibatch steps of a learning rate (see LBFGS.full_batch)

    # A run ---------------------------------------------------------------

    def velocity(self):
        """The engine's momentum arrays (None: no momentum)."""
        return None

    def engine_keywords(self):
        return {}

    def advance(self, n_batches):
        pass

    def state(self):
        return None

    def run(self, backend, X, start, n_epochs, monitor, stacklevel):
        """Up to ``n_epochs`` epochs on the prepared X from ``start`` (whose
        state value this solver was made from).  Returns an ``Outcome``; on
        divergence its state is the best completed epoch (or None), for
        ``Transaction`` to judge.  An exception other than divergence and
        Ctrl-C propagates (the caller then publishes nothing)."""
        hp = self.hp
        params = copies(start.params, hp.dtype)
        running = RunningSparsity(hp, start, params[0].shape[0])
        # Any batch_size above the row count means full batch; passing at
        # most the row count keeps huge values off the C integers.
        batch_size = min(hp.batch_size, max(1, X.shape[0]))
        fixed = dict(objective_settings(hp), learning_rate=hp.learning_rate,
                     momentum=hp.momentum, batch_size=batch_size, shuffle=hp.shuffle)
        n_batches = -(-X.shape[0] // batch_size)
        curve, rng_state = list(start.loss_curve), start.rng_state
        done = None      # the state after the last epoch completed in this call
        status, message = "done", None
        try:
            for k in range(1, n_epochs + 1):
                began = time.perf_counter()
                loss, rng_state = backend.sgd_epoch(
                    params, self.velocity(), X, rng_state=rng_state, **fixed,
                    **self.engine_keywords(), **running.keywords())
                seconds, loss = time.perf_counter() - began, float(loss)
                monitor.check(loss, params)
                validation = monitor.validate(params, strict=True)
                self.advance(n_batches)
                running.advance(n_batches)
                curve.append(loss)
                done = running.store(self.store(start, self.state()))._replace(
                    params=snapshot(params), rng_state=int(rng_state),
                    loss_curve=tuple(curve), reference_objective=None,
                    pending=EMPTY_STATE.pending, origin=ORIGIN_TRAINED,
                    validation_loss_curve=None, best_validation_loss=None, best_epoch=None)
                if monitor.epoch(k, loss, validation, seconds, params,
                                 keep=lambda: done):
                    status, message = "stopped", monitor.stop_message()
                    break
        except (NonFiniteError, BlowUp) as err:
            monitor.diverged()
            return Outcome(monitor.best, "diverged", why_diverged(err), len(curve) + 1,
                           reason=monitor.reason)
        except KeyboardInterrupt:
            monitor.interrupted(f"training interrupted during epoch {len(curve) + 1}; "
                                f"{kept_message(done)} (the interrupted epoch is not "
                                "counted in n_iter_).", stacklevel + 1)
            return Outcome(done, "interrupted", None, reason=monitor.reason)
        finally:
            monitor.progress.close()
        return self._finish(done, status, message, monitor, stacklevel + 1)

    @staticmethod
    def _finish(done, status, message, monitor, stacklevel):
        """The Outcome of a run that ended by its rules: with early
        stopping the best validation epoch's weights (and the solver state
        that goes with them), the curves whole; the end-of-fit checks."""
        if monitor.reason is None:
            monitor.reason = "max_epochs"
        final, best = done, monitor.best
        if monitor.X_val is not None and best is not None:
            final = best._replace(loss_curve=done.loss_curve, rng_state=done.rng_state,
                                  validation_loss_curve=tuple(monitor.val_curve),
                                  best_validation_loss=monitor.best_value,
                                  best_epoch=len(best.loss_curve))
        if monitor.stopping and final is not None:
            unit = monitor.unit
            if status == "stopped":
                line = f"stopped after {unit} {len(final.loss_curve)}: {message}"
            else:
                line = f"reached max_epochs ({len(final.loss_curve)} {unit}s in all)"
            if final.best_epoch is not None:
                line += (f"; best validation objective {final.best_validation_loss:.6g} at "
                         f"{unit} {final.best_epoch}, whose weights the model keeps")
            monitor.say(line)
            unmet = status == "done" and monitor.rule.active
            monitor.finish(final.params,
                           monitor.rule.unmet(monitor.hp.max_epochs, unit) if unmet else None,
                           stacklevel + 1)
        return Outcome(final, status, message, reason=monitor.reason)
