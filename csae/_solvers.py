"""Full-batch L-BFGS over a backend's objective and gradients.

The way scikit-learn's MLP does it: SciPy's ``minimize(method="L-BFGS-B",
jac=True)`` drives one backend call per evaluation, which returns the
objective and all four gradients over the whole data (for the C engine:
threaded, with the GIL released).  The optimizer sees one float64 vector;
the model's four arrays are views into it (float64 models) or float32
copies of it (float32 models: the optimizer's own arithmetic, the search
directions and the line search, stays in float64, while every objective and
gradient is computed in float32, so the reported objective carries float32
rounding).

SciPy is imported here, when the solver is used, not when csae is.
"""

import contextlib
from typing import NamedTuple, Tuple

import numpy as np

from csae._errors import NonFiniteError

__all__ = ["LbfgsResult", "lbfgs"]


class LbfgsResult(NamedTuple):
    params: Tuple[np.ndarray, ...]   # the best point reached, in the model dtype
    loss_curve: Tuple[float, ...]    # objective after each iteration
    n_iter: int                      # iterations completed
    n_fun: int                       # objective evaluations
    converged: bool                  # stopped by tol, not by a budget
    interrupted: bool                # stopped by Ctrl-C
    stopped: bool                    # stopped by on_iteration (early stopping)
    message: str                     # SciPy's reason for stopping


def _import_minimize():
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise ImportError('solver="lbfgs" needs SciPy, a dependency of csae: '
                          'pip install "scipy>=1.11"') from None
    return minimize


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


def _one_blas_thread():
    """A context in which BLAS runs on one thread (threadpoolctl, if it is
    installed).  SciPy's L-BFGS-B update works on vectors as long as the
    parameters (a few thousand entries for a 64-25 model), where BLAS
    threads only add waiting: on a loaded 2-core machine setulb took 2.8 s
    wall for 100 iterations with OpenBLAS's 2 threads, 0.09 s with one.
    The engine's own threads are not BLAS and are not affected."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def lbfgs(objective_and_gradients, params, *, max_iter, max_fun, tol, on_iteration=None):
    """Minimise ``objective_and_gradients(params) -> (L, grads)`` from
    ``params`` with L-BFGS.  If it has a method ``evaluate_flat(theta,
    grad) -> L`` (``Backend.objective_evaluator``), that is called instead,
    on the optimizer's float64 vector (W, b, Wd, bd raveled in that order).

    ``max_iter`` bounds the iterations, ``max_fun`` the evaluations; ``tol``
    is SciPy's ``gtol`` (stop when every gradient component is at most tol
    in absolute value), as scikit-learn's MLP uses it.  An evaluation whose
    objective or gradient is not finite counts as +inf, so the line search
    backs off from it; the result is always the best finite point seen.
    Ctrl-C (KeyboardInterrupt) stops the search and returns that point with
    ``interrupted=True``.

    ``on_iteration(k, loss, params)``, if given, is called after iteration
    ``k`` (1-based) with the point it reached (arrays valid during the call
    only); returning True ends the search there (``stopped=True``), through
    SciPy's documented way out of ``minimize``: a callback raising
    ``StopIteration`` (SciPy >= 1.11).
    """
    minimize = _import_minimize()
    packing = _Packing(params)
    theta0 = packing.pack(params)
    best = {"loss": np.inf, "theta": theta0.copy()}
    curve = []
    n_fun = 0

    # An evaluator with evaluate_flat (Backend.objective_evaluator on the C
    # engine) reads theta and writes the gradient in place, with a
    # workspace it keeps for the whole fit.
    flat = getattr(objective_and_gradients, "evaluate_flat", None)

    def fun(theta):
        nonlocal n_fun
        n_fun += 1
        try:
            if flat is not None:
                grad = np.empty(packing.size)
                loss = flat(theta, grad)
            else:
                loss, grads = objective_and_gradients(packing.unpack(theta))
                grad = packing.pack(grads)
        except NonFiniteError:
            return np.inf, np.zeros(packing.size)
        if not (np.isfinite(loss) and np.all(np.isfinite(grad))):
            return np.inf, np.zeros(packing.size)
        if loss < best["loss"]:
            best["loss"], best["theta"] = loss, theta.copy()
        return loss, grad

    stopped = False

    def callback(intermediate_result):
        nonlocal stopped
        curve.append(float(intermediate_result.fun))
        if on_iteration is not None and on_iteration(
                len(curve), curve[-1], packing.unpack(intermediate_result.x)):
            stopped = True
            raise StopIteration

    interrupted = False
    try:
        with _one_blas_thread():
            result = minimize(fun, theta0, jac=True, method="L-BFGS-B", callback=callback,
                              options={"maxiter": max_iter, "maxfun": max_fun, "gtol": tol})
        message, converged = str(result.message), bool(result.success)
    except KeyboardInterrupt:
        interrupted, message, converged = True, "interrupted", False
    params = tuple(np.array(p, dtype=packing.dtype) for p in packing.unpack(best["theta"]))
    return LbfgsResult(params, tuple(curve), len(curve), n_fun, converged and not stopped,
                       interrupted, stopped, message)
