"""Choosing the module that does the arithmetic: the C engine or the reference.

Both modules expose the same functions (see ``csae/reference.py``); the C
engine also takes ``n_threads=`` on the heavy ones.  ``Backend`` hides that
difference so the estimator can call either the same way.  Functions are
looked up on the module at each call (not cached), so a test may replace
one with ``monkeypatch``.
"""

import importlib

import numpy as np

from csae._threads import effective_n_threads

__all__ = ["Backend", "get_backend"]

# The functions of csae._engine that take an n_threads keyword.
_THREADED = frozenset({
    "encode", "decode", "reconstruct", "objective", "objective_and_gradients",
    "sgd_step", "sgd_epoch", "activation_sums", "objective_part",
})


def _import_engine():
    try:
        return importlib.import_module("csae._engine")
    except ImportError as err:
        raise ImportError(
            "backend='c' needs the compiled engine csae._engine, which could not be "
            f"imported ({err}). Reinstall csae (pip install .) to build it, or pass "
            "backend='python' to use the pure-NumPy reference.") from err


def _blocks(X):
    """X is block data (csae._blockwise.ChunkedData, csae._dask.DaskData): a
    data set read block by block, which does the work itself through this
    backend's functions on each block (``map_rows``, ``evaluate``,
    ``sgd_epoch``)."""
    return getattr(X, "_csae_blocks", False)


class Backend:
    """The functions of one backend, with ``n_threads`` passed where the
    backend understands it.

    Parameters
    ----------
    name : {"c", "python"}
        "c" is the compiled engine ``csae._engine``; "python" is
        ``csae.reference``.
    n_threads : int
        Threads for the C engine (ignored by the reference), capped at the
        CPUs this process may run on.
    """

    def __init__(self, name, n_threads=1):
        if name == "c":
            self.module = _import_engine()
        elif name == "python":
            self.module = importlib.import_module("csae.reference")
        else:
            raise ValueError(f"backend must be one of ('c', 'python'), got {name!r}")
        self.name = name
        # More threads than CPUs only wait for each other.
        self.n_threads = effective_n_threads(n_threads)

    def _call(self, function, *args, **kwargs):
        if self.name == "c" and function in _THREADED:
            kwargs["n_threads"] = self.n_threads
        # Overflow on the way to divergence is reported as NonFiniteError by
        # the backend; NumPy's own RuntimeWarnings would only add noise (or,
        # under -W error, replace that error with a less useful one).
        with np.errstate(all="ignore"):
            return getattr(self.module, function)(*args, **kwargs)

    def encode(self, W, b, X):
        """Hidden activations, shape (m, h)."""
        if _blocks(X):
            return X.map_rows(self, "encode", (W, b), W.shape[0], W.dtype)
        return self._call("encode", W, b, X)

    def decode(self, Wd, bd, A, decoder):
        """Decoder output, shape (m, n)."""
        return self._call("decode", Wd, bd, A, decoder)

    def reconstruct(self, params, X, decoder):
        """decode(encode(X)), shape (m, n)."""
        if _blocks(X):
            return X.map_rows(self, "reconstruct", (params, decoder), params[0].shape[1],
                              params[0].dtype)
        return self._call("reconstruct", params, X, decoder)

    def objective(self, params, X, **hyper):
        """Objective on X as one batch (a float)."""
        if _blocks(X):
            return X.evaluate(self, params, need_gradients=False, **hyper)
        return self._call("objective", params, X, **hyper)

    def objective_and_gradients(self, params, X, **hyper):
        """(objective, (dW, db, dWd, dbd)) on X as one batch."""
        if _blocks(X):
            return X.evaluate(self, params, need_gradients=True, **hyper)
        return self._call("objective_and_gradients", params, X, **hyper)

    def sgd_epoch(self, params, velocity, X, **hyper):
        """One epoch of minibatch training in place; returns (loss, rng_state).

        ``hyper`` holds the objective's and the solver's keywords, including
        Adam's (solver, beta_1, beta_2, epsilon, adam_m, adam_v, adam_t) and
        the running sparsity estimate's (sparsity_smoothing, rho_running,
        running_batches): see ``csae.reference.sgd_epoch``.
        """
        if _blocks(X):
            return X.sgd_epoch(self, params, velocity, **hyper)
        return self._call("sgd_epoch", params, velocity, X, **hyper)

    def activation_sums(self, W, b, X):
        """Column sums (float64, shape (h,)) of the activations of the rows
        of X: a block's share of n_total * rho_hat."""
        return self._call("activation_sums", W, b, X)

    def objective_part(self, params, X, rho_hat, n_total, **hyper):
        """(part, (dW, db, dWd, dbd)): the rows X's share of the full-batch
        objective of a data set of n_total rows with mean activation
        rho_hat, without the decay and KL terms.  ``hyper``: rho, beta,
        decoder."""
        return self._call("objective_part", params, X, rho_hat, n_total, **hyper)

    def objective_evaluator(self, X, n_hidden, **hyper):
        """A callable ``evaluator(params) -> (L, grads)`` for repeated
        full-batch evaluations on X (L-BFGS).  On the C engine it keeps the
        engine's workspace for its whole life and also has
        ``evaluate_flat(theta, grad) -> L`` on flat float64 vectors, which
        ``csae.solvers.lbfgs.lbfgs`` uses.  ``hyper``: rho, beta, lam, decoder."""
        # Data that is not one in-memory array (block data read chunk by
        # chunk, say) goes through objective_and_gradients every time.
        if self.name == "c" and type(X) is np.ndarray:
            with np.errstate(all="ignore"):
                return self.module.ObjectiveEvaluator(X, n_hidden, n_threads=self.n_threads,
                                                      **hyper)
        return _PlainEvaluator(self, X, hyper)

    def init_params(self, n_features, n_hidden, rng_state, dtype):
        """Default initial parameters; returns (params, rng_state)."""
        return self._call("init_params", n_features, n_hidden, rng_state, dtype)


class _PlainEvaluator:
    """Backend.objective_evaluator for a backend without one of its own."""

    def __init__(self, backend, X, hyper):
        self.backend, self.X, self.hyper = backend, X, hyper

    def __call__(self, params):
        return self.backend.objective_and_gradients(params, self.X, **self.hyper)


def get_backend(name, n_threads=1):
    """The ``Backend`` called ``name`` ("c" or "python")."""
    return Backend(name, n_threads)
