"""UFLDL's gradient check as a public function: analytic gradients of a
model's objective against central finite differences."""

import math
import numbers

import numpy as np

from csae._backends import Backend
from csae._estimator import WEIGHT_NAMES

__all__ = ["check_gradients"]


def check_gradients(model, X, epsilon=1e-4, *, max_entries=None, random_state=0,
                    return_details=False):
    """Worst relative error between a model's analytic gradients and
    central finite differences of its objective on X.

    For each of the four parameter arrays (encoder weights and bias, decoder
    weights and bias) every entry ``theta_k`` (or a random sample of
    ``max_entries`` of them) gets the numerical derivative

        n_k = (L(theta_k + epsilon) - L(theta_k - epsilon)) / (2 epsilon)

    of the objective L on X taken as one batch (as in ``model.loss``), and
    the array's error is UFLDL's ``norm(n - a) / norm(n + a)`` over those
    entries, with ``a`` the analytic gradient.  The largest of the four
    errors is returned.  A correct gradient gives about 1e-9 or less;
    a wrong one gives 1e-2 or more.

    The check runs in float64 on a float64 copy of the model (so a float32
    model is checked without float32 rounding swamping the differences),
    with the model's backend and hyperparameters; the model is not changed.

    Parameters
    ----------
    model : SparseAutoencoder
        A fitted model (or one whose four weights were assigned).
    X : array-like of shape (n_samples, n_features_in_)
        Data, as for ``model.loss`` (scaled when ``scale_inputs=True``).
    epsilon : float, default=1e-4
        Step of the central differences (> 0).
    max_entries : int or None, default=None
        Check at most this many entries of each array, chosen at random
        (None: every entry; each costs two objective evaluations).
    random_state : int or None, default=0
        Seed for choosing the entries when ``max_entries`` is set.
    return_details : bool, default=False
        Also return a dict with each array's error.

    Returns
    -------
    error : float
        The worst relative error over the four arrays.
    details : dict
        Only with ``return_details=True``: array name -> relative error.
    """
    if (not isinstance(epsilon, numbers.Real) or isinstance(epsilon, bool)
            or not math.isfinite(epsilon) or epsilon <= 0):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if max_entries is not None and (not isinstance(max_entries, numbers.Integral)
                                    or isinstance(max_entries, bool) or max_entries < 1):
        raise ValueError(f"max_entries must be None or an integer >= 1, got {max_entries!r}")
    # Hyperparameters and weights of one snapshot of the model.
    hp, _, state = model._hyper_and_state(check_fitted=True)
    backend = Backend(hp.backend, hp.n_threads)
    params = tuple(np.array(p, dtype=np.float64, order="C") for p in state.params)
    X64 = model._prepare(X, hp, state, objective=True, dtype=np.dtype(np.float64))
    settings = model._objective_settings(hp)
    _, grads = backend.objective_and_gradients(params, X64, **settings)
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
            plus = backend.objective(params, X64, **settings)
            flat[k] = saved - epsilon
            minus = backend.objective(params, X64, **settings)
            flat[k] = saved
            numeric[i] = (plus - minus) / (2.0 * epsilon)
        analytic = np.asarray(grad, dtype=np.float64).reshape(-1)[entries]
        denominator = np.linalg.norm(numeric + analytic)
        difference = np.linalg.norm(numeric - analytic)
        details[name] = (0.0 if difference == 0.0 else
                         float(difference / denominator) if denominator > 0 else math.inf)
    worst = max(details.values())
    return (worst, details) if return_details else worst
