#!/usr/bin/env python
"""The engine's share of an L-BFGS fit, with and without the reusable
evaluator (``Backend.objective_evaluator``).

    python benchmarks/lbfgs_evaluator.py [--repeats 3] [--iterations 100]

On S-sized data (10 000 x 64, uniform [0, 1], 25 hidden units), n_threads=1,
for float64 and float32.  Reported: wall time, process CPU time (all
threads, BLAS's included) and the share of the calling thread's CPU time
(``time.thread_time``: other load on a shared machine counts less than in
wall time) spent in the engine calls:

fit
    ``SparseAutoencoder(solver="lbfgs", max_epochs=N, tol=0, dtype=...)
    .fit(X)`` as it is: one ``Backend.objective_and_gradients`` per
    evaluation (workspace and gradient arrays allocated per call), timed
    around that call.
fit, BLAS threads
    the same with SciPy's L-BFGS-B update left on OpenBLAS's default thread
    count (as before ``csae.solvers.lbfgs`` limited BLAS to one thread).
driver, per call
    ``csae.solvers.lbfgs.lbfgs`` called as ``fit`` calls it, with
    ``lambda p: backend.objective_and_gradients(p, X, ...)``.
driver, evaluator
    the same with ``backend.objective_evaluator(X, h, ...)``: one workspace
    for the fit, theta read and the gradient written in place
    (``evaluate_flat``), timed around ``evaluate_flat``.

SciPy is imported before timing.  Prints one line per case.
"""

import argparse
import contextlib
import statistics
import time

import numpy as np
import scipy.optimize  # noqa: F401  (its first import is not part of a fit)

from csae import SparseAutoencoder, reference
from csae._backends import Backend
import csae.solvers.lbfgs as _solvers
from csae.solvers.lbfgs import lbfgs

SETTINGS = dict(rho=0.05, beta=3.0, lam=1e-4, decoder="sigmoid")


class _Clock:
    """Wall, process CPU and thread CPU seconds since creation."""

    def __init__(self):
        self.start = (time.perf_counter(), time.process_time(), time.thread_time())

    def read(self):
        now = (time.perf_counter(), time.process_time(), time.thread_time())
        return tuple(b - a for a, b in zip(self.start, now))


class _Timed:
    """Wraps a callable (and its evaluate_flat, if any) with a CPU timer."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0
        if hasattr(inner, "evaluate_flat"):
            self.evaluate_flat = self._flat

    def __call__(self, *args):
        t = time.thread_time()
        try:
            return self.inner(*args)
        finally:
            self.seconds += time.thread_time() - t

    def _flat(self, theta, grad):
        t = time.thread_time()
        try:
            return self.inner.evaluate_flat(theta, grad)
        finally:
            self.seconds += time.thread_time() - t


def fit_case(X, iterations, blas_limited=True):
    backend_cls = Backend
    original = backend_cls.objective_and_gradients
    original_limit = _solvers._one_blas_thread
    timer = {"s": 0.0}

    def timed(self, *args, **kw):
        t = time.thread_time()
        try:
            return original(self, *args, **kw)
        finally:
            timer["s"] += time.thread_time() - t

    backend_cls.objective_and_gradients = timed
    if not blas_limited:
        _solvers._one_blas_thread = contextlib.nullcontext
    try:
        model = SparseAutoencoder(n_hidden=25, solver="lbfgs", max_epochs=iterations, tol=0,
                                  n_threads=1, random_state=0, dtype=X.dtype)
        clock = _Clock()
        model.fit(X)
        times = clock.read()
    finally:
        backend_cls.objective_and_gradients = original
        _solvers._one_blas_thread = original_limit
    return times, timer["s"], model.n_iter_


def driver_case(X, iterations, evaluator):
    backend = Backend("c", 1)
    params, _ = reference.init_params(X.shape[1], 25, 0, X.dtype)
    if evaluator:
        fun = _Timed(backend.objective_evaluator(X, 25, **SETTINGS))
    else:
        fun = _Timed(lambda p: backend.objective_and_gradients(p, X, **SETTINGS))
    clock = _Clock()
    result = lbfgs(fun, params, max_iter=iterations, max_fun=15000, tol=0)
    times = clock.read()
    return times, fun.seconds, result.n_iter, result.n_fun, result.loss_curve[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X64 = rng.random((10_000, 64))
    for dtype in (np.float64, np.float32):
        X = X64.astype(dtype)
        cases = {
            "fit": lambda: fit_case(X, args.iterations),
            "fit, BLAS threads": lambda: fit_case(X, args.iterations, blas_limited=False),
            "driver, per call": lambda: driver_case(X, args.iterations, False),
            "driver, evaluator": lambda: driver_case(X, args.iterations, True),
        }
        for name, run in cases.items():
            rows = [run() for _ in range(args.repeats)]
            med = [statistics.median(r[0][i] for r in rows) for i in range(3)]
            shares = [r[1] / r[0][2] for r in rows]
            extra = (f", {rows[0][3]} evaluations, final objective {rows[0][4]:.6g}"
                     if len(rows[0]) > 3 else "")
            print(f"{np.dtype(dtype).name:8s} {name:18s} medians: wall {med[0]:.3f} s, "
                  f"process CPU {med[1]:.3f} s, thread CPU {med[2]:.3f} s; engine share of "
                  f"thread CPU {100 * statistics.median(shares):.1f}% "
                  f"({100 * min(shares):.1f}-{100 * max(shares):.1f}%); "
                  f"{rows[0][2]} iterations{extra}", flush=True)


if __name__ == "__main__":
    main()
