"""Full-batch L-BFGS over a backend's objective and gradients.

The optimizer is the engine's (``csae_lbfgs`` in src_c/lbfgs.c: SciPy's
L-BFGS-B algorithm without bounds, every reduction in a fixed order), driven
from here by reverse communication: it asks for an evaluation at a point,
this module makes one backend call (for the C engine: threaded, with the GIL
released), and it reports each new iterate.  So the optimizer's arithmetic
is the same on every CPU, and with the engine's objective (bit-identical
across kernel paths and thread counts) so is the whole fit.

The optimizer sees one float64 vector; the model's four arrays are views
into it (float64 models) or float32 copies of it (float32 models: the
optimizer's own arithmetic, the search directions and the line search,
stays in float64, while every objective and gradient is computed in
float32, so the reported objective carries float32 rounding).
"""

from typing import NamedTuple, Tuple

import numpy as np

from csae import _engine
from csae._errors import NonFiniteError

__all__ = ["LbfgsResult", "lbfgs"]

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


# Why a run ended, by csae_lbfgs_task.
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
                              gtol=tol, n_threads=n_threads)
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
        message = "interrupted"
    elif stopped:
        message = "stopped by the caller"
    else:
        message = _MESSAGES[task]
    params = tuple(np.array(p, dtype=packing.dtype) for p in packing.unpack(last))
    converged = task == _engine.LBFGS_CONVERGED and not (stopped or interrupted)
    return LbfgsResult(params, tuple(curve), len(curve), optimizer.evaluations, converged,
                       interrupted, stopped, message)
