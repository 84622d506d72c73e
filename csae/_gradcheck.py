"""UFLDL's gradient check on values: analytic gradients of an objective
against central finite differences.

``csae.check_gradients(model, X, ...)`` (in ``csae._estimator``) takes one
snapshot of the model, prepares X in float64 and calls ``check_gradients``
here with the backend, the weights and the objective's settings."""

import math
import numbers

import numpy as np

from csae._state import WEIGHT_NAMES

__all__ = ["check_arguments", "check_gradients"]


def check_arguments(epsilon, max_entries):
    """ValueError unless ``epsilon`` > 0 is finite and ``max_entries`` is
    None or an integer >= 1."""
    if (not isinstance(epsilon, numbers.Real) or isinstance(epsilon, bool)
            or not math.isfinite(epsilon) or epsilon <= 0):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if max_entries is not None and (not isinstance(max_entries, numbers.Integral)
                                    or isinstance(max_entries, bool) or max_entries < 1):
        raise ValueError(f"max_entries must be None or an integer >= 1, got {max_entries!r}")


def check_gradients(backend, params, X, settings, *, epsilon=1e-4, max_entries=None,
                    random_state=0):
    """Each parameter array's relative error, ``{name: error}``, between
    ``backend``'s analytic gradients of the objective on X (float64, as one
    batch, with the objective ``settings``) and central differences of
    step ``epsilon`` (at most ``max_entries`` entries of each array, drawn
    with ``random_state``).  ``params`` are copied to float64 first, so
    the caller's arrays are never perturbed."""
    params = tuple(np.array(p, dtype=np.float64, order="C") for p in params)
    _, grads = backend.objective_and_gradients(params, X, **settings)
    rng = np.random.default_rng(random_state)

    details = {}
    for name, theta, grad in zip(WEIGHT_NAMES, params, grads):
        flat = theta.reshape(-1)  # a view: perturbing it perturbs the model copy
        entries = np.arange(flat.size)
        if max_entries is not None and max_entries < flat.size:
            entries = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
        numeric = np.empty(entries.size)
        for i, k in enumerate(entries):
            saved = flat[k]
            flat[k] = saved + epsilon
            plus = backend.objective(params, X, **settings)
            flat[k] = saved - epsilon
            minus = backend.objective(params, X, **settings)
            flat[k] = saved
            numeric[i] = (plus - minus) / (2.0 * epsilon)
        analytic = np.asarray(grad, dtype=np.float64).reshape(-1)[entries]
        denominator = np.linalg.norm(numeric + analytic)
        difference = np.linalg.norm(numeric - analytic)
        details[name] = (0.0 if difference == 0.0 else
                         float(difference / denominator) if denominator > 0 else math.inf)
    return details
