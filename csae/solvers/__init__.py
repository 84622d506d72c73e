"""The solvers that train a model, and the monitor that watches them.

(The L-BFGS driver itself is ``csae.solvers.lbfgs.lbfgs``.)

Each solver is one class (``SGD`` and ``Adam`` in the engine's minibatch
epochs, ``LBFGS`` over the engine's L-BFGS); it owns its state between
calls as one frozen value (``MomentumState``, ``AdamState``; L-BFGS keeps
none), says how a ``ModelState``, a pickle and a model file carry it, and
makes the engine call.  Around every solver the ``Monitor``
(``csae.solvers._monitor``) applies the stopping rule, keeps the best
state, detects divergence, handles Ctrl-C, shows progress, gives the
end-of-fit warnings and records why the run stopped (``STOP_REASONS``).

``SOLVERS`` maps the ``solver`` hyperparameter's values to the classes; a
new solver is a class here plus its engine call (see the contributor
guide).
"""

from csae.solvers._monitor import STOP_REASONS, Monitor, Outcome
from csae.solvers.adam import Adam, AdamState
from csae.solvers.lbfgs import LBFGS
from csae.solvers.sgd import SGD, MomentumState

__all__ = ["SOLVERS", "STOP_REASONS", "Monitor", "Outcome", "SGD", "Adam", "LBFGS",
           "MomentumState", "AdamState", "solver_state_arrays"]

SOLVERS = {cls.name: cls for cls in (LBFGS, SGD, Adam)}


def solver_state_arrays(model_state, dtype):
    """The model-file members of every solver state ``model_state``
    carries (a model trained by SGD with momentum and then by Adam carries
    both), in the order files have always held them."""
    arrays = {}
    for cls in (SGD, Adam, LBFGS):
        arrays.update(cls.file_arrays(model_state, dtype))
    return arrays
